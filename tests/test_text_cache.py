"""Tests for the text embedding cache and the encoder fingerprint."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from xdt.errors import DataError
from xdt.text.cache import cached_text_embeddings, encoder_fingerprint


class CountingEncoder:
    """Embeds each text as (length, number of words) and counts calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        return np.array([[len(text), len(text.split())] for text in texts], dtype=np.float32)


TEXTS = ["green tea", "chef knife 8 inch", "dark chocolate"]


def test_hit_returns_identical_array_without_encoding(tmp_path):
    encode = CountingEncoder()
    first = cached_text_embeddings(TEXTS, encoder_id="counting", encode=encode, cache_dir=tmp_path)
    second = cached_text_embeddings(TEXTS, encoder_id="counting", encode=encode, cache_dir=tmp_path)
    assert encode.calls == 1
    np.testing.assert_array_equal(second, first)
    assert second.dtype == first.dtype
    assert [path.suffix for path in tmp_path.iterdir()] == [".npy"]


def test_changed_text_or_order_recomputes(tmp_path):
    encode = CountingEncoder()
    cached_text_embeddings(TEXTS, encoder_id="counting", encode=encode, cache_dir=tmp_path)
    changed = cached_text_embeddings(
        [*TEXTS[:2], "milk chocolate"], encoder_id="counting", encode=encode, cache_dir=tmp_path
    )
    assert encode.calls == 2
    assert changed[2].tolist() == [14.0, 2.0]
    cached_text_embeddings(TEXTS[::-1], encoder_id="counting", encode=encode, cache_dir=tmp_path)
    assert encode.calls == 3


def test_texts_are_not_ambiguous_when_concatenated(tmp_path):
    encode = CountingEncoder()
    cached_text_embeddings(["ab", "c"], encoder_id="counting", encode=encode, cache_dir=tmp_path)
    cached_text_embeddings(["a", "bc"], encoder_id="counting", encode=encode, cache_dir=tmp_path)
    assert encode.calls == 2


def test_changed_encoder_id_recomputes(tmp_path):
    encode = CountingEncoder()
    cached_text_embeddings(TEXTS, encoder_id="counting-v1", encode=encode, cache_dir=tmp_path)
    cached_text_embeddings(TEXTS, encoder_id="counting-v2", encode=encode, cache_dir=tmp_path)
    assert encode.calls == 2
    assert len(list(tmp_path.glob("*.npy"))) == 2


def test_failed_encode_leaves_no_cache_entry(tmp_path):
    def broken_encode(texts: Sequence[str]) -> np.ndarray:
        return np.zeros((len(texts) - 1, 4), dtype=np.float32)

    with pytest.raises(ValueError, match="len\\(texts\\)=3"):
        cached_text_embeddings(TEXTS, encoder_id="broken", encode=broken_encode, cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def write_folder_files(folder: Path) -> None:
    """The files a BERT folder's fingerprint reads; their contents need not be a real model."""
    (folder / "config.json").write_text('{"model_type": "bert", "hidden_size": 16}')
    (folder / "model.safetensors").write_bytes(b"weights-v1")
    (folder / "vocab.txt").write_text("[PAD]\n")
    (folder / "tokenizer_config.json").write_text('{"do_lower_case": true}')


def test_encoder_fingerprint_tracks_config_weights_tokenizer_and_pooling(tmp_path):
    write_folder_files(tmp_path)
    first = encoder_fingerprint(tmp_path)
    assert encoder_fingerprint(tmp_path) == first and len(first) == 64
    fingerprints = {first}
    for name, content in (
        ("model.safetensors", "weights-v2"),
        ("config.json", '{"model_type": "bert", "hidden_size": 32}'),
        ("vocab.txt", "[PAD]\n[UNK]\n"),
        ("1_Pooling/config.json", '{"pooling_mode_cls_token": true}'),
        ("modules.json", "[]"),
    ):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(content)
        fingerprints.add(encoder_fingerprint(tmp_path))
    assert len(fingerprints) == 6


def test_encoder_fingerprint_follows_weight_shards(tmp_path):
    write_folder_files(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    (tmp_path / "model-00001-of-00002.safetensors").write_bytes(b"first")
    with pytest.raises(DataError, match="model-00002-of-00002.safetensors"):
        encoder_fingerprint(tmp_path)
    (tmp_path / "model-00002-of-00002.safetensors").write_bytes(b"second")
    first = encoder_fingerprint(tmp_path)
    (tmp_path / "model-00002-of-00002.safetensors").write_bytes(b"second, retrained")
    assert encoder_fingerprint(tmp_path) != first


def test_encoder_fingerprint_missing_file_names_path(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(DataError, match="model.safetensors") as error:
        encoder_fingerprint(tmp_path)
    assert str(tmp_path / "model.safetensors") in str(error.value)
