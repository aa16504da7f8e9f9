"""Dual-target shared-private model (in the spirit of CoNet / DTCDR): one user, two domains.

A user's vector in domain d is `shared_u + private_u^d`; items of both domains live in one
table, source items first (`0 .. num_source_items-1`), then target items. The private tables
start at zero, so a user seen in one domain only is scored in the other from the shared part.
With `private=False` there are no private tables: one user vector serves both domains, which is
collective matrix factorisation (the `cmf` baseline).
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from xdt.models.matrix_factorization import candidate_items, score_candidates, score_with_bias


@keras.saving.register_keras_serializable(package="xdt")
class JointModel(keras.Model):
    """score_d(u, i) = (shared_u + private_u^d) · item_i + bias_i.

    `call((users, positives, negatives))` takes items in the combined index (target items
    offset by `num_source_items`), negatives `(batch,)` or `(batch, k)` from the positive's
    domain, and returns scores `(batch, 1 + k)`: the positive, then the negatives. Each row's
    domain is that of its positive item. Without private parts (`private=False`) the private
    part is zero. `private_dropout` p zeroes each training row's private part with probability
    p, so the shared part alone must also score the domain — the only part a user new to that
    domain (a cold-start user) has.
    """

    def __init__(
        self,
        num_users: int,
        num_source_items: int,
        num_items: int,
        embedding_dim: int,
        l2: float = 0.0,
        private: bool = True,
        private_dropout: float = 0.0,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not 0.0 <= private_dropout < 1.0:
            raise ValueError(f"Expected 0 <= private_dropout < 1. Received: private_dropout={private_dropout}")
        self.num_users = num_users
        self.num_source_items = num_source_items
        self.num_items = num_items
        self.embedding_dim = embedding_dim
        self.l2 = l2
        self.private = private
        self.private_dropout = private_dropout
        self.seed = seed
        self.dropout_seed = keras.random.SeedGenerator(seed)
        initializer = keras.initializers.RandomNormal(stddev=0.1)
        self.shared_user_embedding = keras.layers.Embedding(num_users, embedding_dim, embeddings_initializer=initializer, name="shared_user_embedding")
        if private:
            self.source_private_embedding = keras.layers.Embedding(num_users, embedding_dim, embeddings_initializer="zeros", name="source_private_embedding")
            self.target_private_embedding = keras.layers.Embedding(num_users, embedding_dim, embeddings_initializer="zeros", name="target_private_embedding")
        self.item_embedding = keras.layers.Embedding(num_source_items + num_items, embedding_dim, embeddings_initializer=initializer, name="item_embedding")
        self.item_bias = keras.layers.Embedding(num_source_items + num_items, 1, embeddings_initializer="zeros", name="item_bias")

    def build(self, input_shape: Any = None) -> None:
        """Create the tables."""
        private_tables = (self.source_private_embedding, self.target_private_embedding) if self.private else ()
        for layer in (self.shared_user_embedding, *private_tables, self.item_embedding, self.item_bias):
            layer.build((None,))
        self.built = True

    def call(self, inputs: tuple[Any, Any, Any], training: bool = False) -> Any:
        """Scores `(batch, 1 + k)`; rows whose positive is a target item use the target private part."""
        users, positives, negatives = inputs
        is_target = ops.expand_dims(ops.cast(positives >= self.num_source_items, "float32"), -1)
        shared, private = self.user_parts(users, is_target)
        if training and self.private and self.private_dropout:
            keep = keras.random.uniform(ops.shape(is_target), seed=self.dropout_seed) >= self.private_dropout
            private = private * ops.cast(keep, private.dtype)
        items = candidate_items(positives, negatives)
        item_vectors = self.item_embedding(items)
        if self.l2:
            squares = ops.sum(ops.square(shared) + ops.square(private), axis=-1) + ops.sum(ops.square(item_vectors), axis=(1, 2))
            self.add_loss(ops.cast(self.l2 * ops.mean(squares), "float32"))
        return score_candidates(shared + private, item_vectors, self.item_bias(items))

    def user_parts(self, users: Any, is_target: Any) -> tuple[Any, Any]:
        """Shared and private parts `(batch, dim)` of each user in a domain (`is_target` 1 for target, 0 for source).

        The private part is zeros without private tables.
        """
        shared = self.shared_user_embedding(users)
        if not self.private:
            return shared, ops.zeros_like(shared)
        return shared, is_target * self.target_private_embedding(users) + (1.0 - is_target) * self.source_private_embedding(users)

    def user_vectors(self, users: Any) -> Any:
        """Target-domain user vectors `(batch, dim)`."""
        shared, private = self.user_parts(users, 1.0)
        return shared + private

    def source_user_vectors(self, users: Any) -> Any:
        """Source-domain user vectors `(batch, dim)`."""
        shared, private = self.user_parts(users, 0.0)
        return shared + private

    def score_all(self, users: Any) -> Any:
        """`(batch, num_items)` target scores."""
        start = self.num_source_items
        return score_with_bias(self.user_vectors(users), self.item_embedding.embeddings[start:], self.item_bias.embeddings[start:])

    def score_all_source(self, users: Any) -> Any:
        """`(batch, num_source_items)` source scores."""
        end = self.num_source_items
        return score_with_bias(self.source_user_vectors(users), self.item_embedding.embeddings[:end], self.item_bias.embeddings[:end])

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments, for serialisation."""
        return {
            **super().get_config(),
            "num_users": self.num_users,
            "num_source_items": self.num_source_items,
            "num_items": self.num_items,
            "embedding_dim": self.embedding_dim,
            "l2": self.l2,
            "private": self.private,
            "private_dropout": self.private_dropout,
            "seed": self.seed,
        }
