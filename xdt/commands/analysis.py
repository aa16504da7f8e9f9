"""Analysis commands: `xdt compare`, `xdt export`, `xdt report`, `xdt track` and `xdt runs compare`.

Plain functions, added to the app by `register(app, runs_app)`. TensorFlow is imported only by
`export`, inside the command.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from xdt.errors import XdtError

RunArgument = Annotated[Path, typer.Argument(help="A run directory, e.g. runs/quickstart/20261128-101500-3f2a9c.")]


def fail(error: XdtError) -> None:
    """Print one clear message and exit with code 2 (the CLI's `fail`)."""
    from xdt.cli import fail as cli_fail

    cli_fail(error)


def consoles():  # noqa: ANN201  (the CLI's consoles, so output goes where every other command's goes)
    """(stdout, stderr) rich consoles of the CLI."""
    from xdt.cli import stderr, stdout

    return stdout, stderr


def compare(
    run_a: Annotated[Path, typer.Argument(help="Run A (e.g. the new method).")],
    run_b: Annotated[Path, typer.Argument(help="Run B (e.g. the baseline).")],
    metrics: Annotated[
        list[str] | None, typer.Option("--metrics", help="Metric to compare (repeatable, or comma-separated); default ndcg/recall/hr/precision@10 and mrr.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of markdown tables.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap resampling.")] = 0,
) -> None:
    """Offline A/B test of two evaluated runs: paired per-user differences, bootstrap 95% CI, t-test and Wilcoxon p, per cohort."""
    from xdt.comparison import compare_runs
    from xdt.runs import open_run

    chosen = [name.strip() for entry in metrics or [] for name in entry.split(",") if name.strip()]
    try:
        report = compare_runs(open_run(run_a), open_run(run_b), metrics=chosen or None, seed=seed)
    except XdtError as error:
        fail(error)
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.to_markdown())


def export(
    run: RunArgument,
    output: Annotated[Path | None, typer.Option("--output", help="SavedModel folder (default RUN/saved_model).")] = None,
) -> None:
    """Write a TensorFlow SavedModel with a `recommend` endpoint (raw user id, k → raw item ids, scores) that serves without xdt."""
    stdout, _ = consoles()
    try:
        from xdt.export import export_run
        from xdt.runs import open_run

        path = export_run(open_run(run), output)
    except XdtError as error:
        fail(error)
    stdout.print(f"SavedModel with endpoint `recommend`: {path}")
    stdout.print(
        f"  load: tf.saved_model.load({str(path)!r}).recommend(tf.constant(['USER_ID']), tf.constant(10))",
        highlight=False,
        soft_wrap=True,
    )


def report(run: RunArgument) -> None:
    """Write report.md and PNG plots (metric@k, training curves, cohorts, activity buckets) into an evaluated run."""
    stdout, _ = consoles()
    try:
        from xdt.report import write_report
        from xdt.runs import open_run

        path = write_report(open_run(run))
    except XdtError as error:
        fail(error)
    stdout.print(f"report: {path}")


def track(
    run: RunArgument,
    uri: Annotated[str, typer.Option(help="MLflow tracking URI, or a folder for a local file store.")] = "mlruns",
    experiment: Annotated[str | None, typer.Option(help="MLflow experiment name (default: the run's experiment).")] = None,
) -> None:
    """Log a run's params, per-epoch metrics, results and report to MLflow (needs the optional extra `mlflow`)."""
    stdout, _ = consoles()
    try:
        from xdt.runs import open_run
        from xdt.tracking import log_run_to_mlflow, resolve_tracking_uri

        mlflow_run_id = log_run_to_mlflow(open_run(run), tracking_uri=uri, experiment=experiment)
    except XdtError as error:
        fail(error)
    stdout.print(f"MLflow run {mlflow_run_id} in {resolve_tracking_uri(uri)}", highlight=False, soft_wrap=True)


def runs_compare(
    experiment: Annotated[str | None, typer.Option(help="Only runs of this experiment.")] = None,
    group_by: Annotated[
        list[str], typer.Option("--group-by", help="Group runs by a run field (method, seed, kind) or config key (transfer.epochs); repeatable.")
    ] = ["method"],  # noqa: B006  (Typer reads the default from here)
    output_format: Annotated[str, typer.Option("--format", help="markdown, csv or json.")] = "markdown",
    metrics: Annotated[list[str] | None, typer.Option("--metrics", help="Metric columns (repeatable, or comma-separated).")] = None,
    runs_dir: Annotated[Path, typer.Option(help="Where run directories live.")] = Path("runs"),
) -> None:
    """One table over many evaluated runs: mean ± std over seeds per group, best per column marked."""
    from xdt.comparison import compare_many, render_table

    chosen = [name.strip() for entry in metrics or [] for name in entry.split(",") if name.strip()]
    groups = [name.strip() for entry in group_by for name in entry.split(",") if name.strip()]
    try:
        if output_format not in ("markdown", "csv", "json"):
            raise XdtError(f"Expected --format markdown, csv or json. Received: {output_format!r}")
        table = compare_many(runs_dir, experiment, groups, metrics=chosen or None)
        text = render_table(table, output_format)  # type: ignore[arg-type]
    except XdtError as error:
        fail(error)
    print(text, end="" if text.endswith("\n") else "\n")
    _, stderr = consoles()
    for warning in table.warnings:
        stderr.print(f"[yellow]warning:[/yellow] {escape(warning)}", highlight=False, soft_wrap=True)
    if table.skipped:
        stderr.print(f"[dim]skipped {len(table.skipped)} runs without readable test results: {'; '.join(table.skipped[:3])}"
                     f"{' …' if len(table.skipped) > 3 else ''}[/dim]", highlight=False, soft_wrap=True)


def register(app: typer.Typer, runs_app: typer.Typer) -> None:
    """Add `compare`, `export`, `report` and `track` to `app`, and `compare` to `runs_app`."""
    app.command("compare")(compare)
    app.command("export")(export)
    app.command("report")(report)
    app.command("track")(track)
    runs_app.command("compare")(runs_compare)
