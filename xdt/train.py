"""Training under `tf.distribute` (strategies: xdt.runtime): epoch loop, checkpoints, early stopping, exact resume."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from xdt.config import OptimizerConfig, TrainingConfig
from xdt.data.dataset import PreparedDataset
from xdt.data.streaming import training_stream
from xdt.losses import ranking_loss
from xdt.progress import EpochReport
from xdt.runs import RunDirectory, write_json_atomic
from xdt.runtime import is_multi_worker

KILL_AFTER_EPOCH_VARIABLE = "XDT_KILL_AFTER_EPOCH"


def seed_everything(seed: int, *, deterministic: bool = True) -> None:
    """Seed Python, numpy and TensorFlow; TF ops deterministic unless `deterministic` is False.

    `runtime.jit_compile: true` passes False: Keras refuses XLA (with only a warning) while TF's
    op determinism is on, and the flag is process-wide, so it is switched off explicitly (TF's
    public API only switches it on).
    """
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    else:
        from tensorflow.python.framework.config import disable_op_determinism

        disable_op_determinism()


def make_optimizer(config: OptimizerConfig) -> keras.optimizers.Optimizer:
    """The configured optimiser."""
    optimizers = {"adam": keras.optimizers.Adam, "adagrad": keras.optimizers.Adagrad, "sgd": keras.optimizers.SGD}
    return optimizers[config.name](learning_rate=config.learning_rate)


@dataclass
class TrainingState:
    """Where an epoch loop stands; saved with every checkpoint."""

    epoch: int = 0
    best_score: float = -np.inf
    best_epoch: int = 0
    wait: int = 0
    stopped_early: bool = False
    checkpoint: str = ""


def compile_model(model: keras.Model, training: TrainingConfig, *, freeze_users: bool, jit_compile: bool = False) -> None:
    """Compile with a fresh optimiser and the configured ranking loss; user embeddings optionally frozen.

    `jit_compile` is `runtime.jit_compile`, passed as a bool: Keras' own "auto" would turn XLA on
    whenever a GPU is visible, so the same config would compile differently on different machines.
    """
    user_embedding = getattr(model, "user_embedding", None)
    if user_embedding is not None:
        user_embedding.trainable = not freeze_users
    model.compile(optimizer=make_optimizer(training.optimizer), loss=ranking_loss(training.loss), jit_compile=jit_compile)


def save_checkpoint(model: keras.Model, folder: Path) -> None:
    """Weights plus optimiser variables (step counter and moments), so resume is exact."""
    folder.mkdir(parents=True, exist_ok=True)
    model.save_weights(folder / "model.weights.h5")
    variables = {f"v{index}": variable.numpy() for index, variable in enumerate(model.optimizer.variables)}
    np.savez(folder / "optimizer.npz", **variables)


def restore_checkpoint(model: keras.Model, folder: Path) -> None:
    """Load weights and optimiser variables saved by `save_checkpoint`.

    The optimiser is built first: the weights file holds its variables too, and Keras skips
    them with a UserWarning when the fresh optimiser has only its step and learning rate.
    """
    model.optimizer.build(model.trainable_variables)
    model.load_weights(folder / "model.weights.h5")
    saved = np.load(folder / "optimizer.npz")
    if len(saved.files) != len(model.optimizer.variables):
        raise RuntimeError(f"Checkpoint {folder} has {len(saved.files)} optimiser variables, expected {len(model.optimizer.variables)}")
    for index, variable in enumerate(model.optimizer.variables):
        variable.assign(saved[f"v{index}"])


def epoch_batches(users: np.ndarray, positives: np.ndarray, negatives: np.ndarray, batch_size: int) -> tf.data.Dataset:
    """One epoch of (user, positive, negatives `(n,)` or `(n, k)`) triples in the given order, with zero labels `(batch, 1)`.

    Built directly rather than through Keras' numpy adapter, whose parallel map logs a spurious
    "NodeDef mentions attribute use_unbounded_threadpool" error with Keras 3.15 on TF 2.21.
    """
    labels = np.zeros((len(users), 1), dtype=np.float32)
    return tf.data.Dataset.from_tensor_slices(((users, positives, negatives), labels)).batch(batch_size)


def train_epoch(model: keras.Model, batches: tf.data.Dataset, strategy: tf.distribute.Strategy) -> float:
    """One pass over `batches`; the epoch's mean training loss.

    Keras' `fit` everywhere but under MultiWorkerMirroredStrategy, where it fails
    (keras-team/keras#20585): there each global batch is split across the workers (tf.data DATA
    auto-sharding) and the model's own `train_step` runs through `strategy.run`; gradients are
    all-reduced by the optimiser, so every worker applies the same update. The loss is what fit
    reports too: the model's loss tracker, reset at the start of the epoch, after the last step
    (there averaged over the replicas).
    """
    if not is_multi_worker(strategy):
        history = model.fit(batches, epochs=1, shuffle=False, verbose=0)
        return float(history.history["loss"][-1])
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    with strategy.scope():
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        distributed = strategy.experimental_distribute_dataset(batches.with_options(options))

    replicas = float(strategy.num_replicas_in_sync)

    def replica_step(inputs: Any, labels: tf.Tensor) -> dict[str, tf.Tensor]:
        # Keras averages each replica's loss over its own rows and divides by the replica count, which
        # is the global mean only when the rows split evenly; weighting each row by
        # local rows × replicas / global rows makes the summed gradients those of the global mean
        # on an uneven (last) batch too.
        rows = tf.cast(tf.shape(labels)[0], tf.float32)
        total = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, rows)
        weights = tf.fill(tf.shape(labels)[:1], rows * replicas / total)
        return model.train_step((inputs, labels, weights))

    @tf.function
    def step(batch: Any) -> tf.Tensor:
        logs = strategy.run(replica_step, args=batch)
        return strategy.reduce(tf.distribute.ReduceOp.MEAN, logs["loss"], axis=None)

    for metric in model.metrics:
        metric.reset_state()
    loss = float("nan")
    for batch in distributed:
        loss = float(step(batch))
    return loss


def save_weights_atomic(model: keras.Model, path: Path) -> None:
    """Save weights through a temporary file and an atomic rename."""
    temporary = path.with_name(f"tmp-{path.name}")
    model.save_weights(temporary)
    os.replace(temporary, path)


def fit_pairwise(
    model: keras.Model,
    *,
    dataset: PreparedDataset,
    domain: str,
    training: TrainingConfig,
    seed: int,
    stage: str,
    run: RunDirectory,
    strategy: tf.distribute.Strategy,
    validate: Callable[[keras.Model], float] | None,
    freeze_user_epochs: int = 0,
    on_epoch: Callable[[EpochReport], None] = lambda report: None,
    jit_compile: bool = False,
    max_in_memory_rows: int | None = None,
) -> TrainingState:
    """Train a pairwise model epoch by epoch with checkpoints, early stopping and exact resume.

    Each epoch draws `training.negatives` negatives per training row from
    `dataset.bpr_triples` and minimises `training.loss` (see `xdt.losses`) over the model's
    candidate scores `(batch, 1 + negatives)`. When `dataset` is a prepared dataset with more
    than `max_in_memory_rows` training rows of `domain` (`runtime.max_in_memory_rows`), the
    epoch is streamed from its interactions.parquet instead (`xdt.data.streaming`): windows of
    that many rows, each shuffled and given negatives by its own (seed, epoch, window) generator.

    A checkpoint is written after every epoch into `checkpoints/<stage>-epoch-<n>/` and then
    published by atomically rewriting `checkpoints/<stage>-state.json`; a run killed at any
    moment resumes from the last published epoch and produces the same weights as an
    uninterrupted run. At the end the best validated weights are loaded into `model`.
    """
    state_file = run.checkpoints / f"{stage}-state.json"
    state = TrainingState(**json.loads(state_file.read_text())) if state_file.is_file() else TrainingState()
    with strategy.scope():
        # The checkpoint of epoch s was trained frozen iff s <= freeze_user_epochs.
        compile_model(model, training, freeze_users=0 < freeze_user_epochs and state.epoch <= freeze_user_epochs, jit_compile=jit_compile)
        if state.checkpoint:
            restore_checkpoint(model, run.checkpoints / state.checkpoint)
    kill_after = os.environ.get(KILL_AFTER_EPOCH_VARIABLE)
    summaries = tf.summary.create_file_writer(str(run.path / "tensorboard" / stage))
    stream = training_stream(dataset, domain, max_in_memory_rows)
    while state.epoch < training.epochs and not state.stopped_early:
        epoch = state.epoch + 1
        if epoch - 1 == freeze_user_epochs and freeze_user_epochs > 0:
            with strategy.scope():
                compile_model(model, training, freeze_users=False, jit_compile=jit_compile)
        started = time.perf_counter()
        if stream is not None:
            batches = stream.batches(seed, epoch, training.negatives, training.batch_size)
        else:
            batches = epoch_batches(*dataset.bpr_triples(domain, seed, epoch, negatives=training.negatives), training.batch_size)
        loss = train_epoch(model, batches, strategy)
        score = validate(model) if validate is not None else None
        state.epoch = epoch
        improved = score is None or score > state.best_score
        if improved:
            state.best_score = score if score is not None else state.best_score
            state.best_epoch = epoch
            state.wait = 0
        else:
            state.wait += 1
            state.stopped_early = state.wait >= training.patience
        seconds = time.perf_counter() - started
        previous = state.checkpoint
        state.checkpoint = f"{stage}-epoch-{epoch}"
        with run.guard(f"saving the epoch {epoch} checkpoint of {stage}"):
            if improved:
                save_weights_atomic(model, run.checkpoints / f"{stage}-best.weights.h5")
            save_checkpoint(model, run.checkpoints / state.checkpoint)
            write_json_atomic(state_file, state.__dict__)
        if previous:
            shutil.rmtree(run.checkpoints / previous, ignore_errors=True)
        record = {"stage": stage, "epoch": epoch, "loss": loss, "seconds": round(seconds, 3)}
        if score is not None:
            record["valid_score"] = score
        run.append_metrics(record)
        with summaries.as_default(step=epoch):
            tf.summary.scalar("loss", loss)
            if score is not None:
                tf.summary.scalar("valid_score", score)
        summaries.flush()
        on_epoch(EpochReport(stage, epoch, training.epochs, loss, score, seconds))
        if kill_after is not None and int(kill_after) == epoch:
            os.kill(os.getpid(), signal.SIGKILL)
    with run.guard(f"loading the best weights of {stage}"):
        model.load_weights(run.checkpoints / f"{stage}-best.weights.h5")
    return state
