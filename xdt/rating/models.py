"""Explicit-rating models: biased MF, EMCDR and PTUPCDR for cold-start users.

Every model maps `(users, items)` (int arrays of shape `(batch,)`) to predicted ratings of
shape `(batch, 1)`; the trailing 1 keeps per-replica loss scaling right under `tf.distribute`
(ARCHITECTURE.md §8). Cold-start prediction for the transfer models:

    r̂(u, i) = μ + b_i + b̂_u + p̂_u · q_i

where μ, b_i, q_i come from the target-domain MF (frozen) and (p̂_u, b̂_u) are produced from the
user's source domain. Users that do have target training rows (`has_target = 1`) keep their own
target MF vector and bias.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops


def embedding_table(rows: int, dim: int, name: str, *, trainable: bool, initializer: Any = "zeros") -> keras.layers.Embedding:
    """An embedding table; frozen ones hold copies of another model's weights."""
    return keras.layers.Embedding(rows, dim, embeddings_initializer=initializer, trainable=trainable, name=name)


@keras.saving.register_keras_serializable(package="xdt")
class BiasedMatrixFactorization(keras.Model):
    """r̂(u, i) = μ + b_i + known_u · (b_u + p_u · q_i).

    `known_u` is a frozen per-user flag (1 by default); users marked 0 (no training rows in this
    domain) are predicted μ + b_i instead of from their never-trained vectors. `l2` adds
    l2 · mean over the batch of (|p_u|² + |q_i|² + b_u² + b_i²) to the loss.
    """

    def __init__(
        self, num_users: int, num_items: int, embedding_dim: int, global_mean: float = 0.0, l2: float = 0.0, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.num_users = num_users
        self.num_items = num_items
        self.embedding_dim = embedding_dim
        self.global_mean = float(global_mean)
        self.l2 = float(l2)
        # Initialisers are made here, after the caller seeded Keras: one built at import time
        # would draw its seed before `seed_everything` and differ between processes.
        self.user_embedding = embedding_table(
            num_users, embedding_dim, "user_embedding", trainable=True, initializer=keras.initializers.RandomNormal(stddev=0.1)
        )
        self.item_embedding = embedding_table(
            num_items, embedding_dim, "item_embedding", trainable=True, initializer=keras.initializers.RandomNormal(stddev=0.1)
        )
        self.user_bias = embedding_table(num_users, 1, "user_bias", trainable=True)
        self.item_bias = embedding_table(num_items, 1, "item_bias", trainable=True)
        self.known_users = embedding_table(num_users, 1, "known_users", trainable=False, initializer="ones")

    def build(self, input_shape: Any = None) -> None:
        """Create the tables."""
        for table in (self.user_embedding, self.item_embedding, self.user_bias, self.item_bias, self.known_users):
            table.build((None,))
        self.built = True

    def call(self, inputs: tuple[Any, Any]) -> Any:
        """Predicted ratings `(batch, 1)`."""
        users, items = inputs
        user_vectors = self.user_embedding(users)
        item_vectors = self.item_embedding(items)
        user_bias = self.user_bias(users)
        item_bias = self.item_bias(items)
        if self.l2:
            squares = ops.sum(ops.square(user_vectors) + ops.square(item_vectors), axis=-1, keepdims=True)
            self.add_loss(self.l2 * ops.mean(squares + ops.square(user_bias) + ops.square(item_bias)))
        personal = user_bias + ops.sum(user_vectors * item_vectors, axis=-1, keepdims=True)
        return self.global_mean + item_bias + self.known_users(users) * personal

    def set_known_users(self, known: np.ndarray) -> None:
        """Mark which users have training rows (`known`: bool `(num_users,)`)."""
        self.known_users.embeddings.assign(np.asarray(known, dtype="float32").reshape(-1, 1))

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments, for serialisation."""
        return {
            **super().get_config(),
            "num_users": self.num_users,
            "num_items": self.num_items,
            "embedding_dim": self.embedding_dim,
            "global_mean": self.global_mean,
            "l2": self.l2,
        }


class TransferBase(keras.Model):
    """Frozen copies of the source user tables and the whole target MF, shared by EMCDR and PTUPCDR."""

    def __init__(self, num_users: int, num_target_items: int, embedding_dim: int, global_mean: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_users = num_users
        self.num_target_items = num_target_items
        self.embedding_dim = embedding_dim
        self.global_mean = float(global_mean)
        self.source_user_embedding = embedding_table(num_users, embedding_dim, "source_user_embedding", trainable=False)
        self.source_user_bias = embedding_table(num_users, 1, "source_user_bias", trainable=False)
        self.target_user_embedding = embedding_table(num_users, embedding_dim, "target_user_embedding", trainable=False)
        self.target_user_bias = embedding_table(num_users, 1, "target_user_bias", trainable=False)
        self.has_target = embedding_table(num_users, 1, "has_target", trainable=False)
        self.target_item_embedding = embedding_table(num_target_items, embedding_dim, "target_item_embedding", trainable=False)
        self.target_item_bias = embedding_table(num_target_items, 1, "target_item_bias", trainable=False)

    def frozen_tables(self) -> list[keras.layers.Embedding]:
        """The tables copied from the pretrained MF models."""
        return [
            self.source_user_embedding,
            self.source_user_bias,
            self.target_user_embedding,
            self.target_user_bias,
            self.has_target,
            self.target_item_embedding,
            self.target_item_bias,
        ]

    def build_frozen(self) -> None:
        """Create the frozen tables."""
        for table in self.frozen_tables():
            table.build((None,))

    def load_pretrained(self, source: BiasedMatrixFactorization, target: BiasedMatrixFactorization) -> None:
        """Copy source user tables and the target MF (its known-user flags become `has_target`)."""
        if not self.built:
            self.build()
        self.source_user_embedding.embeddings.assign(source.user_embedding.embeddings)
        self.source_user_bias.embeddings.assign(source.user_bias.embeddings)
        self.target_user_embedding.embeddings.assign(target.user_embedding.embeddings)
        self.target_user_bias.embeddings.assign(target.user_bias.embeddings)
        self.has_target.embeddings.assign(target.known_users.embeddings)
        self.target_item_embedding.embeddings.assign(target.item_embedding.embeddings)
        self.target_item_bias.embeddings.assign(target.item_bias.embeddings)
        self.global_mean = target.global_mean

    def source_features(self, users: Any) -> Any:
        """`(batch, dim + 1)`: source user vector and bias."""
        return ops.concatenate([self.source_user_embedding(users), self.source_user_bias(users)], axis=-1)

    def transferred(self, users: Any, training: bool = False) -> tuple[Any, Any]:
        """`(p̂_u (batch, dim), b̂_u (batch, 1))` from the source domain; implemented by subclasses."""
        raise NotImplementedError

    def combine(self, users: Any, items: Any, vectors: Any, bias: Any) -> Any:
        """μ + b_i + (target vector and bias for users with target data, else the transferred ones) · q_i."""
        known = self.has_target(users)
        user_vectors = known * self.target_user_embedding(users) + (1.0 - known) * vectors
        user_bias = known * self.target_user_bias(users) + (1.0 - known) * bias
        dot = ops.sum(user_vectors * self.target_item_embedding(items), axis=-1, keepdims=True)
        return self.global_mean + self.target_item_bias(items) + user_bias + dot

    def cold_start(self, inputs: tuple[Any, Any], training: bool = False) -> Any:
        """Ratings `(batch, 1)` predicted from the source domain only, whatever `has_target` says."""
        users, items = inputs
        vectors, bias = self.transferred(users, training)
        dot = ops.sum(vectors * self.target_item_embedding(items), axis=-1, keepdims=True)
        return self.global_mean + self.target_item_bias(items) + bias + dot

    def call(self, inputs: tuple[Any, Any]) -> Any:
        """Predicted ratings `(batch, 1)`."""
        users, items = inputs
        vectors, bias = self.transferred(users)
        return self.combine(users, items, vectors, bias)

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments, for serialisation."""
        return {
            **super().get_config(),
            "num_users": self.num_users,
            "num_target_items": self.num_target_items,
            "embedding_dim": self.embedding_dim,
            "global_mean": self.global_mean,
        }


@keras.saving.register_keras_serializable(package="xdt")
class EmcdrRating(TransferBase):
    """EMCDR (Man et al., IJCAI 2017) for ratings: (p_u^s, b_u^s) → (p̂_u^t, b̂_u^t) by a linear map or an MLP.

    The mapping (`self.mapping`, a plain `keras.Sequential` on `(batch, dim + 1)` features) is
    trained by regression onto the target MF's vectors and biases of meta users.
    """

    def __init__(
        self, num_users: int, num_target_items: int, embedding_dim: int, global_mean: float = 0.0,
        mapping: str = "mlp", hidden: int = 64, **kwargs: Any,
    ) -> None:
        super().__init__(num_users, num_target_items, embedding_dim, global_mean, **kwargs)
        if mapping not in ("mlp", "linear"):
            raise ValueError(f"Expected mapping to be 'mlp' or 'linear'. Received: mapping={mapping!r}")
        self.mapping_kind = mapping
        self.hidden = hidden
        layers = [keras.layers.Dense(hidden, activation="tanh", name="hidden")] if mapping == "mlp" else []
        self.mapping = keras.Sequential([*layers, keras.layers.Dense(embedding_dim + 1, name="output")], name="mapping")

    def build(self, input_shape: Any = None) -> None:
        """Create the tables and the mapping."""
        self.build_frozen()
        self.mapping.build((None, self.embedding_dim + 1))
        self.built = True

    def transferred(self, users: Any, training: bool = False) -> tuple[Any, Any]:
        """Mapped source features, split into `(vector, bias)`."""
        mapped = self.mapping(self.source_features(users))
        return mapped[:, : self.embedding_dim], mapped[:, self.embedding_dim :]

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments, for serialisation."""
        return {**super().get_config(), "mapping": self.mapping_kind, "hidden": self.hidden}


@keras.saving.register_keras_serializable(package="xdt")
class PtupcdrRating(TransferBase):
    """PTUPCDR (Zhu et al., WSDM 2022) for ratings: a personalised bridge from each user's source history.

    Each user's source history (up to `max_history` items, their ratings centred on the source
    mean) is embedded as events e_j = [q_j^s, r_j - μ_s]; attention a_j = softmax_j(MLP(e_j)) pools
    them into h_u = Σ_j a_j e_j. A decoder turns h_u into a `(dim, dim)` bridge W_u, and
    p̂_u = p_u^s W_u; a linear head on [h_u, p_u^s, b_u^s] gives b̂_u. The history tables are
    frozen weights, so a saved model serves cold-start users on its own. `l2` penalises
    |p̂_u|² + b̂_u² (mean over the batch).
    """

    def __init__(
        self, num_users: int, num_target_items: int, embedding_dim: int, global_mean: float = 0.0,
        num_source_items: int = 1, max_history: int = 20, meta_dim: int = 50, l2: float = 0.0,
        history_dropout: float = 0.0, seed: int | None = None, **kwargs: Any,
    ) -> None:
        super().__init__(num_users, num_target_items, embedding_dim, global_mean, **kwargs)
        self.history_dropout = float(history_dropout)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.num_source_items = num_source_items
        self.max_history = max_history
        self.meta_dim = meta_dim
        self.l2 = float(l2)
        # Row 0 is padding; source item j lives in row j + 1.
        self.source_item_embedding = embedding_table(num_source_items + 1, embedding_dim, "source_item_embedding", trainable=False)
        self.event_key = keras.Sequential(
            [keras.layers.Dense(embedding_dim, activation="relu", name="event_hidden"), keras.layers.Dense(1, use_bias=False, name="event_logit")],
            name="event_key",
        )
        self.decoder = keras.Sequential(
            [keras.layers.Dense(meta_dim, activation="relu", name="decoder_hidden"), keras.layers.Dense(embedding_dim * embedding_dim, name="bridge")],
            name="decoder",
        )
        self.bias_head = keras.layers.Dense(1, kernel_initializer="zeros", name="bias_head")

    def build(self, input_shape: Any = None) -> None:
        """Create tables, history buffers and the meta network."""
        self.build_frozen()
        self.source_item_embedding.build((None,))
        self.history_items = self.add_weight(
            shape=(self.num_users, self.max_history), dtype="int32", initializer="zeros", trainable=False, name="history_items"
        )
        self.history_ratings = self.add_weight(
            shape=(self.num_users, self.max_history), initializer="zeros", trainable=False, name="history_ratings"
        )
        event_dim = self.embedding_dim + 1
        self.event_key.build((None, None, event_dim))
        self.decoder.build((None, event_dim))
        self.bias_head.build((None, event_dim + self.embedding_dim + 1))
        self.built = True

    def load_history(self, source_item_vectors: np.ndarray, history_items: np.ndarray, history_ratings: np.ndarray) -> None:
        """Set source item vectors `(num_source_items, dim)` and histories `(num_users, max_history)`.

        `history_items` holds source item indices, -1 for padding; `history_ratings` the centred
        ratings (0 at padding).
        """
        if not self.built:
            self.build()
        expected = (self.num_users, self.max_history)
        if history_items.shape != expected or history_ratings.shape != expected:
            raise ValueError(f"Expected histories of shape {expected}. Received: {history_items.shape}, {history_ratings.shape}")
        table = np.zeros((self.num_source_items + 1, self.embedding_dim), dtype="float32")
        table[1:] = source_item_vectors
        self.source_item_embedding.embeddings.assign(table)
        self.history_items.assign((history_items + 1).astype("int32"))
        self.history_ratings.assign(history_ratings.astype("float32"))

    def initialise_shared_bridge(self, bridge: np.ndarray, bias_weights: np.ndarray, bias_intercept: float) -> None:
        """Start from a shared linear bridge: W_u = `bridge` `(dim, dim)` for every user, b̂_u = [p^s, b^s] · `bias_weights` + intercept.

        The decoder's last layer starts with zero kernel and `bridge` as its bias; the history part
        of the bias head starts at zero. Training then personalises both.
        """
        if not self.built:
            self.build()
        output = self.decoder.layers[-1]
        output.kernel.assign(np.zeros(output.kernel.shape, dtype="float32"))
        output.bias.assign(np.asarray(bridge, dtype="float32").reshape(-1))
        kernel = np.zeros(self.bias_head.kernel.shape, dtype="float32")
        kernel[self.embedding_dim + 1 :, 0] = bias_weights
        self.bias_head.kernel.assign(kernel)
        self.bias_head.bias.assign(np.array([bias_intercept], dtype="float32"))

    def history_summary(self, users: Any, training: bool = False) -> Any:
        """h_u `(batch, dim + 1)`: attention-pooled source events (in training each event is dropped with probability `history_dropout`)."""
        items = ops.take(self.history_items, users, axis=0)
        if training and self.history_dropout > 0:
            keep = keras.random.uniform(ops.shape(items), seed=self.seed_generator) >= self.history_dropout
            items = ops.where(keep, items, ops.zeros_like(items))
        ratings = ops.take(self.history_ratings, users, axis=0)
        events = ops.concatenate([self.source_item_embedding(items), ops.expand_dims(ratings, -1)], axis=-1)
        mask = ops.expand_dims(ops.cast(items > 0, "float32"), -1)
        logits = self.event_key(events) - (1.0 - mask) * 1e9
        attention = ops.softmax(logits, axis=1) * mask
        return ops.sum(attention * events, axis=1)

    def transferred(self, users: Any, training: bool = False) -> tuple[Any, Any]:
        """p̂_u = p_u^s W_u and b̂_u from the history summary."""
        summary = self.history_summary(users, training)
        bridge = ops.reshape(self.decoder(summary), (-1, self.embedding_dim, self.embedding_dim))
        source_vectors = self.source_user_embedding(users)
        vectors = ops.squeeze(ops.matmul(ops.expand_dims(source_vectors, 1), bridge), 1)
        bias = self.bias_head(ops.concatenate([summary, source_vectors, self.source_user_bias(users)], axis=-1))
        if self.l2:
            self.add_loss(self.l2 * ops.mean(ops.sum(ops.square(vectors), axis=-1) + ops.squeeze(ops.square(bias), -1)))
        return vectors, bias

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments, for serialisation."""
        return {
            **super().get_config(),
            "num_source_items": self.num_source_items,
            "max_history": self.max_history,
            "meta_dim": self.meta_dim,
            "l2": self.l2,
            "history_dropout": self.history_dropout,
            "seed": self.seed,
        }
