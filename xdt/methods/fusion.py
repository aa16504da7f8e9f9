"""Fusion: blend a learned transfer model with cross-domain CF (xknn) and TF-IDF content scores.

Components: the method named by `transfer.fusion_base` (default finetune), `xknn` (which also
adds target ItemKNN for warm users), and, where the target items have titles, the TF-IDF content
scorer of the `content` method over the user's source and target training histories. Each component's scores are
z-scored per user over all target items; the blend weights (a grid on the simplex, step 0.05
for two components, 0.1 for three) maximise `evaluate.validation_metric` on the target
validation users (the cold cohort where it has users, else all). Test data is never read.
Every grid point's validation score goes to metrics.jsonl, with the chosen weights and whether
the content component was used or skipped.
"""

from __future__ import annotations

import itertools

import keras
import numpy as np
import tensorflow as tf

from xdt.data.dataset import PreparedDataset
from xdt.data.protocols import TARGET
from xdt.errors import XdtError
from xdt.methods import xknn
from xdt.methods.content import MISSING_TARGET_TITLES, content_model
from xdt.methods.context import MethodContext
from xdt.metrics import expected_ranking_metrics
from xdt.models.fusion import FusionModel, blend, component_scores, standardise
from xdt.models.registry import FUSION_BASE_NAMES, get_method


def weight_grid(components: int) -> list[tuple[float, ...]]:
    """Points of the simplex with step 0.05 (two components) or 0.1 (three or more), e.g. (0.0, 1.0), (0.05, 0.95), …"""
    steps = 20 if components == 2 else 10
    points = [
        combination
        for combination in itertools.product(range(steps + 1), repeat=components)
        if sum(combination) == steps
    ]
    return [tuple(round(count / steps, 4) for count in point) for point in points]


def grid_scores(
    components: list[keras.Model], grid: list[tuple[float, ...]], dataset: PreparedDataset, users: np.ndarray, *, metric: str, batch_size: int
) -> np.ndarray:
    """Mean validation `metric` of every weight vector in `grid` on `users` (target valid split, train items masked)."""
    from xdt.evaluate import rank_items

    k = int(metric.split("@")[1])
    relevant = dataset.interaction_matrix(TARGET, "valid")
    seen = dataset.interaction_matrix(TARGET, "train")
    totals = np.zeros(len(grid))
    for start in range(0, len(users), batch_size):
        batch = users[start : start + batch_size]
        standardised = [standardise(component_scores(component, tf.constant(batch, dtype=tf.int32))) for component in components]
        counts = np.diff(relevant.indptr)[batch]
        for index, weights in enumerate(grid):
            fused = blend(standardised, weights)
            ranking = rank_items(lambda _users, fused=fused: fused, batch, seen=seen, relevant=relevant, k=k, batch_size=len(batch))
            metrics = expected_ranking_metrics(ranking.relevant_higher, ranking.relevant_tied, counts, [k])
            totals[index] += float(np.sum(metrics[metric]))
    return totals / max(len(users), 1)


def train(context: MethodContext) -> FusionModel:
    """Train the base transfer method, build xknn (and content), choose blend weights on validation."""
    settings = context.config.transfer
    base_name = settings.fusion_base
    if base_name not in FUSION_BASE_NAMES:
        raise XdtError(f"Expected transfer.fusion_base to be one of {', '.join(FUSION_BASE_NAMES)}. Received: {base_name!r}")
    context.reporter.status(f"fusion: training the base method {base_name}")
    base = get_method(base_name).trainer()(context)
    components: list[keras.Model] = [base, xknn.train(context)]
    names = [base_name, "xknn"]
    content = content_model(context.dataset)
    if content is None:
        content_note = f"skipped: {MISSING_TARGET_TITLES}"
    else:
        components.append(content)
        names.append("content")
        content_note = f"included: TF-IDF over item titles, {content.num_terms} terms"
    context.reporter.status(f"fusion content component {content_note}")
    cohort = "cold" if len(context.validation_users("cold")) else "all"
    users = context.validation_users(cohort)
    metric = context.config.evaluate.validation_metric
    grid = weight_grid(len(components))
    if len(users) == 0:
        chosen = tuple(1.0 / len(components) for _ in components)
        scores = np.full(len(grid), np.nan)
        context.reporter.status("fusion: no validation users: equal blend weights")
    else:
        scores = grid_scores(components, grid, context.dataset, users, metric=metric, batch_size=context.config.evaluate.batch_size)
        # First maximum in grid order; the grid's corners are the components alone.
        chosen = grid[int(np.argmax(scores))]
    context.run.append_metrics(
        {
            "stage": "fusion",
            "components": names,
            "content": content_note,
            "normalisation": "z-score per user over all target items",
            "validation_cohort": cohort,
            "validation_users": int(len(users)),
            "validation_metric": metric,
            "grid": [{"weights": list(weights), metric: (None if np.isnan(score) else float(score))} for weights, score in zip(grid, scores)],
            "chosen_weights": dict(zip(names, chosen)),
            "chosen_validation": None if len(users) == 0 else float(np.max(scores)),
        }
    )
    context.reporter.status(
        "fusion weights " + ", ".join(f"{name} {weight:g}" for name, weight in zip(names, chosen))
        + ("" if len(users) == 0 else f" (validation {metric} {np.max(scores):.4f} on {len(users)} {cohort} users)")
    )
    with context.strategy.scope():
        model = FusionModel(components, list(chosen), names, name="fusion")
    return model
