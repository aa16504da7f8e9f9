"""Rating evaluation: MAE and RMSE over all test ratings, overall and by cohort (numpy only)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from xdt.metrics import mean_absolute_error, root_mean_squared_error

# Source-domain activity buckets (number of source training ratings of the user).
SOURCE_ACTIVITY_BUCKETS = ((0, 0), (1, 10), (11, 50), (51, 200), (201, None))


def rating_metrics(predictions: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
    """MAE, RMSE and the number of ratings they average over."""
    predictions = np.asarray(predictions, dtype=np.float64).reshape(-1)
    targets = np.asarray(targets, dtype=np.float64).reshape(-1)
    if predictions.shape != targets.shape:
        raise ValueError(f"Expected predictions and targets of equal length. Received: {len(predictions)} and {len(targets)}")
    if len(targets) == 0:
        return {"mae": float("nan"), "rmse": float("nan"), "ratings": 0}
    return {
        "mae": mean_absolute_error(predictions, targets),
        "rmse": root_mean_squared_error(predictions, targets),
        "ratings": int(len(targets)),
    }


def activity_bucket_labels(counts: np.ndarray) -> np.ndarray:
    """Label of each count's source-activity bucket, e.g. '11-50'."""
    labels = np.empty(len(counts), dtype=object)
    for low, high in SOURCE_ACTIVITY_BUCKETS:
        inside = (counts >= low) & ((counts <= high) if high is not None else True)
        labels[inside] = f"{low}-{high}" if high is not None and high != low else (f"{low}+" if high is None else str(low))
    return labels


def evaluate_ratings(
    predictions: np.ndarray,
    targets: np.ndarray,
    users: np.ndarray,
    *,
    cohorts: Mapping[str, np.ndarray] | None = None,
    source_activity: np.ndarray | None = None,
) -> dict[str, Any]:
    """Metrics over all rows, per named cohort (boolean row masks) and per source-activity bucket of the row's user.

    Returns `{"all": {...}, "cohorts": {name: {...}}, "source_activity": {bucket: {...}}, "users": n}`.
    """
    predictions = np.asarray(predictions).reshape(-1)
    targets = np.asarray(targets).reshape(-1)
    users = np.asarray(users)
    result: dict[str, Any] = {"all": rating_metrics(predictions, targets), "users": int(len(np.unique(users)))}
    result["cohorts"] = {name: rating_metrics(predictions[mask], targets[mask]) for name, mask in (cohorts or {}).items()}
    if source_activity is not None:
        labels = activity_bucket_labels(np.asarray(source_activity)[users])
        result["source_activity"] = {
            str(label): rating_metrics(predictions[labels == label], targets[labels == label]) for label in np.unique(labels)
        }
    return result


def predict_ratings(model: Any, users: np.ndarray, items: np.ndarray, *, batch_size: int = 16384, clip: tuple[float, float] | None = None) -> np.ndarray:
    """A rating model's predictions `(rows,)` in batches, clipped to the rating range when given."""
    outputs = []
    for start in range(0, len(users), batch_size):
        batch = (np.asarray(users[start : start + batch_size], dtype="int32"), np.asarray(items[start : start + batch_size], dtype="int32"))
        outputs.append(np.asarray(model(batch, training=False)).reshape(-1))
    predictions = np.concatenate(outputs) if outputs else np.zeros(0, dtype=np.float32)
    if clip is not None:
        predictions = np.clip(predictions, clip[0], clip[1])
    return predictions
