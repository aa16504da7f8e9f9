"""CDRIB on tiny graphs: each loss term against a hand-computed value, one propagation layer against dense numpy, cold-start scoring, save → load, resume."""

from __future__ import annotations

import math
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from tests.conftest import TINY_CONFIG, write_config
from xdt.config import load_config
from xdt.data.prepare import dataset_dir, prepare_dataset
from xdt.data.protocols import TARGET
from xdt.models.cdrib import CDRIB, PRIOR_LOG_SIGMA, DomainGraph, cdrib_from_rows, csr_matrix, gaussian_kl, hinge, sparse_matmul, user_maps
from xdt.pretrain import pretrain_source
from xdt.session import SERIALISABLE_MODELS, load_model, open_dataset
from xdt.transfer import transfer_method

# Global users 0..5. Source rows: users 0, 1, 2, 3 (3 is cold in the target); target rows: users 0, 1, 4, 5.
# Users 0 and 1 are shared; 2 and 3 source-only; 4 and 5 target-only.
SOURCE_ROWS = (np.array([0, 0, 1, 2, 2, 3, 3]), np.array([0, 1, 1, 2, 0, 2, 1]))
TARGET_ROWS = (np.array([0, 1, 1, 4, 5, 5]), np.array([0, 1, 3, 2, 3, 0]))
NUM_USERS, SOURCE_ITEMS, TARGET_ITEMS = 6, 3, 4


def tiny_model(dim: int = 4, layers: int = 2, **settings: object) -> CDRIB:
    keras.utils.set_random_seed(3)
    return cdrib_from_rows(*SOURCE_ROWS, *TARGET_ROWS, NUM_USERS, SOURCE_ITEMS, TARGET_ITEMS, dim, layers=layers, seed=3, **settings)


def test_the_kl_term_matches_hand_computed_values() -> None:
    # The official std transform: log sigma = 0.1 + 0.9 · softplus(min(logstd, 0.4)); the prior is logstd = 1 → capped at 0.4.
    assert PRIOR_LOG_SIGMA == pytest.approx(0.1 + 0.9 * math.log(1.0 + math.exp(0.4)))
    prior_sigma = math.exp(PRIOR_LOG_SIGMA)
    # mean 0 at the prior's std (any logstd >= 0.4) costs nothing.
    assert float(gaussian_kl(np.zeros((3, 2), "float32"), np.full((3, 2), 5.0, "float32"))) == pytest.approx(0.0, abs=1e-6)
    # Node 1: mean (1, 0) at the prior std: KL = 1² / (2 σp²) + 0. Node 2: mean (0, 2), logstd (−∞-ish → softplus ≈ 0, σ = e^0.1) in dim 1.
    mean = np.array([[1.0, 0.0], [0.0, 2.0]], "float32")
    logstd = np.array([[0.4, 0.4], [0.4, -30.0]], "float32")
    sigma = math.exp(0.1)
    node_1 = 1.0 / (2 * prior_sigma**2)
    node_2 = 4.0 / (2 * prior_sigma**2) + (math.log(prior_sigma / sigma) + sigma**2 / (2 * prior_sigma**2) - 0.5)
    # Mean over nodes, sum over dimensions.
    assert float(gaussian_kl(mean, logstd)) == pytest.approx((node_1 + node_2) / 2, rel=1e-5)


def test_the_encoder_kl_weights_users_by_beta_and_items_by_one() -> None:
    totals = {}
    for beta in (0.0, 1.0, 2.5):
        model = tiny_model(beta=beta)
        _, _, totals[beta] = model.source_encoder(training=False)
    user_kl = float(totals[1.0]) - float(totals[0.0])
    assert user_kl > 0 and float(totals[0.0]) > 0
    assert float(totals[2.5]) == pytest.approx(float(totals[0.0]) + 2.5 * user_kl, rel=1e-5)


def numpy_mlp(model: CDRIB, pairs: np.ndarray) -> np.ndarray:
    hidden = pairs
    for index, layer in enumerate(model.discriminator.layers):
        kernel, bias = (weight.numpy() for weight in layer.weights)
        hidden = hidden @ kernel + bias
        if index < 2:
            hidden = np.maximum(hidden, 0.0)
    return hidden[:, 0]


def test_the_contrastive_term_matches_a_hand_computed_hinge(monkeypatch: pytest.MonkeyPatch) -> None:
    model = tiny_model(user_batch=2, margin=0.3)
    rng = np.random.default_rng(0)
    width = 2 * 4
    source_users = rng.standard_normal((model.source_users, width)).astype("float32")
    target_users = rng.standard_normal((model.target_users, width)).astype("float32")
    # Fix the draws: shared users (0, 1) in that order; target users (3, 0) and source users (2, 3) as negatives.
    draws = iter([np.array([0, 1]), np.array([3, 0]), np.array([2, 3])])
    monkeypatch.setattr(model, "random_subset", lambda count, size, seed: next(draws)[:size])
    value = float(model.contrastive_loss(source_users, target_users))
    shared_source, shared_target = model.shared_source.numpy(), model.shared_target.numpy()
    assert shared_source.tolist() == [0, 1] and shared_target.tolist() == [0, 1]
    positive = numpy_mlp(model, np.concatenate([source_users[[0, 1]], target_users[[0, 1]]], axis=1))
    negative_1 = numpy_mlp(model, np.concatenate([source_users[[0, 1]], target_users[[3, 0]]], axis=1))
    negative_2 = numpy_mlp(model, np.concatenate([source_users[[2, 3]], target_users[[0, 1]]], axis=1))

    def sigmoid(x: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-x))

    expected = np.maximum(0.3 - sigmoid(positive) + sigmoid(negative_1), 0).mean() + np.maximum(0.3 - sigmoid(positive) + sigmoid(negative_2), 0).mean()
    assert value == pytest.approx(float(expected), rel=1e-5)
    # hinge itself: relu(0.3 − σ(0) + σ(0)) = 0.3; relu(0.3 − σ(10) + σ(−10)) = 0.
    assert float(hinge(np.zeros(2, "float32"), np.zeros(2, "float32"), 0.3)) == pytest.approx(0.3)
    assert float(hinge(np.full(1, 10.0, "float32"), np.full(1, -10.0, "float32"), 0.3)) == pytest.approx(0.0)


def test_the_reconstruction_loss_is_the_mean_bce_per_domain_and_label() -> None:
    check_two_domain_reconstruction_loss(tiny_model())


def check_two_domain_reconstruction_loss(model: keras.Model) -> None:
    """A two-domain model's loss without extra terms, with 3 source items: the mean BCE per domain and label, by hand."""
    # Rows 0, 1 source (items < 3), rows 2, 3, 4 target.
    positives = np.array([0, 2, 3, 4, 6])
    scores = np.array([[1.0, -1.0], [0.5, 2.0], [0.0, 0.0], [-1.0, 1.0], [3.0, 0.5]], "float32")

    def softplus(x: float) -> float:
        return math.log1p(math.exp(x))

    source = (softplus(-1.0) + softplus(-0.5)) / 2 + (softplus(-1.0) + softplus(2.0)) / 2
    target = (softplus(0.0) + softplus(1.0) + softplus(-3.0)) / 3 + (softplus(0.0) + softplus(1.0) + softplus(0.5)) / 3
    value = model.compute_loss(x=(np.zeros(5, "int32"), positives, positives), y=None, y_pred=tf.constant(scores))
    assert float(value) == pytest.approx(source + target, rel=1e-6)


def dense(indices: np.ndarray, values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    matrix = np.zeros(shape)
    matrix[indices[:, 0], indices[:, 1]] = values
    return matrix


def test_one_propagation_layer_matches_a_dense_numpy_reference() -> None:
    model = tiny_model(dim=3, layers=2)
    encoder = model.source_encoder
    users, items, _ = encoder(training=False)
    weights = {name: weight.numpy().astype(np.float64) for name, weight in encoder.weights_by_name.items()}
    u0, v0 = encoder.user_embedding.numpy().astype(np.float64), encoder.item_embedding.numpy().astype(np.float64)
    uv = dense(encoder.uv_indices.numpy(), encoder.uv_values.numpy(), (encoder.num_users, encoder.num_items))
    vu = dense(encoder.vu_indices.numpy(), encoder.vu_values.numpy(), (encoder.num_items, encoder.num_users))
    # Row-normalised: user rows of UV and item rows of VU sum to 1; VU's pattern is UV's transpose.
    np.testing.assert_allclose(uv.sum(axis=1), 1.0)
    np.testing.assert_allclose(vu.sum(axis=1), 1.0)
    np.testing.assert_array_equal(uv > 0, (vu > 0).T)

    def leaky(x: np.ndarray) -> np.ndarray:
        return np.where(x > 0, x, 0.1 * x)

    def gcn(x: np.ndarray, adjacency: np.ndarray, name: str) -> np.ndarray:
        return leaky(adjacency @ (x @ weights[f"{name}_kernel"]) + weights[f"{name}_bias"])

    def union(propagated: np.ndarray, own: np.ndarray, name: str) -> np.ndarray:
        return np.concatenate([propagated, own], axis=1) @ weights[f"{name}_kernel"] + weights[f"{name}_bias"]

    user_1 = np.maximum(union(gcn(gcn(u0, vu, "layer0_user_gc1"), uv, "layer0_user_gc2_out"), u0, "layer0_user_union_out"), 0)
    item_1 = np.maximum(union(gcn(gcn(v0, uv, "layer0_item_gc1"), vu, "layer0_item_gc2_out"), v0, "layer0_item_union_out"), 0)
    # Inference: the variational layer gives its mean.
    user_2 = union(gcn(gcn(user_1, vu, "layer1_user_gc1"), uv, "layer1_user_gc2_mean"), user_1, "layer1_user_union_mean")
    item_2 = union(gcn(gcn(item_1, uv, "layer1_item_gc1"), vu, "layer1_item_gc2_mean"), item_1, "layer1_item_union_mean")
    np.testing.assert_allclose(users.numpy(), np.concatenate([user_1, user_2], axis=1), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(items.numpy(), np.concatenate([item_1, item_2], axis=1), rtol=1e-4, atol=1e-5)


def test_user_maps_swap_domains_for_shared_users_and_score_from_the_source_side() -> None:
    source = DomainGraph.from_rows(*SOURCE_ROWS, SOURCE_ITEMS)
    target = DomainGraph.from_rows(*TARGET_ROWS, TARGET_ITEMS)
    assert source.users.tolist() == [0, 1, 2, 3] and target.users.tolist() == [0, 1, 4, 5]
    maps = user_maps(source.users, target.users, 7)
    # Rows: source users 0..3, target users 4..7, zero row 8 (global user 6 has no training rows).
    assert maps["scoring_index"].tolist() == [0, 1, 2, 3, 6, 7, 8]
    assert maps["source_row_index"].tolist() == [4, 5, 2, 3, 6, 7, 8]


def test_cold_start_scores_read_only_source_side_representations() -> None:
    model = tiny_model()
    users = np.arange(NUM_USERS, dtype="int32")
    before = model.score_all(users).numpy()
    all_users, _, target_items, source_users, _ = model.representations(False)
    # User 3 (cold in the target) and shared users 0, 1: their source representations · target items.
    np.testing.assert_allclose(before[[0, 1, 3]], source_users.numpy()[[0, 1, 3]] @ target_items.numpy().T, rtol=1e-5)
    # Replacing every target-side user embedding leaves them (target items are built from item embeddings) but moves target-only users.
    table = model.target_encoder.user_embedding
    table.assign(table.numpy() + 5.0)
    after = model.score_all(users).numpy()
    np.testing.assert_array_equal(after[[0, 1, 2, 3]], before[[0, 1, 2, 3]])
    assert not np.allclose(after[[4, 5]], before[[4, 5]])


def test_changing_cold_users_target_test_rows_does_not_change_their_scores(tmp_path: Path) -> None:
    """Trained through the method twice: once as prepared, once with every cold test user's target test rows moved to other items."""
    scores = []
    for edited in (False, True):
        folder = tmp_path / ("edited" if edited else "original")
        folder.mkdir()
        transfer = {**TINY_CONFIG["transfer"], "methods": ["cdrib"], "epochs": 2, "cdrib_layers": 2}
        loaded = load_config(write_config(folder, {**TINY_CONFIG, "transfer": transfer}))
        prepare_dataset(loaded.config)
        if edited:
            path = dataset_dir(loaded.config) / "interactions.parquet"
            frame = pd.read_parquet(path)
            test = ((frame["domain"] == TARGET) & (frame["split"] == "test")).to_numpy()
            frame.loc[test, "item"] = ((frame.loc[test, "item"] + 1) % int(frame.loc[frame["domain"] == TARGET, "item"].max() + 1)).astype(frame["item"].dtype)
            frame.to_parquet(path, index=False)
        pretrain = pretrain_source(loaded.config, config_text=loaded.text)
        dataset = open_dataset(loaded.config)
        cold = dataset.evaluation_users("test")
        cold = cold[dataset.cohort(cold) == "cold"]
        model = load_model(transfer_method(loaded.config, "cdrib", parent=pretrain, config_text=loaded.text))
        scores.append(model.score_all(tf.constant(cold, dtype=tf.int32)).numpy())
    assert len(scores[0]) > 0
    np.testing.assert_array_equal(scores[0], scores[1])


def test_training_steps_reduce_the_loss_and_the_model_round_trips(tmp_path: Path) -> None:
    model = tiny_model(dropout=0.0)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=lambda y, s: 0.0 * s[:, :1])
    users = np.concatenate([SOURCE_ROWS[0], TARGET_ROWS[0]]).astype("int32")
    positives = np.concatenate([SOURCE_ROWS[1], TARGET_ROWS[1] + SOURCE_ITEMS]).astype("int32")
    negatives = np.concatenate([(SOURCE_ROWS[1] + 1) % SOURCE_ITEMS, (TARGET_ROWS[1] + 2) % TARGET_ITEMS + SOURCE_ITEMS]).astype("int32")
    history = model.fit((users, positives, negatives), np.zeros((len(users), 1)), epochs=30, batch_size=len(users), verbose=0)
    losses = history.history["loss"]
    assert np.isfinite(losses).all() and losses[-1] < losses[0]
    path = tmp_path / "cdrib.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, compile=False, custom_objects=SERIALISABLE_MODELS)
    every = np.arange(NUM_USERS, dtype="int32")
    np.testing.assert_array_equal(reloaded.score_all(every).numpy(), model.score_all(every).numpy())
    np.testing.assert_array_equal(reloaded.score_all_source(every).numpy(), model.score_all_source(every).numpy())


def test_sparse_products_and_their_gradients_match_dense_and_repeat_exactly() -> None:
    graph = DomainGraph.from_rows(*SOURCE_ROWS, SOURCE_ITEMS)
    uv_indices, uv_values, vu_indices, _, uv_transpose, _ = graph.adjacencies()
    shape = (len(graph.users), SOURCE_ITEMS)
    matrix = csr_matrix(uv_indices, uv_values, shape)
    transpose = csr_matrix(vu_indices, uv_transpose, shape[::-1])
    x = tf.constant(np.random.default_rng(1).standard_normal((SOURCE_ITEMS, 2)), dtype=tf.float32)
    weights = tf.constant(np.random.default_rng(2).standard_normal((shape[0], 2)), dtype=tf.float32)
    gradients = []
    for _ in range(3):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = sparse_matmul(matrix, transpose, x)
            total = tf.reduce_sum(y * weights)
        gradients.append(tape.gradient(total, x).numpy())
    reference = dense(uv_indices, uv_values, shape)
    np.testing.assert_allclose(y.numpy(), reference @ x.numpy(), rtol=1e-5)
    np.testing.assert_allclose(gradients[0], reference.T @ weights.numpy(), rtol=1e-5)
    assert all((gradient == gradients[0]).all() for gradient in gradients)


def test_the_cdrib_stage_reads_its_own_batch_size_epochs_and_patience(tmp_path: Path) -> None:
    from xdt.methods.cdrib import stage_context
    from xdt.methods.context import MethodContext

    path = write_config(tmp_path, TINY_CONFIG)
    plain = MethodContext(load_config(path).config, None, None, tf.distribute.get_strategy(), None, None)
    assert stage_context(plain) is plain
    config = load_config(path, ["transfer.cdrib_batch_size=64", "transfer.cdrib_epochs=7"]).config
    settings = stage_context(MethodContext(config, None, None, tf.distribute.get_strategy(), None, None)).config.transfer
    assert (settings.batch_size, settings.epochs, settings.patience) == (64, 7, TINY_CONFIG["transfer"]["patience"])
