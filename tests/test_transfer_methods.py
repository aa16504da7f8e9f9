"""ptupcdr, dann, joint, finetune, emcdr and fusion on tiny data: train, shapes, save → load identical, and that they use the source domain."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from tests.conftest import TINY_CONFIG, write_config
from xdt.config import ExperimentConfig, load_config
from xdt.data.dataset import PreparedDataset
from xdt.data.prepare import dataset_dir, prepare_dataset
from xdt.data.protocols import SOURCE, TARGET
from xdt.methods.ptupcdr import padded_histories
from xdt.models.dann import GradientReversal
from xdt.pretrain import pretrain_source
from xdt.runs import RunDirectory
from xdt.session import SERIALISABLE_MODELS, load_model, open_dataset
from xdt.transfer import transfer_method

METHODS = ("ptupcdr", "dann", "joint", "finetune", "emcdr", "fusion", "cdrib")
# Models whose call takes (users, positives, negatives) triples and returns scores (batch, 1 + k).
PAIRWISE = ("ptupcdr", "dann", "joint", "finetune", "cdrib")
# Stage whose first epoch is recorded in metrics.jsonl.
FIRST_STAGE = {"ptupcdr": "meta", "emcdr": "target", "fusion": "finetune"}
OVERRIDES = ["transfer.history_length=8", "transfer.meta_dim=8", "transfer.encoder_hidden=8"]


@dataclass(frozen=True)
class Experiment:
    """A prepared tiny dataset and its finished pretrain run."""

    config: ExperimentConfig
    text: str
    dataset: PreparedDataset
    pretrain: RunDirectory


def shuffle_source_users(folder: Path, seed: int) -> None:
    """Permute the users of the source rows of a prepared dataset: each user gets another's source history."""
    path = folder / "interactions.parquet"
    frame = pd.read_parquet(path)
    is_source = (frame["domain"] == SOURCE).to_numpy()
    users = np.unique(frame.loc[is_source, "user"].to_numpy())
    permuted = np.random.default_rng(seed).permutation(users)
    mapping = np.arange(frame["user"].max() + 1)
    mapping[users] = permuted
    frame.loc[is_source, "user"] = mapping[frame.loc[is_source, "user"].to_numpy()].astype(np.int32)
    frame.to_parquet(path, index=False)


def make_experiment(folder: Path, *, shuffled: bool) -> Experiment:
    """Prepare (optionally with source rows shuffled across users) and pretrain the tiny experiment."""
    loaded = load_config(write_config(folder, TINY_CONFIG), OVERRIDES)
    prepare_dataset(loaded.config)
    if shuffled:
        shuffle_source_users(dataset_dir(loaded.config), seed=0)
    pretrain = pretrain_source(loaded.config, config_text=loaded.text)
    return Experiment(loaded.config, loaded.text, open_dataset(loaded.config), pretrain)


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> Experiment:
    return make_experiment(tmp_path_factory.mktemp("original"), shuffled=False)


@pytest.fixture(scope="module")
def shuffled(tmp_path_factory: pytest.TempPathFactory) -> Experiment:
    return make_experiment(tmp_path_factory.mktemp("shuffled"), shuffled=True)


def cold_and_warm_users(dataset: PreparedDataset) -> tuple[np.ndarray, np.ndarray]:
    users = dataset.evaluation_users("test")
    cold = dataset.target_train_counts[users] == 0
    assert cold.any() and (~cold).any()
    return users[cold], users[~cold]


def train_method(experiment: Experiment, method: str) -> keras.Model:
    run = transfer_method(experiment.config, method, parent=experiment.pretrain, config_text=experiment.text)
    return load_model(run)


@pytest.mark.parametrize("method", METHODS)
def test_method_trains_round_trips_and_uses_the_source_domain(experiment: Experiment, shuffled: Experiment, method: str, tmp_path: Path) -> None:
    dataset = experiment.dataset
    run = transfer_method(experiment.config, method, parent=experiment.pretrain, config_text=experiment.text)
    stage = FIRST_STAGE.get(method, method)
    assert [line["epoch"] for line in run.metrics_history() if line["stage"] == stage][0] == 1
    model = load_model(run)
    users = tf.constant(dataset.evaluation_users("test")[:16], dtype=tf.int32)
    scores = model.score_all(users).numpy()
    assert scores.shape == (16, dataset.n_items(TARGET)) and np.isfinite(scores).all()
    offset = dataset.n_items(SOURCE) if method in ("dann", "joint", "cdrib") else 0
    if method in PAIRWISE:
        triples = (users, tf.fill([16], offset), tf.fill([16], offset + 1))
        assert tuple(model(triples).shape) == (16, 2)
        assert tuple(model((users, tf.fill([16], offset), tf.fill([16, 3], offset + 1))).shape) == (16, 4)
    if method in ("joint", "cdrib"):
        assert tuple(model.score_all_source(users).shape) == (16, dataset.n_items(SOURCE))
    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = load_model_file(path)
    np.testing.assert_array_equal(reloaded.score_all(users).numpy(), scores)

    cold, warm = cold_and_warm_users(dataset)
    other = train_method(shuffled, method)
    original_cold = model.score_all(tf.constant(cold, dtype=tf.int32)).numpy()
    shuffled_cold = other.score_all(tf.constant(cold, dtype=tf.int32)).numpy()
    # Cold-start users are scored from their source history: giving them another user's history changes their scores.
    assert np.abs(original_cold - shuffled_cold).mean() > 0.1 * np.abs(original_cold).mean(), method
    if method in ("ptupcdr", "emcdr"):
        # Warm users are served by the target MF, which never sees the source domain.
        np.testing.assert_allclose(
            model.score_all(tf.constant(warm, dtype=tf.int32)).numpy(), other.score_all(tf.constant(warm, dtype=tf.int32)).numpy(), rtol=1e-5, atol=1e-5
        )


def test_dann_trains_with_sampled_softmax_over_four_negatives(experiment: Experiment) -> None:
    transfer = dataclasses.replace(experiment.config.transfer, loss="softmax", negatives=4)
    config = dataclasses.replace(experiment.config, transfer=transfer)
    run = transfer_method(config, "dann", parent=experiment.pretrain, config_text=experiment.text)
    losses = [line["loss"] for line in run.metrics_history() if line["stage"] == "dann"]
    assert len(losses) >= 2 and np.isfinite(losses).all() and losses[-1] < losses[0]
    model = load_model(run)
    # The cross-view loss is the configured one, and survives save → load.
    assert model.ranking_loss == "softmax"
    users = tf.constant(experiment.dataset.evaluation_users("test")[:8], dtype=tf.int32)
    offset = experiment.dataset.n_items(SOURCE)
    assert tuple(model((users, tf.fill([8], offset), tf.fill([8, 4], offset + 1))).shape) == (8, 5)


def load_model_file(path: Path) -> keras.Model:
    return keras.saving.load_model(path, compile=False, custom_objects=SERIALISABLE_MODELS)


def test_padded_histories_keep_the_newest_items_oldest_first(experiment: Experiment) -> None:
    dataset = experiment.dataset
    histories = padded_histories(dataset, SOURCE, 3)
    rows = dataset.rows(SOURCE, "train")
    user = int(rows["user"].iloc[0])
    items = rows[rows["user"] == user].sort_values("timestamp", kind="stable")["item"].to_numpy()
    assert histories.shape == (dataset.n_users, 3)
    assert histories[user].tolist() == items[-3:].tolist()
    without_source = np.setdiff1d(np.arange(dataset.n_users), rows["user"].unique())
    assert (histories[without_source] == dataset.n_items(SOURCE)).all()


def test_gradient_reversal_is_identity_forward_and_negated_backward() -> None:
    layer = GradientReversal(0.5)
    inputs = tf.constant([[1.0, -2.0]])
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        outputs = layer(inputs)
        total = tf.reduce_sum(3.0 * outputs)
    np.testing.assert_allclose(outputs.numpy(), inputs.numpy())
    # d(3·x)/dx = 3, reversed and scaled by 0.5 → -1.5.
    np.testing.assert_allclose(tape.gradient(total, inputs).numpy(), [[-1.5, -1.5]])


def test_tiny_dataset_folder_is_not_shared(experiment: Experiment, shuffled: Experiment) -> None:
    # The shuffled experiment must not overwrite the original prepared data.
    assert experiment.dataset.path != shuffled.dataset.path
    assert not experiment.dataset.interactions.equals(shuffled.dataset.interactions)
