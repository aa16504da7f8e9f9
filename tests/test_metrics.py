"""Ranking metrics against hand-computed values and brute-force enumeration of tie orders."""

import itertools

import numpy as np
import pytest

from xdt.metrics import (
    expected_ranking_metrics,
    hit_matrix,
    mean_absolute_error,
    ranking_metrics_at_k,
    reciprocal_rank,
    root_mean_squared_error,
)


def test_ranking_metrics_match_hand_computed_values() -> None:
    # User 0 ranks [3, 1, 4, 7, 5]; relevant {1, 5, 9} → hits at ranks 2 and 5.
    # User 1 ranks [2, 0, 6, 8, 9]; relevant {2} → hit at rank 1.
    top = np.array([[3, 1, 4, 7, 5], [2, 0, 6, 8, 9]])
    relevant = [np.array([1, 5, 9]), np.array([2])]
    hits = hit_matrix(top, relevant)
    assert hits.tolist() == [[False, True, False, False, True], [True, False, False, False, False]]
    metrics = ranking_metrics_at_k(hits, np.array([3, 1]), [2, 5])
    # recall@2: user 0 → 1/3, user 1 → 1/1.  recall@5: 2/3 and 1.
    np.testing.assert_allclose(metrics["recall@2"], [1 / 3, 1.0])
    np.testing.assert_allclose(metrics["recall@5"], [2 / 3, 1.0])
    # precision@5: 2/5 and 1/5.  hr@2: 1 and 1.
    np.testing.assert_allclose(metrics["precision@5"], [0.4, 0.2])
    np.testing.assert_allclose(metrics["hr@2"], [1.0, 1.0])
    # ndcg@5 user 0: DCG = 1/log2(3) + 1/log2(6) = 0.63093 + 0.38685 = 1.01778;
    # IDCG over min(3, 5) = 3 items = 1 + 0.63093 + 0.5 = 2.13093 → 0.47762.
    # ndcg@2 user 0: DCG = 0.63093; IDCG over 2 items = 1.63093 → 0.38685.  User 1: 1.0 at both k.
    np.testing.assert_allclose(metrics["ndcg@5"], [1.01778 / 2.13093, 1.0], atol=1e-5)
    np.testing.assert_allclose(metrics["ndcg@2"], [0.63093 / 1.63093, 1.0], atol=1e-5)


def test_reciprocal_rank_and_rating_errors() -> None:
    np.testing.assert_allclose(reciprocal_rank(np.array([1, 4])), [1.0, 0.25])
    # |3.5-4| + |2-1| = 1.5 → MAE 0.75; squares 0.25 + 1 → RMSE sqrt(0.625) = 0.790569.
    assert mean_absolute_error(np.array([3.5, 2.0]), np.array([4.0, 1.0])) == pytest.approx(0.75)
    assert root_mean_squared_error(np.array([3.5, 2.0]), np.array([4.0, 1.0])) == pytest.approx(0.790569, abs=1e-6)


def test_metrics_reject_bad_k_and_users_without_relevant_items() -> None:
    hits = np.zeros((1, 3), dtype=bool)
    with pytest.raises(ValueError, match="Expected k >= 1. Received: k=0"):
        ranking_metrics_at_k(hits, np.array([1]), [0])
    with pytest.raises(ValueError, match=r"Expected k <= 3"):
        ranking_metrics_at_k(hits, np.array([1]), [5])
    with pytest.raises(ValueError, match="at least one relevant item"):
        ranking_metrics_at_k(hits, np.array([0]), [1])


def tie_counts(scores: np.ndarray, relevant: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Slow reference for one user: (higher, tied) of each relevant item, as `(1, slots)` arrays."""
    higher = [int(np.sum(scores > scores[item])) for item in relevant]
    tied = [int(np.sum(scores == scores[item])) for item in relevant]
    return np.array([higher]), np.array([tied])


def test_expected_metrics_hand_computed_three_way_tie() -> None:
    # Scores [0.5, 0.5, 0.5, 0.1], relevant item 1: h = 0 items above, g = 3 tied (itself included),
    # so item 1 is equally likely at positions 1, 2 and 3.
    scores = np.array([0.5, 0.5, 0.5, 0.1])
    higher, tied = tie_counts(scores, [1])
    assert higher.tolist() == [[0]] and tied.tolist() == [[3]]
    metrics = expected_ranking_metrics(higher, tied, np.array([1]), [1, 2, 3])
    # E[hits@1] = |{1}| / 3 = 1/3; E[hits@2] = 2/3; E[hits@3] = 1.  |rel| = 1 so recall = E[hits].
    np.testing.assert_allclose([metrics[f"recall@{k}"][0] for k in (1, 2, 3)], [1 / 3, 2 / 3, 1.0])
    # precision@2 = E[hits@2] / 2 = 1/3.  One relevant item: HR@k = E[hits@k] (1 − C(2, 1)/C(3, 1) = 1/3 at k = 1).
    np.testing.assert_allclose(metrics["precision@2"], [1 / 3])
    np.testing.assert_allclose([metrics[f"hr@{k}"][0] for k in (1, 2, 3)], [1 / 3, 2 / 3, 1.0])
    # NDCG@2 = (1/3)(1/log2(2) + 1/log2(3)) / IDCG(1) = (1 + 0.63093) / 3 = 0.54364.
    np.testing.assert_allclose(metrics["ndcg@2"], [(1 + 1 / np.log2(3)) / 3])
    # MRR = (1/1 + 1/2 + 1/3) / 3 = (11/6) / 3 = 11/18 = 0.61111 (the top-k era reported 1/1).
    np.testing.assert_allclose(metrics["mrr"], [11 / 18])


def test_expected_metrics_hand_computed_tie_after_a_higher_item() -> None:
    # Scores [0.9, 0.4, 0.4, 0.4, 0.4], relevant items 2 and 4: h = 1, g = 4, r = 2 in the group.
    higher, tied = tie_counts(np.array([0.9, 0.4, 0.4, 0.4, 0.4]), [2, 4])
    assert higher.tolist() == [[1, 1]] and tied.tolist() == [[4, 4]]
    metrics = expected_ranking_metrics(higher, tied, np.array([2]), [1, 2, 3])
    # k = 1: the top item is item 0 → everything 0.
    assert metrics["hr@1"][0] == 0.0 and metrics["recall@1"][0] == 0.0
    # k = 2: m = 1 group slot; HR = 1 − C(2, 1)/C(4, 1) = 1 − 2/4 = 1/2; E[hits] = 2 · (1/4) = 1/2, recall 1/4.
    np.testing.assert_allclose([metrics["hr@2"][0], metrics["recall@2"][0]], [0.5, 0.25])
    # k = 3: m = 2; HR = 1 − C(2, 2)/C(4, 2) = 1 − 1/6 = 5/6; E[hits] = 2 · (2/4) = 1, recall 1/2.
    np.testing.assert_allclose([metrics["hr@3"][0], metrics["recall@3"][0]], [5 / 6, 0.5])
    # First relevant position X in the group: P(X=1) = C(3,1)/C(4,2) = 3/6, P(2) = 2/6, P(3) = 1/6;
    # MRR = (3/6)/2 + (2/6)/3 + (1/6)/4 = 1/4 + 1/9 + 1/24 = 0.40278.
    np.testing.assert_allclose(metrics["mrr"], [1 / 4 + 1 / 9 + 1 / 24])


def brute_force(scores: np.ndarray, relevant: set[int], ks: list[int]) -> dict[str, float]:
    """Top-k metrics averaged over every order of the items that sorts scores best first."""
    items = [item for item in range(len(scores)) if np.isfinite(scores[item])]
    totals: dict[str, float] = {}
    orders = 0
    for order in itertools.permutations(items):
        if any(scores[a] < scores[b] for a, b in zip(order, order[1:])):
            continue
        orders += 1
        hits = np.array([[item in relevant for item in order]])
        values = ranking_metrics_at_k(hits, np.array([len(relevant)]), ks)
        first = 1 + next(position for position, item in enumerate(order) if item in relevant)
        values["mrr"] = reciprocal_rank(np.array([first]))
        for name, value in values.items():
            totals[name] = totals.get(name, 0.0) + float(value[0])
    return {name: total / orders for name, total in totals.items()}


@pytest.mark.parametrize(
    "scores, relevant",
    [
        # Three relevant items in a 5-way tie after one higher item, plus a lower tie pair.
        ([0.9, 0.3, 0.3, 0.3, 0.3, 0.3, 0.1, 0.1], {2, 4, 5}),
        # Relevant items spread over two tie groups; one seen item (-inf) never counts.
        ([0.7, 0.7, 0.7, -np.inf, 0.2, 0.2, 0.2, 0.9], {1, 5, 6}),
        # Every item tied (e.g. popularity for items nobody trained on); 2 of 7 relevant.
        ([1.0] * 7, {0, 6}),
        # No ties at all.
        ([0.8, 0.1, 0.5, 0.3, 0.9, 0.2], {2, 5}),
    ],
)
def test_expected_metrics_match_brute_force_over_tie_orders(scores: list[float], relevant: set[int]) -> None:
    scores = np.array(scores)
    ks = list(range(1, int(np.isfinite(scores).sum()) + 1))  # every cutoff of the ranked list
    higher, tied = tie_counts(scores, sorted(relevant))
    expected = expected_ranking_metrics(higher, tied, np.array([len(relevant)]), ks)
    reference = brute_force(scores, relevant, ks)
    for name, value in reference.items():
        np.testing.assert_allclose(expected[name][0], value, rtol=1e-12, atol=1e-15, err_msg=name)


def test_expected_metrics_without_ties_equal_top_k_metrics_exactly() -> None:
    rng = np.random.default_rng(3)
    n_users, n_items, ks = 200, 60, [1, 5, 10, 20]
    scores = rng.permutation(n_users * n_items).reshape(n_users, n_items).astype(np.float64)  # all distinct
    relevant = [rng.choice(n_items, size=rng.integers(1, 12), replace=False) for _ in range(n_users)]
    top = np.argsort(-scores, axis=1)[:, : max(ks)]
    slots = max(len(items) for items in relevant)
    higher = np.zeros((n_users, slots), dtype=np.int64)
    tied = np.zeros((n_users, slots), dtype=np.int64)
    for user, items in enumerate(relevant):
        higher[user, : len(items)] = (scores[user][None, :] > scores[user, items][:, None]).sum(axis=1)
        tied[user, : len(items)] = 1
    counts = np.array([len(items) for items in relevant])
    expected = expected_ranking_metrics(higher, tied, counts, ks)
    reference = ranking_metrics_at_k(hit_matrix(top, relevant), counts, ks)
    for name, value in reference.items():
        np.testing.assert_array_equal(expected[name], value, err_msg=name)
    best_rank = 1 + np.array([higher[user, : len(items)].min() for user, items in enumerate(relevant)])
    np.testing.assert_array_equal(expected["mrr"], reciprocal_rank(best_rank))


def test_expected_metrics_unrankable_items_and_bad_input() -> None:
    # Slot 0 holds a relevant item masked as seen (tied = 0): never a hit, but still in |rel| = 2.
    metrics = expected_ranking_metrics(np.array([[5, 0], [5, 5]]), np.array([[0, 1], [0, 0]]), np.array([2, 1]), [1])
    # User 0: the other relevant item is first → recall@1 = 1/2, HR = MRR = 1.  User 1: nothing rankable → 0.
    np.testing.assert_allclose([metrics["recall@1"], metrics["hr@1"], metrics["mrr"]], [[0.5, 0.0], [1.0, 0.0], [1.0, 0.0]])
    with pytest.raises(ValueError, match="Expected k >= 1. Received: k=0"):
        expected_ranking_metrics(np.zeros((1, 1)), np.ones((1, 1)), np.array([1]), [0])
    with pytest.raises(ValueError, match="at least one relevant item"):
        expected_ranking_metrics(np.zeros((1, 1)), np.ones((1, 1)), np.array([0]), [1])
