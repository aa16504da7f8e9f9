"""`xdt recommend` for a rating run: every target item scored by the predicted rating of one trained rating model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from xdt.config import ExperimentConfig
from xdt.data.dataset import PreparedDataset
from xdt.data.protocols import TARGET
from xdt.errors import XdtError
from xdt.rating.evaluation import predict_ratings
from xdt.rating.experiment import load_rating_model
from xdt.rating.training import LEARNED_METHODS
from xdt.runs import RunDirectory


def rating_scorer(run: RunDirectory, config: ExperimentConfig, dataset: PreparedDataset) -> Callable[[Any], np.ndarray]:
    """Predicted ratings `(batch, n_target_items)` of every target item for user indices `(batch,)`, by `serving_method`'s model.

    Unclipped: clipping to the rating range would tie every item predicted above its top.
    """
    model = load_rating_model(run, serving_method(run, config))
    items = np.arange(dataset.n_items(TARGET))

    def score_all(users: Any) -> np.ndarray:
        users = np.asarray(users, dtype=np.int64)
        predictions = predict_ratings(model, np.repeat(users, len(items)), np.tile(items, len(users)))
        return predictions.reshape(len(users), len(items))

    return score_all


def serving_method(run: RunDirectory, config: ExperimentConfig) -> str:
    """The run's learned method with the best validation score (the lowest `rating.select_on`); baselines serve no one."""
    learned = [method for method in config.transfer.methods if method in LEARNED_METHODS]
    if not learned:
        raise XdtError(
            f"recommend needs a trained rating model ({', '.join(LEARNED_METHODS)} in transfer.methods); "
            f"rating run {run.path} has only {', '.join(config.transfer.methods)}"
        )
    fits = run.read_json("results.json")["fits"]
    return min(learned, key=lambda method: fits[method]["best_valid"])
