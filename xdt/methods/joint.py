"""Joint dual-target training: a shared-private model fitted on both domains' ranking objectives at once.

The shared user table and the source items start from the pretrained source model (its width
decides the embedding size); target items start random and the private tables at zero. Every
epoch sees all source and all target training rows, shuffled together, through `fit_pairwise`
(checkpoints, exact resume, early stopping on the target validation split).
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from xdt.data.dataset import PreparedDataset
from xdt.data.protocols import SOURCE, TARGET
from xdt.methods.context import MethodContext
from xdt.models.joint import JointModel
from xdt.models.matrix_factorization import MatrixFactorization


@dataclass(frozen=True)
class TwoDomainTriples:
    """Both domains' training triples in one item index: source items first, target items offset by the source count.

    `fit_pairwise` reads its training rows only through `dataset.bpr_triples(domain, seed,
    epoch, negatives)`; this object stands in for the dataset there (the `domain` argument is ignored),
    so two-domain models reuse its checkpoints, exact resume and early stopping. Negatives are
    drawn within the positive's domain, and the draw depends only on (seed, epoch).
    """

    dataset: PreparedDataset

    def bpr_triples(self, domain: str, seed: int, epoch: int, negatives: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Shuffled (user, positive, negatives `(n,)` or `(n, negatives)`) triples of both domains for one epoch."""
        offset = self.dataset.n_items(SOURCE)
        source_users, source_positives, source_negatives = self.dataset.bpr_triples(SOURCE, seed, epoch, negatives)
        target_users, target_positives, target_negatives = self.dataset.bpr_triples(TARGET, seed, epoch, negatives)
        users = np.concatenate([source_users, target_users])
        positives = np.concatenate([source_positives, target_positives + offset]).astype(np.int32)
        combined_negatives = np.concatenate([source_negatives, target_negatives + offset]).astype(np.int32)
        order = np.random.default_rng([seed, epoch, 2024]).permutation(len(users))
        return users[order], positives[order], combined_negatives[order]


def embedding_dim(context: MethodContext) -> int:
    """The source model's width, else `pretrain.embedding_dim` (as the target MF does)."""
    return context.source_model.embedding_dim if context.source_model is not None else context.config.pretrain.embedding_dim


def copy_source_tables(source_model: MatrixFactorization, user_table: keras.layers.Embedding, item_table: keras.layers.Embedding, item_bias: keras.layers.Embedding) -> None:
    """Start shared users and the first (source) rows of the combined item tables from the source model."""
    user_table.embeddings.assign(source_model.user_embedding.embeddings)
    for table, source_table in ((item_table, source_model.item_embedding), (item_bias, source_model.item_bias)):
        values = table.embeddings.numpy()
        values[: source_table.input_dim] = source_table.embeddings.numpy()
        table.embeddings.assign(values)


def train(context: MethodContext) -> JointModel:
    """Fit the shared-private model on both domains."""
    source_model = context.require_source_model("joint")
    dataset = context.dataset
    settings = context.config.transfer
    keras.utils.set_random_seed(context.config.seed)
    with context.strategy.scope():
        model = JointModel(
            dataset.n_users,
            dataset.n_items(SOURCE),
            dataset.n_items(TARGET),
            embedding_dim(context),
            l2=settings.l2,
            private_dropout=settings.private_dropout,
            seed=context.config.seed,
            name="joint",
        )
        model.build()
        copy_source_tables(source_model, model.shared_user_embedding, model.item_embedding, model.item_bias)
    context.fit(model, stage="joint", dataset=TwoDomainTriples(dataset))
    return model
