"""Sentence embeddings from any local Hugging Face encoder or decoder folder that keras-hub converts.

keras-hub (the `hub` extra) builds the backbone and tokenizer from the folder offline; this module
adds what a sentence embedding needs on top: special tokens, batches of similar length (little
padding, so encoding stays fast), the folder's pooling and normalisation.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from xdt.errors import DataError, XdtError
from xdt.text.folder import EncoderFolder, read_encoder_folder
from xdt.text.pooling import Pooling, folder_pooling, l2_normalize, pool_tokens

HUB_EXTRA_HINT = "Install the hub extra: pip install 'xdt[hub]'"
BACKBONE_INPUTS = ("token_ids", "padding_mask", "segment_ids")
# Batches are padded to a multiple of this many tokens, so the traced predict function is reused
# across batches whose longest texts differ by a token or two.
LENGTH_STEP = 8


class SentenceEncoder:
    """Texts to `(n, dim)` float32 embeddings with a keras-hub backbone and tokenizer."""

    def __init__(self, folder: EncoderFolder, backbone: Any, tokenizer: Any, pooling: Pooling) -> None:
        self.folder = folder
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.pooling = pooling
        unknown = sorted(set(backbone.input) - set(BACKBONE_INPUTS))
        if unknown:
            raise XdtError(
                f"{type(backbone).__name__} from {folder.path} takes inputs {unknown}; "
                f"a sentence encoder feeds only {list(BACKBONE_INPUTS)}."
            )
        self.model = embedding_model(backbone, pooling)
        self.start_token_id = tokenizer.start_token_id
        # Encoders always close with their end token ([SEP], </s>); a decoder only when its last
        # token is pooled, as LLM embedding models are trained (the end token sees the whole text).
        self.end_token_id = tokenizer.end_token_id if not folder.is_decoder or pooling.mode == "last" else None
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.max_positions = getattr(backbone, "max_sequence_length", None) or folder.max_positions

    @property
    def dim(self) -> int:
        """Width of the embeddings `encode` returns."""
        return int(self.model.output.shape[-1])

    def token_ids(self, texts: Sequence[str], *, max_length: int) -> list[list[int]]:
        """Each text's ids with the family's special tokens, at most `max_length` of them."""
        if max_length < 2:
            raise ValueError(f"Expected max_length >= 2. Received: max_length={max_length}")
        if self.max_positions is not None:
            max_length = min(max_length, int(self.max_positions))
        start = [] if self.start_token_id is None else [int(self.start_token_id)]
        end = [] if self.end_token_id is None else [int(self.end_token_id)]
        body_length = max_length - len(start) - len(end)
        tokenized = self.tokenizer(list(texts))
        if hasattr(tokenized, "to_list"):
            tokenized = tokenized.to_list()
        return [start + [int(token) for token in ids[:body_length]] + end for ids in tokenized]

    def batch_inputs(self, rows: Sequence[Sequence[int]]) -> dict[str, np.ndarray]:
        """Right-padded `token_ids` / `padding_mask` (and zero `segment_ids`) for the backbone."""
        longest = max((len(row) for row in rows), default=1)
        width = -(-max(longest, 1) // LENGTH_STEP) * LENGTH_STEP
        token_ids = np.full((len(rows), width), self.pad_token_id, dtype=np.int32)
        padding_mask = np.zeros((len(rows), width), dtype=np.int32)
        for index, row in enumerate(rows):
            token_ids[index, : len(row)] = row
            padding_mask[index, : len(row)] = 1
        inputs = {"token_ids": token_ids, "padding_mask": padding_mask, "segment_ids": np.zeros_like(token_ids)}
        return {name: inputs[name] for name in self.backbone.input}

    def encode(self, texts: Sequence[str], *, batch_size: int = 64, max_length: int = 128) -> np.ndarray:
        """Embed texts to float32 `(len(texts), dim)`, in input order.

        Texts are truncated to `max_length` tokens (special tokens included), capped at the
        model's position limit.
        """
        if batch_size < 1:
            raise ValueError(f"Expected batch_size >= 1. Received: batch_size={batch_size}")
        rows = self.token_ids(texts, max_length=max_length)
        embeddings = np.zeros((len(rows), self.dim), dtype=np.float32)
        # Longest first, so each batch holds texts of similar length and little padding.
        order = sorted(range(len(rows)), key=lambda index: -len(rows[index]))
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            batch_embeddings = self.model.predict_on_batch(self.batch_inputs([rows[index] for index in batch]))
            embeddings[batch] = np.asarray(batch_embeddings, dtype=np.float32)
        return embeddings


def embedding_model(backbone: Any, pooling: Pooling) -> keras.Model:
    """The backbone's token states, pooled (and normalised) into one vector per text."""
    inputs = backbone.input
    outputs = backbone(inputs)
    states = outputs["sequence_output"] if isinstance(outputs, dict) else outputs
    pooled = pool_tokens(states, inputs["padding_mask"], pooling.mode)
    return keras.Model(inputs, l2_normalize(pooled) if pooling.normalize else pooled)


def load_sentence_encoder(model_dir: Path, *, pooling: str | None = None, normalize: bool | None = None) -> SentenceEncoder:
    """Load a local Hugging Face folder (optionally sentence-transformers) as a sentence encoder.

    `pooling` ("mean", "cls", "max", "mean_sqrt_len", "last") and `normalize` override the
    folder's sentence-transformers config; see `folder_pooling` for the defaults without one.
    """
    folder = read_encoder_folder(Path(model_dir))
    chosen_pooling = folder_pooling(folder, mode=pooling, normalize=normalize)
    try:
        import keras_hub
        from safetensors import SafetensorError
    except ImportError as error:
        raise XdtError(f"Loading the text encoder {folder.path} needs keras-hub. {HUB_EXTRA_HINT}") from error
    try:
        backbone = keras_hub.models.Backbone.from_preset(str(folder.path))
        tokenizer = keras_hub.tokenizers.Tokenizer.from_preset(str(folder.path))
    except (KeyError, ValueError, OSError, RuntimeError, SafetensorError) as error:
        raise DataError(
            f"keras-hub could not load the {folder.model_type} folder {folder.path}: {type(error).__name__}: {error}"
        ) from error
    return SentenceEncoder(folder, backbone, tokenizer, chosen_pooling)
