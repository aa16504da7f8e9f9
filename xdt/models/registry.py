"""Registry: config names → the modules that train them. Importing it never imports TensorFlow."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from xdt.errors import ConfigError


@dataclass(frozen=True)
class MethodEntry:
    """A registered method: where its trainer lives and what it needs."""

    name: str
    module: str
    description: str
    # Loads the pretrained source model (`xdt transfer --from PRETRAIN_RUN`).
    needs_source_model: bool
    # Reads source-domain rows in any way (the model, the rows, or both): a transfer method.
    uses_source: bool

    def trainer(self) -> Callable[..., Any]:
        """Import and return the method's `train(context)` function."""
        return importlib.import_module(self.module).train


METHODS: dict[str, MethodEntry] = {
    entry.name: entry
    for entry in (
        MethodEntry("popularity", "xdt.methods.popularity", "target-only: items ranked by training count", False, False),
        MethodEntry("itemknn", "xdt.methods.itemknn", "target-only: item-item cosine neighbourhood (sparse)", False, False),
        MethodEntry(
            "xknn", "xdt.methods.xknn", "cross-domain item cosine over overlapping users; source history → target items", False, True
        ),
        MethodEntry(
            "content",
            "xdt.methods.content",
            "TF-IDF cosine of the user's item titles (both domains) with each target item's title",
            False,
            True,
        ),
        MethodEntry("target_mf", "xdt.methods.target_mf", "target-only BPR matrix factorisation", False, False),
        MethodEntry(
            "lightgcn", "xdt.methods.lightgcn", "target-only LightGCN: layer-mean embeddings propagated over the target training graph", False, False
        ),
        MethodEntry(
            "two_tower",
            "xdt.methods.two_tower",
            "target-only deep two-tower: MLP(user id + recent target history) · MLP(item id)",
            False,
            False,
        ),
        MethodEntry("finetune", "xdt.methods.finetune", "target MF initialised from the source user embeddings", True, True),
        MethodEntry("emcdr", "xdt.methods.emcdr", "source→target user-embedding mapping learned on overlapping users", True, True),
        MethodEntry(
            "ptupcdr", "xdt.methods.ptupcdr", "meta-network: source history → personalised bridge, trained on the target loss", True, True
        ),
        MethodEntry(
            "dann", "xdt.methods.dann", "shared user encoder made domain-invariant by gradient reversal, two item heads", True, True
        ),
        MethodEntry("joint", "xdt.methods.joint", "shared + domain-specific user embeddings trained on both domains", True, True),
        MethodEntry(
            "cmf",
            "xdt.methods.cmf",
            "collective MF: one user embedding shared by both domains, trained from scratch on their union",
            False,
            True,
        ),
        MethodEntry(
            "cdrib",
            "xdt.methods.cdrib",
            "CDRIB: variational graph encoders per domain, information-bottleneck and contrastive terms; cold users scored from the source side",
            False,
            True,
        ),
        MethodEntry(
            "disencdr",
            "xdt.methods.disencdr",
            "DisenCDR: shared and domain-specific variational graph encoders with its KL regularisers; scores both domains",
            False,
            True,
        ),
        MethodEntry(
            "fusion",
            "xdt.methods.fusion",
            "per-user z-scored blend of a learned transfer model, xknn and TF-IDF content scores; weights chosen on validation",
            True,
            True,
        ),
    )
}

SOURCE_MODELS: dict[str, str] = {
    "mf": "BPR matrix factorisation over the source domain",
    # Saved as an MF whose tables are the propagated embeddings, so every transfer method starts from it.
    "lightgcn": "LightGCN over the source training graph, saved as its propagated user/item embeddings",
}

METHOD_NAMES: tuple[str, ...] = tuple(METHODS)
# Learned methods that `fusion` can blend (transfer.fusion_base).
FUSION_BASE_NAMES: tuple[str, ...] = ("finetune", "emcdr", "ptupcdr", "dann", "joint", "target_mf", "two_tower", "cmf", "lightgcn", "cdrib", "disencdr")
SOURCE_MODEL_NAMES: tuple[str, ...] = tuple(SOURCE_MODELS)


def get_method(name: str) -> MethodEntry:
    """Look up a method by name; a miss lists the available names."""
    if name not in METHODS:
        close = difflib.get_close_matches(name, METHOD_NAMES, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"Unknown method {name!r}.{hint} Available: {', '.join(METHOD_NAMES)}")
    return METHODS[name]
