"""Text bridge: items represented by their titles through a sentence encoder and a learned adaptor.

Item text → frozen sentence embedding (a Hugging Face encoder folder via `xdt.text.sentence_encoder`, or the
weight-free `HashedTextEncoder`), cached on disk by encoder and texts → `TextAdaptor` (UniSRec's
parametric whitening + mixture of experts, Hou et al. KDD 2022) → the item side of a
`SequenceTransformer`. Nothing here depends on item or user ids, so a model transfers between
domains with no shared users or items and scores brand-new items from their text alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd
from keras import ops

from xdt.data.protocols import SOURCE, TARGET
from xdt.text.cache import cached_text_embeddings, encoder_fingerprint
from xdt.text.hashed import HashedTextEncoder


@keras.saving.register_keras_serializable(package="xdt")
class TextAdaptor(keras.layers.Layer):
    """Mixture of parametric-whitening experts: `(..., text_dim)` → `(..., width)`.

    Expert k maps x to `(x - b_k) W_k` (a learned centring and projection, the parametric form of
    whitening); a softmax gate over `x W_g` mixes the experts per item. Initialised near a
    random projection, so frozen-encoder geometry passes through before training.
    """

    def __init__(self, width: int, experts: int = 8, dropout: float = 0.2, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if experts < 1:
            raise ValueError(f"Expected experts >= 1. Received: experts={experts}")
        self.width = width
        self.experts = experts
        self.dropout = dropout
        self.input_dropout = keras.layers.Dropout(dropout)

    def build(self, text_shape: tuple) -> None:
        text_dim = int(text_shape[-1])
        self.expert_bias = self.add_weight(shape=(self.experts, text_dim), initializer="zeros", name="expert_bias")
        self.expert_projection = self.add_weight(
            shape=(text_dim, self.experts * self.width), initializer="glorot_uniform", name="expert_projection"
        )
        self.gate = self.add_weight(shape=(text_dim, self.experts), initializer="zeros", name="gate")
        self.built = True

    def call(self, text_embeddings: Any, training: bool = False) -> Any:
        text_embeddings = self.input_dropout(text_embeddings, training=training)
        text_dim = ops.shape(text_embeddings)[-1]
        projection = ops.reshape(self.expert_projection, (text_dim, self.experts, self.width))
        # (x - b_k) W_k = x W_k - b_k W_k; the second term is one (experts, width) matrix.
        bias_terms = ops.einsum("kd,dkw->kw", self.expert_bias, projection)
        experts = ops.reshape(
            ops.matmul(text_embeddings, self.expert_projection), (*ops.shape(text_embeddings)[:-1], self.experts, self.width)
        ) - bias_terms
        gates = ops.softmax(ops.matmul(text_embeddings, self.gate), axis=-1)
        return ops.sum(experts * gates[..., None], axis=-2)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "width": self.width, "experts": self.experts, "dropout": self.dropout}


@dataclass(frozen=True)
class TextEmbeddings:
    """Sentence embeddings `(n, dim)` of texts and the id of the encoder that made them."""

    embeddings: np.ndarray
    encoder_id: str


def item_texts(vocabulary: Any, source_items: pd.DataFrame | None, target_items: pd.DataFrame | None) -> list[str]:
    """One text per vocabulary token ("" for padding and items without a title).

    Frames have `item` (per-domain index) and `title` columns, e.g. `PreparedDataset.items(domain)`.
    """
    texts = [""] * vocabulary.size
    for domain, frame in ((SOURCE, source_items), (TARGET, target_items)):
        if frame is None or "title" not in frame.columns:
            continue
        low, high = vocabulary.token_range(domain)
        for item, title in zip(frame["item"].astype(np.int64), frame["title"]):
            if 0 <= item < high - low and isinstance(title, str):
                texts[low + item] = title
    return texts


def encode_texts(
    texts: Sequence[str],
    *,
    cache_dir: Path,
    encoder_dir: Path | None = None,
    hashed_dim: int = 256,
    max_tokens: int = 64,
    batch_size: int = 128,
    pooling: str | None = None,
    normalize: bool | None = None,
) -> TextEmbeddings:
    """Sentence embeddings of `texts`, cached; a pretrained folder when given, else hashed n-grams.

    Empty texts (padding, missing titles) get zero rows whichever encoder runs. `pooling` and
    `normalize` override the folder's sentence-transformers config (None: the folder's) and are
    part of the cache key when set.
    """
    if encoder_dir is not None:
        from xdt.text.sentence_encoder import load_sentence_encoder

        overrides = "".join(f":{name}={value}" for name, value in (("pooling", pooling), ("normalize", normalize)) if value is not None)
        encoder_id = f"bert:{encoder_fingerprint(Path(encoder_dir))}:max_tokens={max_tokens}{overrides}"
        loaded: list[Any] = []

        def encode(batch: Sequence[str]) -> np.ndarray:
            if not loaded:
                loaded.append(load_sentence_encoder(Path(encoder_dir), pooling=pooling, normalize=normalize))
            return loaded[0].encode(batch, batch_size=batch_size, max_length=max_tokens)

    else:
        hashed = HashedTextEncoder(dim=hashed_dim)
        encoder_id = f"hashed:dim={hashed.dim}:seed={hashed.seed}:buckets={hashed.buckets}"
        encode = hashed.encode
    embeddings = cached_text_embeddings(texts, encoder_id=encoder_id, encode=encode, cache_dir=Path(cache_dir))
    embeddings = np.array(embeddings, dtype=np.float32)
    embeddings[[index for index, text in enumerate(texts) if not text]] = 0.0
    return TextEmbeddings(embeddings, encoder_id)


def build_text_bridge(text_embeddings: np.ndarray, *, max_length: int, **transformer_arguments: Any) -> Any:
    """A `SequenceTransformer` whose items are `text_embeddings` `(vocabulary_size, text_dim)` through an adaptor."""
    from xdt.sequential.transformer import SequenceTransformer

    model = SequenceTransformer(
        vocabulary_size=text_embeddings.shape[0], max_length=max_length, text_dim=text_embeddings.shape[1], **transformer_arguments
    )
    model.set_item_text_embeddings(text_embeddings)
    return model
