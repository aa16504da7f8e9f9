"""Every shipped config under configs/ loads and validates (no training), so none rots."""

from __future__ import annotations

from pathlib import Path

import pytest

from xdt.config import load_config
from xdt.models.registry import METHOD_NAMES

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
ALL = sorted(CONFIGS.rglob("*.yaml"))


@pytest.mark.parametrize("path", ALL, ids=[str(path.relative_to(CONFIGS)) for path in ALL])
def test_config_loads(path: Path) -> None:
    loaded = load_config(path)
    assert loaded.config.experiment


def test_every_registered_method_has_a_config() -> None:
    for method in METHOD_NAMES:
        loaded = load_config(CONFIGS / "methods" / f"{method}.yaml")
        assert loaded.config.transfer.methods == [method]
    assert load_config(CONFIGS / "disencdr-joint.yaml").config.dataset.given_valid == "leave_one_out"
