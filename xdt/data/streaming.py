"""Training rows streamed from Parquet into `tf.data`, one bounded shuffle window at a time.

An epoch reads one domain's training rows from `interactions.parquet` in file order as pyarrow
dataset batches and cuts them into windows of `window_rows` rows. Each window is permuted and
gets its negatives from a numpy Generator seeded by (seed, epoch, window) (`xdt.data.negatives`),
so the epoch depends on nothing else and a resumed run draws exactly what it would have drawn.
The windows' rows are rebatched into `batch_size` batches across window boundaries, so the batches
are those of the windows' triples laid end to end. Window 0 is seeded like the in-memory epoch
(`PreparedDataset.bpr_triples`): a stream whose window holds every training row yields exactly the
in-memory batches.

Memory: the window being drawn (its rows, their permuted copies, negatives and the keys checked
for collisions: about 50 B per window row at the peak with one negative), the window `tf.data` is
rebatching (16 B per row), and the sorted pair keys every negative is checked against (8 B per
training row, the only array over all rows).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.dataset as ds
import tensorflow as tf

from xdt.data.dataset import PreparedDataset
from xdt.data.negatives import shuffled_triples, window_seed

READ_ROWS = 1 << 16
Triples = tuple[np.ndarray, np.ndarray, np.ndarray]


class TrainingStream:
    """One domain's training rows of a prepared `interactions.parquet`, streamed window by window."""

    def __init__(self, path: Path, domain: str, n_items: int, window_rows: int) -> None:
        if window_rows < 1:
            raise ValueError(f"Expected window_rows >= 1. Received: window_rows={window_rows}")
        self.path = path
        self.domain = domain
        self.n_items = n_items
        self.window_rows = window_rows

    def read(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The (user, item) int32 arrays of the training rows, in file order, one pyarrow batch at a time."""
        rows = ds.dataset(self.path, format="parquet")
        wanted = (pc.field("domain") == self.domain) & (pc.field("split") == "train")
        for batch in rows.to_batches(columns=["user", "item"], filter=wanted, batch_size=READ_ROWS):
            if batch.num_rows:
                yield (
                    batch.column("user").to_numpy().astype(np.int32, copy=False),
                    batch.column("item").to_numpy().astype(np.int32, copy=False),
                )

    @cached_property
    def known(self) -> np.ndarray:
        """Sorted pair keys of every training row (one pass over the file)."""
        chunks = [users.astype(np.int64) * self.n_items + items for users, items in self.read()]
        keys = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int64)
        keys.sort()  # in place: 16 B per row at the peak, not 24
        return keys

    @property
    def rows(self) -> int:
        """Number of training rows."""
        return len(self.known)

    def windows(self, seed: int, epoch: int, negatives: int) -> Iterator[Triples]:
        """The epoch's shuffled triples, one window of `window_rows` rows (the last: the rest) at a time."""
        pending_users: list[np.ndarray] = []
        pending_items: list[np.ndarray] = []
        pending = 0
        window = 0
        for users, items in self.read():
            pending_users.append(users)
            pending_items.append(items)
            pending += len(users)
            while pending >= self.window_rows:
                all_users, all_items = np.concatenate(pending_users), np.concatenate(pending_items)
                yield self.draw(all_users[: self.window_rows], all_items[: self.window_rows], seed, epoch, window, negatives)
                pending_users, pending_items = [all_users[self.window_rows :]], [all_items[self.window_rows :]]
                pending -= self.window_rows
                window += 1
        if pending:
            yield self.draw(np.concatenate(pending_users), np.concatenate(pending_items), seed, epoch, window, negatives)

    def draw(self, users: np.ndarray, items: np.ndarray, seed: int, epoch: int, window: int, negatives: int) -> Triples:
        """Window `window`'s rows permuted, with negatives, from its own (seed, epoch, window) generator."""
        rng = np.random.default_rng(window_seed(seed, epoch, window))
        return shuffled_triples(users, items, self.known, self.n_items, rng, negatives)

    def batches(self, seed: int, epoch: int, negatives: int, batch_size: int) -> tf.data.Dataset:
        """One epoch of ((user, positive, negatives), zero labels `(batch, 1)`) batches, as `xdt.train.epoch_batches` gives."""
        negative_shape = (None,) if negatives == 1 else (None, negatives)
        signature = (
            tf.TensorSpec((None,), tf.int32),
            tf.TensorSpec((None,), tf.int32),
            tf.TensorSpec(negative_shape, tf.int32),
        )
        windows = tf.data.Dataset.from_generator(lambda: self.windows(seed, epoch, negatives), output_signature=signature)
        # A known length: with an unknown one, Keras' fit counts one optimiser step more per epoch
        # (its final, empty try), which shifts Adam's bias correction in every later epoch.
        steps = -(-self.rows // batch_size)
        batches = windows.rebatch(batch_size).apply(tf.data.experimental.assert_cardinality(steps))
        return batches.map(with_zero_labels).prefetch(2)


def with_zero_labels(users: tf.Tensor, positives: tf.Tensor, negatives: tf.Tensor) -> tuple[tuple[tf.Tensor, ...], tf.Tensor]:
    """A batch with the zero `(batch, 1)` labels the ranking losses ignore."""
    return (users, positives, negatives), tf.zeros((tf.shape(users)[0], 1), tf.float32)


def training_stream(dataset: object, domain: str, max_in_memory_rows: int | None) -> TrainingStream | None:
    """The stream of a prepared dataset's training rows of `domain` when they are more than `max_in_memory_rows`, else None.

    Only a `PreparedDataset` as `load_dataset` read it streams (its `interactions_file` holds
    exactly its rows); restricted copies and stand-ins with their own `bpr_triples` always draw
    in memory.
    """
    if max_in_memory_rows is None or not isinstance(dataset, PreparedDataset) or dataset.interactions_file is None:
        return None
    if len(dataset.rows(domain, "train")) <= max_in_memory_rows:
        return None
    return TrainingStream(dataset.interactions_file, domain, dataset.n_items(domain), window_rows=max_in_memory_rows)

