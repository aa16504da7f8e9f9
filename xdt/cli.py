"""The `xdt` command line. Each command: parse → load config → call one library function → print.

TensorFlow is imported only inside commands that train or score, so `xdt --help` and config
errors are instant.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from xdt.commands.analysis import register as register_analysis_commands
from xdt.commands.replay import register as register_replay_command
from xdt.commands.update import register as register_update_command
from xdt.config import LoadedConfig, config_from_dict, load_config, read_config_text
from xdt.errors import XdtError
from xdt.runs import STATUS_DAMAGED, RunDirectory, listing_row, open_run, run_folders, vanished_run_error

app = typer.Typer(
    name="xdt",
    help="Cross-domain transfer learning for recommender systems: prepare data, pretrain on a source domain, "
    "transfer to a target domain, evaluate honestly, and recommend.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
runs_app = typer.Typer(help="List and inspect run directories.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")

stdout = Console(soft_wrap=True)
stderr = Console(stderr=True, soft_wrap=True)

ConfigArgument = Annotated[Path, typer.Argument(help="Experiment YAML config, e.g. configs/quickstart.yaml.")]
SetOption = Annotated[
    list[str] | None, typer.Option("--set", help="Override a config value: --set transfer.epochs=5 (repeatable).")
]
RunArgument = Annotated[Path, typer.Argument(help="A run directory, e.g. runs/quickstart/20261128-101500-3f2a9c.")]


@app.callback()
def quiet_tensorflow() -> None:
    """Keep TensorFlow's C++ start-up logging out of the user's terminal (unless they set the level)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def fail(error: XdtError) -> None:
    """Print one clear message and exit with code 2."""
    stderr.print(f"[bold red]error:[/bold red] {escape(str(error))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


def reporter():  # noqa: ANN201  (imported lazily to keep start-up light)
    """A console reporter on stderr."""
    from xdt.progress import ConsoleReporter

    return ConsoleReporter(stderr)


def load(config: Path, overrides: list[str] | None) -> LoadedConfig:
    """Load and validate a config with its overrides."""
    return load_config(config, overrides or [])


def resumed(run_path: Path) -> tuple[RunDirectory, LoadedConfig]:
    """Open a run to resume and the exact config it ran with (resolved.json), validated before TensorFlow is imported."""
    run = open_run(run_path)
    config = config_from_dict(run.read_json("resolved.json"), source=str(run.path / "resolved.json"))
    config_file = run.path / "config.yaml"
    return run, LoadedConfig(config, read_config_text(config_file), config_file, ())


@app.command()
def prepare(config: ConfigArgument, set_: SetOption = None) -> None:
    """Read, clean and split the configured data into data/<name>/ and print what was done."""
    try:
        loaded = load(config, set_)
        from xdt.data.prepare import prepare_dataset
        from xdt.tables import drops_table, manifest_table

        manifest = prepare_dataset(loaded.config, progress=lambda stage: stderr.print(f"[dim]·[/dim] prepare: {stage}"))
    except XdtError as error:
        fail(error)
    stdout.print(manifest_table(manifest))
    if manifest["drops"]:
        stdout.print(drops_table(manifest["drops"]))
    stdout.print(
        f"users {manifest['users']:,} · overlapping {manifest['overlap_users']:,} · cold-start test {manifest['cold_test_users']:,}"
        f" · cold-start valid {manifest['cold_valid_users']:,} → {Path(loaded.config.runtime.data_dir) / manifest['name']}"
    )


@app.command("pretrain-source")
def pretrain_source(
    config: Annotated[Path | None, typer.Argument(help="Experiment YAML config (omit with --resume).")] = None,
    set_: SetOption = None,
    resume: Annotated[Path | None, typer.Option(help="Continue an interrupted pretrain run.")] = None,
) -> None:
    """Train the source-domain model into a new run directory (or continue one with --resume)."""
    try:
        run, loaded = resumed(resume) if resume else (None, load(require(config), set_))
        from xdt.pretrain import pretrain_source as train

        run = train(loaded.config, config_text=loaded.text, reporter=reporter(), resume=run)
    except XdtError as error:
        fail(error)
    except OSError as error:
        fail(vanished_run_error(error))
    stdout.print(f"pretrain run: {run.path}")


@app.command()
def transfer(
    config: Annotated[Path | None, typer.Argument(help="Experiment YAML config (omit with --resume).")] = None,
    from_: Annotated[Path | None, typer.Option("--from", help="The pretrain-source run to start from.")] = None,
    set_: SetOption = None,
    resume: Annotated[Path | None, typer.Option(help="Continue an interrupted transfer run.")] = None,
) -> None:
    """Train each method in transfer.methods on the target domain, one run directory per method."""
    try:
        if resume:
            run, loaded = resumed(resume)
            parent = open_run(run.info()["parent"])
            from xdt.transfer import transfer_method

            runs = [transfer_method(loaded.config, run.info()["method"], parent=parent, config_text=loaded.text, reporter=reporter(), resume=run)]
        else:
            loaded = load(require(config), set_)
            if from_ is None:
                raise XdtError("transfer needs --from PRETRAIN_RUN (the run printed by `xdt pretrain-source`)")
            parent = open_run(from_)
            from xdt.transfer import transfer_method

            runs = [
                transfer_method(loaded.config, method, parent=parent, config_text=loaded.text, reporter=reporter())
                for method in loaded.config.transfer.methods
            ]
    except XdtError as error:
        fail(error)
    except OSError as error:
        fail(vanished_run_error(error))
    for run in runs:
        stdout.print(f"transfer run ({run.info()['method']}): {run.path}")


@app.command()
def evaluate(run: RunArgument) -> None:
    """Evaluate a run on the target test split, by cohort (full ranking; MAE / RMSE for rating runs); writes results.json."""
    try:
        from xdt.evaluate import evaluate_run
        from xdt.report import write_report
        from xdt.session import load_run_config
        from xdt.tasks import get_task

        directory = open_run(run)
        results = evaluate_run(directory, reporter=reporter())
        report = write_report(directory)
        tables = get_task(load_run_config(directory).task).results_tables(results)
    except XdtError as error:
        fail(error)
    except OSError as error:
        fail(vanished_run_error(error))
    for table in tables:
        stdout.print(table)
    stdout.print(f"results: {directory.path / 'results.json'}")
    stdout.print(f"report: {report}")


@app.command()
def recommend(
    run: RunArgument,
    user: Annotated[list[str] | None, typer.Option("--user", help="Raw user id (repeatable).")] = None,
    users: Annotated[Path | None, typer.Option("--users", help="File of raw user ids, one per line.")] = None,
    k: Annotated[int, typer.Option("--k", help="Number of items per user.")] = 10,
    output: Annotated[Path | None, typer.Option("--output", help="Write recommendations to this CSV (or .json) file.")] = None,
    explain: Annotated[
        bool, typer.Option("--explain", help="Also show the history items behind each recommendation (see `xdt explain`).")
    ] = False,
) -> None:
    """Top-k target items for users, excluding items they already have; cold-start users are served from their source history.

    Rating runs rank by the predicted rating of their learned method with the best validation score; sequential runs by the next-item score after each user's whole history.
    """
    try:
        from xdt.recommend import recommend as recommend_users
        from xdt.recommend import requested_users, with_explanations

        requested = requested_users(user or [], users)
        directory = open_run(run)
        frame = recommend_users(directory, requested, k=k)
        if explain:
            frame = with_explanations(directory, frame)
    except XdtError as error:
        fail(error)
    if explain and output is None:
        from xdt.tables import explanations_table

        stdout.print(explanations_table(frame.attrs["explanations"], title="Recommendations, explained"))
        return
    if output is not None:
        if output.suffix == ".json" and explain:
            output.write_text(json.dumps(frame.attrs["explanations"], indent=2))
        elif output.suffix == ".json":
            output.write_text(frame.to_json(orient="records", indent=2))
        else:
            frame.to_csv(output, index=False)
        stdout.print(f"{len(frame):,} recommendations for {len(requested):,} users → {output}")
        return
    from xdt.tables import recommendations_table

    stdout.print(recommendations_table(frame))


@app.command("explain")
def explain_command(
    run: RunArgument,
    user: Annotated[str, typer.Option("--user", help="Raw user id.")],
    item: Annotated[
        list[str] | None, typer.Option("--item", help="Explain this target item (repeatable) instead of the top-k.")
    ] = None,
    k: Annotated[int, typer.Option("--k", help="Number of recommendations to explain.")] = 10,
    top: Annotated[int, typer.Option("--top", help="History items shown per explained item.")] = 5,
    format_: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
) -> None:
    """Which of the user's history items (source and target) made each recommended item score high, and how that was measured.

    kNN methods (itemknn, xknn) give exact terms; history encoders (ptupcdr cold-start, dann, two_tower, content) give occlusion
    drops; models scoring from a learned user vector (target_mf, finetune, emcdr, cmf, joint) are reported as not explainable.
    """
    try:
        if format_ not in ("table", "json"):
            raise XdtError(f"--format: expected 'table' or 'json'. Received: {format_!r}")
        from xdt.explain import explain

        explanations = [row.to_dict() for row in explain(open_run(run), user, items=item or [], k=k, top=top)]
    except XdtError as error:
        fail(error)
    if format_ == "json":
        print(json.dumps(explanations, indent=2))
        return
    from xdt.tables import explanations_table

    stdout.print(explanations_table(explanations))


@app.command("run")
def run_all(config: ConfigArgument, set_: SetOption = None) -> None:
    """Run the whole pipeline (per seed of `seeds`): prepare → pretrain-source → transfer → evaluate → report → example recommendations."""
    try:
        loaded = load(config, set_)
        from xdt.experiment import run_experiment
        from xdt.recommend import recommend as recommend_users
        from xdt.tables import recommendations_table
        from xdt.tasks import get_task

        task = get_task(loaded.config.task)
        outcomes = run_experiment(loaded.config, config_text=loaded.text, reporter=reporter())
        for table in task.outcome_tables(outcomes, loaded.config):
            stdout.print(table)
        if not task.example_recommendations:
            return
        last = outcomes[-1]
        examples = example_users(last, loaded.config.recommend.examples)
        shown = next(reversed(last.transfer_runs.values()))
        if examples:
            frame = recommend_users(shown, examples, k=min(5, loaded.config.recommend.k))
            stdout.print(recommendations_table(frame, title=f"Example recommendations ({shown.info()['method']})"))
    except XdtError as error:
        fail(error)
    except OSError as error:
        fail(vanished_run_error(error))
    for outcome in outcomes:
        stdout.print(f"seed {outcome.seed} pretrain run: {outcome.pretrain_run.path}")
        for method, directory in outcome.transfer_runs.items():
            stdout.print(f"transfer run ({method}): {directory.path}")
        stdout.print(f"report: {outcome.report}")


def example_users(outcome, count: int) -> list[str]:  # noqa: ANN001
    """A few cold-start test users of the experiment, for the example recommendations."""
    import pandas as pd

    first = next(iter(outcome.transfer_runs.values()))
    per_user = pd.read_parquet(first.path / "per_user.parquet")
    cold = per_user.loc[per_user["cohort"] == "cold", "user"].tolist()
    return (cold or per_user["user"].tolist())[:count]


def require(config: Path | None) -> Path:
    """A config path is required unless --resume is given."""
    if config is None:
        raise XdtError("Missing argument CONFIG (an experiment YAML file), or use --resume RUN")
    return config


@runs_app.command("list")
def runs_list(
    experiment: Annotated[str | None, typer.Option(help="Only runs of this experiment.")] = None,
    runs_dir: Annotated[Path, typer.Option(help="Where run directories live.")] = Path("runs"),
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List runs, oldest first, with their status and test NDCG@10; runs whose files cannot be read are `damaged`."""
    from xdt.tables import runs_table

    rows = [listing_row(run) for run in run_folders(runs_dir, experiment)]
    if as_json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        stdout.print(f"No runs under {runs_dir}")
    else:
        stdout.print(runs_table(rows))
        for row in rows:
            if row["status"] == STATUS_DAMAGED:
                stderr.print(f"damaged: {escape(row['problem'])}", highlight=False, soft_wrap=True)


@runs_app.command("show")
def runs_show(run: RunArgument) -> None:
    """Show a run's metadata, parent and results."""
    try:
        directory = open_run(run)
        info = directory.info()
        results = directory.read_json("results.json") if (directory.path / "results.json").is_file() else None
    except XdtError as error:
        fail(error)
    from xdt.tables import results_table

    stdout.print_json(json.dumps(info))
    if results is not None:
        if "test" in results:
            stdout.print(results_table({results["method"]: results}, ks=results["ks"]))
        else:
            stdout.print_json(json.dumps(results))


register_analysis_commands(app, runs_app)
register_update_command(app)
register_replay_command(app)


def main() -> None:
    """Entry point for `python -m xdt`."""
    app()


if __name__ == "__main__":
    sys.exit(main())
