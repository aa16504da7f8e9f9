"""Domain-adversarial shared user encoder (Ganin et al., JMLR 2016) for cross-domain ranking.

A user's view of domain d is `[shared_u, mean of their domain-d history item embeddings]`;
one shared MLP encodes either view, and domain-specific item tables score the result. A
domain classifier behind a gradient-reversal layer learns to tell source views from target
views while the encoder learns to make them indistinguishable, so a cold-start user's
source view lands where the target items are scored. Items of both domains live in one table,
source items first, then target items, then one padding row.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from xdt.losses import RANKING_LOSSES
from xdt.models.matrix_factorization import candidate_items, score_candidates, score_with_bias


@keras.saving.register_keras_serializable(package="xdt")
class GradientReversal(keras.layers.Layer):
    """Identity forward; multiplies the gradient by `-weight` backward."""

    def __init__(self, weight: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.weight = weight

    def call(self, inputs: Any) -> Any:
        """`-w·x + stop_gradient((1 + w)·x)`: value x, gradient -w."""
        return -self.weight * inputs + ops.stop_gradient((1.0 + self.weight) * inputs)

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments, for serialisation."""
        return {**super().get_config(), "weight": self.weight}


@keras.saving.register_keras_serializable(package="xdt")
class DannModel(keras.Model):
    """Shared encoder over per-domain user views, domain-specific item tables, adversarial domain classifier.

    `call((users, positives, negatives))` takes items in the combined index, negatives `(batch,)`
    or `(batch, k)`, and returns the scores `(batch, 1 + k)` of each row's own-domain view: the
    positive, then the negatives. It adds two losses: the ranking loss `ranking_loss` (a name in
    `xdt.losses.RANKING_LOSSES`, the one the model is compiled with) of the source view for
    target rows of users with source history (the path cold-start users are served by), and the
    domain classifier's cross-entropy (reversed into the encoder).
    """

    def __init__(
        self,
        num_users: int,
        num_source_items: int,
        num_items: int,
        embedding_dim: int,
        history_length: int = 50,
        hidden: int = 64,
        reversal_weight: float = 0.1,
        l2: float = 0.0,
        ranking_loss: str = "bpr",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if ranking_loss not in RANKING_LOSSES:
            raise ValueError(f"Expected ranking_loss in {sorted(RANKING_LOSSES)}. Received: ranking_loss={ranking_loss!r}")
        self.num_users = num_users
        self.num_source_items = num_source_items
        self.num_items = num_items
        self.embedding_dim = embedding_dim
        self.history_length = history_length
        self.hidden = hidden
        self.reversal_weight = reversal_weight
        self.l2 = l2
        self.ranking_loss = ranking_loss
        self.padding_item = num_source_items + num_items
        initializer = keras.initializers.RandomNormal(stddev=0.1)
        self.shared_user_embedding = keras.layers.Embedding(num_users, embedding_dim, embeddings_initializer=initializer, name="shared_user_embedding")
        self.item_embedding = keras.layers.Embedding(self.padding_item + 1, embedding_dim, embeddings_initializer=initializer, name="item_embedding")
        self.item_bias = keras.layers.Embedding(self.padding_item, 1, embeddings_initializer="zeros", name="item_bias")
        self.encoder_hidden = keras.layers.Dense(hidden, activation="relu", name="encoder_hidden")
        self.encoder_output = keras.layers.Dense(embedding_dim, name="encoder_output")
        self.reversal = GradientReversal(reversal_weight, name="reversal")
        self.classifier_hidden = keras.layers.Dense(hidden, activation="relu", name="classifier_hidden")
        self.classifier_output = keras.layers.Dense(1, name="classifier_output")

    def build(self, input_shape: Any = None) -> None:
        """Create the tables and layers."""
        for table in (self.shared_user_embedding, self.item_embedding, self.item_bias):
            table.build((None,))
        self.encoder_hidden.build((None, 2 * self.embedding_dim))
        self.encoder_output.build((None, self.hidden))
        self.classifier_hidden.build((None, self.embedding_dim))
        self.classifier_output.build((None, self.hidden))
        shape = (self.num_users, self.history_length)
        self.source_history = self.add_weight(shape=shape, dtype="int32", initializer="zeros", trainable=False, name="source_history")
        self.target_history = self.add_weight(shape=shape, dtype="int32", initializer="zeros", trainable=False, name="target_history")
        self.built = True

    def set_histories(self, source_history: np.ndarray, target_history: np.ndarray) -> None:
        """Padded histories `(users, length)` in the combined item index, padded with `padding_item`."""
        self.source_history.assign(source_history.astype("int32"))
        self.target_history.assign(target_history.astype("int32"))

    def encode(self, users: Any, history_table: Any) -> Any:
        """Shared encoder over `[shared_u, mean history embedding]`, `(batch, dim)`, plus whether the history is non-empty `(batch, 1)`."""
        history = ops.take(history_table, users, axis=0)
        mask = ops.cast(history < self.padding_item, "float32")
        count = ops.sum(mask, axis=1, keepdims=True)
        pooled = ops.sum(self.item_embedding(history) * ops.expand_dims(mask, -1), axis=1) / ops.maximum(count, 1.0)
        view = ops.concatenate([self.shared_user_embedding(users), pooled], axis=-1)
        return self.encoder_output(self.encoder_hidden(view)), ops.cast(count > 0, "float32")

    def scores(self, user_vectors: Any, items: Any) -> Any:
        """Scores `(batch, c)` of candidate items `(batch, c)` for user vectors `(batch, dim)`."""
        return score_candidates(user_vectors, self.item_embedding(items), self.item_bias(items))

    def call(self, inputs: tuple[Any, Any, Any]) -> Any:
        """Own-view scores `(batch, 1 + k)`; adds the cross-view target loss and the adversarial domain loss."""
        users, positives, negatives = inputs
        items = candidate_items(positives, negatives)
        is_target = ops.expand_dims(ops.cast(positives >= self.num_source_items, "float32"), -1)
        source_view, has_source = self.encode(users, self.source_history)
        target_view, _ = self.encode(users, self.target_history)
        own_view = is_target * target_view + (1.0 - is_target) * source_view
        cross_weight = is_target * has_source
        cross_loss = RANKING_LOSSES[self.ranking_loss](self.scores(source_view, items))
        # Averaged over the rows it applies to (target rows of users with source history), not the
        # batch: they are a few percent of a batch, and a batch mean scaled this path's loss down by as much.
        self.add_loss(ops.cast(ops.sum(cross_weight * cross_loss) / ops.maximum(ops.sum(cross_weight), 1.0), "float32"))
        logits = self.classifier_output(self.classifier_hidden(self.reversal(own_view)))
        self.add_loss(ops.cast(ops.mean(ops.binary_crossentropy(is_target, logits, from_logits=True)), "float32"))
        if self.l2:
            user_squares = ops.sum(ops.square(self.shared_user_embedding(users)), axis=-1)
            squares = user_squares + ops.sum(ops.square(self.item_embedding(items)), axis=(1, 2))
            self.add_loss(ops.cast(self.l2 * ops.mean(squares), "float32"))
        return self.scores(own_view, items)

    def user_vectors(self, users: Any) -> Any:
        """Target-domain user vectors: the target view where the user has target history, else the source view."""
        source_view, _ = self.encode(users, self.source_history)
        target_view, has_target = self.encode(users, self.target_history)
        return has_target * target_view + (1.0 - has_target) * source_view

    def score_all(self, users: Any) -> Any:
        """`(batch, num_items)` target scores."""
        start, end = self.num_source_items, self.padding_item
        return score_with_bias(self.user_vectors(users), self.item_embedding.embeddings[start:end], self.item_bias.embeddings[start:end])

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments, for serialisation."""
        return {
            **super().get_config(),
            "num_users": self.num_users,
            "num_source_items": self.num_source_items,
            "num_items": self.num_items,
            "embedding_dim": self.embedding_dim,
            "history_length": self.history_length,
            "hidden": self.hidden,
            "reversal_weight": self.reversal_weight,
            "l2": self.l2,
            "ranking_loss": self.ranking_loss,
        }
