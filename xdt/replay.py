"""The replay protocol: how well a run kept up to date by `xdt update` ranks, against no update and full retraining.

On a `dataset.protocol: temporal` dataset, the target test rows (after the test cut-off T0) are
cut into `update.feedback_windows` windows of (nearly) equal row count in time order. Starting
from a run trained on everything before T0, each window w = 1..N is first evaluated (full
ranking of the target items, each user's earlier target items excluded: training rows and
windows before w), then fed back. Three arms see the same windows:

- none: the starting run, never updated;
- incremental: `xdt update` with window w as the feedback file (warm start, replayed old rows);
- retrain: a fresh target-only MF (target_mf's model) trained from scratch for `transfer.epochs`
  epochs on the same data the incremental arm then holds (training rows and windows 1..w); for a
  finetune or cmf start run this is the target-only reference, not a retrain of that method.

Window 1 is scored before any feedback, so all arms start from the starting run there; the last
window is scored and not fed (nothing would score the result). Seconds are wall-clock: for the
incremental arm the whole `update_run` (reading the file, growing and publishing the data,
training), for the retrain arm its training.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from xdt.data.dataset import PreparedDataset
from xdt.data.protocols import TARGET
from xdt.errors import XdtError
from xdt.progress import Reporter, SilentReporter
from xdt.runs import RunDirectory

ARMS = ("none", "incremental", "retrain")
REPLAY_JSON = "replay.json"
REPLAY_MARKDOWN = "replay.md"
REPLAY_PLOT = "replay.png"


def check_replayable(start: RunDirectory, config: Any) -> None:
    """The start run must be updatable (xdt.update.check_parent) and of a task the replay measures (its scoring and retrain arm are MF's)."""
    from xdt.tasks import TASK_NAMES, get_task
    from xdt.update import check_parent

    check_parent(start, config)
    if not get_task(config.task).replayable:
        replayable = ", ".join(f"task: {name}" for name in TASK_NAMES if get_task(name).replayable)
        raise XdtError(f"xdt replay measures runs of {replayable}; {start.path} is a run of task: {config.task} (xdt update updates it)")


def window_of(timestamps: np.ndarray, windows: int) -> np.ndarray:
    """Window 1..windows of each timestamp: cut at the j/windows quantiles, a row at a cut in the earlier window."""
    if windows < 1:
        raise XdtError(f"Expected update.feedback_windows >= 1. Received: {windows}")
    if len(timestamps) == 0:
        raise XdtError("The replay protocol needs target test rows (after the temporal test cut-off); the dataset has none")
    cuts = np.quantile(np.asarray(timestamps, dtype=np.float64), [j / windows for j in range(1, windows)], method="lower")
    return 1 + np.searchsorted(cuts, np.asarray(timestamps, dtype=np.float64), side="left")


def feedback_windows(dataset: PreparedDataset, windows: int) -> list[pd.DataFrame]:
    """The target test rows of each window, in time order; refuses a dataset not split in time."""
    if dataset.manifest.get("protocol") != "temporal":
        raise XdtError(
            f"The replay protocol needs dataset.protocol: temporal; dataset {dataset.manifest.get('name')!r} "
            f"was prepared with protocol {dataset.manifest.get('protocol')!r}"
        )
    rows = dataset.rows(TARGET, "test").sort_values(["timestamp", "user", "item"], kind="stable")
    labels = window_of(rows["timestamp"].to_numpy(), windows)
    return [rows[labels == window] for window in range(1, windows + 1)]


def window_view(dataset: PreparedDataset, windows: list[pd.DataFrame], window: int) -> PreparedDataset:
    """The target rows as one evaluation: training rows and windows before `window` as train, `window` as test."""
    history = [dataset.rows(TARGET, "train"), *windows[: window - 1]]
    frame = pd.concat([*(part.assign(split="train") for part in history), windows[window - 1].assign(split="test")], ignore_index=True)
    return replace(dataset, interactions=frame)


def score_window(score_all: Callable[[Any], Any], dataset: PreparedDataset, windows: list[pd.DataFrame], window: int, *, k: int, batch_size: int) -> dict[str, float]:
    """Mean ndcg@k and recall@k over the window's users, each user's earlier target items excluded."""
    from xdt.evaluate import evaluate_model

    per_user = evaluate_model(score_all, window_view(dataset, windows, window), split="test", ks=[k], batch_size=batch_size, test_excludes=["train"])
    return {f"ndcg@{k}": float(per_user[f"ndcg@{k}"].mean()), f"recall@{k}": float(per_user[f"recall@{k}"].mean()), "users": int(len(per_user))}


def write_feedback_file(dataset: PreparedDataset, rows: pd.DataFrame, path: Path) -> Path:
    """A window's rows as a feedback CSV with raw ids (user, item, timestamp), as a person would bring them.

    The prepared rows are cleaned positives already (a rating threshold made them 1.0), so no rating
    column is written: the cleaning keeps rows without a rating as positives.
    """
    frame = pd.DataFrame(
        {
            "user": dataset.raw_users[rows["user"].to_numpy()].astype(str),
            "item": dataset.items(TARGET)["raw_item"].to_numpy()[rows["item"].to_numpy()],
            "timestamp": rows["timestamp"].to_numpy(),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def retrain(updated: RunDirectory, reporter: Reporter) -> tuple[Any, float]:
    """A fresh model of the run's method trained from scratch on the updated run's data; the seconds it took."""
    from xdt.models.matrix_factorization import MatrixFactorization
    from xdt.runs import create_run
    from xdt.runtime import select_strategy
    from xdt.session import load_run_config, open_dataset
    from xdt.train import fit_pairwise, seed_everything

    config = load_run_config(updated)
    dataset = open_dataset(config)
    run = create_run(
        Path(config.runtime.runs_dir), config.experiment, kind="retrain", config_text=(updated.path / "config.yaml").read_text(),
        resolved=config.to_dict(), seed=config.seed, method=updated.info().get("method"), parent=updated,
    )  # fmt: skip
    started = time.perf_counter()
    seed_everything(config.seed)
    strategy = select_strategy(config.runtime.strategy, tpu=config.runtime.tpu)
    with strategy.scope():
        model = MatrixFactorization(dataset.n_users, dataset.n_items(TARGET), config.transfer.embedding_dim, l2=config.transfer.l2, name="retrain")
        model.build()
    fit_pairwise(
        model, dataset=dataset, domain=TARGET, training=config.transfer, seed=config.seed, stage="retrain", run=run,
        strategy=strategy, validate=None, on_epoch=reporter.epoch,
    )  # fmt: skip
    return model, time.perf_counter() - started


def run_replay(
    start: RunDirectory,
    folder: Path,
    *,
    reporter: Reporter = SilentReporter(),
    on_window: Callable[[dict[str, Any]], None] = lambda record: None,
    windows_count: int | None = None,
) -> list[dict[str, Any]]:
    """Every arm's metrics (and seconds) per window, starting from `start`; feedback files are written into `folder`.

    `on_window` receives each window's record as soon as it is complete, so a long replay leaves partial results.
    `windows_count` overrides the run's update.feedback_windows.
    """
    from xdt.session import load_model, load_run_config, open_dataset
    from xdt.update import update_run

    config = load_run_config(start)
    check_replayable(start, config)
    dataset = open_dataset(config)
    windows = feedback_windows(dataset, windows_count or config.update.feedback_windows)
    k = int(config.evaluate.validation_metric.split("@")[1])
    batch = config.evaluate.batch_size
    base = load_model(start)
    models: dict[str, Any] = {arm: base for arm in ARMS}
    current = start
    records = []
    for window in range(1, len(windows) + 1):
        record: dict[str, Any] = {"window": window, "rows": len(windows[window - 1])}
        record["first_timestamp"], record["last_timestamp"] = (int(windows[window - 1]["timestamp"].iat[i]) for i in (0, -1))
        for arm in ARMS:
            record[arm] = score_window(models[arm].score_all, dataset, windows, window, k=k, batch_size=batch)
        if window < len(windows):
            feedback = write_feedback_file(dataset, windows[window - 1], folder / f"feedback-window-{window}.csv")
            started = time.perf_counter()
            current = update_run(current, feedback, reporter=reporter)
            grown = current.info()["feedback"]
            if grown["new_users"] or grown["new_items"]:
                raise XdtError(f"{current.path}: the replay's feedback added ids the prepared data lacked ({grown['new_users']} users, {grown['new_items']} items)")
            record["incremental"]["seconds_to_feed"] = time.perf_counter() - started
            models["incremental"] = load_model(current)
            models["retrain"], record["retrain"]["seconds_to_feed"] = retrain(current, reporter)
            record["updated_run"] = str(current.path)
        reporter.status(
            f"window {window}/{len(windows)}: "
            + ", ".join(f"{arm} ndcg@{k} {record[arm][f'ndcg@{k}']:.4f}" for arm in ARMS)
        )
        records.append(record)
        on_window(record)
    return records


def replay_markdown(records: list[dict[str, Any]], metric: str, title: str) -> str:
    """The per-window quality table, the cost table and the issue's three verdicts, as Markdown."""
    lines = [
        title,
        "",
        f"| window | rows | users | none {metric} | incremental {metric} | retrain {metric} | incremental / retrain |",
        "|---|---|---|---|---|---|---|",
    ]
    for record in records:
        ratio = record["incremental"][metric] / record["retrain"][metric] if record["retrain"][metric] else float("nan")
        lines.append(
            f"| {record['window']} | {record['rows']:,} | {record['none']['users']:,} | {record['none'][metric]:.4f} | "
            f"{record['incremental'][metric]:.4f} | {record['retrain'][metric]:.4f} | {ratio:.3f} |"
        )
    fed = [record for record in records if "seconds_to_feed" in record["incremental"]]
    lines += ["", "| fed window | incremental s | retrain s | incremental / retrain |", "|---|---|---|---|"]
    for record in fed:
        seconds = (record["incremental"]["seconds_to_feed"], record["retrain"]["seconds_to_feed"])
        lines.append(f"| {record['window']} | {seconds[0]:.1f} | {seconds[1]:.1f} | {seconds[0] / seconds[1]:.3f} |")
    later = records[1:]
    within = all(record["incremental"][metric] >= 0.95 * record["retrain"][metric] for record in later)
    cheaper = all(record["incremental"]["seconds_to_feed"] < 0.2 * record["retrain"]["seconds_to_feed"] for record in fed)
    above = all(min(record["incremental"][metric], record["retrain"][metric]) > record["none"][metric] for record in later)
    lines += [
        "",
        f"- incremental within 5% of retrain's {metric} on every window after the first: {'yes' if within else 'no'}",
        f"- incremental under a fifth of retrain's seconds for every fed window: {'yes' if cheaper else 'no'}",
        f"- incremental and retrain both above none on every window after the first: {'yes' if above else 'no'}",
    ]
    return "\n".join(lines) + "\n"


def replay_run(start: RunDirectory, *, windows_count: int | None = None, reporter: Reporter = SilentReporter()) -> RunDirectory:
    """`xdt replay`: the protocol from `start` into a new run (kind replay, parent `start`).

    The run holds the feedback files (feedback/), replay.json (rewritten after every window, so an
    interrupted replay leaves the windows it finished), and at the end replay.md (the tables and
    verdicts) and replay.png (the metric per window, per arm).
    """
    from xdt.plots import plot_metric_per_window
    from xdt.runs import STATUS_COMPLETE, create_run
    from xdt.session import load_run_config, open_dataset
    config = load_run_config(start)
    check_replayable(start, config)
    feedback_windows(open_dataset(config), windows_count or config.update.feedback_windows)  # refuses before a run exists
    metric = f"ndcg@{config.evaluate.validation_metric.split('@')[1]}"
    run = create_run(
        Path(config.runtime.runs_dir), config.experiment, kind="replay", config_text=(start.path / "config.yaml").read_text(),
        resolved=config.to_dict(), seed=config.seed, method=start.info().get("method"), parent=start,
    )  # fmt: skip
    records: list[dict[str, Any]] = []

    def save(record: dict[str, Any]) -> None:
        records.append(record)
        run.write_json(REPLAY_JSON, {"start_run": str(start.path), "metric": metric, "windows": records})

    run_replay(start, run.path / "feedback", reporter=reporter, on_window=save, windows_count=windows_count)
    title = f"Replay of {start.path} ({config.dataset.name}, target domain), {len(records)} windows"
    (run.path / REPLAY_MARKDOWN).write_text(replay_markdown(records, metric, title))
    curves = {arm: {record["window"]: record[arm][metric] for record in records} for arm in ARMS}
    plot_metric_per_window(curves, metric=metric, path=run.path / REPLAY_PLOT, title=f"Replay: {config.dataset.name}")
    run.update_info(status=STATUS_COMPLETE, windows=len(records))
    return run
