"""Batched full ranking against a slow, obvious numpy reference; tie counts; test exclusions."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sparse

from xdt.errors import XdtError
from xdt.evaluate import evaluate_model, rank_items
from xdt.metrics import expected_ranking_metrics, hit_matrix, ranking_metrics_at_k, reciprocal_rank


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


def random_split(n_users: int, n_items: int) -> tuple[sparse.csr_matrix, sparse.csr_matrix]:
    """Random seen and relevant matrices, disjoint, every user with at least one relevant item."""
    seen = sparse.random(n_users, n_items, density=0.2, format="csr", random_state=1)
    relevant = sparse.random(n_users, n_items, density=0.15, format="csr", random_state=2) - seen.multiply(1e9)
    relevant = sparse.lil_matrix(relevant > 0)
    for user in range(n_users):
        if relevant[user].nnz == 0:
            unseen = np.setdiff1d(np.arange(n_items), seen[user].indices)
            relevant[user, unseen[0]] = True
    return seen, sparse.csr_matrix(relevant)


def test_rank_items_matches_reference_with_masking_and_batches() -> None:
    rng = np.random.default_rng(0)
    n_users, n_items = 37, 23
    scores = rng.standard_normal((n_users, n_items)).astype(np.float32)
    seen, relevant = random_split(n_users, n_items)
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
    # No ties: one unseen item at each position, so higher = rank - 1 and tied = 1.
    assert ranking.relevant_higher.tolist() == [[1]] and ranking.relevant_tied.tolist() == [[1]]


def test_rank_items_counts_ties_over_unseen_items_only() -> None:
    # Scores [0.5, 0.5, 0.5, 0.1, 0.5, 0.9]; item 4 seen (its 0.5 must not count), relevant items 1 and 3:
    # item 1: above it only item 5 (0.9) → h = 1; tied with items 0, 1, 2 → g = 3.
    # item 3: above it items 0, 1, 2, 5 → h = 4; alone at 0.1 → g = 1.
    scores = np.array([[0.5, 0.5, 0.5, 0.1, 0.5, 0.9]], dtype=np.float32)
    seen = sparse.csr_matrix(np.array([[0, 0, 0, 0, 1, 0]]))
    relevant = sparse.csr_matrix(np.array([[0, 1, 0, 1, 0, 0]]))
    ranking = rank_items(lambda batch: scores, np.array([0]), seen=seen, relevant=relevant, k=2, batch_size=4)
    assert ranking.relevant_higher.tolist() == [[1, 4]] and ranking.relevant_tied.tolist() == [[3, 1]]
    assert ranking.best_relevant_rank.tolist() == [2]  # 1 + strictly higher, as before


def test_rank_items_tie_counts_match_reference_across_batches() -> None:
    rng = np.random.default_rng(4)
    n_users, n_items = 41, 30
    scores = rng.integers(0, 4, size=(n_users, n_items)).astype(np.float32)  # many exact ties
    seen, relevant = random_split(n_users, n_items)
    ranking = rank_items(lambda batch: scores[batch.numpy()], np.arange(n_users), seen=seen, relevant=relevant, k=5, batch_size=8)
    for user in range(n_users):
        row = scores[user].copy()
        row[seen[user].indices] = -np.inf
        items = relevant[user].indices
        count = len(items)
        assert ranking.relevant_higher[user, :count].tolist() == [int(np.sum(row > row[item])) for item in items]
        assert ranking.relevant_tied[user, :count].tolist() == [int(np.sum(row == row[item])) for item in items]
        assert not ranking.relevant_tied[user, count:].any()


def test_expected_metrics_without_ties_equal_top_k_path_on_random_scores() -> None:
    rng = np.random.default_rng(5)
    n_users, n_items, ks = 60, 40, [1, 3, 10]
    scores = rng.standard_normal((n_users, n_items)).astype(np.float32)
    assert all(len(np.unique(row)) == n_items for row in scores)
    seen, relevant = random_split(n_users, n_items)
    users = np.arange(n_users)
    ranking = rank_items(lambda batch: scores[batch.numpy()], users, seen=seen, relevant=relevant, k=max(ks), batch_size=16)
    counts = np.diff(relevant.indptr)
    expected = expected_ranking_metrics(ranking.relevant_higher, ranking.relevant_tied, counts, ks)
    # The pre-tie-aware computation: hits in the top_k list, MRR from the strictly-higher count.
    top_k = ranking_metrics_at_k(hit_matrix(ranking.top_items, [relevant[user].indices for user in users]), counts, ks)
    for name, value in {**top_k, "mrr": reciprocal_rank(ranking.best_relevant_rank)}.items():
        np.testing.assert_array_equal(expected[name], value, err_msg=name)


class SplitDataset:
    """The parts of PreparedDataset that evaluate_model reads, over fixed target splits."""

    def __init__(self, splits: dict[str, list[tuple[int, int]]], n_users: int, n_items: int) -> None:
        self.splits, self.n_users, self.items = splits, n_users, n_items
        self.raw_users = np.array([f"u{user}" for user in range(n_users)])

    def interaction_matrix(self, domain: str, *splits: str) -> sparse.csr_matrix:
        pairs = [pair for split in splits for pair in self.splits[split]]
        rows, columns = zip(*pairs) if pairs else ((), ())
        return sparse.csr_matrix((np.ones(len(pairs)), (rows, columns)), shape=(self.n_users, self.items))

    def evaluation_users(self, split: str, domain: str = "target") -> np.ndarray:
        return np.unique([user for user, _ in self.splits[split]])

    def cohort(self, users: np.ndarray, domain: str = "target") -> np.ndarray:
        return np.array(["warm"] * len(users))

    def activity_bucket(self, users: np.ndarray) -> np.ndarray:
        return np.array(["1-5"] * len(users))


def test_test_excludes_choose_the_masked_splits() -> None:
    # One user, items scored 0.9 (item 0, train), 0.8 (item 1, valid), 0.7 (item 2, test), 0.1 (item 3).
    dataset = SplitDataset({"train": [(0, 0)], "valid": [(0, 1)], "test": [(0, 2)]}, n_users=1, n_items=4)
    scores = np.array([[0.9, 0.8, 0.7, 0.1]], dtype=np.float32)

    def evaluate(split: str, **options: object) -> pd.DataFrame:
        return evaluate_model(lambda batch: scores, dataset, split=split, ks=[1], batch_size=4, **options)

    # Default: train and valid masked → the test item is first.
    assert evaluate("test")["mrr"].tolist() == [1.0]
    # test_excludes [train] (PEERS.md, CDRIB): the valid item stays in the ranking, above the test item.
    assert evaluate("test", test_excludes=["train"])["mrr"].tolist() == [0.5]
    # Nothing masked: train and valid items both above → rank 3.
    assert evaluate("test", test_excludes=[])["mrr"].tolist() == [pytest.approx(1 / 3)]
    # Validation masks train only, whatever test_excludes says: the valid item is first.
    assert evaluate("valid", test_excludes=[])["hr@1"].tolist() == [1.0]
    with pytest.raises(XdtError, match=r"subset of \['train', 'valid'\]. Received: test_excludes=\['test'\]"):
        evaluate("test", test_excludes=["test"])


def counted_positions(scores: np.ndarray, lists: list[np.ndarray], slots: int) -> tuple[np.ndarray, np.ndarray]:
    """`relevant_positions` the obvious way: per relevant item, count the row's scores above it and equal to it."""
    higher = np.zeros((len(lists), slots), dtype=np.int64)
    tied = np.zeros((len(lists), slots), dtype=np.int64)
    for row, items in enumerate(lists):
        higher[row] = np.sum(scores[row] > -np.inf)
        for slot, item in enumerate(items):
            value = scores[row, item]
            higher[row, slot] = np.sum(scores[row] > value)
            tied[row, slot] = 0 if value == -np.inf else np.sum(scores[row] == value)
    return higher, tied


def masked_reference(scores: np.ndarray, seen: sparse.csr_matrix, relevant: sparse.csr_matrix, k: int) -> tuple:
    """Mask seen items to -inf, rank by a stable sort (lower index first on ties), count item by item."""
    masked = scores.copy()
    for user in range(len(scores)):
        masked[user, seen[user].indices] = -np.inf
    order = np.argsort(-masked, axis=1, kind="stable")[:, :k]
    lists = [relevant[user].indices for user in range(len(scores))]
    higher, tied = counted_positions(masked, lists, max(max(len(items) for items in lists), 1))
    return order, np.take_along_axis(masked, order, axis=1), higher, tied


def test_relevant_positions_counts_the_same_by_comparison_and_by_sort() -> None:
    """Rows under and at `SORT_FROM_RELEVANT` relevant items take the two code paths; both equal plain counting."""
    from xdt.evaluate import SORT_FROM_RELEVANT, relevant_positions

    rng = np.random.default_rng(5)
    scores = rng.integers(0, 4, size=(6, 30)).astype(np.float32)
    scores[rng.random(scores.shape) < 0.2] = -np.inf
    sizes = [1, 2, SORT_FROM_RELEVANT - 1, SORT_FROM_RELEVANT, SORT_FROM_RELEVANT + 5, 0]
    lists = [rng.choice(30, size=size, replace=False) for size in sizes]
    slots = max(sizes)
    higher, tied = relevant_positions(scores, lists, slots=slots)
    expected_higher, expected_tied = counted_positions(scores, lists, slots)
    np.testing.assert_array_equal(higher, expected_higher)
    np.testing.assert_array_equal(tied, expected_tied)


def test_rank_items_equals_masking_then_sorting_on_hard_cases() -> None:
    """Ties, -inf scores, seen relevant items, users with fewer than k unseen items, users with many relevant items, batches."""
    rng = np.random.default_rng(11)
    n_users, n_items, k = 53, 40, 6
    scores = rng.integers(0, 5, size=(n_users, n_items)).astype(np.float32)
    scores[rng.random((n_users, n_items)) < 0.05] = -np.inf
    seen = sparse.random(n_users, n_items, density=0.15, format="csr", random_state=3)
    seen = sparse.lil_matrix(seen > 0)
    seen[0, : n_items - 2] = True  # fewer than k unseen items
    relevant = sparse.lil_matrix(sparse.random(n_users, n_items, density=0.1, format="csr", random_state=4) > 0)
    relevant[1, :20] = True  # many relevant items
    relevant[2, seen[2].rows[0][:1] if seen[2].nnz else [0]] = True  # a relevant item that is also seen
    for user in range(n_users):
        if relevant[user].nnz == 0:
            relevant[user, n_items - 1] = True
    seen, relevant = sparse.csr_matrix(seen), sparse.csr_matrix(relevant)
    ranking = rank_items(lambda batch: scores[batch.numpy()], np.arange(n_users), seen=seen, relevant=relevant, k=k, batch_size=16)
    top, top_scores, higher, tied = masked_reference(scores, seen, relevant, k)
    np.testing.assert_array_equal(ranking.top_items, top)
    np.testing.assert_array_equal(ranking.top_scores, top_scores)
    np.testing.assert_array_equal(ranking.relevant_higher, higher)
    np.testing.assert_array_equal(ranking.relevant_tied, tied)


@pytest.mark.parametrize("n_items", [4 * 3 * 64, 1000, 100])
def test_top_k_by_blocks_equals_tf_top_k_with_ties_and_minus_infinity(n_items: int) -> None:
    """Blocked top_k gives tf.math.top_k's values and indices (ties to the lower index), padded or not, short rows included."""
    import tensorflow as tf

    from xdt.evaluate import top_k

    rng = np.random.default_rng(n_items)
    scores = rng.integers(0, 3, size=(7, n_items)).astype(np.float32)
    scores[rng.random(scores.shape) < 0.3] = -np.inf
    scores[1] = -np.inf  # every item masked
    scores[2, :] = -np.inf
    scores[2, [5, n_items - 1]] = 1.0  # fewer than k finite items, one in the last (padded) block
    scores[3] = 2.0  # all tied
    for k in (1, 3):
        values, indices = top_k(tf.constant(scores), k)
        expected_values, expected_indices = tf.math.top_k(tf.constant(scores), k=k)
        np.testing.assert_array_equal(values.numpy(), expected_values.numpy())
        np.testing.assert_array_equal(indices.numpy(), expected_indices.numpy())
