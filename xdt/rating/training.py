"""Training for the explicit-rating task: MSE + L2, early stopping on cold-start validation users.

Protocol (EMCDR/PTUPCDR): all source ratings are training data; test users' target ratings are
test; the other overlapping ("meta") users are split into meta-train users (their target ratings
train the target MF and the mapping/bridge) and validation users, whose target ratings are held
out completely and used only to pick epochs. Test users are never looked at until the end.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from xdt.data.dataset import PreparedDataset
from xdt.data.protocols import SOURCE, TARGET
from xdt.rating.evaluation import predict_ratings, rating_metrics
from xdt.rating.models import BiasedMatrixFactorization, EmcdrRating, PtupcdrRating
from xdt.train import seed_everything


@dataclass(frozen=True)
class Ratings:
    """Aligned rating rows."""

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray

    def __len__(self) -> int:
        return len(self.ratings)

    def select(self, mask: np.ndarray) -> Ratings:
        """The rows where `mask` is true."""
        return Ratings(self.users[mask], self.items[mask], self.ratings[mask])

    def inputs(self) -> tuple[np.ndarray, np.ndarray]:
        """`(users, items)` as int32 model inputs."""
        return self.users.astype("int32"), self.items.astype("int32")


@dataclass(frozen=True)
class RatingData:
    """One cold-start rating split: source rows, target train/valid/test rows and the user cohorts."""

    num_users: int
    num_source_items: int
    num_target_items: int
    source: Ratings
    target_train: Ratings
    valid: Ratings
    test: Ratings
    rating_range: tuple[float, float] = (1.0, 5.0)

    @property
    def meta_users(self) -> np.ndarray:
        """Users with ratings in both source and target training data (the mapping/bridge is trained on them)."""
        return np.intersect1d(np.unique(self.source.users), np.unique(self.target_train.users))

    @property
    def target_known(self) -> np.ndarray:
        """Bool `(num_users,)`: whether the user has target training ratings."""
        known = np.zeros(self.num_users, dtype=bool)
        known[self.target_train.users] = True
        return known

    def source_activity(self) -> np.ndarray:
        """Source training ratings per user."""
        return np.bincount(self.source.users, minlength=self.num_users)


def ratings_of(frame: Any) -> Ratings:
    """Rows of a prepared interactions frame as `Ratings`."""
    return Ratings(frame["user"].to_numpy(np.int64), frame["item"].to_numpy(np.int64), frame["rating"].to_numpy(np.float32))


def rating_data_from_prepared(dataset: PreparedDataset, *, valid_fraction: float = 0.15, seed: int = 0) -> RatingData:
    """Build a `RatingData` from a dataset prepared with protocol `cold_users`.

    The prepared `valid` split (cold validation users) is used when present; otherwise
    `valid_fraction` of the meta users (seeded) give all their target ratings to validation.
    Warm target rows in valid/test (warm_holdout) would not fit this task and are rejected.
    """
    test = ratings_of(dataset.rows(TARGET, "test"))
    valid = ratings_of(dataset.rows(TARGET, "valid"))
    train = ratings_of(dataset.rows(TARGET, "train"))
    overlap = np.intersect1d(train.users, np.concatenate([test.users, valid.users]))
    if len(overlap):
        raise ValueError(
            f"Expected cold-start valid/test users only (protocol cold_users, warm_holdout none); "
            f"{len(overlap)} users have both target train and valid/test rows"
        )
    source = ratings_of(dataset.rows(SOURCE, "train", "valid", "test"))
    if len(valid) == 0:
        meta = np.intersect1d(np.unique(source.users), np.unique(train.users))
        rng = np.random.default_rng([seed, 4099])
        chosen = meta[rng.permutation(len(meta))][: int(round(valid_fraction * len(meta)))]
        moved = np.isin(train.users, chosen)
        valid, train = train.select(moved), train.select(~moved)
    return RatingData(
        num_users=dataset.n_users,
        num_source_items=dataset.n_items(SOURCE),
        num_target_items=dataset.n_items(TARGET),
        source=source,
        target_train=train,
        valid=valid,
        test=test,
    )


@dataclass(frozen=True)
class FitSettings:
    """One training stage: Adam with MSE, L2 inside the model, early stopping on validation."""

    epochs: int = 50
    batch_size: int = 256
    learning_rate: float = 0.01
    patience: int = 3
    select_on: str = "mae"  # validation metric to minimise: mae | rmse | loss


@dataclass(frozen=True)
class RatingSettings:
    """Everything the rating pipeline uses; the defaults are what bench/douban_rating.py runs."""

    embedding_dim: int = 10
    l2: float = 0.05
    source_valid_fraction: float = 0.05
    mf: FitSettings = field(default_factory=lambda: FitSettings(epochs=40, batch_size=1024, learning_rate=0.03, patience=3))
    mapping: FitSettings = field(default_factory=lambda: FitSettings(epochs=200, batch_size=64, learning_rate=0.005, patience=5))
    # batch 256, dim 10, meta dim 50, history 20: the official PTUPCDR meta-stage dimensions.
    meta: FitSettings = field(default_factory=lambda: FitSettings(epochs=20, batch_size=256, learning_rate=0.001, patience=2))
    emcdr_mapping: str = "mlp"
    emcdr_hidden: int = 64
    meta_dim: int = 50
    max_history: int = 20
    meta_l2: float = 0.0
    history_dropout: float = 0.5
    warm_start: bool = True  # start the bridge from the shared ridge solution (see shared_linear_bridge)
    ridge: float = 1.0


@dataclass
class FitResult:
    """What an early-stopped fit did: the epoch it kept, its validation score, and per-epoch records."""

    best_epoch: int = 0
    best_score: float = float("inf")
    stopped_early: bool = False
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def epoch_seconds(self) -> list[float]:
        """Training seconds of each epoch (validation excluded)."""
        return [record["seconds"] for record in self.history]


class ValidationEarlyStopping(keras.callbacks.Callback):
    """After each epoch, score the model with `validate` (lower is better); keep the best weights, stop after `patience` worse epochs.

    At the end of training the best epoch's weights are restored, so the model is exactly the
    one from the epoch with the lowest validation score. With `include_initial` the untrained
    starting point counts as epoch 0 (for warm-started models).
    """

    def __init__(self, validate: Callable[[], float], patience: int, result: FitResult, include_initial: bool = False) -> None:
        super().__init__()
        self.include_initial = include_initial
        self.validate = validate
        self.patience = patience
        self.result = result
        self.best_weights: list[np.ndarray] | None = None
        self.wait = 0
        self.started = 0.0

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        if self.include_initial:
            score = float(self.validate())
            self.result.history.append({"epoch": 0, "loss": float("nan"), "valid": score, "seconds": 0.0})
            self.result.best_score, self.result.best_epoch = score, 0
            self.best_weights = self.model.get_weights()

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        seconds = time.perf_counter() - self.started
        score = float(self.validate())
        self.result.history.append({"epoch": epoch + 1, "loss": float((logs or {}).get("loss", np.nan)), "valid": score, "seconds": seconds})
        if score < self.result.best_score:
            self.result.best_score, self.result.best_epoch = score, epoch + 1
            self.best_weights = self.model.get_weights()
            self.wait = 0
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.result.stopped_early = True
                self.model.stop_training = True

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)


def fit_early_stopped(
    model: keras.Model, inputs: Any, targets: np.ndarray, *, validate: Callable[[], float], settings: FitSettings,
    loss: str = "mse", include_initial: bool = False,
) -> FitResult:
    """Compile with Adam and `loss`, train up to `settings.epochs`, keep the epoch with the lowest `validate()`."""
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=settings.learning_rate), loss=loss)
    result = FitResult()
    stopper = ValidationEarlyStopping(validate, settings.patience, result, include_initial)
    model.fit(
        inputs, column(np.asarray(targets, dtype="float32")),
        batch_size=settings.batch_size, epochs=settings.epochs, shuffle=True, verbose=0, callbacks=[stopper],
    )
    return result


def column(values: np.ndarray) -> np.ndarray:
    """1-D targets as `(rows, 1)` (see ARCHITECTURE.md §8); 2-D targets unchanged."""
    return values.reshape(-1, 1) if values.ndim == 1 else values


def validation_score(model: Any, rows: Ratings, settings: FitSettings, clip: tuple[float, float]) -> float:
    """Validation MAE, RMSE or MSE of `model` on `rows` (predictions clipped to the rating range)."""
    predictions = predict_ratings(model, rows.users, rows.items, clip=clip)
    metrics = rating_metrics(predictions, rows.ratings)
    if settings.select_on == "loss":
        return metrics["rmse"] ** 2
    return metrics[settings.select_on]


class ColdStartView(keras.Model):
    """Trains a transfer model through its source-only path (`cold_start`), even for users that have target data."""

    def __init__(self, model: EmcdrRating | PtupcdrRating, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.inner = model

    def call(self, inputs: Any, training: bool = False) -> Any:
        return self.inner.cold_start(inputs, training=training)


def train_matrix_factorization(
    rows: Ratings, valid: Ratings, *, num_users: int, num_items: int, known: np.ndarray, settings: RatingSettings,
    clip: tuple[float, float], seed: int,
) -> tuple[BiasedMatrixFactorization, FitResult]:
    """A biased MF on `rows`, early-stopped on `valid`; `known` marks users with training rows, items without rows get zero vectors."""
    seed_everything(seed)
    model = BiasedMatrixFactorization(num_users, num_items, settings.embedding_dim, global_mean=float(np.mean(rows.ratings)), l2=settings.l2)
    model.build()
    model.set_known_users(known)
    result = fit_early_stopped(
        model, rows.inputs(), rows.ratings, validate=lambda: validation_score(model, valid, settings.mf, clip), settings=settings.mf
    )
    unseen = np.bincount(rows.items, minlength=num_items) == 0
    vectors = model.item_embedding.embeddings.numpy()
    vectors[unseen] = 0.0
    model.item_embedding.embeddings.assign(vectors)
    return model, result


def train_target_mf(data: RatingData, settings: RatingSettings, seed: int) -> tuple[BiasedMatrixFactorization, FitResult]:
    """Target-domain MF on meta-train (and target-only) users, selected on the cold validation users (predicted μ + b_i)."""
    return train_matrix_factorization(
        data.target_train, data.valid, num_users=data.num_users, num_items=data.num_target_items,
        known=data.target_known, settings=settings, clip=data.rating_range, seed=seed,
    )


def train_source_mf(data: RatingData, settings: RatingSettings, seed: int) -> tuple[BiasedMatrixFactorization, FitResult]:
    """Source-domain MF on all source ratings but a seeded `source_valid_fraction` held out for early stopping."""
    rng = np.random.default_rng([seed, 7717])
    held_out = rng.random(len(data.source)) < settings.source_valid_fraction
    known = np.zeros(data.num_users, dtype=bool)
    known[data.source.users] = True
    return train_matrix_factorization(
        data.source.select(~held_out), data.source.select(held_out), num_users=data.num_users,
        num_items=data.num_source_items, known=known, settings=settings, clip=data.rating_range, seed=seed + 1,
    )


def train_emcdr(
    data: RatingData, source: BiasedMatrixFactorization, target: BiasedMatrixFactorization, settings: RatingSettings, seed: int
) -> tuple[EmcdrRating, FitResult]:
    """Fit the mapping (p^s, b^s) → (p^t, b^t) on meta-train users by MSE; keep the epoch with the best validation-user ratings."""
    seed_everything(seed + 2)
    model = EmcdrRating(data.num_users, data.num_target_items, settings.embedding_dim, mapping=settings.emcdr_mapping, hidden=settings.emcdr_hidden)
    model.build()
    model.load_pretrained(source, target)
    users = data.meta_users
    features = np.asarray(model.source_features(users.astype("int32")))
    goals = np.concatenate([target.user_embedding.embeddings.numpy()[users], target.user_bias.embeddings.numpy()[users]], axis=1)
    result = fit_early_stopped(
        model.mapping, features, goals, validate=lambda: validation_score(model, data.valid, settings.mapping, data.rating_range),
        settings=settings.mapping,
    )
    return model, result


def source_histories(data: RatingData, max_history: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`(num_users, max_history)` source item indices (-1 padding) and centred ratings; longer histories are subsampled (seeded)."""
    rng = np.random.default_rng([seed, 2022])
    order = np.lexsort((rng.random(len(data.source)), data.source.users))
    users, items = data.source.users[order], data.source.items[order]
    centred = data.source.ratings[order] - float(np.mean(data.source.ratings))
    starts = np.searchsorted(users, users, side="left")
    position = np.arange(len(users)) - starts
    keep = position < max_history
    history_items = np.full((data.num_users, max_history), -1, dtype=np.int64)
    history_ratings = np.zeros((data.num_users, max_history), dtype=np.float32)
    history_items[users[keep], position[keep]] = items[keep]
    history_ratings[users[keep], position[keep]] = centred[keep]
    return history_items, history_ratings


def shared_linear_bridge(
    data: RatingData, source: BiasedMatrixFactorization, target: BiasedMatrixFactorization, ridge: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """Ridge regressions on meta-train users: p^t ≈ p^s W (no intercept, as the bridge is) and b^t ≈ [p^s, b^s] · w + c."""
    users = data.meta_users
    source_vectors = source.user_embedding.embeddings.numpy()[users].astype(np.float64)
    source_bias = source.user_bias.embeddings.numpy()[users].astype(np.float64)
    target_vectors = target.user_embedding.embeddings.numpy()[users].astype(np.float64)
    target_bias = target.user_bias.embeddings.numpy()[users, 0].astype(np.float64)
    dim = source_vectors.shape[1]
    bridge = np.linalg.solve(source_vectors.T @ source_vectors + ridge * np.eye(dim), source_vectors.T @ target_vectors)
    features = np.concatenate([source_vectors, source_bias, np.ones((len(users), 1))], axis=1)
    penalty = ridge * np.eye(dim + 2)
    penalty[-1, -1] = 0.0
    solution = np.linalg.solve(features.T @ features + penalty, features.T @ target_bias)
    return bridge, solution[:-1], float(solution[-1])


def train_ptupcdr(
    data: RatingData, source: BiasedMatrixFactorization, target: BiasedMatrixFactorization, settings: RatingSettings, seed: int
) -> tuple[PtupcdrRating, FitResult]:
    """Task-oriented meta training: the bridge network is fitted on meta-train users' target ratings (target MF frozen)."""
    seed_everything(seed + 3)
    model = PtupcdrRating(
        data.num_users, data.num_target_items, settings.embedding_dim, num_source_items=data.num_source_items,
        max_history=settings.max_history, meta_dim=settings.meta_dim, l2=settings.meta_l2,
        history_dropout=settings.history_dropout, seed=seed,
    )
    model.build()
    model.load_pretrained(source, target)
    model.load_history(source.item_embedding.embeddings.numpy(), *source_histories(data, settings.max_history, seed))
    if settings.warm_start:
        model.initialise_shared_bridge(*shared_linear_bridge(data, source, target, settings.ridge))
    meta_rows = data.target_train.select(np.isin(data.target_train.users, data.meta_users))
    view = ColdStartView(model)
    result = fit_early_stopped(
        view, meta_rows.inputs(), meta_rows.ratings,
        validate=lambda: validation_score(model, data.valid, settings.meta, data.rating_range), settings=settings.meta,
        include_initial=settings.warm_start,
    )
    return model, result


METHODS = ("global_mean", "item_mean", "user_mean", "target_mf", "emcdr", "ptupcdr")
# The methods with a trained Keras model (saved by `xdt run` as models/<method>.keras); the others are baselines.
LEARNED_METHODS = ("target_mf", "emcdr", "ptupcdr")


@dataclass
class RatingRun:
    """Test predictions of each method on one split, the fits behind them and the trained models."""

    predictions: dict[str, np.ndarray] = field(default_factory=dict)
    fits: dict[str, FitResult] = field(default_factory=dict)
    models: dict[str, keras.Model] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def predict_baselines(data: RatingData, methods: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Test predictions of the baselines among `methods`, fitted on every non-test target rating (train + validation users)."""
    from xdt.rating import baselines

    fit_rows = Ratings(*(np.concatenate([getattr(data.target_train, name), getattr(data.valid, name)]) for name in ("users", "items", "ratings")))
    test = data.test
    predictions = {}
    if "global_mean" in methods:
        predictions["global_mean"] = baselines.predict_global_mean(fit_rows.ratings, len(test))
    if "item_mean" in methods:
        predictions["item_mean"] = baselines.predict_item_mean(fit_rows.items, fit_rows.ratings, test.items)
    if "user_mean" in methods:
        predictions["user_mean"] = baselines.predict_user_mean(fit_rows.users, fit_rows.ratings, test.users)
    return predictions


def run_rating_methods(data: RatingData, methods: tuple[str, ...], settings: RatingSettings, seed: int) -> RatingRun:
    """Train the requested methods on one split and predict its test ratings (clipped to the rating range).

    Baselines use every non-test target rating (train + validation users), as PEERS.md does; the
    learned models train on the train users and select epochs on the validation users.
    """
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise ValueError(f"Unknown rating methods {unknown}. Available: {', '.join(METHODS)}")
    run = RatingRun(predictions=predict_baselines(data, methods))
    test = data.test
    learned = [method for method in LEARNED_METHODS if method in methods]
    if not learned:
        return run
    started = time.perf_counter()
    target, run.fits["target_mf"] = train_target_mf(data, settings, seed)
    run.seconds["target_mf"] = time.perf_counter() - started
    run.models["target_mf"] = target
    if "target_mf" in methods:
        run.predictions["target_mf"] = predict_ratings(target, test.users, test.items, clip=data.rating_range)
    if "emcdr" in methods or "ptupcdr" in methods:
        started = time.perf_counter()
        source, run.fits["source_mf"] = train_source_mf(data, settings, seed)
        run.seconds["source_mf"] = time.perf_counter() - started
        run.models["source_mf"] = source
        for method, train in (("emcdr", train_emcdr), ("ptupcdr", train_ptupcdr)):
            if method in methods:
                started = time.perf_counter()
                model, run.fits[method] = train(data, source, target, settings, seed)
                run.seconds[method] = time.perf_counter() - started
                run.models[method] = model
                run.predictions[method] = predict_ratings(model, test.users, test.items, clip=data.rating_range)
    return run
