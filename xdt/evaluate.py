"""Full-ranking evaluation on the target domain: batched scoring, seen-item masking, cohorts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sparse
import tensorflow as tf

from xdt.data.dataset import PreparedDataset
from xdt.data.protocols import TARGET
from xdt.errors import XdtError
from xdt.metrics import hit_matrix, ranking_metrics_at_k, reciprocal_rank
from xdt.progress import Reporter
from xdt.runs import RunDirectory

EXCLUDED_SPLITS = {"valid": ("train",), "test": ("train", "valid")}


@dataclass(frozen=True)
class Ranking:
    """Top items and the full-ranking position of the best relevant item, per user."""

    users: np.ndarray
    top_items: np.ndarray
    top_scores: np.ndarray
    best_relevant_rank: np.ndarray


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

    `best_relevant_rank` is 1 + the number of unseen items scoring strictly higher than the
    user's best relevant item (0 when `relevant` is None).
    """
    k = min(k, seen.shape[1])
    top_items = np.zeros((len(users), k), dtype=np.int64)
    top_scores = np.zeros((len(users), k), dtype=np.float32)
    best_rank = np.zeros(len(users), dtype=np.int64)
    for start in range(0, len(users), batch_size):
        batch = users[start : start + batch_size]
        scores = tf.convert_to_tensor(score_all(tf.constant(batch, dtype=tf.int32)), dtype=tf.float32)
        seen_rows = seen[batch]
        if seen_rows.nnz:
            coordinates = np.stack([np.repeat(np.arange(len(batch)), np.diff(seen_rows.indptr)), seen_rows.indices], axis=1)
            scores = tf.tensor_scatter_nd_update(scores, coordinates, tf.fill([len(coordinates)], -np.inf))
        values, indices = tf.math.top_k(scores, k=k)
        top_items[start : start + len(batch)] = indices.numpy()
        top_scores[start : start + len(batch)] = values.numpy()
        if relevant is not None:
            best_rank[start : start + len(batch)] = best_relevant_ranks(scores, csr_rows(relevant, batch))
        progress(len(batch))
    return Ranking(users=users, top_items=top_items, top_scores=top_scores, best_relevant_rank=best_rank)


def best_relevant_ranks(scores: tf.Tensor, relevant: list[np.ndarray]) -> np.ndarray:
    """1 + count of items scoring strictly above each user's best-scored relevant item."""
    width = max(len(items) for items in relevant)
    padded = np.zeros((len(relevant), width), dtype=np.int64)
    valid = np.zeros((len(relevant), width), dtype=bool)
    for row, items in enumerate(relevant):
        padded[row, : len(items)] = items
        valid[row, : len(items)] = True
    relevant_scores = tf.gather(scores, padded, batch_dims=1).numpy()
    relevant_scores[~valid] = -np.inf
    best = relevant_scores.max(axis=1)
    above = tf.reduce_sum(tf.cast(scores > best[:, None], tf.int64), axis=1).numpy()
    return above + 1


def evaluate_model(
    score_all: Callable[[Any], Any],
    dataset: PreparedDataset,
    *,
    split: str,
    ks: Sequence[int],
    batch_size: int,
    users: np.ndarray | None = None,
    progress: Callable[[int], None] = lambda advance: None,
) -> pd.DataFrame:
    """Per-user full-ranking metrics on the target domain's `split` (valid or test).

    Each user's own target items from earlier splits (train; train+valid for test) are excluded.
    """
    relevant = dataset.interaction_matrix(TARGET, split)
    if users is None:
        users = dataset.evaluation_users(split)
    seen = dataset.interaction_matrix(TARGET, *EXCLUDED_SPLITS[split])
    ranking = rank_items(score_all, users, seen=seen, relevant=relevant, k=max(ks), batch_size=batch_size, progress=progress)
    relevant_lists = csr_rows(relevant, users)
    counts = np.array([len(items) for items in relevant_lists])
    metrics = ranking_metrics_at_k(hit_matrix(ranking.top_items, relevant_lists), counts, ks)
    frame = pd.DataFrame(
        {
            "user": dataset.raw_users[users].astype(str),
            "user_index": users,
            "cohort": dataset.cohort(users),
            "activity_bucket": dataset.activity_bucket(users),
            "relevant": counts,
            **metrics,
            "mrr": reciprocal_rank(ranking.best_relevant_rank),
        }
    )
    return frame


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


def evaluate_run(run: RunDirectory, *, reporter: Reporter | None = None) -> dict[str, Any]:
    """`xdt evaluate RUN`: full-ranking metrics on the target test (and valid) split, by cohort.

    Writes results.json (deterministic for a fixed seed: no timings, no paths) and
    per_user.parquet (one row per test user, for paired comparisons).
    """
    from xdt.beyond_accuracy import beyond_accuracy_metrics
    from xdt.progress import SilentReporter
    from xdt.session import check_same_data, load_model, load_run_config, open_dataset

    reporter = reporter or SilentReporter()
    info = run.info()
    if info.get("kind") != "transfer":
        raise XdtError(f"evaluate expects a transfer run; {run.path} is a {info.get('kind')} run")
    config = load_run_config(run)
    dataset = open_dataset(config)
    check_same_data(run, dataset)
    model = load_model(run)
    results: dict[str, Any] = {"method": info.get("method"), "dataset": dataset.manifest["name"], "ks": list(config.evaluate.ks)}
    for split in ("valid", "test"):
        users = dataset.evaluation_users(split)
        if len(users) == 0:
            continue
        with reporter.task(f"evaluate {info.get('method')} on {split}", len(users)) as advance:
            per_user = evaluate_model(
                model.score_all, dataset, split=split, ks=config.evaluate.ks, batch_size=config.evaluate.batch_size, progress=advance
            )
        results[split] = summarise(per_user)
        if split == "test":
            per_user.to_parquet(run.path / "per_user.parquet", index=False)
            k = 10 if 10 in config.evaluate.ks else max(config.evaluate.ks)
            seen = dataset.interaction_matrix(TARGET, *EXCLUDED_SPLITS[split])
            ranking = rank_items(model.score_all, users, seen=seen, relevant=None, k=k, batch_size=config.evaluate.batch_size)
            popularity = np.bincount(dataset.rows(TARGET, "train")["item"].to_numpy(), minlength=dataset.n_items(TARGET))
            results["beyond_accuracy"] = {
                f"@{k}": beyond_accuracy_metrics(ranking.top_items, n_items=dataset.n_items(TARGET), item_popularity=popularity)
            }
    run.write_json("results.json", results)
    run.update_info(evaluated=True)
    return results
