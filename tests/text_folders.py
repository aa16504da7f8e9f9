"""Tiny random Hugging Face model folders for the text encoder tests, written in the test run.

The BERT folder is written with numpy and safetensors alone (so folder checks run without
keras-hub); the Llama folder is exported by keras-hub itself, the way a Transformers user's
folder would look (config.json, model.safetensors, tokenizer.json, tokenizer_config.json).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

WORDS = (
    "the a fresh green tea black coffee bean ground roast organic milk powder soy infant formula "
    "chocolate bar dark sweet salt pepper olive oil pasta rice bread cake knife pan pot cup mug"
).split()
VOCABULARY = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
TINY_BERT_CONFIG = {
    "model_type": "bert",
    "architectures": ["BertModel"],
    "hidden_size": 16,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 32,
    "max_position_embeddings": 24,
    "type_vocab_size": 2,
    "vocab_size": len(VOCABULARY),
    "layer_norm_eps": 1e-12,
    "hidden_act": "gelu",
}
LLAMA_SPECIAL_TOKENS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]


def tiny_bert_weights(seed: int = 0) -> dict[str, np.ndarray]:
    """Random weights for TINY_BERT_CONFIG under Hugging Face `BertModel` key names."""
    rng = np.random.default_rng(seed)
    hidden, intermediate = TINY_BERT_CONFIG["hidden_size"], TINY_BERT_CONFIG["intermediate_size"]

    def normal(*shape: int, scale: float = 0.3) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    weights = {
        "embeddings.word_embeddings.weight": normal(len(VOCABULARY), hidden),
        "embeddings.position_embeddings.weight": normal(TINY_BERT_CONFIG["max_position_embeddings"], hidden),
        "embeddings.token_type_embeddings.weight": normal(2, hidden),
        "embeddings.LayerNorm.weight": 1.0 + normal(hidden, scale=0.1),
        "embeddings.LayerNorm.bias": normal(hidden, scale=0.1),
        "pooler.dense.weight": normal(hidden, hidden),
        "pooler.dense.bias": normal(hidden, scale=0.1),
    }
    for layer in range(TINY_BERT_CONFIG["num_hidden_layers"]):
        prefix = f"encoder.layer.{layer}."
        for name, (out_size, in_size) in {
            "attention.self.query": (hidden, hidden),
            "attention.self.key": (hidden, hidden),
            "attention.self.value": (hidden, hidden),
            "attention.output.dense": (hidden, hidden),
            "intermediate.dense": (intermediate, hidden),
            "output.dense": (hidden, intermediate),
        }.items():
            weights[f"{prefix}{name}.weight"] = normal(out_size, in_size)
            weights[f"{prefix}{name}.bias"] = normal(out_size, scale=0.1)
        for name in ("attention.output.LayerNorm", "output.LayerNorm"):
            weights[f"{prefix}{name}.weight"] = 1.0 + normal(hidden, scale=0.1)
            weights[f"{prefix}{name}.bias"] = normal(hidden, scale=0.1)
    return weights


def write_tiny_bert(folder: Path, weights: dict[str, np.ndarray] | None = None, key_prefix: str = "") -> Path:
    """A BERT folder: config.json, model.safetensors, vocab.txt and tokenizer_config.json."""
    folder.mkdir(parents=True, exist_ok=True)
    weights = tiny_bert_weights() if weights is None else weights
    (folder / "config.json").write_text(json.dumps(TINY_BERT_CONFIG))
    (folder / "vocab.txt").write_text("\n".join(VOCABULARY) + "\n")
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True, "tokenizer_class": "BertTokenizer"}))
    save_file({key_prefix + name: array for name, array in weights.items()}, str(folder / "model.safetensors"))
    return folder


def write_sentence_transformers_config(folder: Path, pooling_key: str | None, normalize: bool) -> None:
    """modules.json (Transformer, Pooling, optionally Normalize) and 1_Pooling/config.json."""
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}]
    if pooling_key is not None:
        modules.append({"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"})
        (folder / "1_Pooling").mkdir(exist_ok=True)
        (folder / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": 16, pooling_key: True}))
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
    (folder / "modules.json").write_text(json.dumps(modules))


def write_tiny_llama(folder: Path, seed: int = 0) -> Path:
    """A random 1-layer Llama 3 exported by keras-hub as a Transformers folder (byte-level BPE)."""
    import keras
    import keras_hub

    vocabulary = {token: index for index, token in enumerate(LLAMA_SPECIAL_TOKENS)}
    for character in sorted(set("".join(WORDS)) | {"Ġ"}):
        vocabulary[character] = len(vocabulary)
    vocabulary["Ġt"] = len(vocabulary)
    tokenizer = keras_hub.tokenizers.Llama3Tokenizer(vocabulary=vocabulary, merges=["Ġ t"])
    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.Llama3Backbone(
        vocabulary_size=len(vocabulary),
        num_layers=1,
        num_query_heads=2,
        num_key_value_heads=1,
        hidden_dim=8,
        intermediate_dim=16,
        tie_word_embeddings=True,
    )
    folder.mkdir(parents=True, exist_ok=True)
    backbone.export_to_transformers(str(folder))
    tokenizer.export_to_transformers(str(folder))
    return folder
