"""DisenCDR (Cao et al., SIGIR 2022): disentangled domain-shared and domain-specific user representations.

Per domain, a *specific* variational graph encoder turns that domain's user and item embeddings
into Gaussian posteriors (the CDRIB-style layer: user → item → user and item → user → item graph
convolutions with LeakyReLU 0.1, concatenated with the node's input, a linear union; ReLU between
layers, mean and log-std heads in the last). A *shared* encoder propagates each domain's own
shared-user embeddings over its graph and blends the two domains (`rate` · source + (1 − rate) ·
target after every layer, the last one's mean and log-std included): q(z_shared | both graphs).
Two *domain-share* encoders (user path only) give q(z_shared | one domain's graph) from the
domain's specific user embeddings, as the official code (cjx96/DisenCDR) feeds them.

A user's representation in domain X is sampled z_shared + sampled z_X-specific (the means at
inference); items are the specific encoder's item posterior. The objective, as the official code:

- reconstruction: pointwise binary cross-entropy on each domain's training rows and sampled
  negatives (mean per domain and label, summed over domains);
- KL(q_X-specific ‖ prior) of users and items, per domain;
- (1 − beta) · KL(q_shared ‖ prior) + beta · KL(q_shared ‖ q_shared|source) + beta · KL(q_shared ‖
  q_shared|target): the official code's form of the paper's exclusive / shared-information terms.

KLs: σ = exp(0.1 + 0.9 · softplus(logstd)), prior N(0, σ(1)²), mean over nodes, summed over
dimensions. `warmup_steps` is the official warm-up: for those first optimiser steps a user is the specific
part alone and the shared KL terms are left out (the official code's first 9 epochs; the method
converts `transfer.disencdr_warmup_epochs` into steps). Deliberate differences from the official
code: the reparameterisation multiplies the noise by σ (the official code by exp(σ)); the
validation split, never test, picks the epoch (bench/README.md).

Graph propagation is a sparse matmul over the training edges, over all users (a user without rows
in a domain has an empty adjacency row), on the whole graph at every step.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from xdt.models.cdrib import LEAKY_SLOPE, DomainGraph, csr_matrix, draw_seed, sparse_matmul, stream_seed, two_domain_bce_loss
from xdt.models.matrix_factorization import candidate_items

DOMAINS = ("source", "target")
PRIOR_LOGSTD = 1.0


def sigma_of(logstd: Any) -> Any:
    """σ = exp(0.1 + 0.9 · softplus(logstd)), the official std transform."""
    return ops.exp(0.1 + 0.9 * ops.softplus(logstd))


def gaussian_kl(mean: Any, logstd: Any, other_mean: Any, other_logstd: Any) -> Any:
    """KL(N(mean, σ²) ‖ N(other_mean, σ_other²)) per node summed over dimensions, mean over nodes."""
    sigma, other = sigma_of(logstd), sigma_of(other_logstd)
    per_element = ops.log(other / sigma) + (ops.square(sigma) + ops.square(mean - other_mean)) / (2.0 * ops.square(other)) - 0.5
    return ops.mean(ops.sum(per_element, axis=-1))


def prior_kl(mean: Any, logstd: Any) -> Any:
    """KL against the official prior N(0, σ(1)²)."""
    return gaussian_kl(mean, logstd, ops.zeros_like(mean), ops.full_like(logstd, PRIOR_LOGSTD))


def full_graph(users: np.ndarray, items: np.ndarray, num_users: int, num_items: int) -> DomainGraph:
    """A domain's distinct training pairs over all `num_users` global users (users without rows keep empty rows)."""
    pairs = np.unique(np.stack([np.asarray(users, np.int64), np.asarray(items, np.int64)], axis=1), axis=0)
    return DomainGraph(np.arange(num_users), pairs[:, 0], pairs[:, 1], num_items)


@keras.saving.register_keras_serializable(package="xdt")
class DisenCDR(keras.Model):
    """Shared + specific variational graph encoders over both domains' graphs, scoring both domains.

    `call((users, positives, negatives))` takes global user ids and items in the combined index
    (source items first, target items offset by `num_source_items`, as `TwoDomainTriples`) and
    returns dot-product scores `(batch, 1 + k)` in the positive's domain. The loss is `compute_loss`.
    """

    def __init__(
        self,
        num_users: int,
        num_source_items: int,
        num_items: int,
        source_edges: int,
        target_edges: int,
        embedding_dim: int,
        layers: int = 2,
        dropout: float = 0.3,
        beta: float = 0.9,
        rate: float = 0.5,
        seed: int | None = None,
        warmup_steps: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if layers < 1:
            raise ValueError(f"Expected layers >= 1. Received: layers={layers}")
        if warmup_steps < 0:
            raise ValueError(f"Expected warmup_steps >= 0. Received: warmup_steps={warmup_steps}")
        self.num_users = num_users
        self.num_source_items = num_source_items
        self.num_items = num_items
        self.source_edges = source_edges
        self.target_edges = target_edges
        self.embedding_dim = embedding_dim
        self.layers_count = layers
        self.dropout = dropout
        self.beta = beta
        self.rate = rate
        self.seed = seed
        # The official warm-up: for the first optimiser steps a user is the specific encoder alone
        # and the shared terms stay out of the loss (the official `wramup`, its first 9 epochs).
        self.warmup_steps = warmup_steps

    def items_of(self, domain: str) -> int:
        """Item count of a domain."""
        return self.num_source_items if domain == "source" else self.num_items

    def build(self, input_shape: Any = None) -> None:
        """Embeddings, both graphs and every encoder's weights (PyTorch's default initialisations)."""
        d = self.embedding_dim
        normal = keras.initializers.RandomNormal(stddev=1.0)
        self.weights_by_name: dict[str, Any] = {}

        def add(name: str, shape: tuple[int, ...], initializer: Any, **options: Any) -> None:
            self.weights_by_name[name] = self.add_weight(shape=shape, initializer=initializer, name=name, **options)

        def uniform(name: str, shape: tuple[int, ...], fan: int) -> None:
            bound = 1.0 / math.sqrt(fan)
            add(name, shape, keras.initializers.RandomUniform(-bound, bound))

        def layer_weights(prefix: str, heads: tuple[str, ...]) -> None:
            uniform(f"{prefix}_gc1_kernel", (d, d), d)
            uniform(f"{prefix}_gc1_bias", (d,), d)
            for head in heads:
                uniform(f"{prefix}_gc2_{head}_kernel", (d, d), d)
                uniform(f"{prefix}_gc2_{head}_bias", (d,), d)
                uniform(f"{prefix}_union_{head}_kernel", (2 * d, d), 2 * d)
                uniform(f"{prefix}_union_{head}_bias", (d,), 2 * d)

        for domain, edges in zip(DOMAINS, (self.source_edges, self.target_edges), strict=True):
            add(f"{domain}_user", (self.num_users, d), normal)
            add(f"{domain}_item", (self.items_of(domain), d), normal)
            add(f"{domain}_shared_user", (self.num_users, d), normal)
            for name in ("uv", "vu"):
                add(f"{domain}_{name}_indices", (edges, 2), "zeros", dtype="int64", trainable=False)
                add(f"{domain}_{name}_values", (edges,), "zeros", trainable=False)
                add(f"{domain}_{name}_transpose_values", (edges,), "zeros", trainable=False)
            for layer in range(self.layers_count):
                heads = ("mean", "logstd") if layer == self.layers_count - 1 else ("out",)
                for encoder in ("specific_user", "specific_item", "share_user", "cross_user"):
                    layer_weights(f"{domain}_{encoder}{layer}", heads)
        self.built = True

    def set_graphs(self, source: DomainGraph, target: DomainGraph) -> None:
        """Store both domains' row-normalised adjacencies (DomainGraph.adjacencies)."""
        for domain, graph in zip(DOMAINS, (source, target), strict=True):
            names = ("uv_indices", "uv_values", "vu_indices", "vu_values", "uv_transpose_values", "vu_transpose_values")
            for name, value in zip(names, graph.adjacencies(), strict=True):
                weight = self.weights_by_name[f"{domain}_{name}"]
                if weight.shape[0] != len(value):
                    raise ValueError(f"DisenCDR was built for {weight.shape[0]} {domain} edges; this graph gives {len(value)}")
                weight.assign(value)

    def adjacency(self, domain: str) -> tuple[tuple[Any, Any], tuple[Any, Any]]:
        """(UV, UVᵀ) and (VU, VUᵀ) CSR pairs of a domain (UVᵀ shares VU's indices, VUᵀ UV's)."""
        w = self.weights_by_name
        users, items = self.num_users, self.items_of(domain)
        uv = (csr_matrix(w[f"{domain}_uv_indices"], w[f"{domain}_uv_values"], (users, items)),
              csr_matrix(w[f"{domain}_vu_indices"], w[f"{domain}_uv_transpose_values"], (items, users)))
        vu = (csr_matrix(w[f"{domain}_vu_indices"], w[f"{domain}_vu_values"], (items, users)),
              csr_matrix(w[f"{domain}_uv_indices"], w[f"{domain}_vu_transpose_values"], (users, items)))
        return uv, vu

    def convolve(self, x: Any, adjacency: Any, name: str) -> Any:
        """LeakyReLU(A · x · W + b)."""
        kernel, bias = self.weights_by_name[f"{name}_kernel"], self.weights_by_name[f"{name}_bias"]
        return ops.leaky_relu(sparse_matmul(*adjacency, ops.matmul(x, kernel)) + bias, negative_slope=LEAKY_SLOPE)

    def hop(self, x: Any, there: Any, back: Any, prefix: str, heads: tuple[str, ...]) -> list[Any]:
        """One layer for one node type: two convolutions (x → other side → x), then Linear([propagated, x]) per head."""
        hidden = self.convolve(x, there, f"{prefix}_gc1")
        outputs = []
        for head in heads:
            propagated = self.convolve(hidden, back, f"{prefix}_gc2_{head}")
            kernel, bias = self.weights_by_name[f"{prefix}_union_{head}_kernel"], self.weights_by_name[f"{prefix}_union_{head}_bias"]
            outputs.append(ops.matmul(ops.concatenate([propagated, x], axis=-1), kernel) + bias)
        return outputs

    def drop(self, x: Any, seed: Any) -> Any:
        """Dropout on a layer's input in training (`seed` given)."""
        if seed is None or not self.dropout:
            return x
        return tf.nn.experimental.stateless_dropout(x, self.dropout, seed=seed)

    def heads(self, layer: int) -> tuple[str, ...]:
        """The last layer is variational."""
        return ("mean", "logstd") if layer == self.layers_count - 1 else ("out",)

    def specific(self, domain: str, seed: Any) -> tuple[Any, Any, Any, Any]:
        """(user mean, user logstd, item mean, item logstd) of a domain's specific encoder."""
        uv, vu = self.adjacency(domain)
        users = ops.convert_to_tensor(self.weights_by_name[f"{domain}_user"])
        items = ops.convert_to_tensor(self.weights_by_name[f"{domain}_item"])
        for layer in range(self.layers_count):
            users = self.drop(users, None if seed is None else seed(10 * layer))
            items = self.drop(items, None if seed is None else seed(10 * layer + 1))
            user_out = self.hop(users, vu, uv, f"{domain}_specific_user{layer}", self.heads(layer))
            item_out = self.hop(items, uv, vu, f"{domain}_specific_item{layer}", self.heads(layer))
            if layer < self.layers_count - 1:
                users, items = ops.relu(user_out[0]), ops.relu(item_out[0])
        return user_out[0], user_out[1], item_out[0], item_out[1]

    def domain_share(self, domain: str, seed: Any) -> tuple[Any, Any]:
        """(mean, logstd) of q(z_shared | this domain's graph), from the domain's specific user embeddings."""
        uv, vu = self.adjacency(domain)
        users = ops.convert_to_tensor(self.weights_by_name[f"{domain}_user"])
        for layer in range(self.layers_count):
            users = self.drop(users, None if seed is None else seed(10 * layer + 2))
            out = self.hop(users, vu, uv, f"{domain}_share_user{layer}", self.heads(layer))
            users = ops.relu(out[0])
        return out[0], out[1]

    def cross(self, seed: Any) -> tuple[Any, Any]:
        """(mean, logstd) of q(z_shared | both graphs): each layer blends the domains, rate · source + (1 − rate) · target."""
        inputs = {domain: ops.convert_to_tensor(self.weights_by_name[f"{domain}_shared_user"]) for domain in DOMAINS}
        for layer in range(self.layers_count):
            outputs = {}
            for index, domain in enumerate(DOMAINS):
                uv, vu = self.adjacency(domain)
                x = self.drop(inputs[domain], None if seed is None else seed(10 * layer + 3 + index))
                outputs[domain] = self.hop(x, vu, uv, f"{domain}_cross_user{layer}", self.heads(layer))
            if layer < self.layers_count - 1:
                blended = self.rate * ops.relu(outputs["source"][0]) + (1.0 - self.rate) * ops.relu(outputs["target"][0])
                inputs = {domain: blended for domain in DOMAINS}
        mean = self.rate * outputs["source"][0] + (1.0 - self.rate) * outputs["target"][0]
        logstd = self.rate * outputs["source"][1] + (1.0 - self.rate) * outputs["target"][1]
        return mean, logstd

    def sample(self, mean: Any, logstd: Any, seed: Any) -> Any:
        """mean + σ · ε in training (`seed` given), the mean otherwise."""
        if seed is None:
            return mean
        return mean + tf.random.stateless_normal(tf.shape(mean), seed=seed) * sigma_of(logstd)

    def regulariser(self, parts: dict[str, Any], shared_weight: Any = 1.0) -> Any:
        """The specific encoders' KLs against the prior and, times `shared_weight` (0 in warm-up), the shared terms."""
        total = ops.zeros(())
        for domain in DOMAINS:
            total = total + prior_kl(*parts[f"{domain}_user"]) + prior_kl(*parts[f"{domain}_item"])
        shared = parts["shared"]
        shared_terms = (1.0 - self.beta) * prior_kl(*shared)
        for domain in DOMAINS:
            shared_terms = shared_terms + self.beta * gaussian_kl(*shared, *parts[f"{domain}_share"])
        return total + shared_weight * shared_terms

    def representations(self, training: bool = False) -> dict[str, Any]:
        """{source_users, target_users `(num_users, d)`, source_items, target_items}; the regulariser via add_loss in training."""
        step = self.optimizer.iterations if training and getattr(self, "optimizer", None) is not None else ops.zeros((), "int64")
        base = stream_seed(self.seed, 4)

        def seed(salt: int) -> Any:
            return draw_seed(base, salt, step)

        layer_seed = seed if training else None
        parts: dict[str, Any] = {}
        for domain in DOMAINS:
            user_mean, user_logstd, item_mean, item_logstd = self.specific(domain, layer_seed)
            parts[f"{domain}_user"], parts[f"{domain}_item"] = (user_mean, user_logstd), (item_mean, item_logstd)
            if training:
                parts[f"{domain}_share"] = self.domain_share(domain, layer_seed)
        parts["shared"] = self.cross(layer_seed)
        # 0 while the step is in the warm-up, else 1; inference always uses the shared part.
        shared_weight = ops.cast(ops.greater_equal(step, self.warmup_steps), "float32") if training else ops.ones(())
        if training:
            self.add_loss(self.regulariser(parts, shared_weight))
        draw = (lambda salt: seed(1000 + salt)) if training else (lambda salt: None)
        shared_user = shared_weight * self.sample(*parts["shared"], draw(0))
        result = {}
        for index, domain in enumerate(DOMAINS):
            result[f"{domain}_users"] = shared_user + self.sample(*parts[f"{domain}_user"], draw(1 + 2 * index))
            result[f"{domain}_items"] = self.sample(*parts[f"{domain}_item"], draw(2 + 2 * index))
        return result

    def call(self, inputs: tuple[Any, Any, Any], training: bool = False) -> Any:
        """Scores `(batch, 1 + k)`: the positive, then the negatives, in the positive's domain."""
        users, positives, negatives = inputs
        users = ops.cast(users, "int32")
        found = self.representations(training)
        is_target = ops.expand_dims(ops.cast(ops.cast(positives, "int32") >= self.num_source_items, found["source_users"].dtype), -1)
        user_vectors = (1.0 - is_target) * ops.take(found["source_users"], users, axis=0) + is_target * ops.take(found["target_users"], users, axis=0)
        item_vectors = ops.take(ops.concatenate([found["source_items"], found["target_items"]], axis=0), candidate_items(positives, negatives), axis=0)
        return ops.sum(ops.expand_dims(user_vectors, 1) * item_vectors, axis=-1)

    def compute_loss(self, x: Any = None, y: Any = None, y_pred: Any = None, sample_weight: Any = None, training: bool = True) -> Any:
        """Binary cross-entropy per domain and label (means over that domain's rows), plus the KL regulariser."""
        return two_domain_bce_loss(x[1], y_pred, self.num_source_items, self.losses)

    def score_all(self, users: Any) -> Any:
        """Target scores `(batch, num_items)`."""
        found = self.representations(False)
        return ops.matmul(ops.take(found["target_users"], ops.cast(users, "int32"), axis=0), ops.transpose(found["target_items"]))

    def score_all_source(self, users: Any) -> Any:
        """Source scores `(batch, num_source_items)` (dual target)."""
        found = self.representations(False)
        return ops.matmul(ops.take(found["source_users"], ops.cast(users, "int32"), axis=0), ops.transpose(found["source_items"]))

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments, for serialisation."""
        return {
            **super().get_config(),
            "num_users": self.num_users,
            "num_source_items": self.num_source_items,
            "num_items": self.num_items,
            "source_edges": self.source_edges,
            "target_edges": self.target_edges,
            "embedding_dim": self.embedding_dim,
            "layers": self.layers_count,
            "dropout": self.dropout,
            "beta": self.beta,
            "rate": self.rate,
            "seed": self.seed,
            "warmup_steps": self.warmup_steps,
        }


def disencdr_from_rows(
    source_users: np.ndarray,
    source_items: np.ndarray,
    target_users: np.ndarray,
    target_items: np.ndarray,
    num_users: int,
    num_source_items: int,
    num_items: int,
    embedding_dim: int,
    **settings: Any,
) -> DisenCDR:
    """A built DisenCDR over the graphs of these source and target training rows (global user ids)."""
    source = full_graph(source_users, source_items, num_users, num_source_items)
    target = full_graph(target_users, target_items, num_users, num_items)
    model = DisenCDR(num_users, num_source_items, num_items, source.edges, target.edges, embedding_dim, **settings)
    model.build()
    model.set_graphs(source, target)
    return model
