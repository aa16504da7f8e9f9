"""EMCDR (Man et al., IJCAI 2017): map source user embeddings into the target space for cold-start users."""

from __future__ import annotations

from typing import Any

import keras

from xdt.models.matrix_factorization import MatrixFactorization, score_with_bias


@keras.saving.register_keras_serializable(package="xdt")
class EmbeddingMapping(keras.Model):
    """Source user embedding → target user embedding: linear, or an MLP with one hidden layer."""

    def __init__(self, embedding_dim: int, kind: str = "mlp", hidden: int = 64, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.embedding_dim = embedding_dim
        self.kind = kind
        self.hidden = hidden
        if kind == "linear":
            self.layers_ = [keras.layers.Dense(embedding_dim, name="linear")]
        else:
            self.layers_ = [
                keras.layers.Dense(hidden, activation="tanh", name="hidden"),
                keras.layers.Dense(embedding_dim, name="output"),
            ]

    def build(self, input_shape: Any) -> None:
        """Create the layers' weights."""
        shape = input_shape
        for layer in self.layers_:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.built = True

    def call(self, source_vectors: Any) -> Any:
        """`(batch, dim)` mapped vectors."""
        output = source_vectors
        for layer in self.layers_:
            output = layer(output)
        return output

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments, for serialisation."""
        return {**super().get_config(), "embedding_dim": self.embedding_dim, "kind": self.kind, "hidden": self.hidden}


@keras.saving.register_keras_serializable(package="xdt")
class EmcdrModel(keras.Model):
    """Target MF for users with target data; mapped source embeddings for users without.

    Holds frozen copies of the source user embeddings and a per-user flag `has_target`
    (1.0 when the user has target training rows), so the saved model alone can serve
    cold-start users.
    """

    def __init__(self, num_users: int, num_items: int, embedding_dim: int, mapping: str = "mlp", hidden: int = 64, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_users = num_users
        self.num_items = num_items
        self.embedding_dim = embedding_dim
        self.mapping_kind = mapping
        self.hidden = hidden
        self.target = MatrixFactorization(num_users, num_items, embedding_dim, name="target")
        self.mapping = EmbeddingMapping(embedding_dim, mapping, hidden, name="mapping")
        self.source_user_embedding = keras.layers.Embedding(num_users, embedding_dim, trainable=False, name="source_user_embedding")
        self.has_target = keras.layers.Embedding(num_users, 1, embeddings_initializer="zeros", trainable=False, name="has_target")

    def build(self, input_shape: Any = None) -> None:
        """Create every table."""
        self.target.build()
        self.mapping.build((None, self.embedding_dim))
        self.source_user_embedding.build((None,))
        self.has_target.build((None,))
        self.built = True

    def call(self, users: Any) -> Any:
        """Mapped source embeddings of `users`, `(batch, dim)` (what the mapping is trained on)."""
        return self.mapping(self.source_user_embedding(users))

    def user_vectors(self, users: Any) -> Any:
        """Target embedding where the user has target data, else the mapped source embedding."""
        known = self.has_target(users)
        return known * self.target.user_vectors(users) + (1.0 - known) * self(users)

    def score_all(self, users: Any) -> Any:
        """`(batch, num_items)` scores."""
        return score_with_bias(self.user_vectors(users), self.target.item_embedding.embeddings, self.target.item_bias.embeddings)

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments, for serialisation."""
        return {
            **super().get_config(),
            "num_users": self.num_users,
            "num_items": self.num_items,
            "embedding_dim": self.embedding_dim,
            "mapping": self.mapping_kind,
            "hidden": self.hidden,
        }
