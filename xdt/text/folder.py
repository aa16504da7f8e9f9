"""What a local Hugging Face model folder must hold before keras-hub is asked to load it.

keras-hub's own errors for a broken folder are a bare `KeyError` or a safetensors message that
names neither the folder nor the missing file; these checks run first and say both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xdt.errors import DataError

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
WEIGHTS_INDEX_FILE = "model.safetensors.index.json"
# sentence-transformers files that change the pooled embedding without touching the weights.
SENTENCE_TRANSFORMERS_FILES = ("modules.json", "1_Pooling/config.json", "sentence_bert_config.json")

ENCODER = "encoder"
DECODER = "decoder"


@dataclass(frozen=True)
class Family:
    """How keras-hub reads one `model_type`: encoder or decoder, and the tokenizer files it opens.

    `tokenizer_files` lists alternatives; each alternative is a tuple of files that must all exist.
    """

    kind: str
    tokenizer_files: tuple[tuple[str, ...], ...]


WORD_PIECE = (("vocab.txt", "tokenizer_config.json"),)
# The model types keras-hub 0.32's Transformers loader converts and that encode text alone.
FAMILIES = {
    "bert": Family(ENCODER, WORD_PIECE),
    "distilbert": Family(ENCODER, WORD_PIECE),
    "roberta": Family(ENCODER, (("vocab.json", "merges.txt"),)),
    "xlm-roberta": Family(ENCODER, (("sentencepiece.bpe.model",),)),
    "albert": Family(ENCODER, (("spiece.model",),)),
    "gemma": Family(DECODER, (("tokenizer.model",),)),
    "gemma2": Family(DECODER, (("tokenizer.model",),)),
    "gemma3_text": Family(DECODER, (("tokenizer.model",), ("tokenizer.json",))),
    "llama": Family(DECODER, (("tokenizer.json",),)),
    "mistral": Family(DECODER, (("tokenizer.model",), ("tekken.json",))),
    "qwen2": Family(DECODER, (("tokenizer.json",),)),
    "qwen3": Family(DECODER, (("tokenizer.json",),)),
}


@dataclass(frozen=True)
class EncoderFolder:
    """A checked Hugging Face folder: its `config.json`, family and the files its embeddings depend on."""

    path: Path
    config: dict[str, Any]
    model_type: str
    family: Family

    @property
    def is_decoder(self) -> bool:
        return self.family.kind == DECODER

    @property
    def max_positions(self) -> int | None:
        """`max_position_embeddings` from config.json, when the family has a learned limit."""
        value = self.config.get("max_position_embeddings")
        return int(value) if value is not None else None


def read_encoder_folder(model_dir: Path) -> EncoderFolder:
    """Check that `model_dir` holds a config, weights and tokenizer files keras-hub can read."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise DataError(f"Text encoder folder {model_dir} does not exist; expected a Hugging Face model folder.")
    config_path = model_dir / CONFIG_FILE
    require_file(config_path, "a text encoder folder holds the model's config.json")
    config = read_json(config_path)
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if model_type not in FAMILIES:
        raise DataError(
            f"{config_path}: expected model_type in {sorted(FAMILIES)} (keras-hub converts these to text encoders). "
            f"Received: model_type={model_type!r}"
        )
    family = FAMILIES[model_type]
    weight_files(model_dir)
    tokenizer_files(model_dir, family)
    if family.tokenizer_files == WORD_PIECE:
        tokenizer_config_path = model_dir / "tokenizer_config.json"
        if "do_lower_case" not in read_json(tokenizer_config_path):
            raise DataError(
                f"{tokenizer_config_path} has no 'do_lower_case'; keras-hub's WordPiece tokenizer needs it (true for uncased models)."
            )
    return EncoderFolder(model_dir, config, model_type, family)


def weight_files(model_dir: Path) -> list[Path]:
    """`model.safetensors`, or the index and every shard it names."""
    single = model_dir / WEIGHTS_FILE
    index = model_dir / WEIGHTS_INDEX_FILE
    if single.is_file():
        return [single]
    if not index.is_file():
        raise DataError(f"Missing {single} (or a sharded {WEIGHTS_INDEX_FILE}) in the text encoder folder {model_dir}.")
    weight_map = read_json(index).get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise DataError(f"{index}: expected a non-empty 'weight_map' of tensor name -> shard file.")
    shards = [model_dir / name for name in sorted(set(weight_map.values()))]
    for shard in shards:
        require_file(shard, f"{index} names it as a weight shard")
    return [index, *shards]


def tokenizer_files(model_dir: Path, family: Family) -> list[Path]:
    """The first complete alternative of the family's tokenizer files."""
    for alternative in family.tokenizer_files:
        paths = [model_dir / name for name in alternative]
        if all(path.is_file() for path in paths):
            return paths
    wanted = " or ".join(" + ".join(alternative) for alternative in family.tokenizer_files)
    raise DataError(f"Missing tokenizer files in the text encoder folder {model_dir}: expected {wanted}.")


def fingerprint_files(model_dir: Path) -> list[Path]:
    """Every file whose bytes the embeddings depend on: config, weights, tokenizer, pooling configs."""
    folder = read_encoder_folder(model_dir)
    optional = [folder.path / name for name in SENTENCE_TRANSFORMERS_FILES if (folder.path / name).is_file()]
    return [
        folder.path / CONFIG_FILE,
        *weight_files(folder.path),
        *tokenizer_files(folder.path, folder.family),
        *optional,
    ]


def require_file(path: Path, why: str) -> None:
    if not path.is_file():
        raise DataError(f"Missing {path}; {why}.")


def read_json(path: Path) -> Any:
    """Parse a JSON file, naming the file when it is malformed."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"{path} is not valid JSON: {error}") from error
