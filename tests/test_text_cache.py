"""Tests for the text embedding cache and the encoder fingerprint."""

from __future__ import annotations

from collections.abc import Sequence

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


def test_encoder_fingerprint_tracks_config_and_weights(tmp_path):
    (tmp_path / "config.json").write_text('{"hidden_size": 16}')
    (tmp_path / "model.safetensors").write_bytes(b"weights-v1")
    (tmp_path / "vocab.txt").write_text("[PAD]\n")
    first = encoder_fingerprint(tmp_path)
    assert encoder_fingerprint(tmp_path) == first and len(first) == 64
    (tmp_path / "model.safetensors").write_bytes(b"weights-v2")
    second = encoder_fingerprint(tmp_path)
    (tmp_path / "config.json").write_text('{"hidden_size": 32}')
    assert len({first, second, encoder_fingerprint(tmp_path)}) == 3


def test_encoder_fingerprint_missing_file_names_path(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(DataError, match="model.safetensors") as error:
        encoder_fingerprint(tmp_path)
    assert str(tmp_path / "model.safetensors") in str(error.value)
