"""PTUPCDR (Zhu et al., WSDM 2022): a meta-network turns each user's source history into a personal bridge.

For a user with source embedding `s` (1 × dim) and source history `h_1..h_L` (source item
embeddings), attention pools the history into one vector, a decoder turns it into a bridge
matrix `B` (dim × dim), and `s @ B` is the user's target embedding, scored against the target
MF's item embeddings and biases.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from xdt.models.matrix_factorization import MatrixFactorization, candidate_items, score_candidates, score_with_bias

MASKED_LOGIT = -1.0e9


@keras.saving.register_keras_serializable(package="xdt")
class MetaBridge(keras.layers.Layer):
    """History `(batch, length, dim)` and mask `(batch, length)` → bridge matrices `(batch, dim, dim)`."""

    def __init__(self, embedding_dim: int, meta_dim: int = 50, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.embedding_dim = embedding_dim
        self.meta_dim = meta_dim
        self.attention_hidden = keras.layers.Dense(meta_dim, activation="relu", name="attention_hidden")
        self.attention_logit = keras.layers.Dense(1, use_bias=False, name="attention_logit")
        self.decoder_hidden = keras.layers.Dense(meta_dim, activation="relu", name="decoder_hidden")
        self.decoder_output = keras.layers.Dense(embedding_dim * embedding_dim, name="decoder_output")

    def build(self, input_shape: Any = None) -> None:
        """Create the attention and decoder weights."""
        self.attention_hidden.build((None, None, self.embedding_dim))
        self.attention_logit.build((None, None, self.meta_dim))
        self.decoder_hidden.build((None, self.embedding_dim))
        self.decoder_output.build((None, self.meta_dim))
        self.built = True

    def call(self, history_vectors: Any, mask: Any) -> Any:
        """Attention-pool the history, then decode one bridge per user; an empty history pools to zeros."""
        logits = ops.squeeze(self.attention_logit(self.attention_hidden(history_vectors)), axis=-1)
        logits = ops.where(mask, logits, MASKED_LOGIT)
        weights = ops.softmax(logits, axis=-1) * ops.cast(mask, logits.dtype)
        summary = ops.sum(ops.expand_dims(weights, -1) * history_vectors, axis=1)
        bridge = self.decoder_output(self.decoder_hidden(summary))
        return ops.reshape(bridge, (-1, self.embedding_dim, self.embedding_dim))

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments, for serialisation."""
        return {**super().get_config(), "embedding_dim": self.embedding_dim, "meta_dim": self.meta_dim}


@keras.saving.register_keras_serializable(package="xdt")
class PtupcdrModel(keras.Model):
    """Target MF for users with target data; the personalised bridge for users without.

    Holds frozen copies of the source user and item embeddings, each user's padded source
    history (`source_history`, pad value `num_source_items`) and the `has_target` flag, so the
    saved model alone serves cold-start users. `call((users, positives, negatives))` returns
    the bridged scores `(batch, 1 + k)` of the positive, then the negatives `(batch,)` or
    `(batch, k)`: what the meta-network is trained on.
    """

    def __init__(
        self,
        num_users: int,
        num_source_items: int,
        num_items: int,
        embedding_dim: int,
        history_length: int = 50,
        meta_dim: int = 50,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.num_users = num_users
        self.num_source_items = num_source_items
        self.num_items = num_items
        self.embedding_dim = embedding_dim
        self.history_length = history_length
        self.meta_dim = meta_dim
        self.target = MatrixFactorization(num_users, num_items, embedding_dim, name="target")
        self.bridge = MetaBridge(embedding_dim, meta_dim, name="bridge")
        self.source_user_embedding = keras.layers.Embedding(num_users, embedding_dim, trainable=False, name="source_user_embedding")
        # One extra all-zero row: the padding item.
        self.source_item_embedding = keras.layers.Embedding(
            num_source_items + 1, embedding_dim, embeddings_initializer="zeros", trainable=False, name="source_item_embedding"
        )

    def build(self, input_shape: Any = None) -> None:
        """Create every table."""
        self.target.build()
        self.bridge.build()
        self.source_user_embedding.build((None,))
        self.source_item_embedding.build((None,))
        self.source_history = self.add_weight(
            shape=(self.num_users, self.history_length), dtype="int32", initializer="zeros", trainable=False, name="source_history"
        )
        self.has_target = self.add_weight(shape=(self.num_users, 1), initializer="zeros", trainable=False, name="has_target")
        self.built = True

    def set_tables(
        self, source_model: MatrixFactorization, target_model: MatrixFactorization, source_history: np.ndarray, has_target: np.ndarray
    ) -> None:
        """Copy the pretrained source and target models, the padded histories `(users, length)` and flags `(users,)`."""
        self.target.set_weights(target_model.get_weights())
        self.source_user_embedding.embeddings.assign(source_model.user_embedding.embeddings)
        padding = np.zeros((1, self.embedding_dim), dtype="float32")
        self.source_item_embedding.embeddings.assign(np.concatenate([source_model.item_embedding.embeddings.numpy(), padding]))
        self.source_history.assign(source_history.astype("int32"))
        self.has_target.assign(has_target.astype("float32").reshape(-1, 1))

    def bridged_vectors(self, users: Any) -> Any:
        """`source_user @ bridge(source_history)` for each user, `(batch, dim)`."""
        history = ops.take(self.source_history, users, axis=0)
        mask = history < self.num_source_items
        bridge = self.bridge(self.source_item_embedding(history), mask)
        source_vectors = ops.expand_dims(self.source_user_embedding(users), 1)
        return ops.squeeze(ops.matmul(source_vectors, bridge), axis=1)

    def call(self, inputs: tuple[Any, Any, Any]) -> Any:
        """Bridged scores `(batch, 1 + k)` of the positive, then the negative target items."""
        users, positives, negatives = inputs
        items = candidate_items(positives, negatives)
        return score_candidates(self.bridged_vectors(users), self.target.item_embedding(items), self.target.item_bias(items))

    def user_vectors(self, users: Any) -> Any:
        """Target MF embedding where the user has target data, else the bridged source embedding."""
        known = ops.take(self.has_target, users, axis=0)
        return known * self.target.user_vectors(users) + (1.0 - known) * self.bridged_vectors(users)

    def score_all(self, users: Any) -> Any:
        """`(batch, num_items)` target scores."""
        return score_with_bias(self.user_vectors(users), self.target.item_embedding.embeddings, self.target.item_bias.embeddings)

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments, for serialisation."""
        return {
            **super().get_config(),
            "num_users": self.num_users,
            "num_source_items": self.num_source_items,
            "num_items": self.num_items,
            "embedding_dim": self.embedding_dim,
            "history_length": self.history_length,
            "meta_dim": self.meta_dim,
        }
