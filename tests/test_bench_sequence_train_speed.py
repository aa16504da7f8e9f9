"""bench/sequence_train_speed.py's xdt side: its epoch (the bench's batches through make_train_step) is train_next_item's epoch."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import keras
import numpy as np


def load_bench():
    path = Path(__file__).resolve().parents[1] / "bench" / "sequence_train_speed.py"
    spec = importlib.util.spec_from_file_location("sequence_train_speed", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_bench_epoch_draws_and_trains_what_train_next_item_does() -> None:
    from xdt.sequential.data import ItemVocabulary, TrainingExamples
    from xdt.sequential.training import TrainingSettings, make_train_step, seed_everything, train_next_item
    from xdt.sequential.transformer import SequenceTransformer

    bench = load_bench()
    vocabulary = ItemVocabulary(3, 6)
    rng = np.random.default_rng(1)
    items = rng.integers(4, 10, size=(20, 5)).astype(np.int32)
    items[:, :2] = 0
    labels = np.roll(items, -1, axis=1)
    labels[:, -1] = rng.integers(4, 10, size=20)
    labels[items == 0] = 0
    examples = TrainingExamples(items=items, domains=vocabulary.domain_ids(items), labels=labels.astype(np.int32))
    settings = TrainingSettings(epochs=1, batch_size=8, learning_rate=1e-2, loss="sampled", negatives=4, seed=5)
    token_range = vocabulary.token_range("target")

    def fresh() -> SequenceTransformer:
        seed_everything(0)
        model = SequenceTransformer(vocabulary.size, 5, width=8, layers=1, heads=2, dropout=0.0)
        model.build()
        return model

    reference = fresh()
    train_next_item(reference, examples, vocabulary, candidate_domain="target", settings=settings)
    model = fresh()
    optimizer = keras.optimizers.Adam(learning_rate=settings.learning_rate)
    optimizer.build(model.trainable_variables)
    step = make_train_step(model, optimizer, list(model.trainable_variables), token_range, settings)
    batches = bench.epoch_batches(examples, settings, token_range, 1)
    assert [len(batch[0]) for batch in batches] == [8, 8, 4]
    for batch_items, domains, batch_labels, negatives in batches:
        step(batch_items, domains, batch_labels, negatives, np.zeros(batch_labels.shape, np.float32), np.zeros(len(negatives), np.float32))
    for expected, actual in zip(reference.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(actual, expected)
