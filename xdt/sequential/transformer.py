"""SASRec-style causal sequence transformer over item tokens of one or two domains."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from xdt.sequential.text_bridge import TextAdaptor

VARIABLE_GROUPS = ("items", "positions", "domains", "blocks", "output_norm")


@keras.saving.register_keras_serializable(package="xdt")
class CausalBlock(keras.layers.Layer):
    """Pre-norm transformer block: causal multi-head self-attention then a GELU feed-forward."""

    def __init__(self, width: int, heads: int, feed_forward_width: int, dropout: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if width % heads:
            raise ValueError(f"Expected width divisible by heads. Received: width={width}, heads={heads}")
        self.width = width
        self.heads = heads
        self.feed_forward_width = feed_forward_width
        self.dropout = dropout
        self.attention_norm = keras.layers.LayerNormalization(epsilon=1e-6, name="attention_norm")
        self.attention = keras.layers.MultiHeadAttention(
            heads, width // heads, dropout=dropout, name="attention"
        )
        self.feed_forward_norm = keras.layers.LayerNormalization(epsilon=1e-6, name="feed_forward_norm")
        self.feed_forward_in = keras.layers.Dense(feed_forward_width, activation="gelu", name="feed_forward_in")
        self.feed_forward_out = keras.layers.Dense(width, name="feed_forward_out")
        self.residual_dropout = keras.layers.Dropout(dropout)

    def build(self, hidden_shape: tuple) -> None:
        self.attention_norm.build(hidden_shape)
        self.attention.build(hidden_shape, hidden_shape)
        self.feed_forward_norm.build(hidden_shape)
        self.feed_forward_in.build(hidden_shape)
        self.feed_forward_out.build((*hidden_shape[:-1], self.feed_forward_width))

    def call(self, hidden: Any, attention_mask: Any, training: bool = False) -> Any:
        """`(batch, length, width)` → same; `attention_mask` `(batch, length, length)` bool."""
        normed = self.attention_norm(hidden)
        attended = self.attention(normed, normed, attention_mask=attention_mask, training=training)
        hidden = hidden + self.residual_dropout(attended, training=training)
        transformed = self.feed_forward_out(self.feed_forward_in(self.feed_forward_norm(hidden)))
        return hidden + self.residual_dropout(transformed, training=training)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "width": self.width,
            "heads": self.heads,
            "feed_forward_width": self.feed_forward_width,
            "dropout": self.dropout,
        }


@keras.saving.register_keras_serializable(package="xdt")
class SequenceTransformer(keras.Model):
    """Causal transformer over `{"items", "domains"}` `(batch, length)` int tokens → `(batch, length, width)`.

    Position t's output summarises tokens 0..t only (causal mask; padding keys masked too), and
    scores next-item candidates by a dot product with `item_vectors(tokens)`, the same item
    representation the input uses (tied weights, as in SASRec). Item representations are
    either a learned id embedding (`text_dim=None`) or, for the text bridge, a frozen table of
    item text embeddings `(vocabulary_size, text_dim)` passed through a learned `TextAdaptor`
    (plus an optional zero-initialised id embedding, `text_with_ids=True`).

    `score_temperature=τ` scores by cosine similarity over τ instead of the dot product: the
    output state and `candidate_vectors` are L2-normalised and the state divided by τ (UniSRec
    uses τ = 0.07), so no item wins by the norm of its vector alone.
    """

    def __init__(
        self,
        vocabulary_size: int,
        max_length: int,
        width: int = 64,
        layers: int = 2,
        heads: int = 2,
        feed_forward_width: int | None = None,
        dropout: float = 0.2,
        domains: int = 3,
        text_dim: int | None = None,
        adaptor_experts: int = 8,
        text_with_ids: bool = False,
        score_temperature: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        for name, value in (("vocabulary_size", vocabulary_size), ("max_length", max_length), ("width", width), ("heads", heads)):
            if value < 1:
                raise ValueError(f"Expected {name} >= 1. Received: {name}={value}")
        if layers < 0:
            raise ValueError(f"Expected layers >= 0. Received: layers={layers}")
        if score_temperature is not None and score_temperature <= 0:
            raise ValueError(f"Expected score_temperature > 0 or None. Received: score_temperature={score_temperature}")
        self.vocabulary_size = vocabulary_size
        self.max_length = max_length
        self.width = width
        self.layer_count = layers
        self.heads = heads
        self.feed_forward_width = feed_forward_width or 4 * width
        self.dropout_rate = dropout
        self.domain_count = domains
        self.text_dim = text_dim
        self.adaptor_experts = adaptor_experts
        self.text_with_ids = text_with_ids
        self.score_temperature = score_temperature
        self.item_embedding = None
        self.adaptor = None
        if text_dim is None or text_with_ids:
            initializer = "zeros" if text_dim is not None else keras.initializers.TruncatedNormal(stddev=0.02)
            self.item_embedding = keras.layers.Embedding(
                vocabulary_size, width, embeddings_initializer=initializer, name="item_embedding"
            )
        if text_dim is not None:
            self.adaptor = TextAdaptor(width, experts=adaptor_experts, dropout=dropout, name="adaptor")
        self.position_embedding = keras.layers.Embedding(
            max_length, width, embeddings_initializer=keras.initializers.TruncatedNormal(stddev=0.02), name="position_embedding"
        )
        self.domain_embedding = keras.layers.Embedding(
            domains, width, embeddings_initializer=keras.initializers.TruncatedNormal(stddev=0.02), name="domain_embedding"
        )
        self.input_dropout = keras.layers.Dropout(dropout)
        self.blocks = [
            CausalBlock(width, heads, self.feed_forward_width, dropout, name=f"block_{index}") for index in range(layers)
        ]
        self.output_norm = keras.layers.LayerNormalization(epsilon=1e-6, name="output_norm")

    def build(self, inputs_shape: Any = None) -> None:
        if self.text_dim is not None:
            self.item_text_embeddings = self.add_weight(
                shape=(self.vocabulary_size, self.text_dim), initializer="zeros", trainable=False, name="item_text_embeddings"
            )
            self.adaptor.build((None, self.text_dim))
        if self.item_embedding is not None:
            self.item_embedding.build((None,))
        self.position_embedding.build((None,))
        self.domain_embedding.build((None,))
        for block in self.blocks:
            block.build((None, self.max_length, self.width))
        self.output_norm.build((None, self.max_length, self.width))
        self.built = True

    def item_vectors(self, tokens: Any, training: bool = False, texts: Any = None) -> Any:
        """Representations `(*tokens.shape, width)` of item tokens.

        `texts` `(*tokens.shape, text_dim)` replaces the frozen table's rows for these tokens (an
        augmented view of the items' text, as UniSRec's word drop); text-bridge models only.
        """
        vectors = None
        if self.adaptor is not None:
            if texts is None:
                texts = ops.take(self.item_text_embeddings, tokens, axis=0)
            vectors = self.adaptor(ops.convert_to_tensor(texts, "float32"), training=training)
        elif texts is not None:
            raise ValueError("Expected a text-bridge model (text_dim set) for item texts. Received: text_dim=None")
        if self.item_embedding is not None:
            embedded = self.item_embedding(tokens)
            vectors = embedded if vectors is None else vectors + embedded
        return vectors

    def candidate_vectors(self, tokens: Any, training: bool = False) -> Any:
        """What the output state is scored against `(*tokens.shape, width)`: `item_vectors`, unit-length under cosine scoring."""
        return self._scored(self.item_vectors(tokens, training=training))

    def _scored(self, vectors: Any) -> Any:
        return vectors if self.score_temperature is None else unit_length(vectors)

    def text_item_vectors(self, text_embeddings: Any) -> Any:
        """Candidate vectors `(n, width)` of items known only by text embeddings `(n, text_dim)` (new items)."""
        if self.adaptor is None:
            raise ValueError("Expected a text-bridge model (text_dim set). Received: text_dim=None")
        return self._scored(self.adaptor(ops.convert_to_tensor(text_embeddings, "float32"), training=False))

    def set_item_text_embeddings(self, text_embeddings: np.ndarray) -> None:
        """Replace the frozen item text table `(vocabulary_size, text_dim)` (row 0 is padding)."""
        if self.text_dim is None:
            raise ValueError("Expected a text-bridge model (text_dim set). Received: text_dim=None")
        if not self.built:
            self.build()
        expected = (self.vocabulary_size, self.text_dim)
        if tuple(text_embeddings.shape) != expected:
            raise ValueError(f"Expected text_embeddings of shape {expected}. Received: shape={tuple(text_embeddings.shape)}")
        self.item_text_embeddings.assign(np.asarray(text_embeddings, dtype=np.float32))

    def call(self, inputs: dict[str, Any], training: bool = False) -> Any:
        """Output state `(batch, length, width)` after each position, scored against `candidate_vectors`.

        Lengths up to `max_length`. Under cosine scoring the state is unit length over τ. An
        optional `"item_texts"` `(batch, length, text_dim)` gives the input items' text embeddings
        instead of the frozen table's (`item_vectors`).
        """
        items = ops.convert_to_tensor(inputs["items"], "int32")
        domains = ops.convert_to_tensor(inputs["domains"], "int32")
        length = ops.shape(items)[1]
        valid = ops.not_equal(items, 0)
        hidden = self.item_vectors(items, training=training, texts=inputs.get("item_texts")) + self.domain_embedding(domains)
        # Left padding: position embeddings count back from the newest item at index max_length-1.
        positions = ops.arange(self.max_length - length, self.max_length, dtype="int32")
        hidden = hidden + self.position_embedding(positions)[None]
        hidden = self.input_dropout(hidden, training=training)
        hidden = hidden * ops.cast(valid, hidden.dtype)[..., None]
        attention_mask = causal_attention_mask(valid, length)
        for block in self.blocks:
            hidden = block(hidden, attention_mask, training=training)
        hidden = self.output_norm(hidden)
        if self.score_temperature is None:
            return hidden
        return unit_length(hidden) / self.score_temperature

    def last_hidden(self, inputs: dict[str, Any], training: bool = False) -> Any:
        """Hidden state `(batch, width)` at the last position (the newest item with left padding)."""
        return self(inputs, training=training)[:, -1]

    def score_tokens(self, inputs: dict[str, Any], tokens: Any) -> Any:
        """Next-item scores `(batch, n)` of candidate tokens `(n,)` after each sequence."""
        return ops.matmul(self.last_hidden(inputs), ops.transpose(self.candidate_vectors(tokens)))

    def variable_groups(self) -> dict[str, list[keras.Variable]]:
        """Trainable variables by part, for freeze schedules: items, positions, domains, blocks, output_norm."""
        item_layers = [layer for layer in (self.item_embedding, self.adaptor) if layer is not None]
        return {
            "items": [variable for layer in item_layers for variable in layer.trainable_variables],
            "positions": list(self.position_embedding.trainable_variables),
            "domains": list(self.domain_embedding.trainable_variables),
            "blocks": [variable for block in self.blocks for variable in block.trainable_variables],
            "output_norm": list(self.output_norm.trainable_variables),
        }

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "vocabulary_size": self.vocabulary_size,
            "max_length": self.max_length,
            "width": self.width,
            "layers": self.layer_count,
            "heads": self.heads,
            "feed_forward_width": self.feed_forward_width,
            "dropout": self.dropout_rate,
            "domains": self.domain_count,
            "text_dim": self.text_dim,
            "adaptor_experts": self.adaptor_experts,
            "text_with_ids": self.text_with_ids,
            "score_temperature": self.score_temperature,
        }


def causal_attention_mask(valid: Any, length: int) -> Any:
    """`(batch, length, length)`: query i sees keys j <= i that are not padding, and always itself.

    Padding keys are masked, but every query may see itself: a padding query with no key left
    would get uniform attention over all keys (Keras' masked softmax), later ones too.
    """
    causal = ops.tril(ops.ones((length, length), dtype="bool"))
    diagonal = ops.eye(length, dtype="bool")
    return ops.logical_and(causal[None], ops.logical_or(valid[:, None, :], diagonal[None]))


def unit_length(vectors: Any) -> Any:
    """`vectors / ‖vectors‖` along the last axis (zero vectors stay zero)."""
    return vectors * ops.rsqrt(ops.maximum(ops.sum(ops.square(vectors), axis=-1, keepdims=True), 1e-12))


def parameter_count(model: keras.Model, *, trainable_only: bool = True) -> int:
    """Number of (trainable) scalars in a built model."""
    variables = model.trainable_variables if trainable_only else model.weights
    return int(sum(np.prod(variable.shape) for variable in variables))
