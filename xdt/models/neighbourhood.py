"""Neighbourhood scorers: a user's scores are sums of sparse item-item similarity rows over their history.

`NeighbourhoodModel` holds one or more channels. A channel is a user history (users × history
items, binary, CSR) and a similarity (history items × target items, CSR): the channel's score
for user u is `Σ_{h ∈ history(u)} similarity[h, :]`. The model adds every channel and a fixed
per-item prior (itemknn / xknn use 1e-6 × popularity / max popularity as a tie-break).

Everything is stored as flat non-trainable weights (CSR row splits, column indices, values), so
the model saves and loads as `.keras`; similarities are kept in float64.

Scoring gathers, for each (user, history item) pair of the batch, that item's similarity row and
scatter-adds it: the work is the number of non-zeros touched, not `batch × n_history × n_items`.

Float32 and tie-breaks: the popularity tie-break (≈ 1e-9 per unit of popularity) is below
float32 resolution next to similarity sums of ≈ 0.1, and evaluation ranks float32 scores. With
`exact_order` (default) the float64 scores are converted to float32 values that keep their exact
order: equal float64 scores stay equal, distinct ones stay distinct and in order, each moved by a
few float32 ulps at most (see `order_preserving_float32`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import scipy.sparse as sparse
import tensorflow as tf


@dataclass(frozen=True)
class Channel:
    """One history → similarity pair, as CSR arrays (built in numpy, copied into the model)."""

    history: sparse.csr_matrix  # users × history items, binary
    similarity: sparse.csr_matrix  # history items × target items


def cosine_cooccurrence(left: sparse.csr_matrix, right: sparse.csr_matrix) -> sparse.csr_matrix:
    """`D_l^-1/2 · leftᵀ right · D_r^-1/2` with D the column (item) degrees of each binary matrix.

    E.g. left = right = [[1, 1], [1, 0]]: degrees (2, 1), co-occurrence [[2, 1], [1, 1]],
    cosine [[2/2, 1/√2], [1/√2, 1/1]].
    """
    left = binary(left)
    right = binary(right)
    left_degree = np.asarray(left.sum(axis=0)).ravel()
    right_degree = np.asarray(right.sum(axis=0)).ravel()
    cooccurrence = (left.T @ right).tocsr().astype(np.float64)
    scaled = sparse.diags(inverse_sqrt(left_degree)) @ cooccurrence @ sparse.diags(inverse_sqrt(right_degree))
    scaled = scaled.tocsr()
    scaled.eliminate_zeros()
    scaled.sort_indices()
    return scaled


def item_cosine(matrix: sparse.csr_matrix) -> sparse.csr_matrix:
    """Item-item cosine `D^-1/2 RᵀR D^-1/2` of a binary users × items matrix, diagonal zeroed."""
    similarity = cosine_cooccurrence(matrix, matrix).tolil()
    similarity.setdiag(0.0)
    similarity = similarity.tocsr()
    similarity.eliminate_zeros()
    similarity.sort_indices()
    return similarity


def popularity_prior(popularity: np.ndarray, scale: float = 1e-6) -> np.ndarray:
    """`scale × popularity / max popularity` (zeros when nothing is popular)."""
    popularity = np.asarray(popularity, dtype=np.float64)
    top = popularity.max() if len(popularity) else 0.0
    return scale * popularity / top if top > 0 else np.zeros_like(popularity)


def binary(matrix: sparse.spmatrix) -> sparse.csr_matrix:
    """A copy with every stored entry set to 1 (duplicates merged)."""
    matrix = sparse.csr_matrix(matrix, dtype=np.float64, copy=True)
    matrix.sum_duplicates()
    matrix.eliminate_zeros()
    matrix.data[:] = 1.0
    return matrix


def inverse_sqrt(degree: np.ndarray) -> np.ndarray:
    """`1/√degree`, 0 where the degree is 0."""
    result = np.zeros(len(degree), dtype=np.float64)
    positive = degree > 0
    result[positive] = 1.0 / np.sqrt(degree[positive])
    return result


def order_preserving_float32(scores: tf.Tensor) -> tf.Tensor:
    """Round non-negative float64 scores `(batch, n)` to float32 keeping their exact order and ties.

    For non-negative floats the int32 bit pattern is monotone in the value. Along each sorted
    row let b = bits of the float32 rounding and d = dense rank of the float64 value; the
    result's bits are `d + cummax(b - d)`: never below b, equal for equal values, and at least
    one ulp apart for distinct values. E.g. float64 [0.1, 0.1 + 1e-12, 0.2] round to float32
    bits [B, B, C]; d = [0, 1, 2] gives [B, B + 1, max(B + 1, C)] = [B, B + 1, C].
    """
    order = tf.argsort(scores, axis=1)  # equal scores get equal outputs, so stability is irrelevant
    ordered = tf.gather(scores, order, batch_dims=1)
    bits = tf.bitcast(tf.cast(ordered, tf.float32), tf.int32)
    steps = tf.cast(ordered[:, 1:] > ordered[:, :-1], tf.int32)
    dense_rank = tf.concat([tf.zeros_like(steps[:, :1]), tf.cumsum(steps, axis=1)], axis=1)
    slack = cumulative_max(bits - dense_rank)
    rounded = tf.bitcast(slack + dense_rank, tf.float32)
    rows = tf.broadcast_to(tf.range(tf.shape(scores)[0])[:, None], tf.shape(order))
    return tf.scatter_nd(tf.stack([rows, order], axis=-1), rounded, tf.shape(order))


def cumulative_max(values: tf.Tensor) -> tf.Tensor:
    """Running maximum along axis 1 (log-step doubling; TF has no cummax op).

    After step j each entry is the maximum of a window of 2^j entries. When a step changes
    nothing, the window-w maxima are non-decreasing at lag w, so every longer window has the
    same maxima: eagerly, stop there (usually after a few steps instead of log2(width)).
    """
    width = values.shape[1]
    shift = 1
    while width is not None and shift < width:
        shifted = tf.pad(values[:, :-shift], [[0, 0], [shift, 0]], constant_values=values.dtype.min)
        updated = tf.maximum(values, shifted)
        if tf.executing_eagerly() and not bool(tf.reduce_any(updated != values)):
            return updated
        values = updated
        shift *= 2
    return values


@keras.saving.register_keras_serializable(package="xdt")
class NeighbourhoodModel(keras.Model):
    """score(u, ·) = Σ_channels Σ_{h ∈ history_c(u)} similarity_c[h, ·] + item_prior.

    `channel_sizes` is one `(history_items, history_nnz, similarity_nnz)` triple per channel; the
    weights are filled by `set_channels`.
    """

    def __init__(
        self,
        num_users: int,
        num_items: int,
        channel_sizes: Sequence[Sequence[int]],
        exact_order: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.num_users = int(num_users)
        self.num_items = int(num_items)
        self.channel_sizes = [tuple(int(size) for size in sizes) for sizes in channel_sizes]
        self.exact_order = bool(exact_order)
        self.channel_weights = []
        for index, (history_items, history_nnz, similarity_nnz) in enumerate(self.channel_sizes):
            weight = self.constant_weight
            self.channel_weights.append(
                {
                    "history_splits": weight((self.num_users + 1,), "int64", f"channel{index}_history_splits"),
                    "history_items": weight((history_nnz,), "int64", f"channel{index}_history_items"),
                    "similarity_splits": weight((history_items + 1,), "int64", f"channel{index}_similarity_splits"),
                    "similarity_columns": weight((similarity_nnz,), "int64", f"channel{index}_similarity_columns"),
                    "similarity_values": weight((similarity_nnz,), "float64", f"channel{index}_similarity_values"),
                }
            )
        self.item_prior = self.constant_weight((self.num_items,), "float64", "item_prior")
        self.built = True

    def constant_weight(self, shape: tuple[int, ...], dtype: str, name: str) -> keras.Variable:
        """A non-trainable zero-initialised weight."""
        return self.add_weight(shape=shape, dtype=dtype, initializer="zeros", trainable=False, name=name)

    @classmethod
    def from_channels(cls, channels: Sequence[Channel], item_prior: np.ndarray, **kwargs: Any) -> NeighbourhoodModel:
        """Build a model sized for `channels` and copy them in."""
        if not channels:
            raise ValueError("Expected at least one channel. Received: channels=[]")
        num_users = channels[0].history.shape[0]
        num_items = len(item_prior)
        for index, channel in enumerate(channels):
            if channel.history.shape[0] != num_users or channel.similarity.shape != (channel.history.shape[1], num_items):
                raise ValueError(
                    f"Channel {index}: expected history (users={num_users}, h) and similarity (h, items={num_items}). "
                    f"Received: history {channel.history.shape}, similarity {channel.similarity.shape}"
                )
        sizes = [(channel.history.shape[1], binary(channel.history).nnz, channel.similarity.nnz) for channel in channels]
        model = cls(num_users, num_items, sizes, **kwargs)
        model.set_channels(channels, item_prior)
        return model

    def set_channels(self, channels: Sequence[Channel], item_prior: np.ndarray) -> None:
        """Copy CSR arrays into the weights."""
        for weights, channel in zip(self.channel_weights, channels):
            history = binary(channel.history)
            history.sort_indices()
            similarity = sparse.csr_matrix(channel.similarity, dtype=np.float64)
            similarity.sort_indices()
            weights["history_splits"].assign(history.indptr.astype(np.int64))
            weights["history_items"].assign(history.indices.astype(np.int64))
            weights["similarity_splits"].assign(similarity.indptr.astype(np.int64))
            weights["similarity_columns"].assign(similarity.indices.astype(np.int64))
            weights["similarity_values"].assign(similarity.data.astype(np.float64))
        self.item_prior.assign(np.asarray(item_prior, dtype=np.float64))

    def call(self, users: Any) -> Any:
        """Alias of `score_all`."""
        return self.score_all(users)

    def score_all_float64(self, users: Any) -> tf.Tensor:
        """Exact float64 scores `(batch, num_items)`."""
        users = tf.cast(tf.reshape(users, [-1]), tf.int64)
        batch = tf.shape(users, out_type=tf.int64)[0]
        scores = tf.broadcast_to(tf.reshape(tf.convert_to_tensor(self.item_prior), [1, -1]), tf.stack([batch, self.num_items]))
        for weights in self.channel_weights:
            scores = scores + self.channel_scores(weights, users, batch)
        return scores

    def channel_scores(self, weights: dict[str, keras.Variable], users: tf.Tensor, batch: tf.Tensor) -> tf.Tensor:
        """Σ of the similarity rows over each user's history items, `(batch, num_items)` float64."""
        value = tf.convert_to_tensor
        history = tf.RaggedTensor.from_row_splits(value(weights["history_items"]), value(weights["history_splits"]), validate=False)
        user_history = tf.gather(history, users)
        pair_rows = user_history.value_rowids()
        columns = tf.RaggedTensor.from_row_splits(
            value(weights["similarity_columns"]), value(weights["similarity_splits"]), validate=False
        )
        values = tf.RaggedTensor.from_row_splits(value(weights["similarity_values"]), value(weights["similarity_splits"]), validate=False)
        picked_columns = tf.gather(columns, user_history.flat_values)
        picked_values = tf.gather(values, user_history.flat_values)
        rows = tf.gather(pair_rows, picked_columns.value_rowids())
        indices = tf.stack([rows, picked_columns.flat_values], axis=1)
        return tf.scatter_nd(indices, picked_values.flat_values, tf.stack([batch, self.num_items]))

    def score_all(self, users: Any) -> tf.Tensor:
        """Scores of every target item for each user, `(batch, num_items)` float32."""
        scores = self.score_all_float64(users)
        if self.exact_order:
            return order_preserving_float32(scores)
        return tf.cast(scores, tf.float32)

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments, for serialisation."""
        return {
            **super().get_config(),
            "num_users": self.num_users,
            "num_items": self.num_items,
            "channel_sizes": [list(sizes) for sizes in self.channel_sizes],
            "exact_order": self.exact_order,
        }
