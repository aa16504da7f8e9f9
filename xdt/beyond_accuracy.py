"""Beyond-accuracy metrics of top-k lists: coverage, novelty, popularity and diversity.

`recommendations` is an int array `(users, k)` of item indices in which -1 marks padding; padding
is ignored everywhere. Metrics averaged over recommended items return NaN when there are none.
"""

import numpy as np
import scipy.stats

# Bounds the gathered `(users, k, d)` item-vector block to about 32 MiB of float64 per chunk.
_DIVERSITY_CHUNK_ELEMENTS = 4_000_000


def catalogue_coverage(recommendations: np.ndarray, n_items: int) -> float:
    """Fraction of the catalogue recommended to at least one user."""
    if n_items < 1:
        raise ValueError(f"Expected n_items >= 1. Received: n_items={n_items}")
    items = _recommended_items(recommendations, n_items=n_items)
    return float(np.unique(items).size / n_items)


def novelty(recommendations: np.ndarray, item_popularity: np.ndarray) -> float:
    """Mean self-information -log2(p_i) of recommended items.

    p_i = count_i / sum(counts) with training interaction counts, where an item with count 0 is
    counted as 1 (in both the numerator and the sum) so that unseen items have finite novelty.
    """
    item_popularity = _check_popularity(item_popularity)
    counts = np.maximum(item_popularity, 1.0)
    self_information = -np.log2(counts / counts.sum())
    items = _recommended_items(recommendations, n_items=item_popularity.size)
    return _mean_or_nan(self_information[items])


def popularity_percentile(recommendations: np.ndarray, item_popularity: np.ndarray) -> float:
    """Mean popularity percentile in [0, 100] of recommended items (100 = most popular item).

    percentile_i = 100 * rank_i / n_items, with ranks from scipy.stats.rankdata (ties averaged).
    """
    item_popularity = _check_popularity(item_popularity)
    percentiles = 100.0 * scipy.stats.rankdata(item_popularity) / item_popularity.size
    items = _recommended_items(recommendations, n_items=item_popularity.size)
    return _mean_or_nan(percentiles[items])


def intra_list_diversity(recommendations: np.ndarray, item_vectors: np.ndarray) -> float:
    """Mean over users of the mean pairwise (1 - cosine similarity) within each list.

    Lists with fewer than 2 items are skipped; a zero vector has cosine similarity 0 with every
    item. Returns NaN when no list has 2 items.
    """
    item_vectors = np.asarray(item_vectors, dtype=np.float64)
    if item_vectors.ndim != 2:
        raise ValueError(
            f"Expected item_vectors of shape (n_items, d). Received: shape={item_vectors.shape}"
        )
    recommendations = _check_recommendations(recommendations, n_items=item_vectors.shape[0])
    norms = np.linalg.norm(item_vectors, axis=1, keepdims=True)
    unit_vectors = np.divide(
        item_vectors, norms, out=np.zeros_like(item_vectors), where=norms > 0
    )
    # An appended zero row lets padding (-1) gather a vector that contributes nothing.
    unit_vectors = np.concatenate([unit_vectors, np.zeros((1, unit_vectors.shape[1]))])

    users, k = recommendations.shape
    chunk_users = max(1, _DIVERSITY_CHUNK_ELEMENTS // max(1, k * unit_vectors.shape[1]))
    diversities = []
    for start in range(0, users, chunk_users):
        chunk = recommendations[start : start + chunk_users]
        vectors = unit_vectors[chunk]  # (users, k, d); padding -1 picks the zero row
        list_sizes = (chunk >= 0).sum(axis=1)
        # Sum over pairs i < j of v_i . v_j = (|sum_i v_i|^2 - sum_i |v_i|^2) / 2.
        vector_sums = vectors.sum(axis=1)
        pair_similarity_sums = (
            np.einsum("ud,ud->u", vector_sums, vector_sums)
            - np.einsum("ukd,ukd->u", vectors, vectors)
        ) / 2.0
        pairs = list_sizes * (list_sizes - 1) / 2.0
        has_pairs = pairs > 0
        diversities.append(1.0 - pair_similarity_sums[has_pairs] / pairs[has_pairs])
    return _mean_or_nan(np.concatenate(diversities) if diversities else np.empty(0))


def beyond_accuracy_metrics(
    recommendations: np.ndarray,
    *,
    n_items: int,
    item_popularity: np.ndarray,
    item_vectors: np.ndarray | None = None,
) -> dict[str, float]:
    """All beyond-accuracy metrics; "intra_list_diversity" only when item_vectors are given."""
    item_popularity = _check_popularity(item_popularity)
    if item_popularity.size != n_items:
        raise ValueError(
            "Expected item_popularity to have n_items entries. "
            f"Received: item_popularity.shape={item_popularity.shape}, n_items={n_items}"
        )
    metrics = {
        "coverage": catalogue_coverage(recommendations, n_items),
        "novelty": novelty(recommendations, item_popularity),
        "popularity_percentile": popularity_percentile(recommendations, item_popularity),
    }
    if item_vectors is not None:
        if np.shape(item_vectors)[0] != n_items:
            raise ValueError(
                "Expected item_vectors to have n_items rows. "
                f"Received: item_vectors.shape={np.shape(item_vectors)}, n_items={n_items}"
            )
        metrics["intra_list_diversity"] = intra_list_diversity(recommendations, item_vectors)
    return metrics


def _check_recommendations(recommendations: np.ndarray, *, n_items: int) -> np.ndarray:
    """Return `recommendations` as a 2-D int array with indices checked to be in [-1, n_items)."""
    recommendations = np.asarray(recommendations)
    if recommendations.ndim != 2 or not np.issubdtype(recommendations.dtype, np.integer):
        raise ValueError(
            "Expected recommendations to be an int array of shape (users, k). "
            f"Received: shape={recommendations.shape}, dtype={recommendations.dtype}"
        )
    if recommendations.size and (
        recommendations.min() < -1 or recommendations.max() >= n_items
    ):
        raise ValueError(
            f"Expected item indices in [-1, {n_items}). Received: min={recommendations.min()}, "
            f"max={recommendations.max()}"
        )
    return recommendations


def _recommended_items(recommendations: np.ndarray, *, n_items: int) -> np.ndarray:
    """Flat array of recommended item indices with padding removed."""
    recommendations = _check_recommendations(recommendations, n_items=n_items)
    return recommendations[recommendations >= 0]


def _check_popularity(item_popularity: np.ndarray) -> np.ndarray:
    """Return `item_popularity` as float64 after checking it is a non-empty, non-negative vector."""
    item_popularity = np.asarray(item_popularity, dtype=np.float64)
    if item_popularity.ndim != 1 or item_popularity.size == 0:
        raise ValueError(
            "Expected item_popularity to be a non-empty 1-D array. "
            f"Received: shape={item_popularity.shape}"
        )
    if (item_popularity < 0).any():
        raise ValueError(
            f"Expected item_popularity >= 0. Received: min={item_popularity.min()}"
        )
    return item_popularity


def _mean_or_nan(values: np.ndarray) -> float:
    """Mean of `values`, or NaN for an empty array (without numpy's empty-mean warning)."""
    return float(values.mean()) if values.size else float("nan")
