"""CDRIB (Cao et al., ICDE 2022): cross-domain recommendation to cold-start users via variational information bottleneck.

Each domain has a variational bipartite graph encoder (VBGE) over its own training graph. A VBGE
layer updates a user from the users who share its items and an item from the items that share
its users, each through two graph convolutions (user → item → user, item → user → item; weight,
then the row-normalised adjacency, then LeakyReLU 0.1), concatenated with the node's input and
mixed by a linear layer with ReLU. The last layer outputs a Gaussian per node instead (mean and
a transformed log-std), sampled with the reparameterisation trick in training and its mean at
inference. A node's representation is the concatenation of every layer's output.

The objective, as the official code (cjx96/CDRIB) computes it, per step:

- reconstruction (the two information-bottleneck regularisers' "maximise I(Z; R)" parts): pointwise
  binary cross-entropy of dot-product scores of each domain's training rows and sampled
  negatives, mean per domain and label. A row of a user with training rows in both domains (a
  *shared* user) is scored from the user's representation in the *other* domain (cross-domain IB:
  the source representation must predict target interactions and vice versa); other users' rows
  from their own domain (in-domain IB).
- the IB compression terms: KL(q(z|graph) ‖ prior) of every node of the last layer, mean over
  nodes, summed over dimensions, `beta` × users' + items', per domain.
- the contrastive user–user term: a discriminator MLP on concatenated (source, target) user
  representations, `user_batch` random shared users as positives against the same users paired
  with random users of the other domain, hinge loss with margin `margin` on sigmoid outputs.

Cold-start scoring: a user with source training rows is scored on target items from its
*source-side* representation (`scoring_index`); only users without source rows use the target side.

Graph propagation is a sparse-dense matmul over the training edges (never a dense users × items
matrix) and runs on the whole graph at every step, as the official code. The graph and the user
index maps are non-trainable weights, so a saved model scores on its own. Users are indexed
per domain (only users with training rows there), so each encoder's work grows with its own
domain's users and edges.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from xdt.models.matrix_factorization import candidate_items

LEAKY_SLOPE = 0.1
# The official code's std transform: sigma = exp(0.1 + 0.9 · softplus(min(logstd, 0.4))), and its
# prior is that transform of logstd = 1 (it passes ones as the prior's logstd): N(0, 2.514²).
LOGSTD_CAP = 0.4


def sigma_log(logstd: Any) -> Any:
    """log sigma = 0.1 + 0.9 · softplus(min(logstd, 0.4)) (so sigma > e^0.1)."""
    return 0.1 + 0.9 * ops.softplus(ops.minimum(logstd, LOGSTD_CAP))


PRIOR_LOG_SIGMA = 0.1 + 0.9 * math.log1p(math.exp(min(1.0, LOGSTD_CAP)))


def gaussian_kl(mean: Any, logstd: Any) -> Any:
    """KL(N(mean, sigma²) ‖ N(0, prior²)) per node summed over dimensions, mean over nodes."""
    log_sigma = sigma_log(logstd)
    prior_variance = math.exp(2.0 * PRIOR_LOG_SIGMA)
    per_element = PRIOR_LOG_SIGMA - log_sigma + (ops.exp(2.0 * log_sigma) + ops.square(mean)) / (2.0 * prior_variance) - 0.5
    return ops.mean(ops.sum(per_element, axis=-1))


def hinge(positive: Any, negative: Any, margin: float) -> Any:
    """mean relu(margin − σ(positive) + σ(negative))."""
    return ops.mean(ops.relu(margin - ops.sigmoid(positive) + ops.sigmoid(negative)))


def two_domain_bce_loss(positives: Any, scores: Any, num_source_items: int, extra_losses: list) -> Any:
    """Binary cross-entropy of `scores` (positive, then negatives) averaged per domain and label, plus `extra_losses`.

    A row is a target row when its positive's combined index is >= `num_source_items`. Divided by
    the replica count under tf.distribute, as Keras scales compiled losses (replicas' gradients are summed).
    """
    is_target = ops.cast(ops.cast(positives, "int32") >= num_source_items, scores.dtype)
    positive_loss = ops.softplus(-scores[:, 0])
    negative_loss = ops.mean(ops.softplus(scores[:, 1:]), axis=-1)
    loss = ops.zeros((), dtype=scores.dtype)
    for mask in (1.0 - is_target, is_target):
        count = ops.maximum(ops.sum(mask), 1.0)
        loss = loss + (ops.sum(mask * positive_loss) + ops.sum(mask * negative_loss)) / count
    for extra in extra_losses:
        loss = loss + ops.cast(extra, loss.dtype)
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return loss / replicas if replicas > 1 else loss


def row_normalised(rows: np.ndarray, columns: np.ndarray, num_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices `(nnz, 2)` in row-major order and values 1/deg(row) of a binary matrix's rows."""
    degree = np.bincount(rows, minlength=num_rows).astype(np.float64)
    order = np.lexsort((columns, rows))
    indices = np.stack([rows[order], columns[order]], axis=1).astype(np.int64)
    return indices, (1.0 / degree[rows[order]]).astype(np.float32)


def stream_seed(seed: int | None, stream: int) -> int:
    """A sub-seed for one random stream of a model seeded `seed` (None counts as 0)."""
    return 1009 * (seed or 0) + stream


def draw_seed(seed: int | None, salt: int, step: Any) -> Any:
    """A stateless-op seed `(2,)` for draw `salt` at training step `step`."""
    return tf.stack([tf.constant(1000 * (seed or 0) + salt, tf.int64), tf.cast(step, tf.int64)])


def csr_matrix(indices: Any, values: Any, shape: tuple[int, int]) -> Any:
    """A CSR sparse matrix from row-major-ordered COO indices and values (TensorFlow's CSR kernels are several times faster than SparseTensor's on CPU)."""
    return tf.raw_ops.SparseTensorToCSRSparseMatrix(indices=indices, values=values, dense_shape=tf.constant(shape, dtype=tf.int64))


def sparse_matmul(matrix: Any, transpose: Any, dense: Any) -> Any:
    """CSR `matrix` × dense `(columns, width)` → `(rows, width)`, differentiable in `dense`.

    The gradient multiplies by `transpose` (the matrix's transpose, stored as its own CSR matrix):
    TensorFlow's built-in gradient multiplies by the adjoint, which on CPU sums in a
    nondeterministic order, and exact resume needs bit-identical steps.
    """

    @tf.custom_gradient
    def product(x: Any) -> Any:
        def gradient(upstream: Any) -> Any:
            return tf.raw_ops.SparseMatrixMatMul(a=transpose, b=upstream)

        return tf.raw_ops.SparseMatrixMatMul(a=matrix, b=x), gradient

    return product(tf.identity(dense))


@dataclass(frozen=True)
class DomainGraph:
    """One domain's training graph in domain-local user ids: `users` are the global ids, in local order."""

    users: np.ndarray
    user_local: np.ndarray
    item: np.ndarray
    num_items: int

    @classmethod
    def from_rows(cls, users: np.ndarray, items: np.ndarray, num_items: int) -> DomainGraph:
        """Distinct (user, item) training pairs; local user ids follow the sorted global ids."""
        pairs = np.unique(np.stack([np.asarray(users, np.int64), np.asarray(items, np.int64)], axis=1), axis=0)
        present, local = np.unique(pairs[:, 0], return_inverse=True)
        return cls(present, local.astype(np.int64), pairs[:, 1], num_items)

    @property
    def edges(self) -> int:
        """Distinct training pairs."""
        return len(self.item)

    def adjacencies(self) -> tuple[np.ndarray, ...]:
        """UV (users × items) and VU (items × users), each row-normalised: (UV indices, UV values, VU indices, VU values, UVᵀ values, VUᵀ values).

        VU's pattern is UV's transpose, so UVᵀ has VU's indices (its values 1/deg(user)) and VUᵀ
        has UV's (its values 1/deg(item)).
        """
        uv_indices, uv_values = row_normalised(self.user_local, self.item, len(self.users))
        vu_indices, vu_values = row_normalised(self.item, self.user_local, self.num_items)
        user_degree = np.bincount(self.user_local, minlength=len(self.users)).astype(np.float64)
        item_degree = np.bincount(self.item, minlength=self.num_items).astype(np.float64)
        uv_transpose = (1.0 / user_degree[vu_indices[:, 1]]).astype(np.float32)
        vu_transpose = (1.0 / item_degree[uv_indices[:, 1]]).astype(np.float32)
        return uv_indices, uv_values, vu_indices, vu_values, uv_transpose, vu_transpose


@keras.saving.register_keras_serializable(package="xdt")
class VariationalBipartiteEncoder(keras.layers.Layer):
    """VBGE over one domain's graph: `call(training)` → (users `(U, L·d)`, items `(I, L·d)`, beta·KL_users + KL_items)."""

    def __init__(
        self, num_users: int, num_items: int, edges: int, dim: int, layers: int = 3, dropout: float = 0.3, beta: float = 1.0, seed: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        if layers < 1:
            raise ValueError(f"Expected layers >= 1. Received: layers={layers}")
        self.num_users = num_users
        self.num_items = num_items
        self.edges = edges
        self.dim = dim
        self.layers_count = layers
        self.dropout = dropout
        self.beta = beta
        self.seed = seed

    def build(self, input_shape: Any = None) -> None:
        """Embeddings, graph and per-layer weights, initialised as PyTorch initialises the official modules."""
        d = self.dim
        self.user_embedding = self.add_weight(shape=(self.num_users, d), initializer=keras.initializers.RandomNormal(stddev=1.0), name="user_embedding")
        self.item_embedding = self.add_weight(shape=(self.num_items, d), initializer=keras.initializers.RandomNormal(stddev=1.0), name="item_embedding")
        for name in ("uv", "vu"):
            setattr(self, f"{name}_indices", self.add_weight(shape=(self.edges, 2), dtype="int64", initializer="zeros", trainable=False, name=f"{name}_indices"))
            for values in (f"{name}_values", f"{name}_transpose_values"):
                setattr(self, values, self.add_weight(shape=(self.edges,), initializer="zeros", trainable=False, name=values))
        # Graph convolutions: U(±1/sqrt(out)); linear layers: U(±1/sqrt(in)), weights and biases.
        self.weights_by_name: dict[str, Any] = {}

        def uniform(name: str, shape: tuple[int, ...], fan: int) -> None:
            bound = 1.0 / math.sqrt(fan)
            self.weights_by_name[name] = self.add_weight(shape=shape, initializer=keras.initializers.RandomUniform(-bound, bound), name=name)

        for layer in range(self.layers_count):
            last = layer == self.layers_count - 1
            for path in ("user", "item"):
                prefix = f"layer{layer}_{path}"
                uniform(f"{prefix}_gc1_kernel", (d, d), d)
                uniform(f"{prefix}_gc1_bias", (d,), d)
                for head in ("mean", "logstd") if last else ("out",):
                    uniform(f"{prefix}_gc2_{head}_kernel", (d, d), d)
                    uniform(f"{prefix}_gc2_{head}_bias", (d,), d)
                    uniform(f"{prefix}_union_{head}_kernel", (2 * d, d), 2 * d)
                    uniform(f"{prefix}_union_{head}_bias", (d,), 2 * d)
        self.built = True

    def set_adjacency(self, *arrays: np.ndarray) -> None:
        """Store the row-normalised adjacencies and their transposes' values (DomainGraph.adjacencies)."""
        uv_indices, uv_values, vu_indices, vu_values, uv_transpose, vu_transpose = arrays
        if len(uv_values) != self.edges or len(vu_values) != self.edges:
            raise ValueError(f"{self.name} was built for {self.edges} edges; these give {len(uv_values)}")
        for weight, value in (
            (self.uv_indices, uv_indices), (self.uv_values, uv_values), (self.vu_indices, vu_indices),
            (self.vu_values, vu_values), (self.uv_transpose_values, uv_transpose), (self.vu_transpose_values, vu_transpose),
        ):
            weight.assign(value)

    def convolve(self, x: Any, adjacency: Any, rows: int, names: tuple[str, ...]) -> list[Any]:
        """LeakyReLU(A · x · W + b) for each named (W, b), one sparse product for all of them.

        The dense product runs on whichever side has fewer rows (A(xW) = (Ax)W).
        """
        kernel = ops.concatenate([self.weights_by_name[f"{name}_kernel"] for name in names], axis=1)
        bias = ops.concatenate([self.weights_by_name[f"{name}_bias"] for name in names], axis=0)
        if rows < x.shape[0]:
            out = ops.matmul(sparse_matmul(*adjacency, x), kernel)
        else:
            out = sparse_matmul(*adjacency, ops.matmul(x, kernel))
        out = ops.leaky_relu(out + bias, negative_slope=LEAKY_SLOPE)
        return ops.split(out, len(names), axis=1) if len(names) > 1 else [out]

    def union(self, propagated: Any, own: Any, name: str) -> Any:
        """Linear([propagated, own])."""
        kernel, bias = self.weights_by_name[f"{name}_kernel"], self.weights_by_name[f"{name}_bias"]
        return ops.matmul(ops.concatenate([propagated, own], axis=-1), kernel) + bias

    def reparameterise(self, mean: Any, logstd: Any, seed: Any) -> Any:
        """mean + sigma · ε in training (`seed` given), the mean otherwise."""
        if seed is None:
            return mean
        return mean + tf.random.stateless_normal(tf.shape(mean), seed=seed) * ops.exp(sigma_log(logstd))

    def call(self, training: bool = False, step: Any = 0) -> tuple[Any, Any, Any]:
        """Propagate over the whole graph; in training, dropout and sampling draw from (seed, `step`)."""

        def seed(salt: int) -> Any:
            return None if not training else draw_seed(self.seed, salt, step)

        user_shape, item_shape = (self.num_users, self.num_items), (self.num_items, self.num_users)
        # (matrix, transpose) pairs: UVᵀ shares VU's indices, VUᵀ UV's.
        uv = (csr_matrix(self.uv_indices, self.uv_values, user_shape), csr_matrix(self.vu_indices, self.uv_transpose_values, item_shape))
        vu = (csr_matrix(self.vu_indices, self.vu_values, item_shape), csr_matrix(self.uv_indices, self.vu_transpose_values, user_shape))
        users, items = ops.convert_to_tensor(self.user_embedding), ops.convert_to_tensor(self.item_embedding)
        user_outputs, item_outputs, kl = [], [], ops.zeros(())
        for layer in range(self.layers_count):
            if training and self.dropout:
                users = tf.nn.experimental.stateless_dropout(users, self.dropout, seed=seed(4 * layer))
                items = tf.nn.experimental.stateless_dropout(items, self.dropout, seed=seed(4 * layer + 1))
            heads = ("mean", "logstd") if layer == self.layers_count - 1 else ("out",)
            # Users: user → item → user; items: item → user → item.
            (user_hidden,) = self.convolve(users, vu, self.num_items, (f"layer{layer}_user_gc1",))
            (item_hidden,) = self.convolve(items, uv, self.num_users, (f"layer{layer}_item_gc1",))
            user_heads = self.convolve(user_hidden, uv, self.num_users, tuple(f"layer{layer}_user_gc2_{head}" for head in heads))
            item_heads = self.convolve(item_hidden, vu, self.num_items, tuple(f"layer{layer}_item_gc2_{head}" for head in heads))
            user_out = [self.union(value, users, f"layer{layer}_user_union_{head}") for value, head in zip(user_heads, heads, strict=True)]
            item_out = [self.union(value, items, f"layer{layer}_item_union_{head}") for value, head in zip(item_heads, heads, strict=True)]
            if len(heads) == 1:
                users, items = ops.relu(user_out[0]), ops.relu(item_out[0])
            else:
                kl = self.beta * gaussian_kl(*user_out) + gaussian_kl(*item_out)
                users = self.reparameterise(*user_out, seed(4 * layer + 2))
                items = self.reparameterise(*item_out, seed(4 * layer + 3))
            user_outputs.append(users)
            item_outputs.append(items)
        return ops.concatenate(user_outputs, axis=-1), ops.concatenate(item_outputs, axis=-1), kl

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments, for serialisation."""
        return {
            **super().get_config(),
            "num_users": self.num_users,
            "num_items": self.num_items,
            "edges": self.edges,
            "dim": self.dim,
            "layers": self.layers_count,
            "dropout": self.dropout,
            "beta": self.beta,
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package="xdt")
class CDRIB(keras.Model):
    """Two VBGEs, a user–user discriminator, and scoring of target items from source-side user representations.

    `call((users, positives, negatives))` takes global user ids and items in the combined index
    (source items first, target items offset by `num_source_items`, as `TwoDomainTriples`) and
    returns dot-product scores `(batch, 1 + k)`; the row's domain is its positive's. The training
    loss is computed in `compute_loss` (the compiled ranking loss is not used).
    """

    def __init__(
        self,
        num_users: int,
        num_source_items: int,
        num_items: int,
        source_users: int,
        target_users: int,
        shared_users: int,
        source_edges: int,
        target_edges: int,
        embedding_dim: int,
        layers: int = 3,
        dropout: float = 0.3,
        beta: float = 1.0,
        margin: float = 0.3,
        user_batch: int = 64,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.num_users = num_users
        self.num_source_items = num_source_items
        self.num_items = num_items
        self.source_users = source_users
        self.target_users = target_users
        self.shared_users = shared_users
        self.source_edges = source_edges
        self.target_edges = target_edges
        self.embedding_dim = embedding_dim
        self.layers_count = layers
        self.dropout = dropout
        self.beta = beta
        self.margin = margin
        self.user_batch = user_batch
        self.seed = seed
        self.source_encoder = VariationalBipartiteEncoder(
            source_users, num_source_items, source_edges, embedding_dim, layers, dropout, beta, seed=stream_seed(seed, 1), name="source_encoder"
        )
        self.target_encoder = VariationalBipartiteEncoder(
            target_users, num_items, target_edges, embedding_dim, layers, dropout, beta, seed=stream_seed(seed, 2), name="target_encoder"
        )
        self.discriminator = keras.Sequential(
            [
                keras.layers.Dense(embedding_dim, activation="relu", name="hidden_1"),
                keras.layers.Dense(100, activation="relu", name="hidden_2"),
                keras.layers.Dense(1, name="logit"),
            ],
            name="discriminator",
        )

    def build(self, input_shape: Any = None) -> None:
        """Encoders, discriminator and the index maps."""
        self.source_encoder.build()
        self.target_encoder.build()
        self.discriminator.build((None, 2 * self.layers_count * self.embedding_dim))
        # Rows of concat(source users, target users, one zero row) each global user reads:
        # `source_row_index` for its source training rows, `scoring_index` for target rows and target scores.
        self.source_row_index = self.add_weight(shape=(self.num_users,), dtype="int32", initializer="zeros", trainable=False, name="source_row_index")
        self.scoring_index = self.add_weight(shape=(self.num_users,), dtype="int32", initializer="zeros", trainable=False, name="scoring_index")
        self.shared_source = self.add_weight(shape=(self.shared_users,), dtype="int32", initializer="zeros", trainable=False, name="shared_source")
        self.shared_target = self.add_weight(shape=(self.shared_users,), dtype="int32", initializer="zeros", trainable=False, name="shared_target")
        self.built = True

    def set_graphs(self, source: DomainGraph, target: DomainGraph) -> None:
        """Store both graphs and the user index maps."""
        self.source_encoder.set_adjacency(*source.adjacencies())
        self.target_encoder.set_adjacency(*target.adjacencies())
        maps = user_maps(source.users, target.users, self.num_users)
        if len(maps["shared_source"]) != self.shared_users:
            raise ValueError(f"CDRIB was built for {self.shared_users} shared users; these graphs give {len(maps['shared_source'])}")
        for name, values in maps.items():
            getattr(self, name).assign(values)

    def representations(self, training: bool = False) -> tuple[Any, Any, Any, Any, Any]:
        """(all users `(Us + Ut + 1, L·d)`, source items, target items, source users, target users), plus KLs via add_loss in training."""
        # Training draws are a function of (seed, optimiser step), restored with a checkpoint: exact resume.
        step = self.optimizer.iterations if training and getattr(self, "optimizer", None) is not None else ops.zeros((), "int64")
        source_users, source_items, source_kl = self.source_encoder(training=training, step=step)
        target_users, target_items, target_kl = self.target_encoder(training=training, step=step)
        zero = ops.zeros((1, ops.shape(source_users)[1]), dtype=source_users.dtype)
        if training:
            self.add_loss(source_kl + target_kl + self.contrastive_loss(source_users, target_users, step))
        return ops.concatenate([source_users, target_users, zero], axis=0), source_items, target_items, source_users, target_users

    def random_subset(self, count: int, size: int, seed: Any) -> Any:
        """`size` distinct ids of range(count), uniformly (a random permutation's head)."""
        return ops.argsort(tf.random.stateless_uniform((count,), seed=seed))[:size]

    def contrastive_loss(self, source_users: Any, target_users: Any, step: Any = 0) -> Any:
        """Hinge on the discriminator: (u_s, u_t) of a shared user against (u_s, random target user) and (random source user, u_t)."""
        if self.shared_users == 0 or self.user_batch == 0:
            return ops.zeros(())
        size = min(self.user_batch, self.shared_users, self.source_users, self.target_users)
        seed = stream_seed(self.seed, 3)
        picked = self.random_subset(self.shared_users, size, draw_seed(seed, 0, step))
        anchor_source = ops.take(source_users, ops.take(self.shared_source, picked), axis=0)
        anchor_target = ops.take(target_users, ops.take(self.shared_target, picked), axis=0)
        other_target = ops.take(target_users, self.random_subset(self.target_users, size, draw_seed(seed, 1, step)), axis=0)
        other_source = ops.take(source_users, self.random_subset(self.source_users, size, draw_seed(seed, 2, step)), axis=0)
        positive = self.discriminate(anchor_source, anchor_target)
        return hinge(positive, self.discriminate(anchor_source, other_target), self.margin) + hinge(
            positive, self.discriminate(other_source, anchor_target), self.margin
        )

    def discriminate(self, source: Any, target: Any) -> Any:
        """Discriminator logits `(n,)` of (source, target) user representation pairs."""
        return ops.squeeze(self.discriminator(ops.concatenate([source, target], axis=-1)), -1)

    def call(self, inputs: tuple[Any, Any, Any], training: bool = False) -> Any:
        """Scores `(batch, 1 + k)`: the positive, then the negatives."""
        users, positives, negatives = inputs
        users = ops.cast(users, "int32")
        all_users, source_items, target_items, _, _ = self.representations(training)
        is_target = ops.cast(positives, "int32") >= self.num_source_items
        rows = ops.where(is_target, ops.take(self.scoring_index, users), ops.take(self.source_row_index, users))
        user_vectors = ops.take(all_users, rows, axis=0)
        item_vectors = ops.take(ops.concatenate([source_items, target_items], axis=0), candidate_items(positives, negatives), axis=0)
        return ops.sum(ops.expand_dims(user_vectors, 1) * item_vectors, axis=-1)

    def compute_loss(self, x: Any = None, y: Any = None, y_pred: Any = None, sample_weight: Any = None, training: bool = True) -> Any:
        """Binary cross-entropy per domain and label (means over that domain's rows), plus the KL and contrastive terms."""
        return two_domain_bce_loss(x[1], y_pred, self.num_source_items, self.losses)

    def score_all(self, users: Any) -> Any:
        """Target scores `(batch, num_items)`; a user with source training rows from its source-side representation."""
        all_users, _, target_items, _, _ = self.representations(False)
        vectors = ops.take(all_users, ops.take(self.scoring_index, ops.cast(users, "int32")), axis=0)
        return ops.matmul(vectors, ops.transpose(target_items))

    def score_all_source(self, users: Any) -> Any:
        """Source scores `(batch, num_source_items)`; a shared user from its target-side representation, as trained."""
        all_users, source_items, _, _, _ = self.representations(False)
        vectors = ops.take(all_users, ops.take(self.source_row_index, ops.cast(users, "int32")), axis=0)
        return ops.matmul(vectors, ops.transpose(source_items))

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments, for serialisation."""
        return {
            **super().get_config(),
            "num_users": self.num_users,
            "num_source_items": self.num_source_items,
            "num_items": self.num_items,
            "source_users": self.source_users,
            "target_users": self.target_users,
            "shared_users": self.shared_users,
            "source_edges": self.source_edges,
            "target_edges": self.target_edges,
            "embedding_dim": self.embedding_dim,
            "layers": self.layers_count,
            "dropout": self.dropout,
            "beta": self.beta,
            "margin": self.margin,
            "user_batch": self.user_batch,
            "seed": self.seed,
        }


def user_maps(source_users: np.ndarray, target_users: np.ndarray, num_users: int) -> dict[str, np.ndarray]:
    """Index maps from global users to rows of concat(source users, target users, zero row).

    Shared users (training rows in both domains) read the other domain's row for their training
    rows (cross-domain reconstruction). On target items every user with source training rows is
    scored from its source row, a user with target rows only from its target row; on source items
    (`source_row_index`) the other way round; anyone else from the zero row.
    """
    source_local = np.full(num_users, -1, np.int64)
    source_local[source_users] = np.arange(len(source_users))
    target_local = np.full(num_users, -1, np.int64)
    target_local[target_users] = np.arange(len(target_users))
    zero_row = len(source_users) + len(target_users)
    has_source, has_target = source_local >= 0, target_local >= 0
    shared = has_source & has_target
    target_row = np.where(has_target, len(source_users) + target_local, zero_row)
    # Symmetric to `scoring`: the target side for anyone with target rows, else the source side.
    source_row = np.where(has_target, target_row, np.where(has_source, source_local, zero_row))
    scoring = np.where(has_source, source_local, target_row)
    return {
        "source_row_index": source_row.astype(np.int32),
        "scoring_index": scoring.astype(np.int32),
        "shared_source": source_local[shared].astype(np.int32),
        "shared_target": target_local[shared].astype(np.int32),
    }


def cdrib_from_rows(
    source_users: np.ndarray,
    source_items: np.ndarray,
    target_users: np.ndarray,
    target_items: np.ndarray,
    num_users: int,
    num_source_items: int,
    num_items: int,
    embedding_dim: int,
    **settings: Any,
) -> CDRIB:
    """A built CDRIB over the graphs of these source and target training rows (global user ids)."""
    source = DomainGraph.from_rows(source_users, source_items, num_source_items)
    target = DomainGraph.from_rows(target_users, target_items, num_items)
    shared = len(np.intersect1d(source.users, target.users))
    model = CDRIB(
        num_users, num_source_items, num_items, len(source.users), len(target.users), shared, source.edges, target.edges, embedding_dim, **settings
    )
    model.build()
    model.set_graphs(source, target)
    return model
