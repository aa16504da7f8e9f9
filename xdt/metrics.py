"""Ranking and rating metrics: pure numpy, no I/O.

Conventions (full ranking): `top_items` is `(users, K)` item indices ranked best first, with
the user's seen items already excluded; `relevant` holds each user's held-out items.
- Recall@k = hits in top k / |relevant|
- Precision@k = hits in top k / k
- HR@k = 1 if any hit in top k
- NDCG@k = Σ_{hits at rank r ≤ k} 1/log2(r + 1) / Σ_{r=1}^{min(|relevant|, k)} 1/log2(r + 1) (binary gains)
- MRR = 1 / (rank of the best-ranked relevant item) over the full ranking (ranks from 1), so it
  is not truncated at k.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

RANKING_METRICS = ("recall", "ndcg", "hr", "precision")


def hit_matrix(top_items: np.ndarray, relevant: Sequence[np.ndarray]) -> np.ndarray:
    """Boolean `(users, K)`: whether each ranked item is relevant to that user."""
    hits = np.zeros(top_items.shape, dtype=bool)
    for row, items in enumerate(relevant):
        if len(items):
            hits[row] = np.isin(top_items[row], items)
    return hits


def ranking_metrics_at_k(hits: np.ndarray, relevant_counts: np.ndarray, ks: Sequence[int]) -> dict[str, np.ndarray]:
    """Per-user Recall/NDCG/HR/Precision at each k from a hit matrix.

    Returns arrays of shape `(users,)` keyed like `"ndcg@10"`.
    """
    for k in ks:
        if k < 1:
            raise ValueError(f"Expected k >= 1. Received: k={k}")
        if k > hits.shape[1]:
            raise ValueError(f"Expected k <= {hits.shape[1]} (the ranked list length). Received: k={k}")
    if np.any(relevant_counts < 1):
        raise ValueError("Expected every user to have at least one relevant item.")
    discounts = 1.0 / np.log2(np.arange(2, hits.shape[1] + 2))
    ideal_cumulative = np.cumsum(discounts)
    results: dict[str, np.ndarray] = {}
    for k in ks:
        top = hits[:, :k]
        hit_count = top.sum(axis=1)
        ideal = ideal_cumulative[np.minimum(relevant_counts, k) - 1]
        results[f"recall@{k}"] = hit_count / relevant_counts
        results[f"precision@{k}"] = hit_count / k
        results[f"hr@{k}"] = (hit_count > 0).astype(np.float64)
        results[f"ndcg@{k}"] = (top * discounts[:k]).sum(axis=1) / ideal
    return results


def reciprocal_rank(best_relevant_rank: np.ndarray) -> np.ndarray:
    """1 / rank for 1-based ranks of the best relevant item."""
    if np.any(best_relevant_rank < 1):
        raise ValueError("Expected ranks >= 1.")
    return 1.0 / best_relevant_rank


def mean_absolute_error(predictions: np.ndarray, targets: np.ndarray) -> float:
    """MAE = mean |prediction - target|."""
    return float(np.mean(np.abs(predictions - targets)))


def root_mean_squared_error(predictions: np.ndarray, targets: np.ndarray) -> float:
    """RMSE = sqrt(mean (prediction - target)²)."""
    return float(np.sqrt(np.mean(np.square(predictions - targets))))
