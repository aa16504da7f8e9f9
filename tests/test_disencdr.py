"""DisenCDR on tiny graphs: each KL term against a hand-computed value, one propagation layer against dense numpy, the loss, save → load through the run directory."""

from __future__ import annotations

import math
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import TINY_CONFIG, write_config
from tests.test_cdrib import check_two_domain_reconstruction_loss
from xdt.config import load_config
from xdt.data.prepare import prepare_dataset
from xdt.data.protocols import SOURCE, TARGET
from xdt.models.disencdr import DisenCDR, disencdr_from_rows, gaussian_kl, prior_kl, sigma_of
from xdt.pretrain import pretrain_source
from xdt.session import SERIALISABLE_MODELS, load_model, open_dataset
from xdt.transfer import transfer_method

# Global users 0..5. Source rows: users 0..3; target rows: users 0, 1, 4, 5 (2 and 3 have no target rows).
SOURCE_ROWS = (np.array([0, 0, 1, 2, 2, 3, 3]), np.array([0, 1, 1, 2, 0, 2, 1]))
TARGET_ROWS = (np.array([0, 1, 1, 4, 5, 5]), np.array([0, 1, 3, 2, 3, 0]))
NUM_USERS, SOURCE_ITEMS, TARGET_ITEMS = 6, 3, 4


def tiny_model(dim: int = 4, layers: int = 2, **settings: object) -> DisenCDR:
    keras.utils.set_random_seed(3)
    return disencdr_from_rows(*SOURCE_ROWS, *TARGET_ROWS, NUM_USERS, SOURCE_ITEMS, TARGET_ITEMS, dim, layers=layers, seed=3, **settings)


def test_the_kl_terms_match_hand_computed_values() -> None:
    # σ = exp(0.1 + 0.9 · softplus(logstd)).
    assert float(sigma_of(np.float32(0.0))) == pytest.approx(math.exp(0.1 + 0.9 * math.log(2.0)), rel=1e-6)
    # Node 1: same σ (logstd 0), means 1 apart in dim 0: KL = 1 / (2 σ²). Node 2: logstd −30 (σ₁ = e^0.1) against logstd 0 in dim 1.
    mean = np.array([[1.0, 0.0], [0.0, 0.0]], "float32")
    logstd = np.array([[0.0, 0.0], [0.0, -30.0]], "float32")
    zeros = np.zeros((2, 2), "float32")
    s0, s1 = math.exp(0.1 + 0.9 * math.log(2.0)), math.exp(0.1)
    node_1 = 1.0 / (2 * s0**2)
    node_2 = math.log(s0 / s1) + s1**2 / (2 * s0**2) - 0.5
    # Mean over nodes, sum over dimensions.
    assert float(gaussian_kl(mean, logstd, zeros, zeros)) == pytest.approx((node_1 + node_2) / 2, rel=1e-5)
    # The prior is logstd 1: σp = exp(0.1 + 0.9 · softplus(1)); at mean 0 and logstd 1 the KL is 0.
    assert float(prior_kl(zeros, np.ones((2, 2), "float32"))) == pytest.approx(0.0, abs=1e-6)
    sp = math.exp(0.1 + 0.9 * math.log1p(math.e))
    one = np.array([[2.0]], "float32")
    assert float(prior_kl(one, np.zeros((1, 1), "float32"))) == pytest.approx(math.log(sp / s0) + (s0**2 + 4.0) / (2 * sp**2) - 0.5, rel=1e-5)


def test_the_regulariser_weights_the_shared_terms_by_beta() -> None:
    model = tiny_model(beta=0.25)
    a = (np.array([[1.0]], "float32"), np.array([[0.0]], "float32"))
    b = (np.array([[0.0]], "float32"), np.array([[1.0]], "float32"))
    c = (np.array([[-1.0]], "float32"), np.array([[-2.0]], "float32"))
    parts = {"source_user": a, "source_item": b, "target_user": c, "target_item": a, "shared": b, "source_share": a, "target_share": c}
    expected = (
        float(prior_kl(*a)) + float(prior_kl(*b)) + float(prior_kl(*c)) + float(prior_kl(*a))
        + 0.75 * float(prior_kl(*b)) + 0.25 * float(gaussian_kl(*b, *a)) + 0.25 * float(gaussian_kl(*b, *c))
    )
    assert float(model.regulariser(parts)) == pytest.approx(expected, rel=1e-6)


def dense(indices: np.ndarray, values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    matrix = np.zeros(shape)
    matrix[indices[:, 0], indices[:, 1]] = values
    return matrix


def test_one_propagation_layer_and_the_shared_blend_match_a_dense_numpy_reference() -> None:
    model = tiny_model(dim=3, layers=2, rate=0.3)
    w = {name: weight.numpy().astype(np.float64) for name, weight in model.weights_by_name.items()}

    def adjacency(domain: str, items: int) -> tuple[np.ndarray, np.ndarray]:
        uv = dense(w[f"{domain}_uv_indices"].astype(int), w[f"{domain}_uv_values"], (NUM_USERS, items))
        vu = dense(w[f"{domain}_vu_indices"].astype(int), w[f"{domain}_vu_values"], (items, NUM_USERS))
        return uv, vu

    source_uv, source_vu = adjacency("source", SOURCE_ITEMS)
    target_uv, target_vu = adjacency("target", TARGET_ITEMS)
    # Row-normalised; users 4, 5 have no source rows (empty rows), users 2, 3 no target rows.
    np.testing.assert_allclose(source_uv.sum(axis=1), [1, 1, 1, 1, 0, 0])
    np.testing.assert_allclose(target_uv.sum(axis=1), [1, 1, 0, 0, 1, 1])
    np.testing.assert_allclose(source_vu.sum(axis=1), 1.0)

    def leaky(x: np.ndarray) -> np.ndarray:
        return np.where(x > 0, x, 0.1 * x)

    def hop(x: np.ndarray, there: np.ndarray, back: np.ndarray, prefix: str, head: str) -> np.ndarray:
        hidden = leaky(there @ (x @ w[f"{prefix}_gc1_kernel"]) + w[f"{prefix}_gc1_bias"])
        propagated = leaky(back @ (hidden @ w[f"{prefix}_gc2_{head}_kernel"]) + w[f"{prefix}_gc2_{head}_bias"])
        return np.concatenate([propagated, x], axis=1) @ w[f"{prefix}_union_{head}_kernel"] + w[f"{prefix}_union_{head}_bias"]

    # The specific encoder: ReLU after layer 0, the mean head at layer 1 (inference).
    u0, v0 = w["source_user"], w["source_item"]
    user_1 = np.maximum(hop(u0, source_vu, source_uv, "source_specific_user0", "out"), 0)
    item_1 = np.maximum(hop(v0, source_uv, source_vu, "source_specific_item0", "out"), 0)
    user_mean, _, item_mean, _ = model.specific("source", None)
    np.testing.assert_allclose(user_mean.numpy(), hop(user_1, source_vu, source_uv, "source_specific_user1", "mean"), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(item_mean.numpy(), hop(item_1, source_uv, source_vu, "source_specific_item1", "mean"), rtol=1e-4, atol=1e-5)
    # The shared encoder: each domain propagates over its own graph, then 0.3 · source + 0.7 · target.
    s = np.maximum(hop(w["source_shared_user"], source_vu, source_uv, "source_cross_user0", "out"), 0)
    t = np.maximum(hop(w["target_shared_user"], target_vu, target_uv, "target_cross_user0", "out"), 0)
    blended = 0.3 * s + 0.7 * t
    expected = 0.3 * hop(blended, source_vu, source_uv, "source_cross_user1", "mean") + 0.7 * hop(blended, target_vu, target_uv, "target_cross_user1", "mean")
    mean, _ = model.cross(None)
    np.testing.assert_allclose(mean.numpy(), expected, rtol=1e-4, atol=1e-5)
    # Inference representation: shared mean + specific mean.
    found = model.representations(False)
    np.testing.assert_allclose(found["source_users"].numpy(), mean.numpy() + user_mean.numpy(), rtol=1e-5, atol=1e-6)
    assert found["target_users"].shape == (NUM_USERS, 3) and found["target_items"].shape == (TARGET_ITEMS, 3)


def test_the_reconstruction_loss_is_the_mean_bce_per_domain_and_label() -> None:
    check_two_domain_reconstruction_loss(tiny_model())


def test_the_warm_up_leaves_the_shared_part_out_of_users_and_loss_until_its_last_step() -> None:
    model = tiny_model(dropout=0.0, warmup_steps=2)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=lambda y, s: 0.0 * s[:, :1])
    users = np.concatenate([SOURCE_ROWS[0], TARGET_ROWS[0]]).astype("int32")
    positives = np.concatenate([SOURCE_ROWS[1], TARGET_ROWS[1] + SOURCE_ITEMS]).astype("int32")
    negatives = np.concatenate([(SOURCE_ROWS[1] + 1) % SOURCE_ITEMS, (TARGET_ROWS[1] + 2) % TARGET_ITEMS + SOURCE_ITEMS]).astype("int32")
    shared = [variable for variable in model.trainable_variables if "shared_user" in variable.path or "cross_user" in variable.path]
    assert shared
    before = [variable.numpy().copy() for variable in shared]
    model.fit((users, positives, negatives), np.zeros((len(users), 1)), epochs=2, batch_size=len(users), verbose=0)
    # Two warm-up steps: the shared encoder and its embeddings got no gradient (Adam moves nothing at zero gradient).
    for old, variable in zip(before, shared):
        np.testing.assert_array_equal(variable.numpy(), old)
    model.fit((users, positives, negatives), np.zeros((len(users), 1)), epochs=1, batch_size=len(users), verbose=0)
    assert any(not np.array_equal(variable.numpy(), old) for old, variable in zip(before, shared))
    with pytest.raises(ValueError, match="warmup_steps >= 0"):
        tiny_model(warmup_steps=-1)


def test_a_warm_up_as_long_as_training_is_refused(tmp_path: Path) -> None:
    from xdt.errors import ConfigError

    transfer = {**TINY_CONFIG["transfer"], "methods": ["disencdr"], "epochs": 4, "disencdr_warmup_epochs": 4}
    with pytest.raises(ConfigError, match=r"transfer.disencdr_warmup_epochs: .*shared part never trains; expected fewer than 4 .*Received: 4"):
        load_config(write_config(tmp_path, {**TINY_CONFIG, "transfer": transfer}))
    load_config(write_config(tmp_path, {**TINY_CONFIG, "transfer": {**transfer, "disencdr_epochs": 5}}))


def test_training_steps_reduce_the_loss_and_the_model_round_trips(tmp_path: Path) -> None:
    model = tiny_model(dropout=0.0)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=lambda y, s: 0.0 * s[:, :1])
    users = np.concatenate([SOURCE_ROWS[0], TARGET_ROWS[0]]).astype("int32")
    positives = np.concatenate([SOURCE_ROWS[1], TARGET_ROWS[1] + SOURCE_ITEMS]).astype("int32")
    negatives = np.concatenate([(SOURCE_ROWS[1] + 1) % SOURCE_ITEMS, (TARGET_ROWS[1] + 2) % TARGET_ITEMS + SOURCE_ITEMS]).astype("int32")
    history = model.fit((users, positives, negatives), np.zeros((len(users), 1)), epochs=80, batch_size=len(users), verbose=0)
    losses = np.array(history.history["loss"])
    # Each step samples the posteriors (σ >= e^0.1): compare the first and last ten epochs' means.
    assert np.isfinite(losses).all() and losses[-10:].mean() < losses[:10].mean()
    path = tmp_path / "disencdr.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, compile=False, custom_objects=SERIALISABLE_MODELS)
    every = np.arange(NUM_USERS, dtype="int32")
    assert model.score_all(every).shape == (NUM_USERS, TARGET_ITEMS) and model.score_all_source(every).shape == (NUM_USERS, SOURCE_ITEMS)
    np.testing.assert_array_equal(reloaded.score_all(every).numpy(), model.score_all(every).numpy())
    np.testing.assert_array_equal(reloaded.score_all_source(every).numpy(), model.score_all_source(every).numpy())


def test_the_method_trains_and_its_run_directory_round_trips(tmp_path: Path) -> None:
    """Trained through `transfer_method`; the saved run scores every test user in both domains, identically on every load."""
    transfer = {**TINY_CONFIG["transfer"], "methods": ["disencdr"], "epochs": 2, "disencdr_layers": 1, "disencdr_warmup_epochs": 1}
    loaded = load_config(write_config(tmp_path, {**TINY_CONFIG, "transfer": transfer}))
    prepare_dataset(loaded.config)
    pretrain = pretrain_source(loaded.config, config_text=loaded.text)
    dataset = open_dataset(loaded.config)
    users = tf.constant(dataset.evaluation_users("test"), dtype=tf.int32)
    run = transfer_method(loaded.config, "disencdr", parent=pretrain, config_text=loaded.text)
    first, second = load_model(run), load_model(run)
    assert isinstance(first, DisenCDR)
    scores = first.score_all(users).numpy()
    assert scores.shape == (len(users), dataset.n_items(TARGET)) and np.isfinite(scores).all()
    np.testing.assert_array_equal(scores, second.score_all(users).numpy())
    assert first.score_all_source(users).shape == (len(users), dataset.n_items(SOURCE))
