"""Next-item training and fine-tuning: sampled or full softmax, freeze schedule, checkpoints, early stopping.

A custom loop rather than `fit`: the freeze schedule changes which variables an epoch updates
without rebuilding the optimiser (it is built once over every trainable variable and each step
applies gradients to the unfrozen subset, so frozen variables and their moments stay exactly
as they were), and negatives are drawn in numpy from `(seed, epoch)`, so a resumed run sees the
batches an uninterrupted one would have.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from xdt.sequential.data import ItemVocabulary, TrainingExamples
from xdt.sequential.transformer import VARIABLE_GROUPS, SequenceTransformer

LOSSES = ("sampled", "full")
NEGATIVE_SAMPLERS = ("uniform", "in_batch")


@dataclass(frozen=True)
class TrainingSettings:
    """How to train: the objective, the optimiser, the schedule.

    `loss="full"` is a softmax over every item of `candidate_domain` (exact, costs
    `positions × items × width` per batch); `loss="sampled"` scores each positive against
    `negatives` items shared by the batch, uniform over the domain's items or drawn from the
    batch's own labels (`in_batch`, popularity-shaped), accidental hits masked. In-batch
    negatives get the logQ correction (every candidate's logit minus the log of its sampling
    probability, Yi et al. RecSys 2019): without it the loss is minimised by demoting items in
    proportion to their popularity, and on a catalogue where the popular items are the
    positives the loss stays at log(1 + negatives) while nothing useful is learned. `freeze` names variable groups (see `SequenceTransformer.variable_groups`) left
    untouched during the first `freeze_epochs` epochs.
    """

    epochs: int = 10
    batch_size: int = 256
    learning_rate: float = 1e-3
    loss: str = "sampled"
    negatives: int = 256
    negative_sampler: str = "uniform"
    freeze: tuple[str, ...] = ()
    freeze_epochs: int = 0
    patience: int = 3
    seed: int = 0
    clip_norm: float | None = 1.0

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"Expected loss in {LOSSES}. Received: loss={self.loss!r}")
        if self.negative_sampler not in NEGATIVE_SAMPLERS:
            raise ValueError(f"Expected negative_sampler in {NEGATIVE_SAMPLERS}. Received: negative_sampler={self.negative_sampler!r}")
        unknown = [name for name in self.freeze if name not in VARIABLE_GROUPS]
        if unknown:
            raise ValueError(f"Expected freeze groups among {VARIABLE_GROUPS}. Received: freeze={self.freeze!r}")
        for name in ("epochs", "batch_size", "negatives"):
            if getattr(self, name) < 1:
                raise ValueError(f"Expected {name} >= 1. Received: {name}={getattr(self, name)}")


@dataclass
class TrainingHistory:
    """What happened, per epoch and overall; saved as `state.json` with every checkpoint."""

    epoch: int = 0
    best_score: float = -np.inf
    best_epoch: int = 0
    wait: int = 0
    stopped_early: bool = False
    epochs: list[dict] = field(default_factory=list)

    @property
    def sequences_per_second(self) -> float:
        """Training throughput over all epochs (validation excluded)."""
        seconds = sum(record["train_seconds"] for record in self.epochs)
        return sum(record["sequences"] for record in self.epochs) / seconds if seconds else 0.0

    @property
    def train_seconds(self) -> float:
        """Seconds spent in training steps (validation excluded)."""
        return sum(record["train_seconds"] for record in self.epochs)


def seed_everything(seed: int) -> None:
    """Seed Python, numpy, TensorFlow and Keras (dropout) and make TF ops deterministic."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def next_item_loss(
    model: SequenceTransformer,
    items: tf.Tensor,
    domains: tf.Tensor,
    labels: tf.Tensor,
    negatives: tf.Tensor,
    candidate_low: int,
    candidate_high: int,
    full: bool,
    training: bool = True,
    label_log_q: tf.Tensor | None = None,
    negative_log_q: tf.Tensor | None = None,
) -> tf.Tensor:
    """Mean softmax cross-entropy of the next item over labelled positions.

    `labels` `(batch, length)`, 0 = unlabelled; `negatives` `(k,)` tokens (ignored when `full`).
    `label_log_q` `(batch, length)` and `negative_log_q` `(k,)`: log sampling probabilities
    subtracted from the sampled logits (logQ correction); omitted for uniform negatives, where
    they are one constant.
    """
    hidden = model({"items": items, "domains": domains}, training=training)
    labelled = labels > 0
    hidden = tf.boolean_mask(hidden, labelled)
    targets = tf.boolean_mask(labels, labelled)
    if full:
        candidates = tf.range(candidate_low, candidate_high)
        logits = tf.matmul(hidden, model.candidate_vectors(candidates, training=training), transpose_b=True)
        return tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets - candidate_low, logits=logits)
        )
    positive_logits = tf.reduce_sum(hidden * model.candidate_vectors(targets, training=training), axis=-1, keepdims=True)
    negative_logits = tf.matmul(hidden, model.candidate_vectors(negatives, training=training), transpose_b=True)
    if label_log_q is not None and negative_log_q is not None:
        positive_logits -= tf.boolean_mask(label_log_q, labelled)[:, None]
        negative_logits -= negative_log_q[None, :]
    accidental = tf.equal(targets[:, None], negatives[None, :])
    negative_logits = tf.where(accidental, tf.constant(-1e9, negative_logits.dtype), negative_logits)
    logits = tf.concat([positive_logits, negative_logits], axis=1)
    return tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.zeros_like(targets), logits=logits)
    )


def draw_negatives(
    labels: np.ndarray, settings: TrainingSettings, token_range: tuple[int, int], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`settings.negatives` tokens for one batch, uniform over `token_range` or from the batch labels.

    Returns `(negatives, label_log_q, negative_log_q)`: the log probability that one draw picks
    each label `(batch, length)` / each negative `(k,)`. Uniform draws: all zeros (a constant
    shift changes no softmax). Example: batch labels [5, 5, 7] → q(5) = 2/3, q(7) = 1/3.
    """
    pool = labels[labels > 0]
    if settings.negative_sampler == "in_batch" and len(pool):
        negatives = rng.choice(pool, size=settings.negatives).astype(np.int32)
        tokens, counts = np.unique(pool, return_counts=True)
        log_q = np.log(counts / len(pool)).astype(np.float32)

        def lookup(values: np.ndarray) -> np.ndarray:
            index = np.clip(np.searchsorted(tokens, values), 0, len(tokens) - 1)
            return np.where(tokens[index] == values, log_q[index], 0.0).astype(np.float32)

        return negatives, lookup(labels), lookup(negatives)
    negatives = rng.integers(token_range[0], token_range[1], size=settings.negatives).astype(np.int32)
    return negatives, np.zeros(labels.shape, np.float32), np.zeros(len(negatives), np.float32)


def make_train_step(
    model: SequenceTransformer,
    optimizer: keras.optimizers.Optimizer,
    variables: Sequence[keras.Variable],
    token_range: tuple[int, int],
    settings: TrainingSettings,
) -> Callable:
    """A compiled step updating only `variables`."""
    full = settings.loss == "full"

    @tf.function(reduce_retracing=True)
    def step(
        items: tf.Tensor, domains: tf.Tensor, labels: tf.Tensor, negatives: tf.Tensor, label_log_q: tf.Tensor, negative_log_q: tf.Tensor
    ) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = next_item_loss(
                model, items, domains, labels, negatives, token_range[0], token_range[1], full,
                label_log_q=label_log_q, negative_log_q=negative_log_q,
            )
        apply_gradients(optimizer, tape.gradient(loss, variables), variables, settings.clip_norm)
        return loss

    return step


def apply_gradients(optimizer: keras.optimizers.Optimizer, gradients: Sequence, variables: Sequence, clip_norm: float | None) -> None:
    """Apply `gradients` (None → zeros, IndexedSlices → dense), clipped to `clip_norm` in global norm when set."""
    dense = [tf.convert_to_tensor(gradient) if gradient is not None else tf.zeros_like(variable) for gradient, variable in zip(gradients, variables)]
    if clip_norm is not None:
        dense, _ = tf.clip_by_global_norm(dense, clip_norm)
    optimizer.apply(dense, variables)


def trainable_for_epoch(model: SequenceTransformer, settings: TrainingSettings, epoch: int) -> list[keras.Variable]:
    """Variables updated in `epoch` (1-based): everything but the frozen groups while `epoch <= freeze_epochs`."""
    if epoch > settings.freeze_epochs or not settings.freeze:
        return list(model.trainable_variables)
    frozen = {id(variable) for name in settings.freeze for variable in model.variable_groups()[name]}
    return [variable for variable in model.trainable_variables if id(variable) not in frozen]


def train_next_item(
    model: SequenceTransformer,
    examples: TrainingExamples,
    vocabulary: ItemVocabulary,
    *,
    candidate_domain: str,
    settings: TrainingSettings,
    validate: Callable[[SequenceTransformer], float] | None = None,
    checkpoint_dir: Path | None = None,
    on_epoch: Callable[[dict], None] = lambda record: None,
) -> TrainingHistory:
    """Train (or fine-tune, when `model` holds pretrained weights) on next-item windows.

    Labels must be tokens of `candidate_domain` (use `training_examples(label_domains=...)`);
    `candidate_domain="all"` scores the items of both domains (mixed-domain pretraining).
    Each epoch: shuffle by `(seed, epoch)`, step through batches, validate (higher is better),
    keep the best weights, stop after `patience` epochs without improvement. With
    `checkpoint_dir`, every epoch writes `epoch-<n>/` (weights + optimiser) and then atomically
    publishes `state.json`; calling again with the same directory resumes after the last
    published epoch. The best validated weights are loaded into `model` at the end.
    """
    if len(examples) == 0:
        raise ValueError("Expected at least one training example. Received: 0 examples")
    token_range = vocabulary.token_range(candidate_domain)
    if not model.built:
        # Variables must exist before the optimiser and the step's variable list are made.
        model.build()
    step, step_epoch_group = None, None

    def run_batch(batch: np.ndarray, epoch: int, rng: np.random.Generator) -> float:
        nonlocal step, step_epoch_group
        frozen_phase = epoch <= settings.freeze_epochs and bool(settings.freeze)
        if step is None or step_epoch_group != frozen_phase:
            step = make_train_step(model, optimizer, trainable_for_epoch(model, settings, epoch), token_range, settings)
            step_epoch_group = frozen_phase
        labels = examples.labels[batch]
        negatives, label_log_q, negative_log_q = draw_negatives(labels, settings, token_range, rng)
        return float(step(examples.items[batch], examples.domains[batch], labels, negatives, label_log_q, negative_log_q))

    optimizer = keras.optimizers.Adam(learning_rate=settings.learning_rate)
    return run_epochs(
        model, optimizer, len(examples), settings, run_batch, validate=validate, checkpoint_dir=checkpoint_dir, on_epoch=on_epoch
    )


def run_epochs(
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    n_examples: int,
    settings: TrainingSettings,
    run_batch: Callable[[np.ndarray, int, np.random.Generator], float],
    *,
    validate: Callable[[keras.Model], float] | None = None,
    checkpoint_dir: Path | None = None,
    on_epoch: Callable[[dict], None] = lambda record: None,
) -> TrainingHistory:
    """The epoch loop shared by every sequential objective: shuffle, step, validate, keep the best, checkpoint, stop early.

    `run_batch(example_indices, epoch, rng)` takes one optimiser step and returns its loss; it
    draws any randomness (negatives, corruptions) from `rng`, seeded by `(seed, epoch)` and
    consumed in batch order, so a resumed run sees the batches an uninterrupted one would have.
    """
    optimizer.build(model.trainable_variables)
    history = TrainingHistory()
    best_weights = None
    if checkpoint_dir is not None and (Path(checkpoint_dir) / "state.json").is_file():
        history, best_weights = restore_training(model, optimizer, Path(checkpoint_dir))
    while history.epoch < settings.epochs and not history.stopped_early:
        epoch = history.epoch + 1
        frozen_phase = epoch <= settings.freeze_epochs and bool(settings.freeze)
        rng = np.random.default_rng([settings.seed, epoch, 7919])
        order = rng.permutation(n_examples)
        started = time.perf_counter()
        losses = [run_batch(order[start : start + settings.batch_size], epoch, rng) for start in range(0, n_examples, settings.batch_size)]
        train_seconds = time.perf_counter() - started
        score = validate(model) if validate is not None else None
        history.epoch = epoch
        if score is None or score > history.best_score:
            history.best_score = score if score is not None else history.best_score
            history.best_epoch = epoch
            history.wait = 0
            best_weights = model.get_weights()
        else:
            history.wait += 1
            history.stopped_early = history.wait >= settings.patience
        record = {
            "epoch": epoch,
            "loss": float(np.mean(losses)),
            "valid_score": score,
            "sequences": n_examples,
            "train_seconds": round(train_seconds, 3),
            "frozen": list(settings.freeze) if frozen_phase else [],
        }
        history.epochs.append(record)
        if checkpoint_dir is not None:
            save_training(model, optimizer, history, best_weights, Path(checkpoint_dir))
        on_epoch(record)
    if best_weights is not None:
        model.set_weights(best_weights)
    return history


def save_training(
    model: keras.Model, optimizer: keras.optimizers.Optimizer, history: TrainingHistory, best_weights: list | None, folder: Path
) -> None:
    """Write `epoch-<n>/` (weights, optimiser, best weights), then publish it through `state.json`."""
    folder.mkdir(parents=True, exist_ok=True)
    epoch_folder = folder / f"epoch-{history.epoch}"
    epoch_folder.mkdir(exist_ok=True)
    model.save_weights(epoch_folder / "model.weights.h5")
    np.savez(epoch_folder / "optimizer.npz", *[variable.numpy() for variable in optimizer.variables])
    np.savez(epoch_folder / "best.npz", *(best_weights or []))
    temporary = folder / "state.json.tmp"
    temporary.write_text(json.dumps({**asdict(history), "checkpoint": epoch_folder.name}))
    os.replace(temporary, folder / "state.json")
    for previous in folder.glob("epoch-*"):
        if previous != epoch_folder:
            shutil.rmtree(previous, ignore_errors=True)


def restore_training(
    model: keras.Model, optimizer: keras.optimizers.Optimizer, folder: Path
) -> tuple[TrainingHistory, list | None]:
    """Load the last published epoch written by `save_training`."""
    state = json.loads((folder / "state.json").read_text())
    epoch_folder = folder / state.pop("checkpoint")
    model.load_weights(epoch_folder / "model.weights.h5")
    saved = np.load(epoch_folder / "optimizer.npz")
    if len(saved.files) != len(optimizer.variables):
        raise RuntimeError(f"Checkpoint {epoch_folder} has {len(saved.files)} optimiser variables, expected {len(optimizer.variables)}")
    for index, variable in enumerate(optimizer.variables):
        variable.assign(saved[f"arr_{index}"])
    best = np.load(epoch_folder / "best.npz")
    best_weights = [best[f"arr_{index}"] for index in range(len(best.files))] or None
    return TrainingHistory(**state), best_weights
