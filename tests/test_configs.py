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


def load_bench_quality():  # noqa: ANN201
    import importlib.util

    path = CONFIGS.parent / "bench" / "quality.py"
    spec = importlib.util.spec_from_file_location("bench_quality", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_quality_bench_trains_what_the_shipped_configs_say(tmp_path: Path) -> None:
    """One source of truth: the bench's config for a seed differs from the shipped one only in bench plumbing."""
    bench = load_bench_quality()
    for name, spec in bench.DATASETS.items():
        shipped = load_config(spec["config"]).config
        benched = bench.build_config(name, spec, 2023, ["popularity", "joint"], tmp_path, sampled=99)
        assert benched.pretrain == shipped.pretrain, name
        assert {**benched.transfer.__dict__, "methods": None} == {**shipped.transfer.__dict__, "methods": None}, name
        assert benched.evaluate.test_excludes == shipped.evaluate.test_excludes, name
        assert (benched.seed, benched.dataset.name, benched.transfer.methods) == (2023, f"{shipped.dataset.name}-seed2023", ["popularity", "joint"])
        assert benched.evaluate.sampled_negatives == 99 and benched.runtime.data_dir == str(tmp_path / "data")


def test_the_cdrib_configs_carry_the_settings_that_keep_target_mf_from_collapsing() -> None:
    for name in ("cdrib-game-video", "cdrib-video-game"):
        config = load_config(CONFIGS / f"{name}.yaml").config
        assert config.transfer.l2 == 0.01 and config.pretrain.l2 == 0.01 and config.transfer.embedding_dim == 64
        assert config.transfer.private_dropout == 0.5 and config.evaluate.test_excludes == ["train"]


def test_l2_is_on_by_default_and_the_disencdr_configs_use_the_swept_value() -> None:
    from xdt.config import PretrainConfig, TransferConfig

    assert PretrainConfig().l2 == TransferConfig().l2 == 0.01
    for name in ("disencdr-sport-phone", "disencdr-phone-sport"):
        config = load_config(CONFIGS / f"{name}.yaml").config
        assert config.transfer.l2 == config.pretrain.l2 == 0.01
