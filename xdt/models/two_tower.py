"""Deep two-tower retrieval model on the target domain (in the spirit of YouTube DNN / TFRS retrieval).

The user tower is an MLP over `[user id embedding, mean embedding of the user's most recent
target training items]`; the item tower is an MLP over the item id embedding; the score is their
dot product. Item id embeddings are shared by both towers (the history mean reads the same table).
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from xdt.models.matrix_factorization import candidate_items


@keras.saving.register_keras_serializable(package="xdt")
class TwoTowerModel(keras.Model):
    """score(u, i) = user_tower([user_u, mean of history_u item embeddings]) · item_tower(item_i).

    Holds each user's padded target history (`target_history`, pad value `num_items`) as a
    non-trainable weight, so the saved model alone serves every user. `call((users, positives,
    negatives))` takes negatives `(batch,)` or `(batch, k)` and returns scores `(batch, 1 + k)`:
    the positive, then the negatives.
    """

    def __init__(
        self, num_users: int, num_items: int, embedding_dim: int, history_length: int = 50, hidden: int = 64, l2: float = 0.0, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.num_users = num_users
        self.num_items = num_items
        self.embedding_dim = embedding_dim
        self.history_length = history_length
        self.hidden = hidden
        self.l2 = l2
        initializer = keras.initializers.RandomNormal(stddev=0.1)
        self.user_embedding = keras.layers.Embedding(num_users, embedding_dim, embeddings_initializer=initializer, name="user_embedding")
        # One extra row: the padding item, masked out of the history mean.
        self.item_embedding = keras.layers.Embedding(num_items + 1, embedding_dim, embeddings_initializer=initializer, name="item_embedding")
        self.user_hidden = keras.layers.Dense(hidden, activation="relu", name="user_hidden")
        self.user_output = keras.layers.Dense(embedding_dim, name="user_output")
        self.item_hidden = keras.layers.Dense(hidden, activation="relu", name="item_hidden")
        self.item_output = keras.layers.Dense(embedding_dim, name="item_output")

    def build(self, input_shape: Any = None) -> None:
        """Create the tables, both towers and the history weight."""
        self.user_embedding.build((None,))
        self.item_embedding.build((None,))
        self.user_hidden.build((None, 2 * self.embedding_dim))
        self.user_output.build((None, self.hidden))
        self.item_hidden.build((None, self.embedding_dim))
        self.item_output.build((None, self.hidden))
        self.target_history = self.add_weight(
            shape=(self.num_users, self.history_length), dtype="int32", initializer="zeros", trainable=False, name="target_history"
        )
        self.built = True

    def set_target_history(self, history: np.ndarray) -> None:
        """Each user's padded target history `(users, length)`, padded with `num_items`."""
        self.target_history.assign(history.astype("int32"))

    def user_vectors(self, users: Any) -> Any:
        """User tower output `(batch, dim)`; an empty history pools to zeros."""
        history = ops.take(self.target_history, users, axis=0)
        mask = ops.cast(history < self.num_items, "float32")
        count = ops.maximum(ops.sum(mask, axis=1, keepdims=True), 1.0)
        pooled = ops.sum(self.item_embedding(history) * ops.expand_dims(mask, -1), axis=1) / count
        return self.user_output(self.user_hidden(ops.concatenate([self.user_embedding(users), pooled], axis=-1)))

    def item_vectors(self, items: Any) -> Any:
        """Item tower output `(..., dim)` for item ids of any shape."""
        return self.item_output(self.item_hidden(self.item_embedding(items)))

    def call(self, inputs: tuple[Any, Any, Any]) -> Any:
        """Scores `(batch, 1 + k)` of the positive, then the k negatives; L2 covers the user and candidate id embeddings."""
        users, positives, negatives = inputs
        items = candidate_items(positives, negatives)
        if self.l2:
            squares = ops.sum(ops.square(self.user_embedding(users)), axis=-1) + ops.sum(ops.square(self.item_embedding(items)), axis=(1, 2))
            self.add_loss(ops.cast(self.l2 * ops.mean(squares), "float32"))
        return ops.sum(ops.expand_dims(self.user_vectors(users), 1) * self.item_vectors(items), axis=-1)

    def score_all(self, users: Any) -> Any:
        """`(batch, num_items)` target scores."""
        item_vectors = self.item_vectors(ops.arange(self.num_items, dtype="int32"))
        return ops.matmul(self.user_vectors(users), ops.transpose(item_vectors))

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments, for serialisation."""
        return {
            **super().get_config(),
            "num_users": self.num_users,
            "num_items": self.num_items,
            "embedding_dim": self.embedding_dim,
            "history_length": self.history_length,
            "hidden": self.hidden,
            "l2": self.l2,
        }
