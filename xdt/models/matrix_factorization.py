"""Matrix factorisation with item biases, trained with a pairwise (BPR) objective."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="xdt")
class MatrixFactorization(keras.Model):
    """score(u, i) = user_u · item_i + bias_i.

    `call((users, positives, negatives))` returns the score margins `(batch, 1)` that a BPR
    loss consumes; a trailing dimension of 1 keeps per-replica loss scaling correct under
    `tf.distribute` (see ARCHITECTURE.md §8).
    """

    def __init__(self, num_users: int, num_items: int, embedding_dim: int, l2: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_users = num_users
        self.num_items = num_items
        self.embedding_dim = embedding_dim
        self.l2 = l2
        initializer = keras.initializers.RandomNormal(stddev=0.1)
        self.user_embedding = keras.layers.Embedding(num_users, embedding_dim, embeddings_initializer=initializer, name="user_embedding")
        self.item_embedding = keras.layers.Embedding(num_items, embedding_dim, embeddings_initializer=initializer, name="item_embedding")
        self.item_bias = keras.layers.Embedding(num_items, 1, embeddings_initializer="zeros", name="item_bias")

    def build(self, input_shape: Any = None) -> None:
        """Create the tables."""
        self.user_embedding.build((None,))
        self.item_embedding.build((None,))
        self.item_bias.build((None,))
        self.built = True

    def call(self, inputs: tuple[Any, Any, Any]) -> Any:
        """Score margins `(batch, 1)` of positive over negative items."""
        users, positives, negatives = inputs
        user_vectors = self.user_embedding(users)
        positive_vectors = self.item_embedding(positives)
        negative_vectors = self.item_embedding(negatives)
        margin = ops.sum(user_vectors * (positive_vectors - negative_vectors), axis=-1, keepdims=True)
        margin = margin + self.item_bias(positives) - self.item_bias(negatives)
        if self.l2:
            squares = ops.sum(ops.square(user_vectors) + ops.square(positive_vectors) + ops.square(negative_vectors), axis=-1)
            self.add_loss(self.l2 * ops.mean(squares))
        return margin

    def user_vectors(self, users: Any) -> Any:
        """User representations `(batch, dim)`."""
        return self.user_embedding(users)

    def score_all(self, users: Any) -> Any:
        """Scores of every item for each user, `(batch, num_items)`."""
        return score_with_bias(self.user_vectors(users), self.item_embedding.embeddings, self.item_bias.embeddings)

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments, for serialisation."""
        return {
            **super().get_config(),
            "num_users": self.num_users,
            "num_items": self.num_items,
            "embedding_dim": self.embedding_dim,
            "l2": self.l2,
        }


def score_with_bias(user_vectors: Any, item_vectors: Any, item_bias: Any) -> Any:
    """`user_vectors @ item_vectors.T + item_bias.T`."""
    return ops.matmul(user_vectors, ops.transpose(item_vectors)) + ops.reshape(item_bias, (1, -1))


def bpr_loss(y_true: Any, y_pred: Any) -> Any:
    """Bayesian personalised ranking: -log σ(margin). `y_true` is unused (zeros)."""
    return -ops.log_sigmoid(y_pred)
