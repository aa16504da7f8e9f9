"""The explicit-rating package on tiny generated data: baselines, metrics, models, early stopping, source use."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import keras
import numpy as np
import pytest

from xdt.rating import baselines
from xdt.rating.evaluation import evaluate_ratings, predict_ratings, rating_metrics
from xdt.rating.models import BiasedMatrixFactorization, EmcdrRating, PtupcdrRating
from xdt.rating.training import (
    FitResult,
    FitSettings,
    RatingData,
    Ratings,
    RatingSettings,
    ValidationEarlyStopping,
    run_rating_methods,
    source_histories,
)

TINY = RatingSettings(
    embedding_dim=4,
    mf=FitSettings(epochs=4, batch_size=128, learning_rate=0.05, patience=2),
    mapping=FitSettings(epochs=4, batch_size=16, learning_rate=0.01, patience=2),
    meta=FitSettings(epochs=3, batch_size=128, learning_rate=0.01, patience=2),
    max_history=6,
    meta_dim=8,
)


def tiny_rating_data(seed: int = 0) -> RatingData:
    """60 users with a shared taste and leniency in both domains; users 0-9 are cold test, 10-17 cold valid, 18-59 meta."""
    rng = np.random.default_rng(seed)
    users, source_items, target_items = 60, 30, 25
    taste = rng.normal(size=(users, 3))
    leniency = rng.normal(scale=0.7, size=users)

    def domain(items: int, per_user: int) -> Ratings:
        vectors = rng.normal(size=(items, 3))
        rows = [(user, item) for user in range(users) for item in rng.choice(items, per_user, replace=False)]
        user_ids = np.array([row[0] for row in rows])
        item_ids = np.array([row[1] for row in rows])
        score = 3.5 + leniency[user_ids] + 0.5 * np.sum(taste[user_ids] * vectors[item_ids], axis=1)
        ratings = np.clip(np.round(score + rng.normal(scale=0.3, size=len(rows))), 1, 5).astype(np.float32)
        return Ratings(user_ids, item_ids, ratings)

    source, target = domain(source_items, 8), domain(target_items, 6)
    test, valid = target.users < 10, (target.users >= 10) & (target.users < 18)
    return RatingData(users, source_items, target_items, source, target.select(~test & ~valid), target.select(valid), target.select(test))


def test_global_item_and_user_mean_by_hand() -> None:
    items = np.array([0, 0, 1, 1, 1])
    ratings = np.array([5.0, 3.0, 2.0, 2.0, 5.0])
    # global mean = 17 / 5 = 3.4; item 0 → (5+3)/2 = 4; item 1 → 9/3 = 3; item 7 (unseen) → 3.4
    assert baselines.predict_global_mean(ratings, 2) == pytest.approx([3.4, 3.4])
    assert baselines.predict_item_mean(items, ratings, np.array([0, 1, 7])) == pytest.approx([4.0, 3.0, 3.4])
    users = np.array([2, 2, 2, 0, 0])
    # user 2 → (5+3+2)/3 = 3.333; user 0 → 3.5; user 5 (cold) → 3.4
    assert baselines.predict_user_mean(users, ratings, np.array([2, 0, 5])) == pytest.approx([10 / 3, 3.5, 3.4])
    # shrinkage 1 towards 3.4: item 0 → (8 + 3.4) / 3 = 3.8
    assert baselines.group_means(items, ratings, np.array([0]), shrinkage=1.0) == pytest.approx([3.8])


def test_rating_metrics_by_hand_and_by_cohort() -> None:
    predictions = np.array([3.0, 4.0, 5.0, 1.0])
    targets = np.array([4.0, 4.0, 3.0, 1.0])
    # errors 1, 0, 2, 0 → MAE 3/4 = 0.75, RMSE sqrt(5/4) = 1.118
    metrics = rating_metrics(predictions, targets)
    assert metrics == {"mae": 0.75, "rmse": pytest.approx(np.sqrt(1.25)), "ratings": 4}
    report = evaluate_ratings(predictions, targets, np.array([0, 0, 1, 2]), cohorts={"first": np.array([1, 1, 0, 0], bool)},
                              source_activity=np.array([0, 5, 60]))
    assert report["cohorts"]["first"]["mae"] == 0.5
    assert report["source_activity"]["0"]["ratings"] == 2 and report["source_activity"]["51-200"]["mae"] == 0.0
    with pytest.raises(ValueError, match="equal length"):
        rating_metrics(predictions, targets[:2])


def test_source_histories_pad_and_centre() -> None:
    data = tiny_rating_data()
    items, ratings = source_histories(data, max_history=10, seed=0)
    assert items.shape == (60, 10) and (items[:, :8] >= 0).all() and (items[:, 8:] == -1).all()
    user = 3
    expected = np.sort(data.source.items[data.source.users == user])
    assert np.array_equal(np.sort(items[user, :8]), expected)
    assert ratings[user, 8:].tolist() == [0.0, 0.0]
    assert np.isclose(ratings[:, :8].sum() + 480 * data.source.ratings.mean(), data.source.ratings.sum(), atol=1e-2)


def trained_run(data: RatingData, seed: int = 3):
    """All methods on the tiny data."""
    return run_rating_methods(data, ("global_mean", "item_mean", "target_mf", "emcdr", "ptupcdr"), TINY, seed)


@pytest.fixture(scope="module")
def tiny_run():
    data = tiny_rating_data()
    return data, trained_run(data)


def test_models_predict_one_rating_per_row(tiny_run) -> None:
    data, run = tiny_run
    for method in ("target_mf", "emcdr", "ptupcdr"):
        output = run.models[method](data.test.inputs())
        assert tuple(output.shape) == (len(data.test), 1)
        assert run.predictions[method].shape == (len(data.test),)
        assert (run.predictions[method] >= 1).all() and (run.predictions[method] <= 5).all()
    assert set(run.fits) == {"target_mf", "source_mf", "emcdr", "ptupcdr"}
    # cold users of the target MF are predicted μ + b_i: no user part
    target = run.models["target_mf"]
    no_user = target.global_mean + target.item_bias.embeddings.numpy()[data.test.items, 0]
    assert np.allclose(np.asarray(target(data.test.inputs()))[:, 0], no_user, atol=1e-5)


@pytest.mark.parametrize("method", ["target_mf", "emcdr", "ptupcdr"])
def test_save_load_round_trip_is_identical(tiny_run, method: str, tmp_path: Path) -> None:
    data, run = tiny_run
    model = run.models[method]
    path = tmp_path / f"{method}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is type(model)
    before = predict_ratings(model, data.test.users, data.test.items)
    after = predict_ratings(loaded, data.test.users, data.test.items)
    np.testing.assert_array_equal(before, after)


def test_ptupcdr_cold_start_depends_on_the_source_domain(tiny_run) -> None:
    data, run = tiny_run
    rng = np.random.default_rng(11)
    permutation = rng.permutation(data.num_users)
    shuffled = replace(data, source=replace(data.source, users=permutation[data.source.users]))
    other = run_rating_methods(shuffled, ("ptupcdr",), TINY, 3)
    difference = np.abs(other.predictions["ptupcdr"] - run.predictions["ptupcdr"])
    assert difference.max() > 1e-3


def test_transfer_models_reject_bad_arguments() -> None:
    with pytest.raises(ValueError, match="mapping"):
        EmcdrRating(4, 3, 2, mapping="deep")
    model = PtupcdrRating(4, 3, 2, num_source_items=5, max_history=3)
    with pytest.raises(ValueError, match="histories of shape"):
        model.load_history(np.zeros((5, 2)), np.zeros((4, 2), dtype=int), np.zeros((4, 2)))


def test_early_stopping_keeps_the_epoch_with_the_best_validation_score() -> None:
    keras.utils.set_random_seed(0)
    model = BiasedMatrixFactorization(5, 4, 2, global_mean=3.0)
    model.build()
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="mse")
    scores = iter([0.9, 0.4, 0.6, 0.7, 0.3])  # epoch 2 is best before patience 2 runs out at epoch 4
    snapshots = []
    result = FitResult()
    stopper = ValidationEarlyStopping(lambda: next(scores), patience=2, result=result)
    keep = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: snapshots.append(model.get_weights()))
    users, items = np.array([0, 1, 2, 3, 4] * 4, "int32"), np.array([0, 1, 2, 3] * 5, "int32")
    model.fit((users, items), np.linspace(1, 5, 20).reshape(-1, 1), batch_size=4, epochs=10, verbose=0, callbacks=[keep, stopper])
    assert result.best_epoch == 2 and result.stopped_early and len(result.history) == 4
    assert [round(record["valid"], 2) for record in result.history] == [0.9, 0.4, 0.6, 0.7]
    for restored, kept in zip(model.get_weights(), snapshots[1]):
        np.testing.assert_array_equal(restored, kept)
    assert not np.array_equal(snapshots[1][0], snapshots[3][0])
