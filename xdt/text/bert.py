"""A BERT sentence encoder in Keras 3, loaded from a local Hugging Face model folder."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
from keras import ops

from xdt.errors import DataError, XdtError
from xdt.text.tokenizer import TEXT_EXTRA_HINT, WordPieceTokenizer

EXPECTED_FILES = "config.json, model.safetensors and tokenizer.json or vocab.txt"
# sentence-transformers `1_Pooling/config.json` flag for each pooling mode.
POOLING_CONFIG_KEYS = {
    "mean": "pooling_mode_mean_tokens",
    "cls": "pooling_mode_cls_token",
    "max": "pooling_mode_max_tokens",
    "mean_sqrt_len": "pooling_mode_mean_sqrt_len_tokens",
}
POOLING_MODES = tuple(POOLING_CONFIG_KEYS)
# Hugging Face `hidden_act` name -> whether Keras' gelu uses the tanh approximation.
GELU_APPROXIMATIONS = {"gelu": False, "gelu_new": True, "gelu_pytorch_tanh": True}


@keras.saving.register_keras_serializable(package="xdt")
class BertEmbeddings(keras.layers.Layer):
    """Sum of word, position and token-type (always type 0) embeddings, then LayerNorm."""

    def __init__(
        self,
        vocab_size: int,
        hidden_size: int,
        max_position_embeddings: int,
        type_vocab_size: int,
        layer_norm_eps: float,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.layer_norm_eps = layer_norm_eps
        self.word_embeddings = keras.layers.Embedding(
            vocab_size, hidden_size, name="word_embeddings"
        )
        self.position_embeddings = keras.layers.Embedding(
            max_position_embeddings, hidden_size, name="position_embeddings"
        )
        self.token_type_embeddings = keras.layers.Embedding(
            type_vocab_size, hidden_size, name="token_type_embeddings"
        )
        self.layer_norm = keras.layers.LayerNormalization(epsilon=layer_norm_eps, name="layer_norm")

    def build(self, token_ids_shape: tuple) -> None:
        self.word_embeddings.build(token_ids_shape)
        self.position_embeddings.build(token_ids_shape)
        self.token_type_embeddings.build(token_ids_shape)
        self.layer_norm.build((*token_ids_shape, self.hidden_size))

    def call(self, token_ids: Any) -> Any:
        """Embed `(batch, length)` ids to `(batch, length, hidden)`."""
        positions = ops.arange(ops.shape(token_ids)[1])[None, :]
        embeddings = (
            self.word_embeddings(token_ids)
            + self.position_embeddings(positions)
            + self.token_type_embeddings.embeddings[0]
        )
        return self.layer_norm(embeddings)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "max_position_embeddings": self.max_position_embeddings,
            "type_vocab_size": self.type_vocab_size,
            "layer_norm_eps": self.layer_norm_eps,
        }


@keras.saving.register_keras_serializable(package="xdt")
class BertTransformerBlock(keras.layers.Layer):
    """One post-LayerNorm BERT block: self-attention then a feed-forward network."""

    def __init__(
        self,
        hidden_size: int,
        num_attention_heads: int,
        intermediate_size: int,
        layer_norm_eps: float,
        hidden_act: str = "gelu",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if hidden_size % num_attention_heads:
            raise ValueError(
                "Expected hidden_size divisible by num_attention_heads. "
                f"Received: hidden_size={hidden_size}, num_attention_heads={num_attention_heads}"
            )
        if hidden_act not in GELU_APPROXIMATIONS:
            raise ValueError(
                f"Expected hidden_act in {sorted(GELU_APPROXIMATIONS)}. "
                f"Received: hidden_act={hidden_act!r}"
            )
        self.hidden_size = hidden_size
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.layer_norm_eps = layer_norm_eps
        self.hidden_act = hidden_act
        self.head_size = hidden_size // num_attention_heads
        self.query = keras.layers.Dense(hidden_size, name="query")
        self.key = keras.layers.Dense(hidden_size, name="key")
        self.value = keras.layers.Dense(hidden_size, name="value")
        self.attention_output = keras.layers.Dense(hidden_size, name="attention_output")
        self.attention_layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_eps, name="attention_layer_norm"
        )
        self.intermediate = keras.layers.Dense(intermediate_size, name="intermediate")
        self.output_dense = keras.layers.Dense(hidden_size, name="output_dense")
        self.output_layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_eps, name="output_layer_norm"
        )

    def build(self, hidden_states_shape: tuple, padding_mask_shape: tuple | None = None) -> None:
        # Keras passes one `<argument>_shape` per call argument; the mask creates no weights.
        for layer in (self.query, self.key, self.value, self.attention_output, self.intermediate):
            layer.build(hidden_states_shape)
        self.attention_layer_norm.build(hidden_states_shape)
        self.output_dense.build((*hidden_states_shape[:-1], self.intermediate_size))
        self.output_layer_norm.build(hidden_states_shape)

    def call(self, hidden_states: Any, padding_mask: Any) -> Any:
        """Map `(batch, length, hidden)` states to the same shape; `padding_mask` is 1 on tokens."""
        length = ops.shape(hidden_states)[1]

        def split_heads(states: Any) -> Any:
            states = ops.reshape(states, (-1, length, self.num_attention_heads, self.head_size))
            return ops.transpose(states, (0, 2, 1, 3))

        query = split_heads(self.query(hidden_states))
        key = split_heads(self.key(hidden_states))
        value = split_heads(self.value(hidden_states))
        scores = ops.matmul(query, ops.transpose(key, (0, 1, 3, 2))) / math.sqrt(self.head_size)
        # Padding keys get a large negative score, so their softmax weight is exactly 0.
        key_is_padding = 1.0 - ops.cast(padding_mask, scores.dtype)[:, None, None, :]
        attention = ops.softmax(scores + key_is_padding * -1e9, axis=-1)
        context = ops.transpose(ops.matmul(attention, value), (0, 2, 1, 3))
        context = ops.reshape(context, (-1, length, self.hidden_size))
        hidden_states = self.attention_layer_norm(hidden_states + self.attention_output(context))
        intermediate = keras.activations.gelu(
            self.intermediate(hidden_states), approximate=GELU_APPROXIMATIONS[self.hidden_act]
        )
        return self.output_layer_norm(hidden_states + self.output_dense(intermediate))

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "hidden_size": self.hidden_size,
            "num_attention_heads": self.num_attention_heads,
            "intermediate_size": self.intermediate_size,
            "layer_norm_eps": self.layer_norm_eps,
            "hidden_act": self.hidden_act,
        }


@keras.saving.register_keras_serializable(package="xdt")
class BertSentenceEncoder(keras.Model):
    """BERT over `{"token_ids", "padding_mask"}` `(batch, length)`, pooled to `(batch, hidden)`."""

    def __init__(
        self,
        vocab_size: int,
        hidden_size: int,
        num_hidden_layers: int,
        num_attention_heads: int,
        intermediate_size: int,
        max_position_embeddings: int,
        type_vocab_size: int = 2,
        layer_norm_eps: float = 1e-12,
        hidden_act: str = "gelu",
        pooling: str = "mean",
        normalize: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if pooling not in POOLING_MODES:
            raise ValueError(f"Expected pooling in {POOLING_MODES}. Received: pooling={pooling!r}")
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.layer_norm_eps = layer_norm_eps
        self.hidden_act = hidden_act
        self.pooling = pooling
        self.normalize = normalize
        self.embeddings = BertEmbeddings(
            vocab_size,
            hidden_size,
            max_position_embeddings,
            type_vocab_size,
            layer_norm_eps,
            name="embeddings",
        )
        self.blocks = [
            BertTransformerBlock(
                hidden_size,
                num_attention_heads,
                intermediate_size,
                layer_norm_eps,
                hidden_act,
                name=f"block_{index}",
            )
            for index in range(num_hidden_layers)
        ]

    def build(self, inputs_shape: Mapping[str, tuple]) -> None:
        token_ids_shape = tuple(inputs_shape["token_ids"])
        self.embeddings.build(token_ids_shape)
        for block in self.blocks:
            block.build((*token_ids_shape, self.hidden_size))

    def call(self, inputs: Mapping[str, Any]) -> Any:
        """Encode padded token ids to pooled `(batch, hidden)` sentence embeddings."""
        padding_mask = inputs["padding_mask"]
        hidden_states = self.embeddings(inputs["token_ids"])
        for block in self.blocks:
            hidden_states = block(hidden_states, padding_mask)
        sentence_embeddings = pool_tokens(hidden_states, padding_mask, self.pooling)
        if self.normalize:
            sentence_embeddings = sentence_embeddings / ops.maximum(
                ops.norm(sentence_embeddings, axis=-1, keepdims=True), 1e-12
            )
        return sentence_embeddings

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "intermediate_size": self.intermediate_size,
            "max_position_embeddings": self.max_position_embeddings,
            "type_vocab_size": self.type_vocab_size,
            "layer_norm_eps": self.layer_norm_eps,
            "hidden_act": self.hidden_act,
            "pooling": self.pooling,
            "normalize": self.normalize,
        }


def pool_tokens(hidden_states: Any, padding_mask: Any, pooling: str) -> Any:
    """Pool `(batch, length, hidden)` states over non-padding tokens like sentence-transformers."""
    if pooling == "cls":
        return hidden_states[:, 0]
    mask = ops.cast(padding_mask, hidden_states.dtype)[:, :, None]
    if pooling == "max":
        return ops.max(hidden_states - (1.0 - mask) * 1e9, axis=1)
    token_counts = ops.maximum(ops.sum(mask, axis=1), 1e-9)
    summed = ops.sum(hidden_states * mask, axis=1)
    if pooling == "mean_sqrt_len":
        return summed / ops.sqrt(token_counts)
    return summed / token_counts


class SentenceEncoder:
    """Texts to sentence embeddings with a WordPiece tokenizer and a `BertSentenceEncoder`."""

    def __init__(self, tokenizer: WordPieceTokenizer, model: BertSentenceEncoder) -> None:
        self.tokenizer = tokenizer
        self.model = model

    @property
    def dim(self) -> int:
        """Width of the embeddings `encode` returns."""
        return self.model.hidden_size

    def encode(
        self, texts: Sequence[str], *, batch_size: int = 64, max_length: int = 128
    ) -> np.ndarray:
        """Embed texts to float32 `(len(texts), hidden)`, in input order.

        Texts are truncated to `max_length` tokens, capped at the model's max_position_embeddings.
        """
        if batch_size < 1:
            raise ValueError(f"Expected batch_size >= 1. Received: batch_size={batch_size}")
        max_length = min(max_length, self.model.max_position_embeddings)
        embeddings = np.zeros((len(texts), self.dim), dtype=np.float32)
        # Longest texts first so each batch holds texts of similar length and little padding.
        order = sorted(range(len(texts)), key=lambda index: -len(texts[index]))
        for start in range(0, len(order), batch_size):
            batch_indices = order[start : start + batch_size]
            token_ids, padding_mask = self.tokenizer(
                [texts[index] for index in batch_indices], max_length=max_length
            )
            batch_embeddings = self.model.predict_on_batch(
                {"token_ids": token_ids, "padding_mask": padding_mask}
            )
            embeddings[batch_indices] = np.asarray(batch_embeddings, dtype=np.float32)
        return embeddings


def load_sentence_encoder(model_dir: Path) -> SentenceEncoder:
    """Load a Hugging Face BERT-family folder (optionally sentence-transformers) as an encoder."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise DataError(
            f"Text encoder folder {model_dir} does not exist; expected it to hold {EXPECTED_FILES}."
        )
    for file_name in ("config.json", "model.safetensors"):
        if not (model_dir / file_name).is_file():
            raise DataError(
                f"Missing {model_dir / file_name}; a text encoder folder holds {EXPECTED_FILES}."
            )
    try:
        from safetensors.numpy import load_file
    except ImportError as error:
        raise XdtError(
            f"Reading model.safetensors needs the `safetensors` package. {TEXT_EXTRA_HINT}"
        ) from error
    tokenizer = WordPieceTokenizer.from_folder(model_dir)
    pooling, normalize = read_pooling(model_dir)
    model = BertSentenceEncoder(
        **read_bert_config(model_dir / "config.json"), pooling=pooling, normalize=normalize
    )
    model.build({"token_ids": (None, None), "padding_mask": (None, None)})
    assign_bert_weights(
        model, load_file(str(model_dir / "model.safetensors")), model_dir / "model.safetensors"
    )
    return SentenceEncoder(tokenizer, model)


@dataclass(frozen=True)
class ConfigField:
    """A `config.json` key read into `BertSentenceEncoder`, with its type and default."""

    name: str
    kind: type
    default: Any = None


BERT_CONFIG_FIELDS = (
    ConfigField("vocab_size", int),
    ConfigField("hidden_size", int),
    ConfigField("num_hidden_layers", int),
    ConfigField("num_attention_heads", int),
    ConfigField("intermediate_size", int),
    ConfigField("max_position_embeddings", int),
    ConfigField("type_vocab_size", int, 2),
    ConfigField("layer_norm_eps", float, 1e-12),
    ConfigField("hidden_act", str, "gelu"),
)


def read_bert_config(config_path: Path) -> dict[str, Any]:
    """Read the architecture keys of a Hugging Face BERT `config.json`."""
    raw_config = read_json(config_path)
    config = {}
    for field in BERT_CONFIG_FIELDS:
        value = raw_config.get(field.name, field.default)
        if value is None:
            raise DataError(f"{config_path} has no {field.name!r}; a BERT config needs it.")
        config[field.name] = field.kind(value)
    if config["hidden_act"] not in GELU_APPROXIMATIONS:
        raise DataError(
            f"{config_path}: expected hidden_act in {sorted(GELU_APPROXIMATIONS)}. "
            f"Received: hidden_act={config['hidden_act']!r}"
        )
    if config["hidden_size"] % config["num_attention_heads"]:
        raise DataError(
            f"{config_path}: expected hidden_size divisible by num_attention_heads. "
            f"Received: hidden_size={config['hidden_size']}, "
            f"num_attention_heads={config['num_attention_heads']}"
        )
    return config


def read_pooling(model_dir: Path) -> tuple[str, bool]:
    """Read (pooling, normalize) from sentence-transformers modules.json; ("mean", True) if none."""
    modules_path = model_dir / "modules.json"
    if not modules_path.is_file():
        return "mean", True
    modules = read_json(modules_path)
    module_paths = {module["type"].rsplit(".", 1)[-1]: module.get("path", "") for module in modules}
    pooling = "mean"
    if "Pooling" in module_paths:
        pooling_path = model_dir / module_paths["Pooling"] / "config.json"
        if not pooling_path.is_file():
            raise DataError(f"Missing {pooling_path}, the pooling config named in {modules_path}.")
        pooling_config = read_json(pooling_path)
        modes = [mode for mode, key in POOLING_CONFIG_KEYS.items() if pooling_config.get(key)]
        if len(modes) != 1:
            raise DataError(
                f"{pooling_path}: expected exactly one of the pooling modes {POOLING_MODES}. "
                f"Received: {modes}"
            )
        pooling = modes[0]
    return pooling, "Normalize" in module_paths


def read_json(path: Path) -> Any:
    """Parse a JSON file, naming the file when it is malformed."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise DataError(f"{path} is not valid JSON: {error}") from error


def bert_weight_targets(model: BertSentenceEncoder) -> dict[str, tuple[keras.Variable, bool]]:
    """Map Hugging Face weight names to (Keras variable, whether the array is transposed)."""
    embeddings = model.embeddings
    targets = {
        "embeddings.word_embeddings.weight": (embeddings.word_embeddings.embeddings, False),
        "embeddings.position_embeddings.weight": (embeddings.position_embeddings.embeddings, False),
        "embeddings.token_type_embeddings.weight": (
            embeddings.token_type_embeddings.embeddings,
            False,
        ),
        "embeddings.LayerNorm.weight": (embeddings.layer_norm.gamma, False),
        "embeddings.LayerNorm.bias": (embeddings.layer_norm.beta, False),
    }
    for index, block in enumerate(model.blocks):
        prefix = f"encoder.layer.{index}."
        # torch Linear stores weight as (out, in); Keras Dense kernels are (in, out).
        for name, dense in (
            ("attention.self.query", block.query),
            ("attention.self.key", block.key),
            ("attention.self.value", block.value),
            ("attention.output.dense", block.attention_output),
            ("intermediate.dense", block.intermediate),
            ("output.dense", block.output_dense),
        ):
            targets[f"{prefix}{name}.weight"] = (dense.kernel, True)
            targets[f"{prefix}{name}.bias"] = (dense.bias, False)
        for name, layer_norm in (
            ("attention.output.LayerNorm", block.attention_layer_norm),
            ("output.LayerNorm", block.output_layer_norm),
        ):
            targets[f"{prefix}{name}.weight"] = (layer_norm.gamma, False)
            targets[f"{prefix}{name}.bias"] = (layer_norm.beta, False)
    return targets


def assign_bert_weights(
    model: BertSentenceEncoder, weights: Mapping[str, np.ndarray], weights_path: Path
) -> None:
    """Copy Hugging Face BERT weights (keys with or without a `bert.` prefix) into a built model."""
    weights = {name.removeprefix("bert."): array for name, array in weights.items()}
    for name, (variable, transposed) in bert_weight_targets(model).items():
        if name not in weights:
            raise DataError(f"{weights_path} has no weight {name!r} (nor 'bert.{name}').")
        array = weights[name]
        expected_shape = tuple(reversed(variable.shape)) if transposed else tuple(variable.shape)
        if tuple(array.shape) != expected_shape:
            raise DataError(
                f"{weights_path}: weight {name!r} has shape {tuple(array.shape)}; "
                f"expected {expected_shape} from config.json."
            )
        variable.assign(np.asarray(array.T if transposed else array, dtype=np.float32))
