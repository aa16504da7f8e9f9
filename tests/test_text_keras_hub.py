"""Sentence encoders loaded through keras-hub from tiny random Hugging Face folders built here."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

keras_hub = pytest.importorskip("keras_hub")

from tests.text_folders import (  # noqa: E402 (after the importorskip)
    TINY_BERT_CONFIG,
    VOCABULARY,
    WORDS,
    tiny_bert_weights,
    write_sentence_transformers_config,
    write_tiny_bert,
    write_tiny_llama,
)
from xdt.errors import DataError  # noqa: E402
from xdt.text.cache import cached_text_embeddings, encoder_fingerprint  # noqa: E402
from xdt.text.sentence_encoder import load_sentence_encoder  # noqa: E402

SENTENCES = ["green tea", "organic dark chocolate bar with sea salt", "the black coffee"]
# keras-hub's BertBackbone uses the tanh approximation of GELU where Hugging Face's "gelu" is
# exact; on these random weights that moves embeddings by up to ~1e-3.
GELU_TOLERANCE = 3e-3


def reference_token_ids(text: str) -> list[int]:
    """[CLS] words [SEP] by direct vocabulary lookup (unknown words are [UNK])."""
    return [2, *(VOCABULARY.index(word) if word in VOCABULARY else 1 for word in text.split()), 3]


def reference_token_states(weights: dict[str, np.ndarray], token_ids: list[int]) -> np.ndarray:
    """Hugging Face BertModel's last hidden states for one unpadded sentence, in float64 numpy."""
    eps = TINY_BERT_CONFIG["layer_norm_eps"]
    heads = TINY_BERT_CONFIG["num_attention_heads"]
    head_size = TINY_BERT_CONFIG["hidden_size"] // heads

    def layer_norm(x: np.ndarray, name: str) -> np.ndarray:
        centred = x - x.mean(-1, keepdims=True)
        return centred / np.sqrt((centred**2).mean(-1, keepdims=True) + eps) * weights[f"{name}.weight"] + weights[f"{name}.bias"]

    def linear(x: np.ndarray, name: str) -> np.ndarray:
        return x @ weights[f"{name}.weight"].astype(np.float64).T + weights[f"{name}.bias"]

    def gelu(x: np.ndarray) -> np.ndarray:
        return 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))

    x = (
        weights["embeddings.word_embeddings.weight"][token_ids].astype(np.float64)
        + weights["embeddings.position_embeddings.weight"][: len(token_ids)]
        + weights["embeddings.token_type_embeddings.weight"][0]
    )
    x = layer_norm(x, "embeddings.LayerNorm")
    for layer in range(TINY_BERT_CONFIG["num_hidden_layers"]):
        prefix = f"encoder.layer.{layer}."
        query, key, value = (linear(x, f"{prefix}attention.self.{part}") for part in ("query", "key", "value"))
        context = np.zeros_like(x)
        for head in range(heads):
            columns = slice(head * head_size, (head + 1) * head_size)
            scores = query[:, columns] @ key[:, columns].T / math.sqrt(head_size)
            probabilities = np.exp(scores - scores.max(-1, keepdims=True))
            context[:, columns] = probabilities / probabilities.sum(-1, keepdims=True) @ value[:, columns]
        x = layer_norm(x + linear(context, f"{prefix}attention.output.dense"), f"{prefix}attention.output.LayerNorm")
        feed_forward = linear(gelu(linear(x, f"{prefix}intermediate.dense")), f"{prefix}output.dense")
        x = layer_norm(x + feed_forward, f"{prefix}output.LayerNorm")
    return x


def backbone_states(encoder, rows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """The backbone's own token outputs for padded rows, and the padding mask used."""
    inputs = encoder.batch_inputs(rows)
    outputs = encoder.backbone(inputs, training=False)
    states = outputs["sequence_output"] if isinstance(outputs, dict) else outputs
    return np.asarray(states, dtype=np.float64), inputs["padding_mask"]


@pytest.fixture(scope="module")
def bert(tmp_path_factory: pytest.TempPathFactory):
    weights = tiny_bert_weights()
    folder = write_tiny_bert(tmp_path_factory.mktemp("bert") / "model", weights)
    return folder, weights, load_sentence_encoder(folder)


@pytest.fixture(scope="module")
def llama_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_llama(tmp_path_factory.mktemp("llama") / "model")


def test_bert_matches_hugging_face_forward_pass(bert):
    folder, weights, encoder = bert
    assert encoder.token_ids(SENTENCES, max_length=64) == [reference_token_ids(text) for text in SENTENCES]
    embeddings = encoder.encode(SENTENCES, batch_size=2)
    assert embeddings.shape == (3, TINY_BERT_CONFIG["hidden_size"]) and embeddings.dtype == np.float32
    expected = np.stack([reference_token_states(weights, reference_token_ids(text)).mean(0) for text in SENTENCES])
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(embeddings, expected, atol=GELU_TOLERANCE)


def test_mean_pooling_is_masked_average_of_backbone_outputs(bert):
    _, _, encoder = bert
    rows = encoder.token_ids(SENTENCES, max_length=64)
    states, mask = backbone_states(encoder, rows)
    expected = (states * mask[:, :, None]).sum(1) / mask.sum(1, keepdims=True)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(encoder.encode(SENTENCES), expected, atol=1e-5)


def test_embedding_does_not_depend_on_batch_or_padding(bert):
    _, _, encoder = bert
    alone = encoder.encode(["green tea"])
    batched = encoder.encode(["green tea", " ".join(WORDS[:18])], batch_size=2)
    np.testing.assert_allclose(batched[0], alone[0], atol=1e-5)


def test_truncation_keeps_max_length_tokens_and_respects_positions(bert):
    _, _, encoder = bert
    long_text = " ".join(WORDS)
    assert encoder.token_ids([long_text], max_length=6) == [reference_token_ids(" ".join(WORDS[:4]))]
    # max_position_embeddings (24) caps a larger max_length.
    assert len(encoder.token_ids([long_text], max_length=500)[0]) == TINY_BERT_CONFIG["max_position_embeddings"]
    np.testing.assert_allclose(
        encoder.encode([long_text], max_length=6), encoder.encode([" ".join(WORDS[:4])]), atol=1e-5
    )


def test_prefixed_weights_and_sentence_transformers_cls_pooling_without_normalize(tmp_path):
    weights = tiny_bert_weights(seed=1)
    folder = write_tiny_bert(tmp_path / "model", weights, key_prefix="bert.")
    write_sentence_transformers_config(folder, "pooling_mode_cls_token", normalize=False)
    encoder = load_sentence_encoder(folder)
    expected = np.stack([reference_token_states(weights, reference_token_ids(text))[0] for text in SENTENCES])
    np.testing.assert_allclose(encoder.encode(SENTENCES), expected, atol=GELU_TOLERANCE)


def test_llama_mean_pooling_by_default(llama_folder):
    encoder = load_sentence_encoder(llama_folder)
    assert (encoder.pooling.mode, encoder.pooling.normalize) == ("mean", True)
    rows = encoder.token_ids(SENTENCES, max_length=64)
    assert all(row[0] == encoder.tokenizer.start_token_id for row in rows)
    assert all(row[-1] != encoder.tokenizer.end_token_id for row in rows)
    states, mask = backbone_states(encoder, rows)
    expected = (states * mask[:, :, None]).sum(1) / mask.sum(1, keepdims=True)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(encoder.encode(SENTENCES, batch_size=2), expected, atol=1e-5)


def test_llama_last_token_pooling_reads_the_appended_end_token(llama_folder):
    encoder = load_sentence_encoder(llama_folder, pooling="last", normalize=False)
    rows = encoder.token_ids(SENTENCES, max_length=64)
    assert all(row[-1] == encoder.tokenizer.end_token_id for row in rows)
    states, _ = backbone_states(encoder, rows)
    expected = np.stack([states[index, len(row) - 1] for index, row in enumerate(rows)])
    np.testing.assert_allclose(encoder.encode(SENTENCES, batch_size=3), expected, atol=1e-5)


def test_new_weights_change_fingerprint_and_miss_the_cache(tmp_path):
    folder = write_tiny_bert(tmp_path / "model", tiny_bert_weights(seed=0))
    cache = tmp_path / "cache"

    loads = []

    def encode(texts: list[str]) -> np.ndarray:
        loads.append(folder)
        return load_sentence_encoder(folder).encode(texts)

    def embed() -> np.ndarray:
        return cached_text_embeddings(SENTENCES, encoder_id=encoder_fingerprint(folder), encode=encode, cache_dir=cache)

    first = embed()
    np.testing.assert_array_equal(embed(), first)
    assert len(loads) == 1 and len(list(cache.glob("*.npy"))) == 1
    write_tiny_bert(folder, tiny_bert_weights(seed=1))
    second = embed()
    assert len(loads) == 2 and len(list(cache.glob("*.npy"))) == 2
    assert not np.allclose(second, first)


def test_missing_weight_names_folder(tmp_path):
    weights = tiny_bert_weights()
    del weights["encoder.layer.0.output.LayerNorm.bias"]
    folder = write_tiny_bert(tmp_path / "model", weights)
    with pytest.raises(DataError, match="keras-hub could not load the bert folder") as error:
        load_sentence_encoder(folder)
    assert str(folder) in str(error.value)


def test_config_pooling_and_normalisation_reach_the_encoder_and_the_cache_key(tmp_path):
    from xdt.sequential.text_bridge import encode_texts

    weights = tiny_bert_weights(seed=2)
    folder = write_tiny_bert(tmp_path / "model", weights)
    default = encode_texts(SENTENCES, cache_dir=tmp_path / "cache", encoder_dir=folder)
    cls = encode_texts(SENTENCES, cache_dir=tmp_path / "cache", encoder_dir=folder, pooling="cls", normalize=False)
    assert default.encoder_id.endswith(":max_tokens=64") and cls.encoder_id.endswith(":max_tokens=64:pooling=cls:normalize=False")
    expected = np.stack([reference_token_states(weights, reference_token_ids(text))[0] for text in SENTENCES])
    np.testing.assert_allclose(cls.embeddings, expected, atol=GELU_TOLERANCE)
    np.testing.assert_allclose(np.linalg.norm(default.embeddings, axis=1), 1.0, rtol=1e-5)  # the default normalises
