"""WordPiece tokenisation of texts into padded `token_ids` and `padding_mask` arrays."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from xdt.errors import DataError, XdtError

TEXT_EXTRA_HINT = "Install the text extra: pip install 'xdt[text]'"


class WordPieceTokenizer:
    """A Hugging Face `tokenizers` tokenizer that pads each batch to its longest text."""

    def __init__(self, tokenizer: Any, pad_token_id: int) -> None:
        self.tokenizer = tokenizer
        self.pad_token_id = pad_token_id
        # tokenizer.json files often carry fixed padding (all-MiniLM-L6-v2 pads to 128): padding
        # is done here instead, to the longest text in the batch.
        self.tokenizer.no_padding()

    @classmethod
    def from_folder(cls, model_dir: Path) -> WordPieceTokenizer:
        """Load `tokenizer.json`, or else `vocab.txt` with `tokenizer_config.json`'s casing."""
        try:
            import tokenizers
        except ImportError as error:
            raise XdtError(
                f"Reading a tokenizer needs the `tokenizers` package. {TEXT_EXTRA_HINT}"
            ) from error
        model_dir = Path(model_dir)
        tokenizer_path = model_dir / "tokenizer.json"
        vocabulary_path = model_dir / "vocab.txt"
        if tokenizer_path.is_file():
            tokenizer = tokenizers.Tokenizer.from_file(str(tokenizer_path))
        elif vocabulary_path.is_file():
            tokenizer = tokenizers.BertWordPieceTokenizer(
                str(vocabulary_path), lowercase=read_lowercase(model_dir)
            )
        else:
            raise DataError(f"No tokenizer in {model_dir}: expected tokenizer.json or vocab.txt.")
        pad_token_id = tokenizer.token_to_id("[PAD]")
        return cls(tokenizer, pad_token_id=0 if pad_token_id is None else pad_token_id)

    def __call__(self, texts: Sequence[str], *, max_length: int) -> tuple[np.ndarray, np.ndarray]:
        """Tokenise to int32 `token_ids` and `padding_mask`, both `(len(texts), longest)`."""
        if max_length < 2:
            raise ValueError(f"Expected max_length >= 2. Received: max_length={max_length}")
        self.tokenizer.enable_truncation(max_length)
        encodings = self.tokenizer.encode_batch(list(texts))
        longest = max((len(encoding.ids) for encoding in encodings), default=0)
        token_ids = np.full((len(encodings), longest), self.pad_token_id, dtype=np.int32)
        padding_mask = np.zeros((len(encodings), longest), dtype=np.int32)
        for row, encoding in enumerate(encodings):
            token_ids[row, : len(encoding.ids)] = encoding.ids
            padding_mask[row, : len(encoding.ids)] = 1
        return token_ids, padding_mask


def read_lowercase(model_dir: Path) -> bool:
    """Return `do_lower_case` from `tokenizer_config.json`, True when absent (uncased BERT)."""
    config_path = model_dir / "tokenizer_config.json"
    if not config_path.is_file():
        return True
    return bool(json.loads(config_path.read_text(encoding="utf-8")).get("do_lower_case", True))
