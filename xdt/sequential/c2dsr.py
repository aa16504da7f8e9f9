"""C2DSR (Cao et al., "Contrastive Cross-Domain Sequential Recommendation", CIKM 2022) in Keras.

Three causal self-attention encoders read one user's mixed sequence in three views, aligned
position by position: the mixed sequence itself, the source-only view (target items replaced
by padding) and the target-only view (source items replaced by padding). Their inputs are
graph-smoothed item embeddings: `E + GCN(E)`, the GCN propagating over the item-item transition
graph of the training sequences (an edge a → b for every consecutive pair, weighted by its count
and row-normalised, D⁻¹A). The mixed encoder uses one table over the cross-domain graph; the
domain-only encoders share a second table over the within-domain graph (consecutive items of the
same domain). Per-domain linear next-item heads score the items of each domain:

- "share" losses: the mixed state at t predicts the next item of either domain with that
  domain's head;
- "specific" losses: mixed + source-only state at a source position predict the next source
  item, mixed + target-only state at a target position the next target item;
- the cross-domain infomax: a bilinear discriminator tells the user's source-only summary (mean
  over its labelled source positions) paired with the mixed summary over target positions from
  the same pairing with a corrupted mixed sequence (its source items replaced by random source
  items), BCE; and symmetrically for the target side.

Loss = λ (share_s + share_t + specific_s + specific_t) + (1 − λ)(infomax_s + infomax_t), λ = 0.7
in the paper. Prediction of the next target item: `W_t (mixed[-1] + target_only[last target
position]) + b_t`, exposed as `last_hidden` · `candidate_vectors` (the state gets a constant 1
appended and each candidate its head bias), so `xdt.sequential.evaluation` and the recommend path
rank it exactly like the SASRec-style transformer.

Deliberate differences from the official code (github.com/cjx96/C2DSR), and why:

- The single-domain encoders share one embedding table (and one GCN over the block-diagonal
  within-domain graph) instead of two tables of the whole vocabulary: each encoder only ever
  reads its own domain's rows, so this is the same function with half the parameters.
- The GCN propagates without its unused weight matrices (the official `GraphConvolution` never
  applies its weight) and without their biases, which only add a constant per layer.
- No extra "padding" class in the heads and the cross-entropy is averaged over labelled positions
  (the official code adds a learned pad logit to every softmax and averages over all positions,
  masked ones as zeros); every position of the window is trained (official: the last 10).
- Padding keys are masked in attention and the blocks are the project's pre-norm `CausalBlock`
  (the official code masks only the causal direction); positions count back from the newest slot
  of the mixed window in all three views (official: within-domain ranks in the domain views).
- Corruptions are drawn afresh every batch from `(seed, epoch)` (official: once at load time), and
  the infomax terms average over the batch's users that have labelled positions in both domains
  (the official loader drops users lacking either, which would drop most of our single-domain users).
- A user without target history gets a zero target-only state at prediction time.
- Optionally (`loss="sampled"`), the heads train with a sampled softmax over uniform negatives
  shared by the batch instead of the full softmax: on 2 CPU cores the full softmax over 27,637
  Kitchen items makes an epoch of LLMCDSR Food → Kitchen take many minutes (the project's other
  sequence models train the same way there, bench/sequential_quality.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from xdt.sequential.data import PAD, ItemVocabulary, UserSequences, left_pad
from xdt.sequential.training import TrainingHistory, TrainingSettings, apply_gradients, run_epochs
from xdt.sequential.transformer import CausalBlock, causal_attention_mask

SOURCE_ID, TARGET_ID = 1, 2


def transition_graph(sequences: UserSequences, vocabulary: ItemVocabulary, *, within_domain: bool) -> tuple[np.ndarray, np.ndarray]:
    """Row-normalised item transition graph `(edges (2, nnz) int32 rows/cols, weights (nnz,) float32)` over tokens.

    Cross-domain (`within_domain=False`): an edge a → b for every consecutive pair of a sequence.
    Within-domain: a → b for consecutive items of the same domain (items of the other domain in
    between are skipped). Repeated pairs add up; each row is divided by its sum (D⁻¹A). Example:
    sequences [1, 2, 1, 3] → A[1,2] = A[1,3] = 1/2, A[2,1] = 1.
    """
    rows, cols = [], []
    for index in range(len(sequences)):
        tokens = sequences.sequence(index)
        if within_domain:
            domains = vocabulary.domain_ids(tokens)
            for domain in (SOURCE_ID, TARGET_ID):
                own = tokens[domains == domain]
                rows.append(own[:-1])
                cols.append(own[1:])
        else:
            rows.append(tokens[:-1])
            cols.append(tokens[1:])
    row = np.concatenate(rows).astype(np.int64) if rows else np.zeros(0, np.int64)
    col = np.concatenate(cols).astype(np.int64) if cols else np.zeros(0, np.int64)
    pairs, counts = np.unique(row * vocabulary.size + col, return_counts=True)
    row, col = pairs // vocabulary.size, pairs % vocabulary.size
    out_degree = np.bincount(row, weights=counts, minlength=vocabulary.size)
    weights = (counts / out_degree[row]).astype(np.float32)
    return np.stack([row, col]).astype(np.int32), weights


def dense_graph(edges: np.ndarray, weights: np.ndarray, size: int) -> np.ndarray:
    """The `(size, size)` matrix of a sparse graph (for tests and inspection)."""
    matrix = np.zeros((size, size), dtype=np.float32)
    np.add.at(matrix, (edges[0], edges[1]), weights)
    return matrix


@dataclass(frozen=True)
class C2DSRExamples:
    """Training windows `(n, max_length)` int32 tokens, 0 = no label there.

    `labels`: the next item of the mixed sequence (either domain); `source_labels`: at source
    positions, the user's next source item (later in the window, other items skipped);
    `target_labels`: the same for target positions.
    """

    items: np.ndarray
    labels: np.ndarray
    source_labels: np.ndarray
    target_labels: np.ndarray

    def __len__(self) -> int:
        return len(self.items)


def c2dsr_examples(sequences: UserSequences, vocabulary: ItemVocabulary, *, max_length: int) -> C2DSRExamples:
    """One window per user: the last `max_length + 1` tokens, inputs `w[:-1]`; users with no label dropped.

    Example (source tokens 1-3, target 4-6): tokens [1, 4, 2, 5], max_length 3 → items [1, 4, 2],
    labels [4, 2, 5], source_labels [2, 0, 0] (no source item after 2), target_labels [0, 5, 0].
    """
    if max_length < 1:
        raise ValueError(f"Expected max_length >= 1. Received: max_length={max_length}")
    windows = np.zeros((len(sequences), max_length + 1), dtype=np.int32)
    for index in range(len(sequences)):
        windows[index] = left_pad(sequences.sequence(index), max_length + 1)
    items, labels = windows[:, :-1], windows[:, 1:].copy()
    labels[items == PAD] = PAD
    domains = vocabulary.domain_ids(windows)
    next_of = {}
    for domain in (SOURCE_ID, TARGET_ID):
        following = np.zeros_like(windows)
        upcoming = np.zeros(len(windows), dtype=np.int32)
        for column in range(max_length, -1, -1):
            following[:, column] = upcoming
            upcoming = np.where(domains[:, column] == domain, windows[:, column], upcoming)
        next_of[domain] = np.where(domains[:, :-1] == domain, following[:, :-1], PAD).astype(np.int32)
    keep = (labels != PAD).any(axis=1)
    return C2DSRExamples(items[keep], labels[keep].astype(np.int32), next_of[SOURCE_ID][keep], next_of[TARGET_ID][keep])


@keras.saving.register_keras_serializable(package="xdt")
class CausalEncoder(keras.layers.Layer):
    """Positions + dropout + causal pre-norm blocks + output norm over embedded inputs `(batch, length, width)`.

    `valid` `(batch, length)` marks real items: padding inputs are zeroed and never attended to.
    Positions count back from the newest slot (left padding), as in `SequenceTransformer`. The
    feed-forward layers keep the width (`feed_forward_width=width`, as the official point-wise
    feed-forward does) unless told otherwise.
    """

    def __init__(
        self, max_length: int, width: int, layers: int, heads: int, dropout: float, feed_forward_width: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.max_length = max_length
        self.width = width
        self.layer_count = layers
        self.heads = heads
        self.dropout_rate = dropout
        self.feed_forward_width = feed_forward_width or width
        self.position_embedding = keras.layers.Embedding(
            max_length, width, embeddings_initializer=keras.initializers.TruncatedNormal(stddev=0.02), name="position_embedding"
        )
        self.input_dropout = keras.layers.Dropout(dropout)
        self.blocks = [CausalBlock(width, heads, self.feed_forward_width, dropout, name=f"block_{index}") for index in range(layers)]
        self.output_norm = keras.layers.LayerNormalization(epsilon=1e-6, name="output_norm")

    def build(self, input_shape: Any = None) -> None:
        self.position_embedding.build((None,))
        for block in self.blocks:
            block.build((None, self.max_length, self.width))
        self.output_norm.build((None, self.max_length, self.width))
        self.built = True

    def call(self, hidden: Any, valid: Any, training: bool = False) -> Any:
        length = ops.shape(hidden)[1]
        positions = ops.arange(self.max_length - length, self.max_length, dtype="int32")
        hidden = self.input_dropout(hidden + self.position_embedding(positions)[None], training=training)
        hidden = hidden * ops.cast(valid, hidden.dtype)[..., None]
        attention_mask = causal_attention_mask(valid, length)
        for block in self.blocks:
            hidden = block(hidden, attention_mask, training=training)
        return self.output_norm(hidden)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "max_length": self.max_length,
            "width": self.width,
            "layers": self.layer_count,
            "heads": self.heads,
            "dropout": self.dropout_rate,
            "feed_forward_width": self.feed_forward_width,
        }


@keras.saving.register_keras_serializable(package="xdt")
class C2DSR(keras.Model):
    """The three-encoder C2DSR model over `{"items", "domains"}` `(batch, length)` tokens (see the module docstring).

    `call` returns the mixed, source-only and target-only states `(batch, length, width)`;
    `last_hidden` · `candidate_vectors(target tokens)` are the next-target-item scores. Windows
    longer than `max_length` are cut to their newest `max_length` items. The two
    transition graphs live in the model as constant weights (`set_graphs`), so a saved model
    carries them; `mixed_edges`/`domain_edges` are their edge counts.
    """

    def __init__(
        self,
        vocabulary_size: int,
        n_source: int,
        max_length: int,
        *,
        mixed_edges: int,
        domain_edges: int,
        width: int = 64,
        layers: int = 2,
        heads: int = 1,
        dropout: float = 0.2,
        graph_layers: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not 0 <= n_source < vocabulary_size - 1:
            raise ValueError(f"Expected 0 <= n_source < vocabulary_size - 1. Received: n_source={n_source}, vocabulary_size={vocabulary_size}")
        if graph_layers < 0:
            raise ValueError(f"Expected graph_layers >= 0. Received: graph_layers={graph_layers}")
        self.vocabulary_size = vocabulary_size
        self.n_source = n_source
        self.n_target = vocabulary_size - 1 - n_source
        self.max_length = max_length
        self.mixed_edges = mixed_edges
        self.domain_edges = domain_edges
        self.width = width
        self.layer_count = layers
        self.heads = heads
        self.dropout_rate = dropout
        self.graph_layers = graph_layers
        initializer = keras.initializers.TruncatedNormal(stddev=0.02)
        self.item_embedding = keras.layers.Embedding(vocabulary_size, width, embeddings_initializer=initializer, name="item_embedding")
        self.domain_item_embedding = keras.layers.Embedding(
            vocabulary_size, width, embeddings_initializer=initializer, name="domain_item_embedding"
        )
        self.graph_dropout = keras.layers.Dropout(dropout)
        self.mixed_encoder = CausalEncoder(max_length, width, layers, heads, dropout, name="mixed_encoder")
        self.source_encoder = CausalEncoder(max_length, width, layers, heads, dropout, name="source_encoder")
        self.target_encoder = CausalEncoder(max_length, width, layers, heads, dropout, name="target_encoder")
        self.source_head = keras.layers.Dense(self.n_source, name="source_head")
        self.target_head = keras.layers.Dense(self.n_target, name="target_head")

    def build(self, inputs_shape: Any = None) -> None:
        self.item_embedding.build((None,))
        self.domain_item_embedding.build((None,))
        for encoder in (self.mixed_encoder, self.source_encoder, self.target_encoder):
            encoder.build()
        self.source_head.build((None, self.width))
        self.target_head.build((None, self.width))
        self.source_discriminator = self.add_weight(shape=(self.width, self.width), initializer="glorot_uniform", name="source_discriminator")
        self.target_discriminator = self.add_weight(shape=(self.width, self.width), initializer="glorot_uniform", name="target_discriminator")
        self.discriminator_bias = self.add_weight(shape=(2,), initializer="zeros", name="discriminator_bias")
        graph = {}
        for name, count in (("mixed", self.mixed_edges), ("domain", self.domain_edges)):
            graph[name] = (
                self.add_weight(shape=(2, count), initializer="zeros", dtype="int32", trainable=False, name=f"{name}_graph_edges"),
                self.add_weight(shape=(count,), initializer="zeros", trainable=False, name=f"{name}_graph_weights"),
            )
        self.graph = graph
        self.built = True

    def set_graphs(self, mixed: tuple[np.ndarray, np.ndarray], domain: tuple[np.ndarray, np.ndarray]) -> None:
        """Store the cross-domain and within-domain graphs of `transition_graph`."""
        if not self.built:
            self.build()
        for name, (edges, weights) in (("mixed", mixed), ("domain", domain)):
            if edges.shape[1] != self.graph[name][0].shape[1]:
                raise ValueError(f"Expected {self.graph[name][0].shape[1]} {name} edges. Received: {edges.shape[1]}")
            self.graph[name][0].assign(edges.astype(np.int32))
            self.graph[name][1].assign(weights.astype(np.float32))

    def smoothed_items(self, name: str, training: bool = False) -> Any:
        """`(vocabulary_size, width)`: the table plus the mean of its 0..graph_layers propagations (the official GCN), i.e. E + GCN(E)."""
        table = (self.item_embedding if name == "mixed" else self.domain_item_embedding).embeddings
        edges, weights = self.graph[name]
        adjacency = tf.sparse.SparseTensor(
            tf.cast(tf.transpose(ops.convert_to_tensor(edges)), tf.int64), ops.convert_to_tensor(weights), (self.vocabulary_size, self.vocabulary_size)
        )
        propagated, total = table, table
        for _ in range(self.graph_layers):
            propagated = tf.sparse.sparse_dense_matmul(adjacency, self.graph_dropout(propagated, training=training))
            total = total + propagated
        return table + total / (self.graph_layers + 1)

    def _encode(self, name: str, table: Any, items: Any, training: bool) -> Any:
        hidden = ops.take(table, items, axis=0) * (self.width**0.5)
        encoder = {"mixed": self.mixed_encoder, "source": self.source_encoder, "target": self.target_encoder}[name]
        return encoder(hidden, ops.not_equal(items, PAD), training=training)

    def call(self, inputs: dict[str, Any], training: bool = False) -> tuple[Any, Any, Any]:
        """Mixed, source-only and target-only states `(batch, length, width)` (position t sees tokens 0..t)."""
        items = ops.convert_to_tensor(inputs["items"], "int32")[:, -self.max_length :]
        domains = ops.convert_to_tensor(inputs["domains"], "int32")[:, -self.max_length :]
        mixed_table = self.smoothed_items("mixed", training)
        domain_table = self.smoothed_items("domain", training)
        mixed = self._encode("mixed", mixed_table, items, training)
        source = self._encode("source", domain_table, ops.where(ops.equal(domains, SOURCE_ID), items, PAD), training)
        target = self._encode("target", domain_table, ops.where(ops.equal(domains, TARGET_ID), items, PAD), training)
        return mixed, source, target

    def encode_mixed(self, items: Any, training: bool = False) -> Any:
        """The mixed encoder alone over `items` (used for corrupted sequences)."""
        return self._encode("mixed", self.smoothed_items("mixed", training), ops.convert_to_tensor(items, "int32")[:, -self.max_length :], training)

    def last_hidden(self, inputs: dict[str, Any], training: bool = False) -> Any:
        """`(batch, width + 1)`: [mixed state at the newest slot + target-only state at the newest target item, 1]."""
        mixed, _, target = self(inputs, training=training)
        is_target = ops.equal(ops.convert_to_tensor(inputs["domains"], "int32")[:, -self.max_length :], TARGET_ID)
        length = ops.shape(is_target)[1]
        last_target = ops.max(ops.where(is_target, ops.arange(length, dtype="int32")[None], -1), axis=1)
        chosen = ops.take_along_axis(target, ops.maximum(last_target, 0)[:, None, None], axis=1)[:, 0]
        chosen = chosen * ops.cast(last_target >= 0, chosen.dtype)[:, None]
        state = mixed[:, -1] + chosen
        return ops.concatenate([state, ops.ones_like(state[:, :1])], axis=1)

    def candidate_vectors(self, tokens: Any, training: bool = False) -> Any:
        """`(*tokens.shape, width + 1)` for target tokens: [target head column, its bias], so `last_hidden` · it is the head's logit."""
        indices = ops.convert_to_tensor(tokens, "int32") - (1 + self.n_source)
        columns = ops.take(ops.transpose(self.target_head.kernel), indices, axis=0)
        return ops.concatenate([columns, ops.take(self.target_head.bias, indices, axis=0)[..., None]], axis=-1)

    def score_tokens(self, inputs: dict[str, Any], tokens: Any) -> Any:
        """Next-item scores `(batch, n)` of target tokens `(n,)` after each sequence."""
        return ops.matmul(self.last_hidden(inputs), ops.transpose(self.candidate_vectors(tokens)))

    def discriminate(self, side: str, summary: Any, other: Any) -> Any:
        """Bilinear logits `(batch,)`: other · W_side · summary + b_side."""
        index = 0 if side == "source" else 1
        weight = self.source_discriminator if side == "source" else self.target_discriminator
        return ops.sum(ops.matmul(other, weight) * summary, axis=-1) + self.discriminator_bias[index]

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "vocabulary_size": self.vocabulary_size,
            "n_source": self.n_source,
            "max_length": self.max_length,
            "mixed_edges": self.mixed_edges,
            "domain_edges": self.domain_edges,
            "width": self.width,
            "layers": self.layer_count,
            "heads": self.heads,
            "dropout": self.dropout_rate,
            "graph_layers": self.graph_layers,
        }


def build_c2dsr(sequences: UserSequences, vocabulary: ItemVocabulary, *, max_length: int, **shape: Any) -> C2DSR:
    """A C2DSR model whose graphs come from `sequences` (the training sequences only)."""
    mixed = transition_graph(sequences, vocabulary, within_domain=False)
    domain = transition_graph(sequences, vocabulary, within_domain=True)
    model = C2DSR(
        vocabulary.size, vocabulary.n_source, max_length, mixed_edges=mixed[0].shape[1], domain_edges=domain[0].shape[1], **shape
    )
    model.set_graphs(mixed, domain)
    return model


def masked_mean(states: Any, mask: Any) -> tuple[Any, Any]:
    """Mean over the positions of `mask` `(batch, length)` → `(batch, width)`, and whether any position was there."""
    weights = tf.cast(mask, states.dtype)
    count = tf.reduce_sum(weights, axis=1, keepdims=True)
    return tf.reduce_sum(states * weights[..., None], axis=1) / tf.maximum(count, 1.0), count[:, 0] > 0


def infomax_loss(real_logits: Any, false_logits: Any, present: Any) -> Any:
    """BCE(real → 1) + BCE(false → 0), each averaged over the users where `present` (0 when none is)."""
    weights = tf.cast(present, real_logits.dtype)
    total = tf.maximum(tf.reduce_sum(weights), 1.0)
    real = tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.ones_like(real_logits), logits=real_logits)
    false = tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.zeros_like(false_logits), logits=false_logits)
    return tf.reduce_sum(real * weights) / total + tf.reduce_sum(false * weights) / total


def head_loss(head: keras.layers.Dense, states: Any, labels: Any, offset: int, negatives: Any = None) -> Any:
    """Mean softmax cross-entropy of the labelled positions (`labels` > 0, tokens of the head's domain); 0 when none.

    Full softmax over the head's items, or with `negatives` `(k,)` tokens of the head's domain a
    sampled softmax: each positive against the batch's shared negatives, accidental hits masked
    (uniform draws, so no logQ correction is needed).
    """
    labelled = labels > 0
    hidden = tf.boolean_mask(states, labelled)
    targets = tf.boolean_mask(labels, labelled) - offset
    if negatives is None:
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=head(hidden))
    else:
        columns = tf.transpose(head.kernel)
        sampled = tf.convert_to_tensor(negatives, tf.int32) - offset
        positive = tf.reduce_sum(hidden * tf.gather(columns, targets), axis=-1, keepdims=True) + tf.gather(head.bias, targets)[:, None]
        negative = tf.matmul(hidden, tf.gather(columns, sampled), transpose_b=True) + tf.gather(head.bias, sampled)[None, :]
        negative = tf.where(tf.equal(targets[:, None], sampled[None, :]), tf.constant(-1e9, negative.dtype), negative)
        logits = tf.concat([positive, negative], axis=1)
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.zeros_like(targets), logits=logits)
    return tf.reduce_sum(losses) / tf.maximum(tf.cast(tf.size(losses), losses.dtype), 1.0)


def c2dsr_loss(
    model: C2DSR, items: Any, labels: Any, source_labels: Any, target_labels: Any, corrupted_sources: Any, corrupted_targets: Any,
    *, weight: float, training: bool = True, source_negatives: Any = None, target_negatives: Any = None,
) -> tuple[Any, dict[str, Any]]:
    """λ (share_s + share_t + specific_s + specific_t) + (1 − λ)(infomax_s + infomax_t), and its parts.

    `corrupted_sources`: `items` with source tokens replaced by random source tokens;
    `corrupted_targets`: the same for target tokens. `source_negatives`/`target_negatives`
    `(k,)` tokens: sampled softmax heads (see `head_loss`); None: full softmax.
    """
    n_source = model.n_source
    is_source_label = (labels > 0) & (labels <= n_source)
    domains = tf.where(items == PAD, 0, tf.where(items <= n_source, SOURCE_ID, TARGET_ID))
    mixed, source, target = model({"items": items, "domains": domains}, training=training)
    parts = {
        "share_source": head_loss(model.source_head, mixed, tf.where(is_source_label, labels, 0), 1, source_negatives),
        "share_target": head_loss(model.target_head, mixed, tf.where(is_source_label, 0, labels), 1 + n_source, target_negatives),
        "specific_source": head_loss(model.source_head, mixed + source, source_labels, 1, source_negatives),
        "specific_target": head_loss(model.target_head, mixed + target, target_labels, 1 + n_source, target_negatives),
    }
    source_positions, target_positions = source_labels > 0, target_labels > 0
    source_summary, has_source = masked_mean(source, source_positions)
    target_summary, has_target = masked_mean(target, target_positions)
    mixed_at_source, _ = masked_mean(mixed, source_positions)
    mixed_at_target, _ = masked_mean(mixed, target_positions)
    false_at_target, _ = masked_mean(model.encode_mixed(corrupted_sources, training=training), target_positions)
    false_at_source, _ = masked_mean(model.encode_mixed(corrupted_targets, training=training), source_positions)
    both = has_source & has_target
    parts["infomax_source"] = infomax_loss(
        model.discriminate("source", source_summary, mixed_at_target), model.discriminate("source", source_summary, false_at_target), both
    )
    parts["infomax_target"] = infomax_loss(
        model.discriminate("target", target_summary, mixed_at_source), model.discriminate("target", target_summary, false_at_source), both
    )
    supervised = parts["share_source"] + parts["share_target"] + parts["specific_source"] + parts["specific_target"]
    return weight * supervised + (1.0 - weight) * (parts["infomax_source"] + parts["infomax_target"]), parts


def corrupt(items: np.ndarray, vocabulary: ItemVocabulary, domain_id: int, rng: np.random.Generator) -> np.ndarray:
    """`items` with every token of one domain (1 source, 2 target) replaced by a uniform random token of that domain."""
    low, high = vocabulary.token_range("source" if domain_id == SOURCE_ID else "target")
    replaced = rng.integers(low, high, size=items.shape).astype(np.int32)
    return np.where(vocabulary.domain_ids(items) == domain_id, replaced, items).astype(np.int32)


def train_c2dsr(
    model: C2DSR,
    examples: C2DSRExamples,
    vocabulary: ItemVocabulary,
    *,
    settings: TrainingSettings,
    weight: float = 0.7,
    validate: Callable[[C2DSR], float] | None = None,
    checkpoint_dir: Path | None = None,
    on_epoch: Callable[[dict], None] = lambda record: None,
) -> TrainingHistory:
    """Train with `c2dsr_loss` through the shared epoch loop (`run_epochs`: checkpoints, resume, early stopping).

    `settings.loss="sampled"`: each head scores its positives against `settings.negatives`
    uniform items of its domain shared by the batch (drawn from the epoch's generator), else a
    full softmax. `negative_sampler` must be "uniform"; `freeze` does not apply.
    """
    if len(examples) == 0:
        raise ValueError("Expected at least one training example. Received: 0 examples")
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"Expected weight (λ) in [0, 1]. Received: weight={weight}")
    if examples.items.shape[1] != model.max_length:
        raise ValueError(f"Expected windows of the model's max_length {model.max_length}. Received: length {examples.items.shape[1]}")
    sampled = settings.loss == "sampled"
    if sampled and settings.negative_sampler != "uniform":
        raise ValueError(f"Expected negative_sampler 'uniform' for c2dsr's sampled heads. Received: {settings.negative_sampler!r}")
    if not model.built:
        model.build()
    optimizer = keras.optimizers.Adam(learning_rate=settings.learning_rate)
    variables = model.trainable_variables
    ranges = {domain: vocabulary.token_range(domain) for domain in ("source", "target")}

    windows, tokens = tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None], tf.int32)

    # One trace for every batch size (the last batch is smaller): tracing this step takes long.
    @tf.function(input_signature=[windows] * 6 + [tokens] * 2)
    def step(items, labels, source_labels, target_labels, corrupted_sources, corrupted_targets, source_negatives, target_negatives) -> Any:
        with tf.GradientTape() as tape:
            loss, _ = c2dsr_loss(
                model, items, labels, source_labels, target_labels, corrupted_sources, corrupted_targets, weight=weight,
                source_negatives=source_negatives if sampled else None, target_negatives=target_negatives if sampled else None,
            )
        apply_gradients(optimizer, tape.gradient(loss, variables), variables, settings.clip_norm)
        return loss

    def run_batch(batch: np.ndarray, epoch: int, rng: np.random.Generator) -> float:
        items = examples.items[batch]
        corrupted = corrupt(items, vocabulary, SOURCE_ID, rng), corrupt(items, vocabulary, TARGET_ID, rng)
        size = settings.negatives if sampled else 1
        negatives = [rng.integers(*ranges[domain], size=size).astype(np.int32) for domain in ("source", "target")]
        return float(step(items, examples.labels[batch], examples.source_labels[batch], examples.target_labels[batch], *corrupted, *negatives))

    return run_epochs(model, optimizer, len(examples), settings, run_batch, validate=validate, checkpoint_dir=checkpoint_dir, on_epoch=on_epoch)
