"""Every registered model: builds tiny, trains a step, save → load gives identical scores."""

import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from xdt.models.emcdr import EmcdrModel
from xdt.models.matrix_factorization import MatrixFactorization, bpr_loss
from xdt.models.popularity import Popularity
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
    model.compile(optimizer="adam", loss=bpr_loss)
    before = model.score_all(USERS).numpy()
    users, positives, negatives = np.array([0, 1, 2]), np.array([0, 1, 2]), np.array([3, 4, 3])
    history = model.fit((users, positives, negatives), np.zeros((3, 1)), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    after = model.score_all(USERS).numpy()
    assert after.shape == (6, 5) and not np.allclose(before, after)
    margins = model((users, positives, negatives))
    assert tuple(margins.shape) == (3, 1)
    np.testing.assert_array_equal(round_trip(model, tmp_path).score_all(USERS).numpy(), after)


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
from xdt.models.matrix_factorization import MatrixFactorization, bpr_loss
rng = np.random.default_rng(0)
users, pos, neg = rng.integers(0, 50, 512), rng.integers(0, 40, 512), rng.integers(0, 40, 512)
def train(strategy):
    keras.utils.set_random_seed(3)
    with strategy.scope():
        model = MatrixFactorization(50, 40, 8, l2=0.01)
        model.build()
        model.compile(optimizer=keras.optimizers.SGD(0.5), loss=bpr_loss)
    history = model.fit((users, pos, neg), np.zeros((512, 1)), batch_size=64, epochs=2, shuffle=False, verbose=0)
    return history.history["loss"], model.get_weights()
one_loss, one = train(tf.distribute.get_strategy())
two = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
assert two.num_replicas_in_sync == 2
two_loss, two_weights = train(two)
np.testing.assert_allclose(one_loss, two_loss, rtol=1e-4)
for a, b in zip(one, two_weights):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
print("replicas agree")
"""


def test_one_and_two_replicas_train_identically() -> None:
    # Catches the silent multi-replica pitfalls in ARCHITECTURE.md §8 (loss and add_loss scaling).
    result = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "replicas agree" in result.stdout
