"""Ranking metrics against hand-computed values."""

import numpy as np
import pytest

from xdt.metrics import hit_matrix, mean_absolute_error, ranking_metrics_at_k, reciprocal_rank, root_mean_squared_error


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
