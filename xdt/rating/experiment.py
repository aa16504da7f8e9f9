"""`xdt run` with `task: rating`: every rating method of `transfer.methods` trained and scored into ONE run directory.

The run holds config.yaml, resolved.json, env.json, data.json, `models/<method>.keras` (plus
`models/source_mf.keras` when a transfer method needed it), metrics.jsonl (one line per epoch of
each trained stage), results.json (MAE / RMSE per method: overall, per cohort, per source-activity
bucket; no timings, so two runs with one seed give the same file), per_rating.parquet (one row per
test rating with every method's prediction) and report.md.

`evaluate_rating_run` recomputes results.json from the saved models (`xdt evaluate RUN`).
TensorFlow is imported only by `run_rating_experiment` and `evaluate_rating_run`; `rating_table` is plain rich.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.table import Table

from xdt.config import ExperimentConfig, RatingConfig
from xdt.errors import DataError, XdtError
from xdt.progress import EpochReport, Reporter, SilentReporter
from xdt.runs import STATUS_COMPLETE, RunDirectory, create_run

if TYPE_CHECKING:
    from xdt.data.dataset import PreparedDataset
    from xdt.rating.training import FitResult, RatingData, RatingRun, RatingSettings

MODELS_FOLDER = "models"
PER_RATING_FILE = "per_rating.parquet"
REPORT_FILE = "report.md"


@dataclass(frozen=True)
class RatingOutcome:
    """What one seed of a rating experiment produced: its run, results.json's content and report.md."""

    seed: int
    run: RunDirectory
    results: dict[str, Any]
    report: Path


def rating_settings(rating: RatingConfig) -> RatingSettings:
    """The `RatingSettings` of a config's `rating:` section."""
    from xdt.rating.training import FitSettings, RatingSettings

    def stage(prefix: str) -> FitSettings:
        return FitSettings(
            epochs=getattr(rating, f"{prefix}_epochs"),
            batch_size=getattr(rating, f"{prefix}_batch_size"),
            learning_rate=getattr(rating, f"{prefix}_learning_rate"),
            patience=getattr(rating, f"{prefix}_patience"),
            select_on=rating.select_on,
        )

    return RatingSettings(
        embedding_dim=rating.embedding_dim,
        l2=rating.l2,
        source_valid_fraction=rating.source_valid_fraction,
        mf=stage("mf"),
        mapping=stage("mapping"),
        meta=stage("meta"),
        emcdr_mapping=rating.mapping,
        emcdr_hidden=rating.mapping_hidden,
        meta_dim=rating.meta_dim,
        max_history=rating.history_length,
        meta_l2=rating.meta_l2,
        history_dropout=rating.history_dropout,
        warm_start=rating.warm_start,
        ridge=rating.ridge,
    )


def run_rating_experiment(config: ExperimentConfig, *, config_text: str, reporter: Reporter = SilentReporter()) -> RatingOutcome:
    """Prepare the data if needed, train every method of `transfer.methods`, score the test ratings, write one run."""
    from xdt.experiment import prepare_if_needed
    from xdt.rating.training import run_rating_methods
    from xdt.runtime import select_strategy
    from xdt.session import open_dataset, record_environment

    prepare_if_needed(config, reporter)
    dataset = open_dataset(config)
    data = rating_data(config, dataset)
    # The rating models train on one device (plain Keras fit); env.json records exactly that.
    strategy = select_strategy("default")
    run = create_run(
        Path(config.runtime.runs_dir), config.experiment, kind="rating", config_text=config_text,
        resolved=config.to_dict(), seed=config.seed, method="rating",
    )
    record_environment(run, config, dataset, strategy)
    methods = tuple(config.transfer.methods)
    reporter.status(f"rating methods {', '.join(methods)} on {len(data.test):,} test ratings of {len(np.unique(data.test.users)):,} cold-start users → {run.path}")
    settings = rating_settings(config.rating)
    trained = run_rating_methods(data, methods, settings, config.seed)
    record_fits(run, trained.fits, settings, reporter)
    save_models(run, trained)
    results = rating_results(config, data, trained.predictions, fit_summaries(trained.fits))
    run.write_json("results.json", results)
    per_rating_frame(dataset, data, trained.predictions, methods).to_parquet(run.path / PER_RATING_FILE, index=False)
    report = write_rating_report(run, results)
    run.update_info(status=STATUS_COMPLETE)
    return RatingOutcome(config.seed, run, results, report)


def evaluate_rating_run(run: RunDirectory, config: ExperimentConfig, *, reporter: Reporter = SilentReporter()) -> dict[str, Any]:
    """`xdt evaluate RUN` of a rating run: every method's test predictions again, rewriting results.json and per_rating.parquet.

    Baselines are refitted from the prepared data and the learned methods predict with their
    saved `models/<method>.keras`, so the metrics equal those `xdt run` wrote; the fits (training
    facts that no saved model holds) are kept from the run's results.json.
    """
    from xdt.rating.evaluation import predict_ratings
    from xdt.rating.training import predict_baselines
    from xdt.session import check_same_data, open_dataset

    fits = run.read_json("results.json")["fits"]
    dataset = open_dataset(config)
    check_same_data(run, dataset)
    data = rating_data(config, dataset)
    methods = tuple(config.transfer.methods)
    reporter.status(f"evaluate rating methods {', '.join(methods)} on {len(data.test):,} test ratings → {run.path}")
    predictions = predict_baselines(data, methods)
    for method in methods:
        if method not in predictions:
            predictions[method] = predict_ratings(load_rating_model(run, method), data.test.users, data.test.items, clip=data.rating_range)
    results = rating_results(config, data, predictions, fits)
    run.write_json("results.json", results)
    per_rating_frame(dataset, data, predictions, methods).to_parquet(run.path / PER_RATING_FILE, index=False)
    run.update_info(evaluated=True)
    return results


def load_rating_model(run: RunDirectory, method: str) -> Any:
    """The saved Keras model of one learned rating method, with a clear error when the run has none."""
    import keras

    import xdt.rating.models  # noqa: F401  (registers the rating models with Keras, so they load)

    path = run.path / MODELS_FOLDER / f"{method}.keras"
    if not path.is_file():
        raise XdtError(f"Run {run.path} has no {MODELS_FOLDER}/{method}.keras (status: {run.info().get('status')}); run `xdt run` again")
    return keras.saving.load_model(path, compile=False)


def rating_data(config: ExperimentConfig, dataset: PreparedDataset) -> RatingData:
    """The prepared split as `RatingData`, clipped to the target's configured rating range (else its observed range)."""
    from xdt.data.protocols import TARGET
    from xdt.rating.training import rating_data_from_prepared

    ratings = dataset.interactions["rating"] if "rating" in dataset.interactions else None
    if ratings is None or ratings.isna().any():
        missing = len(dataset.interactions) if ratings is None else int(ratings.isna().sum())
        raise DataError(
            f"task: rating needs a rating on every row; dataset {dataset.manifest['name']!r} has {missing:,} rows without one "
            "(implicit feedback: use task: ranking)"
        )
    try:
        data = rating_data_from_prepared(dataset, valid_fraction=config.rating.valid_fraction, seed=config.seed)
    except ValueError as error:
        raise DataError(str(error)) from None
    if len(data.test) == 0 or len(data.target_train) == 0 or len(data.valid) == 0:
        raise DataError(
            f"task: rating needs target train, validation and test ratings. Received: train {len(data.target_train)}, "
            f"valid {len(data.valid)}, test {len(data.test)} (check dataset.cold_fraction and valid_cold_fraction)"
        )
    target = config.dataset.target
    if target is not None and target.rating_range is not None:
        low, high = target.rating_range
    else:
        known = dataset.rows(TARGET, "train", "valid")["rating"]
        low, high = float(known.min()), float(known.max())
    return replace(data, rating_range=(float(low), float(high)))


def record_fits(run: RunDirectory, fits: Mapping[str, FitResult], settings: RatingSettings, reporter: Reporter) -> None:
    """One metrics.jsonl line per epoch of each trained stage (epoch 0: a warm start before training)."""
    stage_settings = {"target_mf": settings.mf, "source_mf": settings.mf, "emcdr": settings.mapping, "ptupcdr": settings.meta}
    for stage, fit in fits.items():
        select_on = stage_settings[stage].select_on
        epochs = stage_settings[stage].epochs
        for record in fit.history:
            loss = None if np.isnan(record["loss"]) else float(record["loss"])
            run.append_metrics(
                {"stage": stage, "epoch": int(record["epoch"]), "loss": loss, "valid_score": float(record["valid"]),
                 "valid_metric": select_on, "seconds": round(float(record["seconds"]), 3)}
            )
            reporter.epoch(EpochReport(stage, int(record["epoch"]), epochs, float(record["loss"]), float(record["valid"]), float(record["seconds"])))
        reporter.status(f"{stage}: kept epoch {fit.best_epoch} (valid {select_on} {fit.best_score:.4f})")


def save_models(run: RunDirectory, trained: RatingRun) -> None:
    """Every trained Keras model as `models/<name>.keras`."""
    folder = run.path / MODELS_FOLDER
    folder.mkdir(exist_ok=True)
    for name, model in trained.models.items():
        model.save(folder / f"{name}.keras")


def fit_summaries(fits: Mapping[str, FitResult]) -> dict[str, dict[str, Any]]:
    """results.json's "fits": the epoch each trained stage kept, its validation score, how long it ran; no timings."""
    return {
        stage: {"best_epoch": fit.best_epoch, "best_valid": fit.best_score, "epochs_run": len(fit.history), "stopped_early": fit.stopped_early}
        for stage, fit in fits.items()
    }


def rating_results(
    config: ExperimentConfig, data: RatingData, predictions: Mapping[str, np.ndarray], fits: Mapping[str, Any]
) -> dict[str, Any]:
    """results.json: MAE / RMSE per method overall, per cohort and per source-activity bucket, and the `fit_summaries`."""
    from xdt.rating.evaluation import evaluate_ratings

    test = data.test
    known = data.target_known[test.users]
    cohorts = {name: mask for name, mask in (("cold", ~known), ("warm", known)) if mask.any()}
    activity = data.source_activity()
    return {
        "task": "rating",
        "experiment": config.experiment,
        "dataset": config.dataset.name,
        "seed": config.seed,
        "rating_range": list(data.rating_range),
        "select_on": config.rating.select_on,
        "counts": {
            "test_users": int(len(np.unique(test.users))),
            "test_ratings": len(test),
            "valid_users": int(len(np.unique(data.valid.users))),
            "valid_ratings": len(data.valid),
            "meta_train_users": int(len(data.meta_users)),
            "target_train_ratings": len(data.target_train),
            "source_ratings": len(data.source),
        },
        "methods": {
            method: evaluate_ratings(predictions[method], test.ratings, test.users, cohorts=cohorts, source_activity=activity)
            for method in config.transfer.methods
        },
        "fits": dict(fits),
    }


def per_rating_frame(dataset: PreparedDataset, data: RatingData, predictions: Mapping[str, np.ndarray], methods: tuple[str, ...]) -> Any:
    """One row per test rating: raw user and item, the rating, the user's cohort and source activity, one prediction column per method."""
    import pandas as pd

    from xdt.data.protocols import TARGET

    items = dataset.items(TARGET)
    raw_items = np.empty(dataset.n_items(TARGET), dtype=object)
    raw_items[items["item"].to_numpy()] = items["raw_item"].to_numpy()
    test = data.test
    frame = pd.DataFrame(
        {
            "user": dataset.raw_users[test.users].astype(str),
            "item": raw_items[test.items].astype(str),
            "rating": test.ratings.astype(np.float32),
            "cohort": np.where(data.target_known[test.users], "warm", "cold"),
            "source_activity": data.source_activity()[test.users].astype(np.int64),
        }
    )
    for method in methods:
        frame[method] = np.asarray(predictions[method], dtype=np.float32)
    return frame


def cohort_rows(result: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """(label, metrics) of one method: all, each cohort smaller than all, each source-activity bucket (in bucket order)."""
    cohorts = result.get("cohorts", {}).items()
    rows = [("all", result["all"])] + [(name, values) for name, values in cohorts if values["ratings"] < result["all"]["ratings"]]
    buckets = sorted(result.get("source_activity", {}).items(), key=lambda item: int(item[0].split("-")[0].rstrip("+")))
    return rows + [(f"source {label}", values) for label, values in buckets]


def rating_table(results: Mapping[str, Any], *, title_suffix: str = "") -> Table:
    """Methods × (MAE, RMSE) by cohort and source-activity bucket; the lowest of each row group in green."""
    suffix = f", {title_suffix}" if title_suffix else ""
    low, high = results.get("rating_range", (1, 5))
    table = Table(title=f"Cold-start users' target-domain test ratings: MAE / RMSE by source activity (predictions clipped to [{low:g}, {high:g}]; best in green{suffix})")
    table.add_column("method", style="bold")
    table.add_column("cohort")
    table.add_column("ratings", justify="right")
    table.add_column("MAE", justify="right")
    table.add_column("RMSE", justify="right")
    best: dict[tuple[str, str], float] = {}
    for result in results["methods"].values():
        for label, values in cohort_rows(result):
            for metric in ("mae", "rmse"):
                best[(label, metric)] = min(best.get((label, metric), float("inf")), values[metric])
    for method, result in results["methods"].items():
        rows = cohort_rows(result)
        for index, (label, values) in enumerate(rows):
            cells = []
            for metric in ("mae", "rmse"):
                text = f"{values[metric]:.4f}"
                cells.append(f"[green]{text}[/green]" if values[metric] == best[(label, metric)] else text)
            table.add_row(method if index == 0 else "", label, f"{values['ratings']:,}", *cells, end_section=index == len(rows) - 1)
    return table


def write_rating_report(run: RunDirectory, results: Mapping[str, Any]) -> Path:
    """`<run>/report.md`: the counts, MAE / RMSE per method and cohort, and which epoch each stage kept."""
    from xdt.comparison import markdown_table

    counts = results["counts"]
    methods = list(results["methods"])
    labels = [label for label, _ in cohort_rows(results["methods"][methods[0]])]
    rows = []
    for label in labels:
        by_method = {method: dict(cohort_rows(results["methods"][method])) for method in methods}
        ratings = by_method[methods[0]][label]["ratings"]
        rows.append([label, f"{ratings:,}", *(f"{by_method[method][label]['mae']:.4f} / {by_method[method][label]['rmse']:.4f}" for method in methods)])
    fits = [[stage, str(fit["best_epoch"]), f"{fit['best_valid']:.4f}", str(fit["epochs_run"])] for stage, fit in results["fits"].items()]
    lines = [
        f"# Cold-start ratings — {run.experiment} / {run.run_id}",
        "",
        f"- dataset: {results['dataset']} · seed {results['seed']} · rating range {results['rating_range']}",
        f"- test: {counts['test_ratings']:,} ratings of {counts['test_users']:,} cold-start users; "
        f"validation: {counts['valid_ratings']:,} ratings of {counts['valid_users']:,} users (epochs are selected on them); "
        f"meta-train users: {counts['meta_train_users']:,}; target training ratings: {counts['target_train_ratings']:,}",
        "",
        "## Test MAE / RMSE",
        "",
        *markdown_table(["cohort", "ratings", *methods], rows),
        "",
        f"## Early stopping (validation {results['select_on']}; epoch 0: the warm-started bridge before training)",
        "",
        *(markdown_table(["stage", "best epoch", "best valid", "epochs run"], fits) if fits else ["(no trained stage)"]),
        "",
    ]
    path = run.path / REPORT_FILE
    path.write_text("\n".join(lines))
    return path


def rating_seeds_table(outcomes: list[RatingOutcome]) -> Table:
    """MAE and RMSE over all test ratings, mean ± std over seeds, one row per method."""
    from xdt.significance import summarise_over_seeds

    table = Table(title=f"Test MAE / RMSE, mean ± std over seeds {', '.join(str(outcome.seed) for outcome in outcomes)}")
    table.add_column("method", style="bold")
    for metric in ("MAE", "RMSE"):
        table.add_column(metric, justify="right")
    for method in outcomes[0].results["methods"]:
        cells = []
        for metric in ("mae", "rmse"):
            mean, std = summarise_over_seeds([outcome.results["methods"][method]["all"][metric] for outcome in outcomes])
            cells.append(f"{mean:.4f} ± {std:.4f}")
        table.add_row(method, *cells)
    return table
