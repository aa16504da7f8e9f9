"""Sampled ranking: each target test item against N random negatives, as papers' own code ranks; always labelled "sampled".

Negatives of a test (user, item) pair are drawn uniformly without replacement from the target
items the user has no row with in any split (train, valid, test), so the candidate list never
holds a duplicate or the held-out item itself (two flaws of several official implementations).
Each pair gets its own draw from a generator seeded by (seed, user), so the negatives do not
depend on the batch size or on which other users are evaluated. The numbers are reported next
to full ranking, never in place of it: they are not comparable with it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sparse
import tensorflow as tf

from xdt.data.dataset import PreparedDataset
from xdt.data.protocols import TARGET
from xdt.errors import XdtError
from xdt.evaluate import csr_rows, summarise
from xdt.metrics import expected_ranking_metrics
from xdt.progress import Reporter

# Mixed into every generator seed so these draws never coincide with a training stream seeded by [seed, ...].
SAMPLED_STREAM = 99991
NEGATIVES_FROM = "target items the user has no row with in train, valid or test; uniform, without replacement, a fresh draw per test item"


@dataclass(frozen=True)
class SampledRanking:
    """Where each test (user, item) pair's item falls among its candidates: itself and its sampled negatives.

    `pair_users`: `(pairs,)` position in `users` of each pair (users in order, each user's items
    ascending); `items`: the test item; `higher`: negatives scoring strictly above it; `tied`:
    candidates scoring exactly the same, the item itself included (so tied >= 1).
    """

    users: np.ndarray
    pair_users: np.ndarray
    items: np.ndarray
    higher: np.ndarray
    tied: np.ndarray


def check_enough_negatives(interacted: sparse.csr_matrix, users: np.ndarray, negatives: int) -> None:
    """Raise a clear error when some user has fewer than `negatives` items without a row."""
    if negatives < 1:
        raise XdtError(f"Expected sampled_negatives >= 1. Received: sampled_negatives={negatives}")
    eligible = interacted.shape[1] - np.diff(interacted.indptr)[users]
    short = eligible < negatives
    if short.any():
        raise XdtError(
            f"Expected evaluate.sampled_negatives <= the target items each test user has no row with. Received: "
            f"sampled_negatives={negatives}, but {int(short.sum())} of {len(users)} test users have fewer "
            f"(the fewest: {int(eligible.min())} of {interacted.shape[1]} items). Lower evaluate.sampled_negatives, "
            f"or set it to 0 to skip sampled ranking."
        )


def sample_negatives(
    interacted: sparse.csr_matrix, users: np.ndarray, relevant: sparse.csr_matrix, *, negatives: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`(pair_users, items, negative_items)` for every (user, relevant item) pair of `users`.

    `interacted` holds every item each user has a row with (relevant items included) and must
    have sorted, unique column indices per row; `negative_items` is `(pairs, negatives)`.
    """
    check_enough_negatives(interacted, users, negatives)
    n_items = interacted.shape[1]
    pair_users, items, drawn = [], [], []
    for position, (user, excluded, row) in enumerate(zip(users, csr_rows(interacted, users), csr_rows(relevant, users))):
        held_out = np.unique(row)
        if len(held_out) == 0:
            continue
        generator = np.random.default_rng([seed, SAMPLED_STREAM, int(user)])
        eligible = n_items - len(excluded)
        ranks = np.stack([generator.choice(eligible, size=negatives, replace=False) for _ in held_out])
        # The r-th item without a row (from 0) is r + the excluded items at or before it:
        # excluded [1, 3] of 5 items → offsets [1, 2]; r = 0, 1, 2 → items 0 + 0, 1 + 1, 2 + 2 = 0, 2, 4.
        drawn.append(ranks + np.searchsorted(excluded - np.arange(len(excluded)), ranks, side="right"))
        pair_users.append(np.full(len(held_out), position))
        items.append(held_out)
    if not drawn:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros((0, negatives), dtype=np.int64)
    return np.concatenate(pair_users), np.concatenate(items).astype(np.int64), np.concatenate(drawn).astype(np.int64)


def rank_against_sampled_negatives(
    score_all: Callable[[Any], Any],
    users: np.ndarray,
    *,
    interacted: sparse.csr_matrix,
    relevant: sparse.csr_matrix,
    negatives: int,
    seed: int,
    batch_size: int,
    progress: Callable[[int], None] = lambda advance: None,
) -> SampledRanking:
    """Score every item for each user in batches and place each relevant item among itself + its sampled negatives.

    Ranks come from the same float32 scores as full ranking; the relevant item's expected rank
    under random tie order is `higher + (tied − 1) / 2` (from 0).
    """
    interacted = sparse.csr_matrix(interacted, copy=True)
    interacted.sum_duplicates()  # sorted, unique columns per row, as sample_negatives needs
    check_enough_negatives(interacted, users, negatives)
    parts = []
    for start in range(0, len(users), batch_size):
        batch = users[start : start + batch_size]
        pair_users, items, negative_items = sample_negatives(interacted, batch, relevant, negatives=negatives, seed=seed)
        scores = tf.convert_to_tensor(score_all(tf.constant(batch, dtype=tf.int32)), dtype=tf.float32).numpy()
        relevant_scores = scores[pair_users, items][:, None]
        negative_scores = scores[pair_users[:, None], negative_items]
        higher = (negative_scores > relevant_scores).sum(axis=1)
        tied = 1 + (negative_scores == relevant_scores).sum(axis=1)
        parts.append((pair_users + start, items, higher, tied))
        progress(len(batch))
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return SampledRanking(users=users, pair_users=empty, items=empty, higher=empty, tied=empty)
    pair_users, items, higher, tied = (np.concatenate(column) for column in zip(*parts))
    return SampledRanking(users=users, pair_users=pair_users, items=items, higher=higher, tied=tied)


def sampled_metric_names(ks: Sequence[int]) -> list[str]:
    """HR@k and NDCG@k for each k, then MRR: the metrics sampled ranking reports."""
    return [f"{name}@{k}" for k in ks for name in ("hr", "ndcg")] + ["mrr"]


def per_user_sampled_metrics(ranking: SampledRanking, ks: Sequence[int]) -> dict[str, np.ndarray]:
    """`(users,)` HR@k, NDCG@k and MRR of each user, averaged over the user's test items.

    One relevant item per candidate list, so each pair's metrics are the tie-aware expectations
    of xdt.metrics.expected_ranking_metrics with |relevant| = 1: NDCG@k = 1/log2(rank + 2) for a
    0-based rank < k, averaged over the tied positions.
    """
    counts = np.bincount(ranking.pair_users, minlength=len(ranking.users))
    if np.any(counts == 0):
        raise XdtError(f"Expected every user to have at least one test item. Received: {int(np.sum(counts == 0))} users without")
    pair_metrics = expected_ranking_metrics(ranking.higher[:, None], ranking.tied[:, None], np.ones(len(ranking.higher), dtype=np.int64), ks)
    return {name: np.bincount(ranking.pair_users, weights=pair_metrics[name], minlength=len(counts)) / counts for name in sampled_metric_names(ks)}


def check_sampled_evaluation(dataset: PreparedDataset, negatives: int) -> None:
    """Fail before any training when some target test user has fewer than `negatives` items to draw from."""
    users = dataset.evaluation_users("test", TARGET)
    check_enough_negatives(dataset.interaction_matrix(TARGET, "train", "valid", "test"), users, negatives)


def evaluate_sampled(
    score_all: Callable[[Any], Any],
    dataset: PreparedDataset,
    *,
    negatives: int,
    ks: Sequence[int],
    batch_size: int,
    seed: int,
    users: np.ndarray | None = None,
    progress: Callable[[int], None] = lambda advance: None,
) -> pd.DataFrame:
    """Per-user sampled-ranking HR@k, NDCG@k and MRR on the target test split (the full-ranking test users by default)."""
    relevant = dataset.interaction_matrix(TARGET, "test")
    interacted = dataset.interaction_matrix(TARGET, "train", "valid", "test")
    if users is None:
        users = dataset.evaluation_users("test", TARGET)
    ranking = rank_against_sampled_negatives(
        score_all, users, interacted=interacted, relevant=relevant, negatives=negatives, seed=seed, batch_size=batch_size, progress=progress
    )
    return pd.DataFrame(
        {
            "user": dataset.raw_users[users].astype(str),
            "user_index": users,
            "cohort": dataset.cohort(users, TARGET),
            "activity_bucket": dataset.activity_bucket(users),
            "relevant": np.bincount(ranking.pair_users, minlength=len(users)),
            **per_user_sampled_metrics(ranking, ks),
        }
    )


def sampled_label(negatives: int) -> str:
    """The title every table of sampled metrics carries."""
    return f"Sampled ranking ({negatives} random negatives per test item — not comparable with full ranking)"


def sampled_results(per_user: pd.DataFrame, *, negatives: int, seed: int) -> dict[str, Any]:
    """results.json's "sampled" section: the protocol, its label, and the test metrics by cohort."""
    return {
        "protocol": "sampled",
        "label": sampled_label(negatives),
        "negatives": negatives,
        "negatives_from": NEGATIVES_FROM,
        "seed": seed,
        "ties": "expected",
        "test": summarise(per_user),
    }


def sampled_section(
    score_all: Callable[[Any], Any], dataset: PreparedDataset, *, negatives: int, ks: Sequence[int], batch_size: int, seed: int, reporter: Reporter, method: str | None
) -> dict[str, Any]:
    """`xdt evaluate`'s "sampled" section for the target test users, with a progress bar."""
    users = dataset.evaluation_users("test", TARGET)
    with reporter.task(f"evaluate {method} on test, sampled ({negatives} negatives per item)", len(users)) as advance:
        per_user = evaluate_sampled(score_all, dataset, negatives=negatives, ks=ks, batch_size=batch_size, seed=seed, users=users, progress=advance)
    return sampled_results(per_user, negatives=negatives, seed=seed)
