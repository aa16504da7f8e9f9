"""One shuffled draw of (user, positive, negatives) training triples: shared by the in-memory epoch and the streamed windows."""

from __future__ import annotations

import numpy as np

NEGATIVE_STREAM = 31337


def window_seed(seed: int, epoch: int, window: int) -> list[int]:
    """The generator seed of one shuffle window of an epoch; window 0 is the whole in-memory epoch's (seed, epoch) draw."""
    return [seed, epoch, NEGATIVE_STREAM] if window == 0 else [seed, epoch, NEGATIVE_STREAM, window]


def pair_keys(users: np.ndarray, items: np.ndarray, n_items: int) -> np.ndarray:
    """Sorted int64 keys user × n_items + item of training pairs: what a drawn negative must avoid."""
    return np.sort(users.astype(np.int64) * n_items + items)


def shuffled_triples(
    users: np.ndarray, positives: np.ndarray, known: np.ndarray, n_items: int, rng: np.random.Generator, negatives: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows permuted by `rng`, each with `negatives` items drawn uniformly by `rng` and redrawn (up to 10 rounds) when in `known`.

    Negatives are `(n,)` when `negatives` is 1, else `(n, negatives)`, drawn as one flat row-major
    array, so k = 1 draws exactly what a single negative per row always did.
    """
    if negatives < 1:
        raise ValueError(f"Expected negatives >= 1. Received: negatives={negatives}")
    order = rng.permutation(len(users))
    users, positives = users[order], positives[order]
    negative_users = np.repeat(users, negatives).astype(np.int64)
    drawn = rng.integers(0, n_items, size=len(negative_users), dtype=np.int32)
    for _ in range(10):
        keys = negative_users * n_items + drawn
        position = np.clip(np.searchsorted(known, keys), 0, len(known) - 1)
        collided = known[position] == keys
        if not collided.any():
            break
        drawn[collided] = rng.integers(0, n_items, size=int(collided.sum()), dtype=np.int32)
    return users, positives, drawn if negatives == 1 else drawn.reshape(len(users), negatives)
