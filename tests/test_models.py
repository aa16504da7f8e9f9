"""Every registered model: builds tiny, trains a step, save → load gives identical scores."""

import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from xdt.losses import ranking_loss
from xdt.models.dann import DannModel
from xdt.models.emcdr import EmcdrModel
from xdt.models.joint import JointModel
from xdt.models.matrix_factorization import MatrixFactorization
from xdt.models.popularity import Popularity
from xdt.models.ptupcdr import PtupcdrModel
from xdt.session import SERIALISABLE_MODELS

USERS = np.arange(6, dtype=np.int32)


def round_trip(model: keras.Model, tmp_path: Path) -> keras.Model:
    path = tmp_path / "model.keras"
    model.save(path)
    return keras.saving.load_model(path, compile=False, custom_objects=SERIALISABLE_MODELS)


def test_matrix_factorization_trains_and_round_trips(tmp_path: Path) -> None:
    keras.utils.set_random_seed(0)
    model = MatrixFactorization(6, 5, 4, l2=0.01)
    model.build()
    model.compile(optimizer="adam", loss=ranking_loss("bpr"))
    before = model.score_all(USERS).numpy()
    users, positives, negatives = np.array([0, 1, 2]), np.array([0, 1, 2]), np.array([3, 4, 3])
    history = model.fit((users, positives, negatives), np.zeros((3, 1)), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    after = model.score_all(USERS).numpy()
    assert after.shape == (6, 5) and not np.allclose(before, after)
    scores = model((users, positives, negatives))
    assert tuple(scores.shape) == (3, 2)
    np.testing.assert_array_equal(round_trip(model, tmp_path).score_all(USERS).numpy(), after)


def pairwise_models() -> dict[str, keras.Model]:
    """Every model trained on (users, positives, negatives): 6 users; 3 source items, 5 target items where two domains meet."""
    models = {
        "mf": MatrixFactorization(6, 5, 4, l2=0.01),
        "joint": JointModel(6, 3, 5, 4, l2=0.01),
        "dann": DannModel(6, 3, 5, 4, history_length=2, hidden=4, l2=0.01, ranking_loss="softmax"),
        "ptupcdr": PtupcdrModel(6, 3, 5, 4, history_length=2, meta_dim=4),
    }
    for model in models.values():
        model.build()
    return models


@pytest.mark.parametrize("k", [1, 3])
def test_pairwise_models_score_the_positive_then_k_negatives(k: int) -> None:
    keras.utils.set_random_seed(2)
    users, positives = np.array([0, 1, 2, 3]), np.array([3, 4, 5, 6])
    negatives = np.array([4, 5, 6, 7]) if k == 1 else np.array([[4, 5, 6], [5, 6, 7], [6, 7, 3], [7, 3, 4]])
    for name, model in pairwise_models().items():
        # MF and PTUPCDR index target items 0..4: bring the combined indices 3..7 down by 3.
        offset = 3 if name in ("mf", "ptupcdr") else 0
        scores = model((users, positives - offset, negatives - offset)).numpy()
        assert scores.shape == (4, 1 + k), name
        # Column 0 is the positive's own score, whatever the negatives.
        alone = model((users, positives - offset, positives - offset)).numpy()
        np.testing.assert_allclose(scores[:, 0], alone[:, 0], rtol=1e-6, err_msg=name)


def test_matrix_factorization_candidate_scores_match_score_all() -> None:
    keras.utils.set_random_seed(4)
    model = pairwise_models()["mf"]
    negatives = np.array([[1, 2, 3], [0, 4, 2]])
    scores = model((np.array([1, 5]), np.array([0, 3]), negatives)).numpy()
    every = model.score_all(np.array([1, 5])).numpy()
    expected = np.array([[every[0, 0], every[0, 1], every[0, 2], every[0, 3]], [every[1, 3], every[1, 0], every[1, 4], every[1, 2]]])
    np.testing.assert_allclose(scores, expected, rtol=1e-6)


def test_l2_penalty_covers_every_negative() -> None:
    model = MatrixFactorization(2, 3, 2, l2=0.5)
    model.build()
    model.user_embedding.embeddings.assign(np.array([[1.0, 0.0], [0.0, 0.0]], dtype="float32"))
    model.item_embedding.embeddings.assign(np.array([[1.0, 1.0], [2.0, 0.0], [0.0, 3.0]], dtype="float32"))
    model((np.array([0]), np.array([0]), np.array([[1, 2]])))
    # 0.5 · (|u|² + |i0|² + |i1|² + |i2|²) = 0.5 · (1 + 2 + 4 + 9) = 8.
    np.testing.assert_allclose(float(sum(model.losses)), 8.0, rtol=1e-6)


def test_dann_keeps_its_ranking_loss_through_save_and_load(tmp_path: Path) -> None:
    keras.utils.set_random_seed(5)
    model = pairwise_models()["dann"]
    model.set_histories(np.full((6, 2), 8), np.array([[3, 8], [4, 5], [8, 8], [6, 7], [3, 4], [8, 8]]))
    reloaded = round_trip(model, tmp_path)
    assert reloaded.ranking_loss == "softmax"
    np.testing.assert_array_equal(reloaded.score_all(USERS).numpy(), model.score_all(USERS).numpy())
    with pytest.raises(ValueError, match="Received: ranking_loss='hinge'"):
        DannModel(6, 3, 5, 4, ranking_loss="hinge")


def test_popularity_scores_counts_and_round_trips(tmp_path: Path) -> None:
    model = Popularity(4)
    model.set_counts(np.array([3, 0, 7, 1]))
    scores = model.score_all(USERS[:2]).numpy()
    assert scores.tolist() == [[3, 0, 7, 1], [3, 0, 7, 1]]
    np.testing.assert_array_equal(round_trip(model, tmp_path).score_all(USERS[:2]).numpy(), scores)


@pytest.mark.parametrize("mapping", ["linear", "mlp"])
def test_emcdr_uses_mapping_only_for_users_without_target_data(tmp_path: Path, mapping: str) -> None:
    keras.utils.set_random_seed(1)
    model = EmcdrModel(6, 5, 4, mapping=mapping, hidden=8)
    model.build()
    model.source_user_embedding.embeddings.assign(np.random.default_rng(0).standard_normal((6, 4)).astype("float32"))
    model.has_target.embeddings.assign(np.array([[1], [1], [1], [0], [0], [0]], dtype="float32"))
    vectors = model.user_vectors(USERS).numpy()
    np.testing.assert_allclose(vectors[:3], model.target.user_vectors(USERS[:3]).numpy())
    np.testing.assert_allclose(vectors[3:], model(USERS[3:]).numpy(), rtol=1e-6)
    model.target.trainable = False
    model.compile(optimizer="adam", loss="mse")
    model.fit(USERS[:3], np.zeros((3, 4)), epochs=1, verbose=0)
    scores = model.score_all(USERS).numpy()
    assert scores.shape == (6, 5)
    np.testing.assert_array_equal(round_trip(model, tmp_path).score_all(USERS).numpy(), scores)


MIRRORED_SCRIPT = """
import numpy as np, tensorflow as tf, keras
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from xdt.losses import ranking_loss
from xdt.models.matrix_factorization import MatrixFactorization
rng = np.random.default_rng(0)
users, pos = rng.integers(0, 50, 512), rng.integers(0, 40, 512)
def train(strategy, loss, k):
    neg = np.random.default_rng(1).integers(0, 40, (512, k)) if k > 1 else np.random.default_rng(1).integers(0, 40, 512)
    keras.utils.set_random_seed(3)
    with strategy.scope():
        model = MatrixFactorization(50, 40, 8, l2=0.01)
        model.build()
        model.compile(optimizer=keras.optimizers.SGD(0.5), loss=ranking_loss(loss))
    history = model.fit((users, pos, neg), np.zeros((512, 1)), batch_size=64, epochs=2, shuffle=False, verbose=0)
    return history.history["loss"], model.get_weights()
two = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
assert two.num_replicas_in_sync == 2
for loss, k in (("bpr", 1), ("bce", 3), ("softmax", 3)):
    one_loss, one = train(tf.distribute.get_strategy(), loss, k)
    two_loss, two_weights = train(two, loss, k)
    np.testing.assert_allclose(one_loss, two_loss, rtol=1e-4, err_msg=loss)
    for a, b in zip(one, two_weights):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=loss)
print("replicas agree")
"""


def test_one_and_two_replicas_train_identically() -> None:
    # Catches the silent multi-replica pitfalls in ARCHITECTURE.md §8 (loss and add_loss scaling).
    result = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "replicas agree" in result.stdout


def test_dann_cross_view_loss_is_averaged_over_the_rows_it_applies_to() -> None:
    # Users 0-3 have source history; a target row of user 0 is the only row the cross-view loss
    # applies to. Padding the batch with source rows must not dilute it (a batch mean would
    # divide it by 4 here).
    model = DannModel(4, 3, 5, 4, history_length=2, hidden=4)
    model.build()
    padding = model.padding_item
    model.set_histories(np.array([[0, 1], [1, 2], [2, padding], [0, padding]]), np.full((4, 2), padding))
    alone = ([0], [3], [4])
    padded = ([0, 1, 2, 3], [3, 0, 1, 2], [4, 1, 2, 0])

    def cross_view_loss(users: list[int], positives: list[int], negatives: list[int]) -> float:
        model((np.array(users, np.int32), np.array(positives, np.int32), np.array(negatives, np.int32)))
        return float(keras.ops.convert_to_numpy(model.losses[0]))

    assert cross_view_loss(*padded) == pytest.approx(cross_view_loss(*alone), rel=1e-6)
    assert cross_view_loss(*alone) > 0.0
