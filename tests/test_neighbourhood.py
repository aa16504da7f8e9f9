"""itemknn and xknn: hand-computed scores, save → load round trip, float32 order, use of the source domain."""

from __future__ import annotations

import math
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sparse
import tensorflow as tf

from tests.conftest import TINY_CONFIG
from xdt.config import config_from_dict
from xdt.data.dataset import PreparedDataset, load_dataset
from xdt.data.prepare import dataset_dir, prepare_dataset
from xdt.evaluate import evaluate_model
from xdt.methods import itemknn, xknn
from xdt.methods.context import MethodContext
from xdt.models.neighbourhood import NeighbourhoodModel, order_preserving_float32
from xdt.progress import SilentReporter
from xdt.runs import RunDirectory
from xdt.session import SERIALISABLE_MODELS

SQRT2, SQRT3 = math.sqrt(2.0), math.sqrt(3.0)


def frame_dataset(rows: list[tuple[str, int, int, str]], n_users: int, n_source: int, n_target: int) -> PreparedDataset:
    """An in-memory dataset from (domain, user, item, split) rows."""
    frame = pd.DataFrame(rows, columns=["domain", "user", "item", "split"]).assign(rating=1.0, timestamp=-1)
    items = lambda n, prefix: pd.DataFrame({"item": np.arange(n), "raw_item": [f"{prefix}{i}" for i in range(n)]})  # noqa: E731
    return PreparedDataset(
        path=Path("."),
        manifest={"name": "hand"},
        interactions=frame,
        raw_users=np.array([f"u{u}" for u in range(n_users)], dtype=object),
        source_items=items(n_source, "s"),
        target_items=items(n_target, "t"),
    )


def context_for(dataset: PreparedDataset, tmp_path: Path, seed: int = 7) -> MethodContext:
    """A MethodContext around an in-memory dataset (no source model: neighbourhood methods need none)."""
    config = config_from_dict({**TINY_CONFIG, "seed": seed})
    run = RunDirectory(tmp_path)
    return MethodContext(config, dataset, run, tf.distribute.get_strategy(), None, SilentReporter())


def scores_of(model: NeighbourhoodModel, users: list[int]) -> np.ndarray:
    """Exact float64 scores."""
    return model.score_all_float64(tf.constant(users, dtype=tf.int32)).numpy()


def round_trip(model: keras.Model, tmp_path: Path) -> keras.Model:
    """Save as .keras and load back."""
    path = tmp_path / "model.keras"
    model.save(path)
    return keras.saving.load_model(path, compile=False, custom_objects=SERIALISABLE_MODELS)


def test_itemknn_scores_by_hand(tmp_path: Path) -> None:
    # Target train R (users × items): u0 {0, 1}, u1 {1, 2}, u2 {0}; degrees d = (2, 2, 1).
    # Co-occurrence off the diagonal: (0, 1) = 1 (u0), (1, 2) = 1 (u1), (0, 2) = 0.
    # Cosine: s01 = 1/√(2·2) = 1/2, s12 = 1/√(2·1) = 1/√2, s02 = 0; diagonal zeroed.
    # u0 = row0 + row1 = (0, 1/2, 0) + (1/2, 0, 1/√2) = (1/2, 1/2, 1/√2)
    # u1 = row1 + row2 = (1/2, 0, 1/√2) + (0, 1/√2, 0) = (1/2, 1/√2, 1/√2)
    # u2 = row0 = (0, 1/2, 0)
    # Popularity (2, 2, 1) → tie-break 1e-6 × (1, 1, 1/2).
    rows = [("target", 0, 0, "train"), ("target", 0, 1, "train"), ("target", 1, 1, "train"), ("target", 1, 2, "train"),
            ("target", 2, 0, "train"), ("source", 0, 0, "train")]
    model = itemknn.train(context_for(frame_dataset(rows, 3, 1, 3), tmp_path))
    prior = 1e-6 * np.array([1.0, 1.0, 0.5])
    expected = np.array([[0.5, 0.5, 1 / SQRT2], [0.5, 1 / SQRT2, 1 / SQRT2], [0.0, 0.5, 0.0]]) + prior
    np.testing.assert_allclose(scores_of(model, [0, 1, 2]), expected, rtol=1e-12, atol=1e-15)


def xknn_rows() -> list[tuple[str, int, int, str]]:
    # Source train: u0 {s0}, u1 {s0, s1}, u2 {s1}, u3 {s0, s1}; target train: u0 {t0}, u1 {t1}, u2 {t1, t2};
    # u3 is a cold-start user (a target test row only, so still an overlapping user).
    source = [(0, 0), (1, 0), (1, 1), (2, 1), (3, 0), (3, 1)]
    target = [(0, 0), (1, 1), (2, 1), (2, 2)]
    return (
        [("source", user, item, "train") for user, item in source]
        + [("target", user, item, "train") for user, item in target]
        + [("target", 3, 2, "test")]
    )


def test_xknn_cold_user_scores_by_hand(tmp_path: Path) -> None:
    # S (overlapping users × source items): u0 (1,0), u1 (1,1), u2 (0,1), u3 (1,1) → D_s = (3, 3).
    # T (users × target items): u0 (1,0,0), u1 (0,1,0), u2 (0,1,1), u3 (0,0,0) → D_t = (1, 2, 1).
    # SᵀT: s0 = u0·t0 + u1·t1 = (1, 1, 0); s1 = u1·t1 + u2·(t1 + t2) = (0, 2, 1).
    # X = [[1/√(3·1), 1/√(3·2), 0], [0, 2/√(3·2), 1/√(3·1)]].
    # u3 (s0 + s1) = (1/√3, 3/√6, 1/√3); popularity (1, 2, 1) → + 1e-6 × (1/2, 1, 1/2).
    model = xknn.train(context_for(frame_dataset(xknn_rows(), 4, 2, 3), tmp_path))
    expected = np.array([1 / SQRT3, 3 / math.sqrt(6.0), 1 / SQRT3]) + 1e-6 * np.array([0.5, 1.0, 0.5])
    np.testing.assert_allclose(scores_of(model, [3])[0], expected, rtol=1e-12)


def test_xknn_warm_user_adds_target_itemknn(tmp_path: Path) -> None:
    # u0: source {s0} → X row s0 = (1/√3, 1/√6, 0). Target {t0}: the target cosine of t0 with
    # t1 and t2 is 0 (t0 co-occurs with nothing), so u0 = (1/√3, 1/√6, 0) + prior.
    # u2: source {s1} → (0, 2/√6, 1/√3); target {t1, t2}: D = (1, 2, 1), s12 = 1/√(2·1) = 1/√2,
    # so rows t1 + t2 = (0, 0, 1/√2) + (0, 1/√2, 0) → u2 = (0, 2/√6 + 1/√2, 1/√3 + 1/√2) + prior.
    model = xknn.train(context_for(frame_dataset(xknn_rows(), 4, 2, 3), tmp_path))
    prior = 1e-6 * np.array([0.5, 1.0, 0.5])
    expected = np.array(
        [[1 / SQRT3, 1 / math.sqrt(6.0), 0.0], [0.0, 2 / math.sqrt(6.0) + 1 / SQRT2, 1 / SQRT3 + 1 / SQRT2]]
    ) + prior
    np.testing.assert_allclose(scores_of(model, [0, 2]), expected, rtol=1e-12)


@pytest.mark.parametrize("method", [itemknn, xknn])
def test_round_trip_gives_identical_scores(method, tmp_path: Path) -> None:
    model = method.train(context_for(frame_dataset(xknn_rows(), 4, 2, 3), tmp_path))
    loaded = round_trip(model, tmp_path)
    users = tf.constant([0, 1, 2, 3], dtype=tf.int32)
    assert isinstance(loaded, NeighbourhoodModel)
    assert model.score_all(users).shape == (4, 3)
    np.testing.assert_array_equal(loaded.score_all(users).numpy(), model.score_all(users).numpy())
    np.testing.assert_array_equal(loaded.score_all_float64(users).numpy(), model.score_all_float64(users).numpy())


def test_order_preserving_float32_keeps_exact_order_and_ties() -> None:
    rng = np.random.default_rng(0)
    base = rng.choice([0.0, 0.1, 0.25, 1.0 / 3.0], size=(4, 200))
    # Differences of 1e-12 .. 1e-9 vanish in a plain float32 cast; some values tie exactly.
    scores = base + rng.integers(0, 5, size=base.shape) * 1e-10
    converted = order_preserving_float32(tf.constant(scores)).numpy()
    assert converted.dtype == np.float32
    plain = scores.astype(np.float32)
    assert (np.sign(plain[:, :, None] - plain[:, None, :]) != np.sign(scores[:, :, None] - scores[:, None, :])).any()
    np.testing.assert_array_equal(
        np.sign(converted[:, :, None] - converted[:, None, :]), np.sign(scores[:, :, None] - scores[:, None, :])
    )
    np.testing.assert_allclose(converted, scores, rtol=1e-5)


def test_neighbourhood_rejects_mismatched_channels() -> None:
    from xdt.models.neighbourhood import Channel

    history = sparse.csr_matrix(np.eye(3))
    with pytest.raises(ValueError, match="Channel 0"):
        NeighbourhoodModel.from_channels([Channel(history, sparse.csr_matrix((2, 4)))], np.zeros(4))


def shuffled_source(dataset: PreparedDataset, seed: int) -> PreparedDataset:
    """The same rows with the source rows' users permuted: user tastes no longer line up across domains."""
    frame = dataset.interactions.copy()
    is_source = (frame["domain"] == "source").to_numpy()
    users = np.unique(frame.loc[is_source, "user"].to_numpy())
    mapping = dict(zip(users, np.random.default_rng(seed).permutation(users)))
    frame.loc[is_source, "user"] = frame.loc[is_source, "user"].map(mapping).to_numpy()
    return PreparedDataset(dataset.path, dataset.manifest, frame, dataset.raw_users, dataset.source_items, dataset.target_items)


def test_xknn_cold_start_result_uses_the_source_domain(tmp_path: Path) -> None:
    config = config_from_dict({**TINY_CONFIG, "runtime": {"data_dir": str(tmp_path / "data"), "runs_dir": str(tmp_path / "runs")}})
    prepare_dataset(config)
    dataset = load_dataset(dataset_dir(config))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    results = {}
    for name, data, folder in (("original", dataset, tmp_path / "a"), ("shuffled", shuffled_source(dataset, 1), tmp_path / "b")):
        model = xknn.train(context_for(data, folder))
        per_user = evaluate_model(model.score_all, data, split="test", ks=[10], batch_size=64)
        results[name] = per_user.loc[per_user["cohort"] == "cold", "ndcg@10"].mean()
    assert results["original"] != results["shuffled"]
    assert results["original"] > results["shuffled"]
