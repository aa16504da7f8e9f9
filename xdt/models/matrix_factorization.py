"""Matrix factorisation with item biases, trained on a positive item against sampled negatives (see `xdt.losses`)."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="xdt")
class MatrixFactorization(keras.Model):
    """score(u, i) = user_u · item_i + bias_i.

    `call((users, positives, negatives))` takes negatives `(batch,)` or `(batch, k)` and returns
    the candidate scores `(batch, 1 + k)` that a ranking loss in `xdt.losses` consumes: column 0
    the positive item, columns 1..k the negatives.
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
        """Scores `(batch, 1 + k)` of the positive, then the k negatives; L2 covers the user and every candidate."""
        users, positives, negatives = inputs
        user_vectors = self.user_embedding(users)
        items = candidate_items(positives, negatives)
        item_vectors = self.item_embedding(items)
        if self.l2:
            squares = ops.sum(ops.square(user_vectors), axis=-1) + ops.sum(ops.square(item_vectors), axis=(1, 2))
            self.add_loss(ops.cast(self.l2 * ops.mean(squares), "float32"))
        return score_candidates(user_vectors, item_vectors, self.item_bias(items))

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


def candidate_items(positives: Any, negatives: Any) -> Any:
    """Positive then negatives per row, `(batch, 1 + k)` int32, from positives `(batch,)` and negatives `(batch,)` or `(batch, k)`."""
    positives = ops.expand_dims(ops.cast(positives, "int32"), -1)
    negatives = ops.cast(negatives, "int32")
    if len(negatives.shape) == 1:
        negatives = ops.expand_dims(negatives, -1)
    return ops.concatenate([positives, negatives], axis=-1)


def score_candidates(user_vectors: Any, item_vectors: Any, item_bias: Any) -> Any:
    """`user · item + bias` for each row's candidates: `(batch, dim)`, `(batch, c, dim)`, `(batch, c, 1)` → `(batch, c)`."""
    return ops.sum(ops.expand_dims(user_vectors, 1) * item_vectors, axis=-1) + ops.squeeze(item_bias, axis=-1)
