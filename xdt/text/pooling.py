"""Token states to one sentence vector, as the folder's sentence-transformers config says.

keras-hub's backbones return per-token states; sentence-transformers folders say how to pool them
(`1_Pooling/config.json`) and whether to L2-normalise (a `Normalize` entry in `modules.json`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keras import ops

from xdt.errors import DataError
from xdt.text.folder import EncoderFolder, read_json

# sentence-transformers `1_Pooling/config.json` flag for each pooling mode.
POOLING_CONFIG_KEYS = {
    "mean": "pooling_mode_mean_tokens",
    "cls": "pooling_mode_cls_token",
    "max": "pooling_mode_max_tokens",
    "mean_sqrt_len": "pooling_mode_mean_sqrt_len_tokens",
    "last": "pooling_mode_lasttoken",
}
POOLING_MODES = tuple(POOLING_CONFIG_KEYS)
# sentence-transformers modules this pipeline reproduces; a folder with others (Dense projections,
# as in EmbeddingGemma) is refused rather than encoded differently from the model card.
APPLIED_MODULES = {"Transformer", "Pooling", "Normalize"}


@dataclass(frozen=True)
class Pooling:
    """How token states become a sentence embedding."""

    mode: str
    normalize: bool


def folder_pooling(folder: EncoderFolder, *, mode: str | None = None, normalize: bool | None = None) -> Pooling:
    """The folder's pooling, with `mode` / `normalize` (when given) taking precedence.

    Without sentence-transformers files: mean pooling, normalised. Mean rather than last-token for
    a bare decoder LLM too, because a causal model's last state only summarises the text after
    embedding training; LLM embedding models ship a `1_Pooling/config.json` saying `lasttoken`.
    """
    modules_path = folder.path / "modules.json"
    modules = read_json(modules_path) if modules_path.is_file() else None
    if modules is not None and not isinstance(modules, list):
        raise DataError(f"{modules_path}: expected a list of modules. Received: {type(modules).__name__}")
    module_paths = {str(module.get("type", "")).rsplit(".", 1)[-1]: module.get("path", "") for module in modules or []}
    unapplied = sorted(set(module_paths) - APPLIED_MODULES)
    if unapplied:
        raise DataError(
            f"{modules_path} lists sentence-transformers modules {unapplied}; xdt applies only "
            f"{sorted(APPLIED_MODULES)}, so its embeddings would not be the model's."
        )
    pooling_path = folder.path / module_paths.get("Pooling", "1_Pooling") / "config.json"
    if mode is None:
        mode = read_pooling_mode(pooling_path) if pooling_path.is_file() else "mean"
    if mode not in POOLING_MODES:
        raise DataError(f"Expected pooling in {POOLING_MODES}. Received: pooling={mode!r}")
    if normalize is None:
        normalize = modules is None or "Normalize" in module_paths
    return Pooling(mode, bool(normalize))


def read_pooling_mode(pooling_path: Path) -> str:
    """The one pooling mode switched on in a sentence-transformers `1_Pooling/config.json`."""
    pooling_config = read_json(pooling_path)
    modes = [mode for mode, key in POOLING_CONFIG_KEYS.items() if pooling_config.get(key)]
    if len(modes) != 1:
        raise DataError(
            f"{pooling_path}: expected exactly one of {sorted(POOLING_CONFIG_KEYS.values())} set to true. "
            f"Received: {[POOLING_CONFIG_KEYS[mode] for mode in modes]}"
        )
    return modes[0]


def pool_tokens(hidden_states: Any, padding_mask: Any, mode: str) -> Any:
    """Pool `(batch, length, hidden)` states over the non-padding tokens (padding on the right)."""
    mask = ops.cast(padding_mask, hidden_states.dtype)
    if mode == "cls":
        return hidden_states[:, 0]
    if mode == "last":
        # The last token is the one whose right neighbour is padding (or the end of the row).
        next_mask = ops.pad(mask, [[0, 0], [0, 1]])[:, 1:]
        return ops.sum(hidden_states * (mask * (1.0 - next_mask))[:, :, None], axis=1)
    mask = mask[:, :, None]
    if mode == "max":
        return ops.max(ops.where(mask > 0, hidden_states, ops.full_like(hidden_states, -1e9)), axis=1)
    token_counts = ops.maximum(ops.sum(mask, axis=1), 1e-9)
    summed = ops.sum(hidden_states * mask, axis=1)
    if mode == "mean_sqrt_len":
        return summed / ops.sqrt(token_counts)
    return summed / token_counts


def l2_normalize(embeddings: Any) -> Any:
    return embeddings / ops.maximum(ops.norm(embeddings, axis=-1, keepdims=True), 1e-12)
