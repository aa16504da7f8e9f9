"""Shared fixtures: a tiny two-domain experiment config written into a temporary folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TINY_CONFIG = {
    "experiment": "tiny",
    "seed": 7,
    "dataset": {
        "name": "tiny",
        "synthetic": {
            "users": 600,
            "source_items": 150,
            "target_items": 120,
            "overlap_fraction": 0.6,
            "source_only_fraction": 0.2,
            "shared_taste": 0.9,
            "latent_dim": 4,
            "source_interactions": 20,
            "target_interactions": 10,
        },
        "protocol": "cold_users",
        "cold_fraction": 0.25,
        "valid_cold_fraction": 0.1,
    },
    "pretrain": {"embedding_dim": 8, "epochs": 3, "batch_size": 256, "optimizer": {"name": "adam", "learning_rate": 0.02}},
    "transfer": {
        "methods": ["popularity", "target_mf", "finetune", "emcdr"],
        "embedding_dim": 8,
        "epochs": 3,
        "batch_size": 256,
        "patience": 2,
        "mapping_epochs": 30,
        "optimizer": {"name": "adam", "learning_rate": 0.02},
    },
    "evaluate": {"ks": [5, 10]},
}


class Killed(Exception):
    """Raised by `kill_after_first_epoch`: a training process killed once its first epoch is checkpointed."""


def kill_after_first_epoch(record: dict) -> None:
    """An `on_epoch` callback of the sequential loops that raises `Killed` after epoch 1."""
    if record["epoch"] == 1:
        raise Killed


def write_config(folder: Path, config: dict, name: str = "config.yaml") -> Path:
    """Write a config whose data and runs folders live inside `folder`."""
    config = {**config, "runtime": {"data_dir": str(folder / "data"), "runs_dir": str(folder / "runs"), **config.get("runtime", {})}}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture
def tiny_config_path(tmp_path: Path) -> Path:
    """A tiny experiment config in a fresh temporary folder."""
    return write_config(tmp_path, TINY_CONFIG)


@pytest.fixture(scope="session")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One tiny evaluated quickstart experiment shared by the analysis tests: {"popularity": run, "emcdr": run}."""
    from xdt.config import load_config
    from xdt.experiment import run_experiment

    folder = tmp_path_factory.mktemp("analysis")
    overrides = [
        "dataset.synthetic.users=300",
        "dataset.synthetic.source_items=120",
        "dataset.synthetic.target_items=100",
        "pretrain.epochs=2",
        "transfer.epochs=2",
        "transfer.mapping_epochs=20",
        "transfer.methods=[popularity, emcdr]",
        f"runtime.data_dir={folder / 'data'}",
        f"runtime.runs_dir={folder / 'runs'}",
    ]
    loaded = load_config(Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml", overrides)
    return run_experiment(loaded.config, config_text=loaded.text)[0].transfer_runs
