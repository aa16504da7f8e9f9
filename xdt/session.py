"""Shared stage plumbing: open the prepared data, a run's config and model, record the environment."""

from __future__ import annotations

from pathlib import Path

import keras
import tensorflow as tf

from xdt.config import ExperimentConfig, config_from_dict
from xdt.data.dataset import PreparedDataset, load_dataset
from xdt.data.prepare import dataset_dir, dataset_fingerprint
from xdt.errors import DataError, XdtError
from xdt.models.cdrib import CDRIB, VariationalBipartiteEncoder
from xdt.models.dann import DannModel, GradientReversal
from xdt.models.disencdr import DisenCDR
from xdt.models.emcdr import EmbeddingMapping, EmcdrModel
from xdt.models.fusion import ContentModel, FusionModel
from xdt.models.joint import JointModel
from xdt.models.lightgcn import LightGCN
from xdt.models.matrix_factorization import MatrixFactorization
from xdt.models.neighbourhood import NeighbourhoodModel
from xdt.models.popularity import Popularity
from xdt.models.ptupcdr import MetaBridge, PtupcdrModel
from xdt.models.two_tower import TwoTowerModel
from xdt.runs import RunDirectory, environment_record
from xdt.runtime import describe_strategy

MODEL_FILE = "model.keras"
SERIALISABLE_MODELS = {
    "xdt>MatrixFactorization": MatrixFactorization,
    "xdt>LightGCN": LightGCN,
    "xdt>Popularity": Popularity,
    "xdt>EmcdrModel": EmcdrModel,
    "xdt>EmbeddingMapping": EmbeddingMapping,
    "xdt>PtupcdrModel": PtupcdrModel,
    "xdt>MetaBridge": MetaBridge,
    "xdt>DannModel": DannModel,
    "xdt>GradientReversal": GradientReversal,
    "xdt>JointModel": JointModel,
    "xdt>NeighbourhoodModel": NeighbourhoodModel,
    "xdt>FusionModel": FusionModel,
    "xdt>ContentModel": ContentModel,
    "xdt>TwoTowerModel": TwoTowerModel,
    "xdt>CDRIB": CDRIB,
    "xdt>VariationalBipartiteEncoder": VariationalBipartiteEncoder,
    "xdt>DisenCDR": DisenCDR,
}


def open_dataset(config: ExperimentConfig) -> PreparedDataset:
    """Load the prepared dataset of a config, refusing one prepared from a different config."""
    folder = dataset_dir(config)
    dataset = load_dataset(folder)
    if dataset.manifest.get("fingerprint") != dataset_fingerprint(config):
        raise DataError(
            f"The dataset at {folder} was prepared from a different dataset config or seed. "
            f"Run `xdt prepare CONFIG` again (or use a different dataset.name)."
        )
    return dataset


def load_run_config(run: RunDirectory) -> ExperimentConfig:
    """The exact config a run used (resolved.json, overrides included)."""
    return config_from_dict(run.read_json("resolved.json"), source=str(run.path / "resolved.json"))


def record_environment(run: RunDirectory, config: ExperimentConfig, dataset: PreparedDataset, strategy: tf.distribute.Strategy) -> None:
    """Write env.json (versions, devices, strategy, seed) and data.json (dataset and manifest hash)."""
    strategy_facts = describe_strategy(strategy)
    run.write_json(
        "env.json",
        environment_record(
            seed=config.seed, strategy=strategy_facts["strategy"], replicas=strategy_facts["replicas"], devices=strategy_facts["devices"]
        ),
    )
    run.write_json(
        "data.json",
        {
            "name": dataset.manifest["name"],
            "path": str(dataset.path),
            "fingerprint": dataset.manifest["fingerprint"],
            "content_hash": dataset.manifest["content_hash"],
        },
    )


def check_same_data(run: RunDirectory, dataset: PreparedDataset) -> None:
    """Refuse to mix runs trained on different prepared data."""
    recorded = run.read_json("data.json")
    if recorded["content_hash"] != dataset.manifest["content_hash"]:
        raise XdtError(
            f"Run {run.path} was trained on dataset content {recorded['content_hash']}, "
            f"but {dataset.path} now holds {dataset.manifest['content_hash']}. Re-run the parent stage."
        )


def save_model(run: RunDirectory, model: keras.Model) -> Path:
    """Save the run's final model as `model.keras`."""
    path = run.path / MODEL_FILE
    model.save(path)
    return path


def load_model(run: RunDirectory) -> keras.Model:
    """Load the run's `model.keras`."""
    path = run.path / MODEL_FILE
    if not path.is_file():
        status = run.info().get("status")
        raise XdtError(f"Run {run.path} has no {MODEL_FILE} (status: {status}). Resume it with --resume {run.path}.")
    return keras.saving.load_model(path, compile=False, custom_objects=SERIALISABLE_MODELS)
