"""LightGCN (He et al., SIGIR 2020): linear propagation over the user–item graph, layer-mean embeddings.

E⁽⁰⁾ holds one free vector per user and item. Each layer multiplies by the symmetric-normalised
adjacency of the bipartite training graph, Â = D^-1/2 A D^-1/2 with A = [[0, R], [Rᵀ, 0]], with
no feature transform and no non-linearity; the final embedding is the mean over layers 0..K
(α_k = 1/(K+1), the paper's choice) and score(u, i) = e_u · e_i. Propagation is a sparse matmul
over the training graph (never a dense adjacency), run for every batch as in the official code,
so gradients reach E⁽⁰⁾ through every layer. L2 covers the batch's layer-0 vectors, as the paper's.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from xdt.models.matrix_factorization import MatrixFactorization, candidate_items


def normalised_adjacency(users: np.ndarray, items: np.ndarray, num_users: int, num_items: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices `(nnz, 2)` (row-major order) and values of D^-1/2 A D^-1/2 over nodes users then items.

    Duplicate (user, item) rows count once; a node without edges has no entries (its propagated
    vector is zero at every layer beyond 0).
    """
    pairs = np.unique(np.stack([np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64)], axis=1), axis=0)
    user_degree = np.bincount(pairs[:, 0], minlength=num_users).astype(np.float64)
    item_degree = np.bincount(pairs[:, 1], minlength=num_items).astype(np.float64)
    weights = 1.0 / np.sqrt(user_degree[pairs[:, 0]] * item_degree[pairs[:, 1]])
    rows = np.concatenate([pairs[:, 0], num_users + pairs[:, 1]])
    columns = np.concatenate([num_users + pairs[:, 1], pairs[:, 0]])
    values = np.concatenate([weights, weights])
    order = np.lexsort((columns, rows))
    return np.stack([rows[order], columns[order]], axis=1), values[order].astype(np.float32)


@keras.saving.register_keras_serializable(package="xdt")
class LightGCN(keras.Model):
    """LightGCN over one domain's training graph; `call` and `score_all` as `MatrixFactorization`'s.

    The graph is stored as two non-trainable weights (indices and values), so a saved model scores
    on its own. `set_graph` fills them from the training rows.
    """

    def __init__(self, num_users: int, num_items: int, embedding_dim: int, edges: int, layers: int = 3, l2: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_users = num_users
        self.num_items = num_items
        self.embedding_dim = embedding_dim
        self.edges = edges
        self.layers_count = layers
        self.l2 = l2
        initializer = keras.initializers.RandomNormal(stddev=0.1)
        self.user_embedding = keras.layers.Embedding(num_users, embedding_dim, embeddings_initializer=initializer, name="user_embedding")
        self.item_embedding = keras.layers.Embedding(num_items, embedding_dim, embeddings_initializer=initializer, name="item_embedding")
        self.adjacency_indices = self.add_weight(shape=(edges, 2), dtype="int64", initializer="zeros", trainable=False, name="adjacency_indices")
        self.adjacency_values = self.add_weight(shape=(edges,), initializer="zeros", trainable=False, name="adjacency_values")

    def build(self, input_shape: Any = None) -> None:
        """Create the tables."""
        self.user_embedding.build((None,))
        self.item_embedding.build((None,))
        self.built = True

    def set_graph(self, users: np.ndarray, items: np.ndarray) -> None:
        """Store the normalised adjacency of these (user, item) training rows."""
        self.set_adjacency(*normalised_adjacency(users, items, self.num_users, self.num_items))

    def set_adjacency(self, indices: np.ndarray, values: np.ndarray) -> None:
        """Store a normalised adjacency computed by `normalised_adjacency`."""
        if len(values) != self.edges:
            raise ValueError(f"LightGCN was built for {self.edges} adjacency entries; these rows give {len(values)}")
        self.adjacency_indices.assign(indices)
        self.adjacency_values.assign(values)

    def propagate(self) -> tuple[Any, Any]:
        """Layer-mean user `(num_users, dim)` and item `(num_items, dim)` embeddings."""
        adjacency = tf.SparseTensor(
            self.adjacency_indices, self.adjacency_values, dense_shape=(self.num_users + self.num_items, self.num_users + self.num_items)
        )
        current = ops.concatenate([self.user_embedding.embeddings, self.item_embedding.embeddings], axis=0)
        total = current
        for _ in range(self.layers_count):
            current = tf.sparse.sparse_dense_matmul(adjacency, current)
            total = total + current
        final = total / float(self.layers_count + 1)
        return final[: self.num_users], final[self.num_users :]

    def call(self, inputs: tuple[Any, Any, Any]) -> Any:
        """Scores `(batch, 1 + k)` of the positive, then the k negatives."""
        users, positives, negatives = inputs
        users = ops.cast(users, "int32")
        items = candidate_items(positives, negatives)
        user_table, item_table = self.propagate()
        if self.l2:
            squares = ops.sum(ops.square(self.user_embedding(users)), axis=-1) + ops.sum(ops.square(self.item_embedding(items)), axis=(1, 2))
            self.add_loss(ops.cast(self.l2 * ops.mean(squares), "float32"))
        user_vectors = ops.take(user_table, users, axis=0)
        item_vectors = ops.take(item_table, items, axis=0)
        return ops.sum(ops.expand_dims(user_vectors, 1) * item_vectors, axis=-1)

    def score_all(self, users: Any) -> Any:
        """Scores of every item for each user, `(batch, num_items)`."""
        user_table, item_table = self.propagate()
        return ops.matmul(ops.take(user_table, ops.cast(users, "int32"), axis=0), ops.transpose(item_table))

    def to_matrix_factorization(self, name: str) -> MatrixFactorization:
        """An MF whose tables are the propagated embeddings (zero item bias): the same scores, for methods that start from MF tables."""
        user_table, item_table = self.propagate()
        model = MatrixFactorization(self.num_users, self.num_items, self.embedding_dim, l2=self.l2, name=name)
        model.build()
        model.user_embedding.embeddings.assign(user_table)
        model.item_embedding.embeddings.assign(item_table)
        return model

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments, for serialisation."""
        return {
            **super().get_config(),
            "num_users": self.num_users,
            "num_items": self.num_items,
            "embedding_dim": self.embedding_dim,
            "edges": self.edges,
            "layers": self.layers_count,
            "l2": self.l2,
        }


def graph_edges(users: np.ndarray, items: np.ndarray) -> int:
    """Adjacency entries of the graph these rows give (each distinct pair twice)."""
    return 2 * len(np.unique(np.stack([np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64)], axis=1), axis=0))


def lightgcn_from_rows(
    users: np.ndarray, items: np.ndarray, num_users: int, num_items: int, embedding_dim: int, *, layers: int, l2: float, name: str
) -> LightGCN:
    """A built LightGCN over the graph of these (user, item) training rows."""
    indices, values = normalised_adjacency(users, items, num_users, num_items)
    model = LightGCN(num_users, num_items, embedding_dim, len(values), layers=layers, l2=l2, name=name)
    model.build()
    model.set_adjacency(indices, values)
    return model
