"""Full-ranking next-item evaluation of a `SequenceTransformer` over one domain's items.

Every item of the evaluated domain is scored after each user's history. Excluded from the
ranking: the user's own history items of that domain — except the held-out target itself when
it repeats a history item, which stays rankable (masking it would make the example
unanswerable; LLMCDSR's own sequences contain such repeats). This matches `xdt.evaluate`,
which masks a user's training items of the target domain. Ties count in the user's favour
(rank = 1 + number of items scoring strictly higher), as in `xdt.evaluate`. With one target,
Recall@k equals HR@k.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import tensorflow as tf

from xdt.metrics import hit_matrix, ranking_metrics_at_k, reciprocal_rank
from xdt.sequential.data import EvaluationExamples, ItemVocabulary
from xdt.sequential.transformer import SequenceTransformer


def rank_next_items(
    model: SequenceTransformer,
    examples: EvaluationExamples,
    vocabulary: ItemVocabulary,
    *,
    k: int = 10,
    batch_size: int = 256,
    candidates: np.ndarray | None = None,
    item_vectors: np.ndarray | None = None,
    batch_scores: Callable[[int, int], np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k items `(n, k)` (per-domain indices, seen items excluded) and the target's 1-based rank `(n,)`.

    `candidates`: restrict the ranking to these per-domain item indices (e.g. held-out cold
    items); `item_vectors` `(n_items, width)`: score against these instead of the model's own
    item representations (e.g. `model.text_item_vectors` of texts the model never saw);
    `batch_scores(start, stop)` `(stop - start, n_items)`: the scores of examples start..stop-1
    computed elsewhere, e.g. an ensemble of models reading different history views of the same
    users (`model` is then unused).
    """
    low, high = vocabulary.token_range(examples.domain)
    n_items = high - low
    if batch_scores is None:
        if item_vectors is None:
            item_vectors = model.candidate_vectors(tf.range(low, high))
        item_vectors = tf.convert_to_tensor(item_vectors, tf.float32)
    excluded = None
    if candidates is not None:
        excluded = np.ones(n_items, dtype=bool)
        excluded[np.asarray(candidates, dtype=np.int64)] = False
        k = min(k, len(candidates))
    k = min(k, n_items)
    top_items = np.zeros((len(examples), k), dtype=np.int64)
    ranks = np.zeros(len(examples), dtype=np.int64)
    for start in range(0, len(examples), batch_size):
        stop = min(start + batch_size, len(examples))
        if batch_scores is None:
            hidden = model.last_hidden({"items": examples.items[start:stop], "domains": examples.domains[start:stop]})
            scores = tf.matmul(hidden, item_vectors, transpose_b=True).numpy()
        else:
            scores = np.array(batch_scores(start, stop), dtype=np.float32)
        if excluded is not None:
            scores[:, excluded] = -np.inf
        for row, index in enumerate(range(start, stop)):
            seen = examples.seen[index]
            seen = seen[seen != examples.targets[index]]
            scores[row, seen] = -np.inf
        target_scores = scores[np.arange(stop - start), examples.targets[start:stop]]
        ranks[start:stop] = 1 + (scores > target_scores[:, None]).sum(axis=1)
        top_items[start:stop] = tf.math.top_k(scores, k=k).indices.numpy()
    return top_items, ranks


def evaluate_next_item(
    model: SequenceTransformer,
    examples: EvaluationExamples,
    vocabulary: ItemVocabulary,
    *,
    ks: Sequence[int] = (10,),
    batch_size: int = 256,
    candidates: np.ndarray | None = None,
    item_vectors: np.ndarray | None = None,
    batch_scores: Callable[[int, int], np.ndarray] | None = None,
) -> pd.DataFrame:
    """Per-user metrics: user, cohort, rank, ndcg@k, recall@k, hr@k, precision@k for each k, and mrr."""
    top_items, ranks = rank_next_items(
        model, examples, vocabulary, k=max(ks), batch_size=batch_size, candidates=candidates, item_vectors=item_vectors,
        batch_scores=batch_scores,
    )
    relevant = [np.array([target]) for target in examples.targets]
    metrics = ranking_metrics_at_k(hit_matrix(top_items, relevant), np.ones(len(examples), dtype=np.int64), ks)
    return pd.DataFrame(
        {
            "user": examples.users.astype(str),
            "cohort": examples.cohort,
            "rank": ranks,
            **metrics,
            "mrr": reciprocal_rank(ranks) if len(ranks) else np.zeros(0),
        }
    )


def mean_metrics(per_user: pd.DataFrame) -> dict[str, float]:
    """Mean of each metric column, plus the user count."""
    columns = [column for column in per_user.columns if "@" in column or column == "mrr"]
    return {"users": int(len(per_user)), **{column: float(per_user[column].mean()) for column in columns}}
