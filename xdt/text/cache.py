"""An on-disk cache of text embeddings keyed by encoder and texts."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from xdt.text.folder import fingerprint_files


def cached_text_embeddings(
    texts: Sequence[str],
    *,
    encoder_id: str,
    encode: Callable[[Sequence[str]], np.ndarray],
    cache_dir: Path,
) -> np.ndarray:
    """Return `encode(texts)`, read from `cache_dir` when the same encoder saw the same texts.

    `encoder_id` must change whenever the embeddings would (weights, pooling, `max_length`, ...);
    `encoder_fingerprint` covers a Hugging Face folder's config, weights, tokenizer and pooling.
    """
    cache_dir = Path(cache_dir)
    cache_path = cache_dir / f"{text_embeddings_key(texts, encoder_id)}.npy"
    if cache_path.is_file():
        return np.load(cache_path)
    embeddings = np.asarray(encode(texts))
    if embeddings.ndim != 2 or embeddings.shape[0] != len(texts):
        raise ValueError(
            f"Expected encode to return (len(texts)={len(texts)}, dim) embeddings. "
            f"Received: shape={embeddings.shape}"
        )
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Write under a temporary name and rename, so a crash never leaves a truncated cache entry.
    file_descriptor, temporary_name = tempfile.mkstemp(dir=cache_dir, suffix=".npy.tmp")
    try:
        with os.fdopen(file_descriptor, "wb") as temporary_file:
            np.save(temporary_file, embeddings)
        os.replace(temporary_name, cache_path)
    except BaseException:
        Path(temporary_name).unlink(missing_ok=True)
        raise
    return embeddings


def text_embeddings_key(texts: Sequence[str], encoder_id: str) -> str:
    """sha256 hex of the encoder id and the texts in order, each prefixed with its length."""
    digest = hashlib.sha256()
    for part in (encoder_id, *texts):
        encoded = part.encode("utf-8")
        digest.update(len(encoded).to_bytes(8, "little"))
        digest.update(encoded)
    return digest.hexdigest()


def encoder_fingerprint(model_dir: Path) -> str:
    """sha256 hex of every file of a Hugging Face folder that its embeddings depend on.

    That is config.json, the weights (one file or index and shards), the tokenizer files and the
    sentence-transformers pooling configs, each prefixed with its name relative to the folder.
    """
    digest = hashlib.sha256()
    for path in fingerprint_files(Path(model_dir)):
        name = path.relative_to(model_dir).as_posix().encode("utf-8")
        digest.update(len(name).to_bytes(8, "little"))
        digest.update(name)
        digest.update(path.stat().st_size.to_bytes(8, "little"))
        with path.open("rb") as file:
            for chunk in iter(lambda: file.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()
