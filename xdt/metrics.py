"""Ranking and rating metrics: pure numpy, no I/O.

Conventions (full ranking): `top_items` is `(users, K)` item indices ranked best first, with
the user's seen items already excluded; `relevant` holds each user's held-out items.
- Recall@k = hits in top k / |relevant|
- Precision@k = hits in top k / k
- HR@k = 1 if any hit in top k
- NDCG@k = Σ_{hits at rank r ≤ k} 1/log2(r + 1) / Σ_{r=1}^{min(|relevant|, k)} 1/log2(r + 1) (binary gains)
- MRR = 1 / (rank of the best-ranked relevant item) over the full ranking (ranks from 1), so it
  is not truncated at k.

Tie-aware expected metrics (McSherry & Najork, "Computing information retrieval performance
measures efficiently in the presence of tied scores", ECIR 2008): the value of each metric averaged
over every order of the tied items, so a model gains nothing from the index order in which
`top_k` happens to break ties. Each relevant item j of a user is described by `higher[j]` (unseen
items scoring strictly above it) and `tied[j]` (unseen items scoring exactly the same, j
included); its position is uniform over higher+1 … higher+tied. `tied == 0` marks a padding slot
or a relevant item that cannot be ranked (masked as seen): it never counts as a hit. Without ties
(every tied == 1) the expected metrics equal the top-k ones exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.special import digamma, gammaln

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
    return gain_metrics_at_k(hits, relevant_counts, ks, hit_rates={k: (hits[:, :k].sum(axis=1) > 0).astype(np.float64) for k in ks})


def gain_metrics_at_k(
    hits: np.ndarray, relevant_counts: np.ndarray, ks: Sequence[int], *, hit_rates: dict[int, np.ndarray]
) -> dict[str, np.ndarray]:
    """Recall/Precision/NDCG at each k from a (possibly expected, fractional) hit matrix; HR given."""
    discounts = 1.0 / np.log2(np.arange(2, hits.shape[1] + 2))
    ideal_cumulative = np.cumsum(discounts)
    results: dict[str, np.ndarray] = {}
    for k in ks:
        top = hits[:, :k]
        hit_count = top.sum(axis=1)
        ideal = ideal_cumulative[np.minimum(relevant_counts, k) - 1]
        results[f"recall@{k}"] = hit_count / relevant_counts
        results[f"precision@{k}"] = hit_count / k
        results[f"hr@{k}"] = hit_rates[k]
        results[f"ndcg@{k}"] = (top * discounts[:k]).sum(axis=1) / ideal
    return results


def expected_ranking_metrics(
    higher: np.ndarray, tied: np.ndarray, relevant_counts: np.ndarray, ks: Sequence[int]
) -> dict[str, np.ndarray]:
    """Per-user expected Recall/NDCG/HR/Precision at each k and expected MRR under random tie order.

    `higher`, `tied`: `(users, slots)` counts per relevant item (see the module docstring; pad
    with tied = 0). `relevant_counts`: `(users,)` |relevant|, the Recall and IDCG denominator.
    Returns arrays of shape `(users,)` keyed like `"ndcg@10"`, plus `"mrr"`.
    """
    for k in ks:
        if k < 1:
            raise ValueError(f"Expected k >= 1. Received: k={k}")
    if np.any(relevant_counts < 1):
        raise ValueError("Expected every user to have at least one relevant item.")
    higher = np.asarray(higher, dtype=np.int64)
    tied = np.asarray(tied, dtype=np.int64)
    best, group, relevant_in_group = best_tied_group(higher, tied)
    hits = expected_hit_matrix(higher, tied, max(ks))
    hit_rates = {k: expected_hit_rate(best, group, relevant_in_group, k) for k in ks}
    metrics = gain_metrics_at_k(hits, relevant_counts, ks, hit_rates=hit_rates)
    metrics["mrr"] = expected_reciprocal_rank(best, group, relevant_in_group)
    return metrics


def expected_hit_matrix(higher: np.ndarray, tied: np.ndarray, length: int) -> np.ndarray:
    """`(users, length)`: expected number of relevant items at positions 1 … length.

    Relevant item j adds 1/tied[j] to each position in higher[j]+1 … higher[j]+tied[j]; without
    ties that is exactly the 0/1 hit matrix of the top-k list.
    """
    expected = np.zeros((higher.shape[0], length))
    users, slots = np.nonzero((tied > 0) & (higher < length))
    start = higher[users, slots]
    stop = np.minimum(start + tied[users, slots], length)
    share = 1.0 / tied[users, slots]
    for offset in range(length):
        inside = start + offset < stop
        if not inside.any():
            break
        np.add.at(expected, (users[inside], start[inside] + offset), share[inside])
    return expected


# Stands in for `higher` of users without a rankable relevant item; far from int64 overflow.
UNRANKABLE = np.iinfo(np.int64).max // 4


def best_tied_group(higher: np.ndarray, tied: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per user, the best-scored group of tied items holding a relevant item: (higher, size, relevant in it).

    Relevant items with the same `higher` have the same score, so they share one tie group.
    A user without a rankable relevant item gets (UNRANKABLE, 0, 0).
    """
    rankable = tied > 0
    masked_higher = np.where(rankable, higher, UNRANKABLE)
    best = masked_higher.min(axis=1, initial=UNRANKABLE)
    in_best = rankable & (masked_higher == best[:, None])
    group = np.where(in_best, tied, 0).max(axis=1, initial=0)
    return best, group, in_best.sum(axis=1)


def expected_hit_rate(best: np.ndarray, group: np.ndarray, relevant_in_group: np.ndarray, k: int) -> np.ndarray:
    """P(at least one relevant item in the top k) for the best tie group (see best_tied_group).

    1 when the group ends within k, 0 when it starts after k, else 1 − C(g−r, m) / C(g, m): the
    m = k − higher slots left for the group are all filled with its g − r non-relevant items.
    """
    result = (best + group <= k).astype(np.float64)
    partial = (best < k) & (best + group > k) & (relevant_in_group > 0)
    g, r, m = group[partial], relevant_in_group[partial], k - best[partial]
    possible = g - r >= m  # otherwise some relevant item must land in the top k
    miss = np.zeros(len(g))
    gp, rp, mp = g[possible], r[possible], m[possible]
    miss[possible] = np.exp(gammaln(gp - rp + 1) - gammaln(gp - rp - mp + 1) - gammaln(gp + 1) + gammaln(gp - mp + 1))
    result[partial] = 1.0 - miss
    return result


def expected_reciprocal_rank(best: np.ndarray, group: np.ndarray, relevant_in_group: np.ndarray) -> np.ndarray:
    """E[1 / rank of the first relevant item] over random orders of the best tie group (0 if unrankable).

    With r relevant among g tied items after `best` higher ones, the first relevant position X
    within the group has P(X = x) = C(g − x, r − 1) / C(g, r). For r = 1 the expectation is
    (H(best + g) − H(best)) / g, H the harmonic numbers; for g = 1 it is 1 / (best + 1) exactly.
    """
    result = np.zeros(len(best))
    single = (relevant_in_group == 1) & (group == 1)
    result[single] = 1.0 / (best[single] + 1)
    spread = (relevant_in_group == 1) & (group > 1)
    h, g = best[spread], group[spread]
    # H(n) = digamma(n + 1) + Euler's gamma, so H(h + g) − H(h) = digamma(h + g + 1) − digamma(h + 1).
    result[spread] = (digamma(h + g + 1.0) - digamma(h + 1.0)) / g
    several = np.flatnonzero(relevant_in_group > 1)
    if len(several):
        triples = np.stack([best[several], group[several], relevant_in_group[several]], axis=1)
        unique, inverse = np.unique(triples, axis=0, return_inverse=True)
        values = np.array([first_relevant_reciprocal(*map(int, triple)) for triple in unique])
        result[several] = values[inverse.reshape(-1)]
    return result


def first_relevant_reciprocal(higher: int, group: int, relevant: int) -> float:
    """E[1 / (higher + X)] with X the first of `relevant` random positions among 1 … group."""
    positions = np.arange(1, group - relevant + 2, dtype=np.float64)
    log_choose_all = gammaln(group + 1) - gammaln(relevant + 1) - gammaln(group - relevant + 1)
    log_probability = gammaln(group - positions + 1) - gammaln(relevant) - gammaln(group - positions - relevant + 2) - log_choose_all
    return float(np.sum(np.exp(log_probability) / (higher + positions)))


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
