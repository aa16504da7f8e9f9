"""content, two_tower and cmf: hand-checked content scores, training, shapes, save → load identical, cmf uses the source domain."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from tests.test_transfer_methods import Experiment, cold_and_warm_users, load_model_file, make_experiment, train_method
from xdt.data.dataset import PreparedDataset
from xdt.data.protocols import SOURCE, TARGET
from xdt.errors import DataError
from xdt.methods import content
from xdt.methods.context import MethodContext
from xdt.models.joint import JointModel
from xdt.models.two_tower import TwoTowerModel
from xdt.progress import SilentReporter
from xdt.session import load_model
from xdt.transfer import transfer_method


def titled_items(titles: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"item": np.arange(len(titles)), "raw_item": [f"i{index}" for index in range(len(titles))], "title": titles})


def hand_dataset() -> PreparedDataset:
    """One source item "space"; target items "space opera", "cooking", "space cooking"; three users."""
    interactions = pd.DataFrame(
        {
            "domain": [SOURCE, SOURCE, TARGET, TARGET],
            "user": [0, 1, 1, 1],
            "item": [0, 0, 1, 2],
            # User 1's test row must not enter their profile.
            "split": ["train", "train", "train", "test"],
            "timestamp": [1, 1, 2, 3],
        }
    )
    return PreparedDataset(
        path=Path("hand"),
        manifest={"name": "hand"},
        interactions=interactions,
        raw_users=np.array(["a", "b", "c"], dtype=object),
        source_items=titled_items(["space"]),
        target_items=titled_items(["space opera", "cooking", "space cooking"]),
    )


def test_content_scores_by_hand() -> None:
    # TF-IDF over the 4 titles: df space 3, opera 1, cooking 2; idf = log(5/(1 + df)) + 1 =
    # space 1.22314, opera 1.91629, cooking 1.51083. L2-normalised rows:
    #   "space" (1), "space opera" (0.53803, 0.84292), "cooking" (1), "space cooking" (0.62923, 0.77722).
    # User 0 (source "space"): cosines (0.53803, 0, 0.62923).
    # User 1 (source "space" + target "cooking"): profile (1, 1)/√2 on (space, cooking) →
    #   (0.53803/√2, 1/√2, (0.62923 + 0.77722)/√2) = (0.38044, 0.70711, 0.99451).
    # User 2 has no history: zeros.
    model = content.content_model(hand_dataset())
    scores = model.score_all_float64(tf.constant([0, 1, 2])).numpy()
    space, opera, cooking = (math.log(5 / (1 + df)) + 1 for df in (3, 1, 2))
    space_opera = space / math.hypot(space, opera)
    space_cooking = (space / math.hypot(space, cooking), cooking / math.hypot(space, cooking))
    expected = [
        [space_opera, 0.0, space_cooking[0]],
        [space_opera / math.sqrt(2), 1 / math.sqrt(2), sum(space_cooking) / math.sqrt(2)],
        [0.0, 0.0, 0.0],
    ]
    np.testing.assert_allclose(scores, expected, rtol=1e-12)
    np.testing.assert_allclose(scores[1], [0.38044, 0.70711, 0.99451], atol=1e-5)


def test_content_without_target_titles_names_the_dataset() -> None:
    dataset = hand_dataset()
    untitled = dataclasses.replace(dataset, target_items=dataset.target_items.drop(columns=["title"]))
    context = MethodContext(None, untitled, None, tf.distribute.get_strategy(), None, SilentReporter())
    with pytest.raises(DataError, match=r"content needs item text, but in dataset 'hand' the target items have no titles"):
        content.train(context)


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> Experiment:
    return make_experiment(tmp_path_factory.mktemp("original"), shuffled=False)


def test_content_trains_and_round_trips(experiment: Experiment, tmp_path: Path) -> None:
    dataset = experiment.dataset
    run = transfer_method(experiment.config, "content", parent=experiment.pretrain, config_text=experiment.text)
    assert [line["stage"] for line in run.metrics_history()] == ["content"]
    model = load_model(run)
    users = tf.constant(dataset.evaluation_users("test")[:16], dtype=tf.int32)
    scores = model.score_all(users).numpy()
    assert scores.shape == (16, dataset.n_items(TARGET)) and np.isfinite(scores).all()
    cold, _ = cold_and_warm_users(dataset)
    # Cold-start users are scored from their source titles alone.
    assert (model.score_all(tf.constant(cold[:16], dtype=tf.int32)).numpy() > 0).any(axis=1).all()
    path = tmp_path / "model.keras"
    model.save(path)
    np.testing.assert_array_equal(load_model_file(path).score_all(users).numpy(), scores)


def test_two_tower_pools_the_history_and_scores_candidates() -> None:
    keras.utils.set_random_seed(0)
    model = TwoTowerModel(4, 5, 3, history_length=2, hidden=4)
    model.build()
    # Padding item 5; user 2 has no history.
    model.set_target_history(np.array([[0, 1], [2, 5], [5, 5], [3, 4]]))
    users = np.arange(4, dtype=np.int32)
    items = model.item_embedding.embeddings.numpy()
    pooled = np.stack([(items[0] + items[1]) / 2, items[2], np.zeros(3), (items[3] + items[4]) / 2])
    tower_input = np.concatenate([model.user_embedding.embeddings.numpy(), pooled], axis=1)
    np.testing.assert_allclose(model.user_vectors(users).numpy(), model.user_output(model.user_hidden(tower_input)).numpy(), rtol=1e-6)
    scores = model.score_all(users).numpy()
    assert scores.shape == (4, 5)
    positives = np.array([0, 1, 2, 3])
    one = model((users, positives, np.array([4, 4, 0, 1]))).numpy()
    several = model((users, positives, np.array([[4, 3], [0, 2], [1, 3], [2, 0]]))).numpy()
    assert one.shape == (4, 2) and several.shape == (4, 3)
    np.testing.assert_allclose(one, scores[users[:, None], [[0, 4], [1, 4], [2, 0], [3, 1]]], rtol=1e-5)
    np.testing.assert_allclose(several, scores[users[:, None], [[0, 4, 3], [1, 0, 2], [2, 1, 3], [3, 2, 0]]], rtol=1e-5)


@pytest.mark.parametrize("method", ["two_tower", "cmf"])
def test_trained_baseline_scores_and_round_trips(experiment: Experiment, method: str, tmp_path: Path) -> None:
    dataset = experiment.dataset
    run = transfer_method(experiment.config, method, parent=experiment.pretrain, config_text=experiment.text)
    assert [line["epoch"] for line in run.metrics_history() if line["stage"] == method][0] == 1
    model = load_model(run)
    users = tf.constant(dataset.evaluation_users("test")[:16], dtype=tf.int32)
    scores = model.score_all(users).numpy()
    assert scores.shape == (16, dataset.n_items(TARGET)) and np.isfinite(scores).all()
    # cmf's items live in one index, source items first.
    offset = dataset.n_items(SOURCE) if method == "cmf" else 0
    assert tuple(model((users, tf.fill([16], offset), tf.fill([16], offset + 1))).shape) == (16, 2)
    assert tuple(model((users, tf.fill([16], offset), tf.fill([16, 3], offset + 1))).shape) == (16, 4)
    path = tmp_path / "model.keras"
    model.save(path)
    np.testing.assert_array_equal(load_model_file(path).score_all(users).numpy(), scores)
    if method == "cmf":
        assert tuple(model.score_all_source(users).shape) == (16, dataset.n_items(SOURCE))


def test_cmf_has_one_user_vector_for_both_domains() -> None:
    keras.utils.set_random_seed(3)
    model = JointModel(6, 3, 5, 4, l2=0.5, private=False)
    model.build()
    assert not any("private" in weight.path for weight in model.weights)
    users = np.arange(6, dtype=np.int32)
    shared = model.shared_user_embedding.embeddings.numpy()
    np.testing.assert_array_equal(model.user_vectors(users).numpy(), shared)
    np.testing.assert_array_equal(model.source_user_vectors(users).numpy(), shared)
    items = model.item_embedding.embeddings.numpy()
    bias = model.item_bias.embeddings.numpy()[:, 0]
    # A target row (positive 4 ≥ 3 source items) and a source row score with the same user vector.
    scores = model((np.array([0, 1]), np.array([4, 1]), np.array([[5, 7], [0, 2]]))).numpy()
    expected = [shared[0] @ items[[4, 5, 7]].T + bias[[4, 5, 7]], shared[1] @ items[[1, 0, 2]].T + bias[[1, 0, 2]]]
    np.testing.assert_allclose(scores, expected, rtol=1e-6)
    # L2 = 0.5 · mean over rows of (|user|² + Σ |candidate items|²).
    squares = [np.sum(shared[user] ** 2) + np.sum(items[row] ** 2) for user, row in ((0, [4, 5, 7]), (1, [1, 0, 2]))]
    np.testing.assert_allclose(float(sum(model.losses)), 0.5 * np.mean(squares), rtol=1e-6)


@pytest.fixture(scope="module")
def shuffled(tmp_path_factory: pytest.TempPathFactory) -> Experiment:
    return make_experiment(tmp_path_factory.mktemp("shuffled"), shuffled=True)


def test_cmf_uses_the_source_domain(experiment: Experiment, shuffled: Experiment) -> None:
    cold, _ = cold_and_warm_users(experiment.dataset)
    users = tf.constant(cold, dtype=tf.int32)
    original = train_method(experiment, "cmf").score_all(users).numpy()
    other = train_method(shuffled, "cmf").score_all(users).numpy()
    # Cold-start users are scored from the shared embedding learned on their source rows: giving them another user's rows changes their scores.
    assert np.abs(original - other).mean() > 0.1 * np.abs(original).mean()


def test_registry_separates_loading_the_source_model_from_using_source_rows() -> None:
    from xdt.models.registry import METHODS

    target_only = {name for name, entry in METHODS.items() if not entry.uses_source}
    loads_model = {name for name, entry in METHODS.items() if entry.needs_source_model}
    assert target_only == {"popularity", "itemknn", "target_mf", "two_tower", "lightgcn"}
    assert loads_model == {"finetune", "emcdr", "ptupcdr", "dann", "joint", "fusion"}
    assert not loads_model & target_only


def test_joint_private_dropout_zeroes_private_parts_only_in_training() -> None:
    model = JointModel(4, 2, 3, 2, private_dropout=0.5, seed=1)
    model.build()
    model.shared_user_embedding.embeddings.assign(np.zeros((4, 2), np.float32))
    model.target_private_embedding.embeddings.assign(np.ones((4, 2), np.float32))
    model.item_embedding.embeddings.assign(np.ones((5, 2), np.float32))
    users = np.arange(4).repeat(50).astype(np.int32)
    positives = np.full(len(users), 2, np.int32)  # item 2 = the first target item in the combined index
    negatives = np.full(len(users), 3, np.int32)
    # Shared part 0, private part (1, 1), item (1, 1): score 2 with the private part kept, 0 without.
    trained = keras.ops.convert_to_numpy(model((users, positives, negatives), training=True))[:, 0]
    assert set(np.round(trained, 6)) == {0.0, 2.0}
    assert 0.35 < np.mean(trained == 0.0) < 0.65
    served = keras.ops.convert_to_numpy(model((users, positives, negatives)))[:, 0]
    assert np.allclose(served, 2.0)
    with pytest.raises(ValueError, match="private_dropout"):
        JointModel(4, 2, 3, 2, private_dropout=1.0)
