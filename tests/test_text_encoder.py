"""Tests for the Keras BERT sentence encoder against a numpy reference, and the hashed fallback."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from safetensors.numpy import save_file
from tokenizers import BertWordPieceTokenizer

from xdt.errors import DataError, XdtError
from xdt.text.bert import BertSentenceEncoder, load_sentence_encoder
from xdt.text.hashed import HashedTextEncoder
from xdt.text.tokenizer import WordPieceTokenizer

WORDS = (
    "the a fresh green tea black coffee bean ground roast organic milk powder soy infant formula "
    "chocolate bar dark sweet salt pepper olive oil pasta rice bread cake knife pan pot cup mug"
).split()
VOCABULARY = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
TINY_CONFIG = {
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
SENTENCES = ["green tea", "organic dark chocolate bar with sea salt", "the black coffee"]


def tiny_bert_weights(seed: int = 0) -> dict[str, np.ndarray]:
    """Random weights for TINY_CONFIG under Hugging Face BertModel key names."""
    rng = np.random.default_rng(seed)
    hidden, intermediate = TINY_CONFIG["hidden_size"], TINY_CONFIG["intermediate_size"]

    def normal(*shape: int, scale: float = 0.3) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    weights = {
        "embeddings.word_embeddings.weight": normal(len(VOCABULARY), hidden),
        "embeddings.position_embeddings.weight": normal(
            TINY_CONFIG["max_position_embeddings"], hidden
        ),
        "embeddings.token_type_embeddings.weight": normal(2, hidden),
        "embeddings.LayerNorm.weight": 1.0 + normal(hidden, scale=0.1),
        "embeddings.LayerNorm.bias": normal(hidden, scale=0.1),
        "embeddings.position_ids": np.arange(TINY_CONFIG["max_position_embeddings"])[None, :],
        "pooler.dense.weight": normal(hidden, hidden),
    }
    for layer in range(TINY_CONFIG["num_hidden_layers"]):
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


def write_tiny_bert(folder: Path, weights: dict[str, np.ndarray], key_prefix: str = "") -> Path:
    """Write config.json, model.safetensors and vocab.txt as a Hugging Face folder."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "bert", **TINY_CONFIG}))
    (folder / "vocab.txt").write_text("\n".join(VOCABULARY) + "\n")
    save_file(
        {key_prefix + name: array for name, array in weights.items()},
        str(folder / "model.safetensors"),
    )
    return folder


def reference_token_ids(text: str) -> list[int]:
    """[CLS] words [SEP] by direct vocabulary lookup (every test word is a vocabulary entry)."""
    return [2, *(VOCABULARY.index(word) if word in VOCABULARY else 1 for word in text.split()), 3]


def reference_sentence_embedding(
    weights: dict[str, np.ndarray], token_ids: list[int], pooling: str = "mean"
) -> np.ndarray:
    """Slow numpy BERT forward pass of one unpadded sentence, pooled (mean + L2 or raw [CLS])."""
    eps = TINY_CONFIG["layer_norm_eps"]
    heads = TINY_CONFIG["num_attention_heads"]
    head_size = TINY_CONFIG["hidden_size"] // heads

    def layer_norm(x: np.ndarray, name: str) -> np.ndarray:
        centred = x - x.mean(-1, keepdims=True)
        normalised = centred / np.sqrt((centred**2).mean(-1, keepdims=True) + eps)
        return normalised * weights[f"{name}.weight"] + weights[f"{name}.bias"]

    def linear(x: np.ndarray, name: str) -> np.ndarray:
        return x @ weights[f"{name}.weight"].astype(np.float64).T + weights[f"{name}.bias"]

    def gelu(x: np.ndarray) -> np.ndarray:
        return 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))

    length = len(token_ids)
    x = (
        weights["embeddings.word_embeddings.weight"][token_ids].astype(np.float64)
        + weights["embeddings.position_embeddings.weight"][:length]
        + weights["embeddings.token_type_embeddings.weight"][0]
    )
    x = layer_norm(x, "embeddings.LayerNorm")
    for layer in range(TINY_CONFIG["num_hidden_layers"]):
        prefix = f"encoder.layer.{layer}."
        context = np.zeros_like(x)
        query, key, value = (
            linear(x, f"{prefix}attention.self.{part}") for part in ("query", "key", "value")
        )
        for head in range(heads):
            columns = slice(head * head_size, (head + 1) * head_size)
            scores = query[:, columns] @ key[:, columns].T / math.sqrt(head_size)
            probabilities = np.exp(scores - scores.max(-1, keepdims=True))
            probabilities /= probabilities.sum(-1, keepdims=True)
            context[:, columns] = probabilities @ value[:, columns]
        x = layer_norm(
            x + linear(context, f"{prefix}attention.output.dense"),
            f"{prefix}attention.output.LayerNorm",
        )
        feed_forward = linear(
            gelu(linear(x, f"{prefix}intermediate.dense")), f"{prefix}output.dense"
        )
        x = layer_norm(x + feed_forward, f"{prefix}output.LayerNorm")
    if pooling == "cls":
        return x[0]
    pooled = x.mean(0)
    return pooled / np.linalg.norm(pooled)


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    weights = tiny_bert_weights()
    return write_tiny_bert(tmp_path_factory.mktemp("tiny_bert"), weights), weights


def test_encode_matches_numpy_reference(tiny_bert):
    folder, weights = tiny_bert
    embeddings = load_sentence_encoder(folder).encode(SENTENCES, batch_size=2)
    assert embeddings.shape == (len(SENTENCES), TINY_CONFIG["hidden_size"])
    assert embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-6)
    expected = np.stack(
        [reference_sentence_embedding(weights, reference_token_ids(text)) for text in SENTENCES]
    )
    assert np.abs(embeddings - expected).max() < 1e-5


def test_tokenizer_matches_vocabulary_lookup_and_pads_to_longest(tiny_bert):
    folder, _ = tiny_bert
    token_ids, padding_mask = WordPieceTokenizer.from_folder(folder)(
        ["Green TEA", "the black coffee"], max_length=16
    )
    assert token_ids.tolist() == [
        reference_token_ids("green tea") + [0],
        reference_token_ids("the black coffee"),
    ]
    assert padding_mask.tolist() == [[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]]


def test_tokenizer_json_with_fixed_padding_gives_same_embeddings(tiny_bert, tmp_path):
    folder, _ = tiny_bert
    # Saved tokenizer.json files may pad every text to a fixed length, as all-MiniLM-L6-v2's does.
    tokenizer = BertWordPieceTokenizer(str(folder / "vocab.txt"), lowercase=True)
    tokenizer.enable_padding(length=20)
    copy = tmp_path / "model"
    copy.mkdir()
    for file_name in ("config.json", "model.safetensors"):
        (copy / file_name).write_bytes((folder / file_name).read_bytes())
    tokenizer.save(str(copy / "tokenizer.json"))
    np.testing.assert_allclose(
        load_sentence_encoder(copy).encode(SENTENCES),
        load_sentence_encoder(folder).encode(SENTENCES),
        atol=1e-6,
    )


def test_embedding_does_not_depend_on_padding(tiny_bert):
    folder, _ = tiny_bert
    encoder = load_sentence_encoder(folder)
    alone = encoder.encode(["green tea"])
    batched = encoder.encode(["green tea", " ".join(WORDS[:18])], batch_size=2)
    np.testing.assert_allclose(batched[0], alone[0], atol=1e-6)


def test_truncation_keeps_max_length_tokens(tiny_bert):
    folder, weights = tiny_bert
    long_text = " ".join(WORDS[:12])
    embedding = load_sentence_encoder(folder).encode([long_text], max_length=6)
    truncated_ids = reference_token_ids(" ".join(WORDS[:4]))
    np.testing.assert_allclose(
        embedding[0], reference_sentence_embedding(weights, truncated_ids), atol=1e-5
    )


def test_bert_prefix_and_sentence_transformers_cls_pooling(tmp_path):
    weights = tiny_bert_weights(seed=1)
    folder = write_tiny_bert(tmp_path / "model", weights, key_prefix="bert.")
    (folder / "modules.json").write_text(
        json.dumps(
            [
                {
                    "idx": 0,
                    "name": "0",
                    "path": "",
                    "type": "sentence_transformers.models.Transformer",
                },
                {
                    "idx": 1,
                    "name": "1",
                    "path": "1_Pooling",
                    "type": "sentence_transformers.models.Pooling",
                },
            ]
        )
    )
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps({"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False})
    )
    embeddings = load_sentence_encoder(folder).encode(SENTENCES)
    expected = np.stack(
        [
            reference_sentence_embedding(weights, reference_token_ids(text), pooling="cls")
            for text in SENTENCES
        ]
    )
    assert np.abs(embeddings - expected).max() < 1e-5


def test_missing_weights_file_names_path_and_expected_files(tmp_path):
    folder = write_tiny_bert(tmp_path / "model", tiny_bert_weights())
    (folder / "model.safetensors").unlink()
    with pytest.raises(DataError, match="model.safetensors") as error:
        load_sentence_encoder(folder)
    assert str(folder / "model.safetensors") in str(error.value)
    assert "tokenizer.json or vocab.txt" in str(error.value)


def test_missing_folder_and_tokenizer_are_data_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_sentence_encoder(tmp_path / "nowhere")
    folder = write_tiny_bert(tmp_path / "model", tiny_bert_weights())
    (folder / "vocab.txt").unlink()
    with pytest.raises(DataError, match="expected tokenizer.json or vocab.txt"):
        load_sentence_encoder(folder)


def test_wrong_weight_shape_names_key_and_shapes(tmp_path):
    weights = tiny_bert_weights()
    weights["encoder.layer.1.attention.self.query.weight"] = np.zeros((16, 8), dtype=np.float32)
    folder = write_tiny_bert(tmp_path / "model", weights)
    with pytest.raises(DataError) as error:
        load_sentence_encoder(folder)
    message = str(error.value)
    assert "'encoder.layer.1.attention.self.query.weight'" in message
    assert "(16, 8)" in message and "expected (16, 16)" in message


def test_missing_weight_names_key(tmp_path):
    weights = tiny_bert_weights()
    del weights["encoder.layer.0.output.LayerNorm.bias"]
    with pytest.raises(DataError, match="'encoder.layer.0.output.LayerNorm.bias'"):
        load_sentence_encoder(write_tiny_bert(tmp_path / "model", weights))


def test_missing_tokenizers_package_tells_how_to_install(tiny_bert, monkeypatch):
    monkeypatch.setitem(sys.modules, "tokenizers", None)
    with pytest.raises(XdtError, match=r"pip install 'xdt\[text\]'"):
        load_sentence_encoder(tiny_bert[0])


def test_model_save_load_round_trip(tiny_bert, tmp_path):
    model = load_sentence_encoder(tiny_bert[0]).model
    inputs = {
        "token_ids": np.array([[2, 6, 7, 3], [2, 8, 3, 0]]),
        "padding_mask": np.array([[1, 1, 1, 1], [1, 1, 1, 0]]),
    }
    model.save(tmp_path / "encoder.keras")
    restored = keras.saving.load_model(tmp_path / "encoder.keras")
    assert isinstance(restored, BertSentenceEncoder)
    np.testing.assert_array_equal(restored.predict_on_batch(inputs), model.predict_on_batch(inputs))


def test_hashed_encoder_is_deterministic_and_normalised():
    texts = ["Organic Green Tea, 100 bags", "Stainless steel chef knife", ""]
    first = HashedTextEncoder(dim=64, seed=3).encode(texts)
    second = HashedTextEncoder(dim=64, seed=3).encode(texts)
    assert first.shape == (3, 64) and first.dtype == np.float32
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(np.linalg.norm(first[:2], axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(first[2], 0.0)


def test_hashed_encoder_puts_similar_titles_closer():
    tea, teas, knife = HashedTextEncoder().encode(
        [
            "Organic green tea bags, 100 count",
            "organic GREEN TEA bag 50 ct",
            "Stainless steel chef knife 8 inch",
        ]
    )
    assert tea @ teas > 0.5
    assert tea @ teas > tea @ knife + 0.3


def test_hashed_encoder_is_stable_across_processes():
    # Python's built-in hash is salted per process; the encoder must not depend on it.
    script = (
        "from xdt.text.hashed import HashedTextEncoder; "
        "print(HashedTextEncoder(dim=8).encode(['green tea']).tolist())"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PYTHONPATH": str(Path(__file__).parents[1])},
        ).stdout
        for seed in ("1", "2")
    }
    assert len(outputs) == 1


def test_import_text_package_does_not_import_tensorflow():
    script = (
        "import sys, xdt.text, xdt.text.hashed, xdt.text.cache; print('tensorflow' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(Path(__file__).parents[1])},
    )
    assert result.stdout.strip() == "False"
