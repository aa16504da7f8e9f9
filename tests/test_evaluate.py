"""Batched full ranking against a slow, obvious numpy reference."""

import numpy as np
import scipy.sparse as sparse

from xdt.evaluate import rank_items


def slow_reference(scores: np.ndarray, seen: sparse.csr_matrix, relevant: sparse.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
    top, ranks = [], []
    for user in range(scores.shape[0]):
        row = scores[user].astype(np.float64).copy()
        row[seen[user].indices] = -np.inf
        order = sorted(range(len(row)), key=lambda item: (-row[item], item))
        top.append(order[:k])
        best = max(row[item] for item in relevant[user].indices)
        ranks.append(1 + sum(1 for value in row if value > best))
    return np.array(top), np.array(ranks)


def test_rank_items_matches_reference_with_masking_and_batches() -> None:
    rng = np.random.default_rng(0)
    n_users, n_items = 37, 23
    scores = rng.standard_normal((n_users, n_items)).astype(np.float32)
    seen = sparse.random(n_users, n_items, density=0.2, format="csr", random_state=1)
    relevant = sparse.random(n_users, n_items, density=0.15, format="csr", random_state=2) - seen.multiply(1e9)
    relevant = sparse.lil_matrix(relevant > 0)
    for user in range(n_users):
        if relevant[user].nnz == 0:
            unseen = np.setdiff1d(np.arange(n_items), seen[user].indices)
            relevant[user, unseen[0]] = True
    relevant = sparse.csr_matrix(relevant)
    users = np.arange(n_users)
    ranking = rank_items(lambda batch: scores[batch.numpy()], users, seen=seen, relevant=relevant, k=5, batch_size=8)
    expected_top, expected_ranks = slow_reference(scores, seen, relevant, 5)
    np.testing.assert_array_equal(ranking.top_items, expected_top)
    np.testing.assert_array_equal(ranking.best_relevant_rank, expected_ranks)
    for user in users:
        assert not set(ranking.top_items[user]) & set(seen[user].indices)


def test_rank_items_hand_example() -> None:
    # Scores [0.9, 0.1, 0.5, 0.7]; item 0 seen → ranking 3, 2, 1; relevant item 2 ranks 2nd (only item 3 is higher).
    scores = np.array([[0.9, 0.1, 0.5, 0.7]], dtype=np.float32)
    seen = sparse.csr_matrix(np.array([[1, 0, 0, 0]]))
    relevant = sparse.csr_matrix(np.array([[0, 0, 1, 0]]))
    ranking = rank_items(lambda batch: scores, np.array([0]), seen=seen, relevant=relevant, k=3, batch_size=4)
    assert ranking.top_items.tolist() == [[3, 2, 1]]
    assert ranking.best_relevant_rank.tolist() == [2]
