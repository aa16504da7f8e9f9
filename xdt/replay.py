"""The replay protocol: how well a run kept up to date by `xdt update` ranks, against no update and full retraining.

On a `dataset.protocol: temporal` dataset, the target test rows (after the test cut-off T0) are
cut into `update.feedback_windows` windows of (nearly) equal row count in time order. Starting
from a run trained on everything before T0, each window w = 1..N is first evaluated (full
ranking of the target items, each user's earlier target items excluded: training rows and
windows before w), then fed back. Three arms see the same windows:

- none: the starting run, never updated;
- incremental: `xdt update` with window w as the feedback file (warm start, replayed old rows);
- retrain: a fresh model of the same method trained from scratch for `transfer.epochs` epochs on
  the same data the incremental arm then holds (training rows and windows 1..w).

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
) -> list[dict[str, Any]]:
    """Every arm's metrics (and seconds) per window, starting from `start`; feedback files are written into `folder`.

    `on_window` receives each window's record as soon as it is complete, so a long replay leaves partial results.
    """
    from xdt.session import load_model, load_run_config, open_dataset
    from xdt.update import update_run

    config = load_run_config(start)
    dataset = open_dataset(config)
    windows = feedback_windows(dataset, config.update.feedback_windows)
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
