"""Non-learned rating baselines: global mean, item mean, user mean (numpy only, no TensorFlow)."""

from __future__ import annotations

import numpy as np


def check_rows(name: str, ids: np.ndarray, ratings: np.ndarray) -> None:
    """Ids and ratings must be aligned and non-empty."""
    if len(ids) != len(ratings):
        raise ValueError(f"Expected {name} ids and ratings of equal length. Received: {len(ids)} and {len(ratings)}")
    if len(ratings) == 0:
        raise ValueError(f"Expected at least one training rating for the {name} baseline. Received: 0")


def global_mean(ratings: np.ndarray) -> float:
    """Mean training rating."""
    if len(ratings) == 0:
        raise ValueError("Expected at least one training rating. Received: 0")
    return float(np.mean(np.asarray(ratings, dtype=np.float64)))


def predict_global_mean(train_ratings: np.ndarray, count: int) -> np.ndarray:
    """The mean training rating for each of `count` test rows."""
    return np.full(count, global_mean(train_ratings))


def group_means(train_ids: np.ndarray, train_ratings: np.ndarray, query_ids: np.ndarray, shrinkage: float = 0.0) -> np.ndarray:
    """Per-id mean training rating of each queried id; the global mean for ids never seen.

    With `shrinkage` k the mean is (Σ r + k μ) / (n + k), pulled towards the global mean μ:
    ratings [5, 3] with μ = 3.5 and k = 1 give (8 + 3.5) / 3 = 3.833.
    """
    check_rows("group mean", train_ids, train_ratings)
    ratings = np.asarray(train_ratings, dtype=np.float64)
    mean = float(ratings.mean())
    size = int(max(np.max(train_ids), np.max(query_ids, initial=0))) + 1
    sums = np.bincount(train_ids, weights=ratings, minlength=size)
    counts = np.bincount(train_ids, minlength=size).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = (sums + shrinkage * mean) / (counts + shrinkage)
    means[counts == 0] = mean
    return means[np.asarray(query_ids)]


def predict_item_mean(train_items: np.ndarray, train_ratings: np.ndarray, test_items: np.ndarray) -> np.ndarray:
    """The test item's mean training rating (the global mean for items without training ratings)."""
    return group_means(np.asarray(train_items), train_ratings, np.asarray(test_items))


def predict_user_mean(train_users: np.ndarray, train_ratings: np.ndarray, test_users: np.ndarray) -> np.ndarray:
    """The test user's mean training rating (the global mean for cold-start users, i.e. all of them in the cold protocol)."""
    return group_means(np.asarray(train_users), train_ratings, np.asarray(test_users))
