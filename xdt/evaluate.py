"""Full-ranking evaluation on the target domain: batched scoring, seen-item masking, cohorts."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sparse
import tensorflow as tf
from scipy.sparse.linalg import svds

from xdt.data.dataset import PreparedDataset
from xdt.data.protocols import SOURCE, TARGET
from xdt.errors import XdtError
from xdt.metrics import expected_ranking_metrics
from xdt.progress import Reporter
from xdt.runs import RunDirectory, check_model_run

# Target splits masked when evaluating each split; test's default, overridable by evaluate.test_excludes.
EXCLUDED_SPLITS = {"valid": ("train",), "test": ("train", "valid")}


@dataclass(frozen=True)
class Ranking:
    """Top items and where each user's relevant items fall in the full ranking.

    `best_relevant_rank`: 1 + unseen items scoring strictly above the best relevant item.
    `relevant_higher`, `relevant_tied`: `(users, slots)` per relevant item (in `relevant`'s column
    order, padded with tied = 0), the unseen items scoring strictly above it and exactly equal to
    it (itself included); tied = 0 also for a relevant item masked as seen. None without `relevant`.
    """

    users: np.ndarray
    top_items: np.ndarray
    top_scores: np.ndarray
    best_relevant_rank: np.ndarray
    relevant_higher: np.ndarray | None = None
    relevant_tied: np.ndarray | None = None


def csr_rows(matrix: sparse.csr_matrix, rows: np.ndarray) -> list[np.ndarray]:
    """Column indices of each selected row."""
    return [matrix.indices[matrix.indptr[row] : matrix.indptr[row + 1]] for row in rows]


def rank_items(
    score_all: Callable[[Any], Any],
    users: np.ndarray,
    *,
    seen: sparse.csr_matrix,
    relevant: sparse.csr_matrix | None,
    k: int,
    batch_size: int,
    progress: Callable[[int], None] = lambda advance: None,
) -> Ranking:
    """Score every item for each user in batches, mask seen items, keep the top k.

    With `relevant`, also counts for each relevant item the unseen items scoring above and equal
    to it (from the same float32 scores that are ranked), for tie-aware metrics;
    `best_relevant_rank` is 0 when `relevant` is None.
    """
    k = min(k, seen.shape[1])
    top_items = np.zeros((len(users), k), dtype=np.int64)
    top_scores = np.zeros((len(users), k), dtype=np.float32)
    best_rank = np.zeros(len(users), dtype=np.int64)
    relevant_lists = csr_rows(relevant, users) if relevant is not None else []
    slots = max((len(items) for items in relevant_lists), default=0)
    higher = np.zeros((len(users), max(slots, 1)), dtype=np.int64)
    tied = np.zeros((len(users), max(slots, 1)), dtype=np.int64)
    for start in range(0, len(users), batch_size):
        batch = users[start : start + batch_size]
        scores = tf.cast(score_all(tf.constant(batch, dtype=tf.int32)), tf.float32)  # half-precision models score in float16/bfloat16
        seen_rows = seen[batch]
        if seen_rows.nnz:
            coordinates = np.stack([np.repeat(np.arange(len(batch)), np.diff(seen_rows.indptr)), seen_rows.indices], axis=1)
            scores = tf.tensor_scatter_nd_update(scores, coordinates, tf.fill([len(coordinates)], -np.inf))
        values, indices = top_k(scores, k)
        top_items[start : start + len(batch)] = indices.numpy()
        top_scores[start : start + len(batch)] = values.numpy()
        if relevant is not None:
            rows = slice(start, start + len(batch))
            # np.asarray reads a CPU tensor in place; .numpy() would copy the (batch, items) scores first.
            higher[rows], tied[rows] = relevant_positions(np.asarray(scores), relevant_lists[rows], slots=higher.shape[1])
            best_rank[rows] = 1 + higher[rows].min(axis=1)
        progress(len(batch))
    ranking = Ranking(users=users, top_items=top_items, top_scores=top_scores, best_relevant_rank=best_rank)
    if relevant is None:
        return ranking
    return replace(ranking, relevant_higher=higher, relevant_tied=tied)


# Items per block of `top_k`'s first pass; rows shorter than 4·k blocks go straight to tf.math.top_k.
TOP_K_BLOCK = 64


def top_k(scores: tf.Tensor, k: int) -> tuple[tf.Tensor, tf.Tensor]:
    """`tf.math.top_k(scores, k)` exactly (values, and indices with ties to the lower index), about 3× faster on long rows.

    tf.math.top_k over 50,000 float32 scores per row costs more than the matmul that made them. Here
    the row is cut into blocks of TOP_K_BLOCK items, the k blocks with the best maxima are kept (in
    index order) and top_k runs on those k·TOP_K_BLOCK candidates only. Exact: order items by
    (score descending, index ascending), as top_k does; each of the first k items lies in a block
    whose best item is at least as good, there are at most k such blocks, and top_k on the block
    maxima ranks blocks in that same order (equal maxima: the lower block holds the lower index).
    Padding items (-inf, after every real item) are never among the first k, since k ≤ items.
    """
    items = scores.shape[1]
    if items < 4 * k * TOP_K_BLOCK:
        return tf.math.top_k(scores, k=k)
    blocks = -(-items // TOP_K_BLOCK)
    if blocks * TOP_K_BLOCK != items:
        scores = tf.pad(scores, [[0, 0], [0, blocks * TOP_K_BLOCK - items]], constant_values=-np.inf)
    blocked = tf.reshape(scores, [-1, blocks, TOP_K_BLOCK])
    _, best_blocks = tf.math.top_k(tf.reduce_max(blocked, axis=2), k=k)
    best_blocks = tf.sort(best_blocks, axis=1)
    candidates = tf.reshape(tf.gather(blocked, best_blocks, batch_dims=1), [-1, k * TOP_K_BLOCK])
    values, positions = tf.math.top_k(candidates, k=k)
    return values, tf.gather(best_blocks, positions // TOP_K_BLOCK, batch_dims=1) * TOP_K_BLOCK + positions % TOP_K_BLOCK


# A row with at least this many relevant items is sorted once (then two binary searches per item);
# a row with fewer is counted by two vectorised comparisons per item over the row, which for one
# to a few items is 3-6× cheaper than the sort (50,000 float32 items: about 20 µs per item against
# about 270 µs per sort plus its copy, bench/eval_speed.py --with-relevant).
SORT_FROM_RELEVANT = 8


def relevant_positions(scores: np.ndarray, relevant: list[np.ndarray], *, slots: int) -> tuple[np.ndarray, np.ndarray]:
    """`(rows, slots)` counts of items scoring strictly above / exactly equal to each relevant item.

    `scores` is `(rows, items)` with seen items at -inf; -inf items never count. A relevant item
    at -inf, and each padding slot, gets tied = 0 (unrankable) and higher = the number of items
    above -inf, so 1 + the row's minimum `higher` is `Ranking.best_relevant_rank`.
    A row with few relevant items is counted by comparisons over the row, one with many
    (`SORT_FROM_RELEVANT`) by one sort and two binary searches per item: both give the same counts.
    """
    n_items = scores.shape[1]
    higher = np.zeros((len(relevant), slots), dtype=np.int64)
    tied = np.zeros((len(relevant), slots), dtype=np.int64)
    for row, items in enumerate(relevant):
        row_scores = scores[row]
        values = row_scores[items]
        if len(items) < slots:
            higher[row, len(items) :] = n_items - np.count_nonzero(row_scores == -np.inf)
        if len(items) >= SORT_FROM_RELEVANT:
            ordered = np.sort(row_scores)
            at_most = np.searchsorted(ordered, values, side="right")
            above, equal = n_items - at_most, at_most - np.searchsorted(ordered, values, side="left")
        else:
            above = np.array([np.count_nonzero(row_scores > value) for value in values], dtype=np.int64)
            equal = np.array([np.count_nonzero(row_scores == value) for value in values], dtype=np.int64)
        higher[row, : len(items)] = above
        tied[row, : len(items)] = np.where(values == -np.inf, 0, equal)
    return higher, tied


def evaluate_model(
    score_all: Callable[[Any], Any],
    dataset: PreparedDataset,
    *,
    split: str,
    ks: Sequence[int],
    batch_size: int,
    users: np.ndarray | None = None,
    test_excludes: Sequence[str] = EXCLUDED_SPLITS["test"],
    progress: Callable[[int], None] = lambda advance: None,
    domain: str = TARGET,
) -> pd.DataFrame:
    """Per-user full-ranking metrics on `domain`'s `split` (valid or test); the target domain by default.

    Each user's own items of that domain from earlier splits are excluded: train for valid,
    `test_excludes` (train and valid by default) for test. Metrics are tie-aware expectations
    over random orders of equally scored items (xdt.metrics.expected_ranking_metrics).
    `score_all` must score `domain`'s items (e.g. `score_all_source` for domain="source").
    """
    frame, _ = evaluate_ranking(
        score_all,
        dataset,
        split=split,
        ks=ks,
        batch_size=batch_size,
        users=users,
        test_excludes=test_excludes,
        progress=progress,
        domain=domain,
    )
    return frame


def evaluate_ranking(
    score_all: Callable[[Any], Any],
    dataset: PreparedDataset,
    *,
    split: str,
    ks: Sequence[int],
    batch_size: int,
    users: np.ndarray | None = None,
    test_excludes: Sequence[str] = EXCLUDED_SPLITS["test"],
    progress: Callable[[int], None] = lambda advance: None,
    domain: str = TARGET,
) -> tuple[pd.DataFrame, Ranking]:
    """`evaluate_model` plus the ranking it computed (top max(ks) items per user), so callers need no second pass."""
    if domain not in (SOURCE, TARGET):
        raise XdtError(f"Expected domain 'source' or 'target'. Received: domain={domain!r}")
    relevant = dataset.interaction_matrix(domain, split)
    if users is None:
        users = dataset.evaluation_users(split, domain)
    seen = dataset.interaction_matrix(domain, *excluded_splits(split, test_excludes))
    ranking = rank_items(score_all, users, seen=seen, relevant=relevant, k=max(ks), batch_size=batch_size, progress=progress)
    counts = np.diff(relevant.indptr)[users]
    metrics = expected_ranking_metrics(ranking.relevant_higher, ranking.relevant_tied, counts, ks)
    frame = pd.DataFrame(
        {
            "user": dataset.raw_users[users].astype(str),
            "user_index": users,
            "cohort": dataset.cohort(users, domain),
            "activity_bucket": dataset.activity_bucket(users),
            "relevant": counts,
            **metrics,
        }
    )
    return frame, ranking


def excluded_splits(split: str, test_excludes: Sequence[str]) -> tuple[str, ...]:
    """Target splits whose items are masked when evaluating `split`."""
    if split not in EXCLUDED_SPLITS:
        raise XdtError(f"Expected split 'valid' or 'test'. Received: split={split!r}")
    if split == "valid":
        return EXCLUDED_SPLITS["valid"]
    unknown = sorted(set(test_excludes) - {"train", "valid"})
    if unknown:
        raise XdtError(f"Expected test_excludes to be a subset of ['train', 'valid']. Received: test_excludes={list(test_excludes)}")
    return tuple(test_excludes)


def summarise(per_user: pd.DataFrame) -> dict[str, Any]:
    """Mean of every metric over all users, each cohort and each activity bucket."""
    metric_columns = [column for column in per_user.columns if "@" in column or column == "mrr"]

    def means(frame: pd.DataFrame) -> dict[str, float]:
        return {"users": int(len(frame)), **{column: float(frame[column].mean()) for column in metric_columns}}

    summary: dict[str, Any] = {"all": means(per_user)}
    cohorts = {name: means(group) for name, group in per_user.groupby("cohort", sort=True)}
    summary["cohorts"] = cohorts
    summary["activity"] = {name: means(group) for name, group in per_user.groupby("activity_bucket", sort=False)}
    return summary


ITEM_VECTOR_DIM = 32


def collaborative_item_vectors(interactions: sparse.csr_matrix, *, seed: int) -> np.ndarray:
    """Model-independent item vectors for intra-list diversity: truncated SVD of the item × user matrix.

    Every method is judged with the same vectors, so diversity is comparable across methods.
    `(n_items, d)` with d = min(ITEM_VECTOR_DIM, smaller side − 1); the ARPACK start vector is seeded.
    """
    items_by_users = interactions.T.tocsr().astype(np.float64)
    rank = min(ITEM_VECTOR_DIM, min(items_by_users.shape) - 1)
    if rank < 1:
        return np.ones((items_by_users.shape[0], 1))
    start = np.random.default_rng(seed).random(min(items_by_users.shape))
    left, singular, _ = svds(items_by_users, k=rank, v0=start)
    return left * singular


def evaluate_run(run: RunDirectory, *, reporter: Reporter | None = None) -> dict[str, Any]:
    """`xdt evaluate RUN`: re-evaluate a run with its task's evaluation (xdt.tasks); writes results.json."""
    from xdt.progress import SilentReporter
    from xdt.session import load_run_config
    from xdt.tasks import get_task

    config = load_run_config(run)
    check_model_run(run, config.task, "evaluate")
    return get_task(config.task).evaluate_run(run, config, reporter=reporter or SilentReporter())


def evaluate_ranking_run(run: RunDirectory, config: Any, *, reporter: Reporter) -> dict[str, Any]:
    """task: ranking's evaluation: full-ranking metrics on the target test (and valid) split, by cohort.

    Writes results.json (deterministic for a fixed seed: no timings, no paths) and
    per_user.parquet (one row per test user, for paired comparisons). Dual-target models (with
    `score_all_source`) also get results["source"] = {"valid", "test"} for the source splits that
    have rows, and per_user_source.parquet. With evaluate.sampled_negatives > 0, results["sampled"]
    holds the labelled sampled-ranking metrics of the same test users (xdt.sampled_ranking).
    """
    from xdt.beyond_accuracy import beyond_accuracy_metrics
    from xdt.sampled_ranking import sampled_section
    from xdt.session import check_same_data, load_model, open_dataset

    info = run.info()
    dataset = open_dataset(config)
    check_same_data(run, dataset)
    model = load_model(run)
    test_excludes = list(config.evaluate.test_excludes)
    results: dict[str, Any] = {
        "method": info.get("method"),
        "dataset": dataset.manifest["name"],
        "ks": list(config.evaluate.ks),
        # Target splits masked at test time; metrics are expectations over random orders of tied scores.
        "test_excludes": test_excludes,
        "ties": "expected",
    }
    sampled = None
    if config.evaluate.sampled_negatives > 0 and len(dataset.evaluation_users("test")):
        # Before full ranking, so a catalogue too small for the negatives asked fails at once.
        sampled = sampled_section(
            model.score_all,
            dataset,
            negatives=config.evaluate.sampled_negatives,
            ks=config.evaluate.ks,
            batch_size=config.evaluate.batch_size,
            seed=config.seed,
            reporter=reporter,
            method=info.get("method"),
        )
    for split in ("valid", "test"):
        users = dataset.evaluation_users(split)
        if len(users) == 0:
            continue
        with reporter.task(f"evaluate {info.get('method')} on {split}", len(users)) as advance:
            per_user, ranking = evaluate_ranking(
                model.score_all,
                dataset,
                split=split,
                ks=config.evaluate.ks,
                batch_size=config.evaluate.batch_size,
                test_excludes=test_excludes,
                progress=advance,
            )
        results[split] = summarise(per_user)
        if split == "test":
            per_user.to_parquet(run.path / "per_user.parquet", index=False)
            k = 10 if 10 in config.evaluate.ks else max(config.evaluate.ks)
            popularity = np.bincount(dataset.rows(TARGET, "train")["item"].to_numpy(), minlength=dataset.n_items(TARGET))
            results["beyond_accuracy"] = {
                f"@{k}": beyond_accuracy_metrics(
                    ranking.top_items[:, :k],
                    n_items=dataset.n_items(TARGET),
                    item_popularity=popularity,
                    item_vectors=collaborative_item_vectors(dataset.interaction_matrix(TARGET, "train"), seed=config.seed),
                ),
            }
            results["diversity_item_vectors"] = f"{ITEM_VECTOR_DIM}-d SVD factors of the target training item × user matrix"
    if sampled is not None:
        results["sampled"] = sampled
    if hasattr(model, "score_all_source"):
        source = evaluate_source_domain(model, dataset, config, run, test_excludes=test_excludes, reporter=reporter, method=info.get("method"))
        if source:
            results["source"] = source
    run.write_json("results.json", results)
    run.update_info(evaluated=True)
    return results


def evaluate_source_domain(
    model: Any, dataset: PreparedDataset, config: Any, run: RunDirectory, *, test_excludes: Sequence[str], reporter: Reporter, method: str | None
) -> dict[str, Any]:
    """Dual-target models: the same metrics on the source domain's valid and test splits (those with rows).

    Writes per_user_source.parquet for the source test split. Empty when the source domain has
    no valid or test rows.
    """
    summaries: dict[str, Any] = {}
    for split in ("valid", "test"):
        users = dataset.evaluation_users(split, SOURCE)
        if len(users) == 0:
            continue
        with reporter.task(f"evaluate {method} on source {split}", len(users)) as advance:
            per_user = evaluate_model(
                model.score_all_source,
                dataset,
                split=split,
                ks=config.evaluate.ks,
                batch_size=config.evaluate.batch_size,
                test_excludes=test_excludes,
                progress=advance,
                domain=SOURCE,
            )
        summaries[split] = summarise(per_user)
        if split == "test":
            per_user.to_parquet(run.path / "per_user_source.parquet", index=False)
    return summaries
