"""A pretrained-free text encoder: hashed word and character n-grams, randomly projected."""

from __future__ import annotations

import re
import zlib
from collections import Counter
from collections.abc import Sequence

import numpy as np

WORD_PATTERN = re.compile(r"\w+")
CHARACTER_NGRAM_SIZES = (3, 4, 5)


class HashedTextEncoder:
    """Deterministic texts → `(n, dim)` unit vectors; needs no weights and no corpus statistics.

    Each text becomes sublinear term frequencies (1 + log count) of its words and of the
    character 3-5-grams of each space-padded word, hashed with `zlib.crc32` (stable across
    processes, unlike the salted built-in `hash`) into `buckets` signed buckets. Words and
    character n-grams are normalised separately and weighted equally, then a seeded Gaussian
    projection maps the buckets to `dim`. With no IDF, a text's vector never depends on the
    other texts encoded alongside it, so results can be cached per text.
    """

    def __init__(self, dim: int = 256, seed: int = 0, buckets: int = 2**14) -> None:
        if dim < 1:
            raise ValueError(f"Expected dim >= 1. Received: dim={dim}")
        if buckets < 1:
            raise ValueError(f"Expected buckets >= 1. Received: buckets={buckets}")
        self.dim = dim
        self.seed = seed
        self.buckets = buckets
        self.projection = np.random.default_rng(seed).standard_normal((buckets, dim)).astype(
            np.float32
        ) / np.sqrt(dim)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts to float32 `(len(texts), dim)` unit rows (zero rows for wordless texts)."""
        embeddings = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            words = WORD_PATTERN.findall(text.lower())
            character_ngrams = [
                padded[start : start + size]
                for padded in (f" {word} " for word in words)
                for size in CHARACTER_NGRAM_SIZES
                for start in range(len(padded) - size + 1)
            ]
            indices, weights = [], []
            for prefix, features in (("w", words), ("c", character_ngrams)):
                feature_indices, feature_weights = self.hash_features(prefix, features)
                indices.append(feature_indices)
                weights.append(feature_weights)
            embedding = np.concatenate(weights) @ self.projection[np.concatenate(indices)]
            norm = np.linalg.norm(embedding)
            if norm > 0:
                embeddings[row] = embedding / norm
        return embeddings

    def hash_features(self, prefix: str, features: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Bucket indices and signed, L2-normalised sublinear-TF weights of one feature family."""
        counts = Counter(features)
        indices = np.zeros(len(counts), dtype=np.int64)
        weights = np.zeros(len(counts), dtype=np.float32)
        for position, (feature, count) in enumerate(counts.items()):
            # The prefix keeps the word "tea" and the character 3-gram "tea" in different buckets.
            hashed = zlib.crc32(f"{prefix}:{feature}".encode())
            indices[position] = hashed % self.buckets
            # The top hash bit signs the feature, so bucket collisions cancel on average.
            weights[position] = (1.0 + np.log(count)) * (1.0 if hashed >> 31 else -1.0)
        norm = np.linalg.norm(weights)
        return indices, weights / norm if norm > 0 else weights
