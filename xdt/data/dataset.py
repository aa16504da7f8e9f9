"""Load a prepared dataset: interactions by domain and split, id maps, seen-item matrices, training pairs."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sparse

from xdt.data.negatives import pair_keys, shuffled_triples, window_seed
from xdt.data.prepare import MANIFEST
from xdt.data.protocols import SOURCE, TARGET
from xdt.errors import DataError, XdtError

ACTIVITY_BUCKETS = ((1, 5), (6, 10), (11, 20), (21, 50), (51, None))


@dataclass(frozen=True)
class PreparedDataset:
    """A prepared dataset held in memory."""

    path: Path
    manifest: dict[str, Any]
    interactions: pd.DataFrame
    raw_users: np.ndarray
    source_items: pd.DataFrame
    target_items: pd.DataFrame
    # The interactions.parquet whose rows `interactions` are, set by `load_dataset` only: a copy made
    # by dataclasses.replace (whose rows may differ) or built by hand has None, so
    # `xdt.data.streaming` never streams it from a file that is not its data.
    interactions_file: Path | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def n_users(self) -> int:
        """Users across both domains (one global index)."""
        return len(self.raw_users)

    def n_items(self, domain: str) -> int:
        """Number of items of a domain."""
        return len(self.items(domain))

    def items(self, domain: str) -> pd.DataFrame:
        """Item id map (item, raw_item[, title]) of a domain."""
        return self.source_items if domain == SOURCE else self.target_items

    def rows(self, domain: str, *splits: str) -> pd.DataFrame:
        """Interactions of one domain in the given splits."""
        frame = self.interactions
        mask = (frame["domain"] == domain) & frame["split"].isin(splits)
        return frame.loc[mask]

    def interaction_matrix(self, domain: str, *splits: str) -> sparse.csr_matrix:
        """Binary users × items CSR matrix of the given splits."""
        rows = self.rows(domain, *splits)
        matrix = sparse.csr_matrix(
            (np.ones(len(rows), dtype=np.float32), (rows["user"].to_numpy(), rows["item"].to_numpy())),
            shape=(self.n_users, self.n_items(domain)),
        )
        matrix.sum_duplicates()
        matrix.data[:] = 1.0
        return matrix

    def rating_matrix(self, domain: str, *splits: str) -> sparse.csr_matrix:
        """users × items CSR matrix of ratings of the given splits."""
        rows = self.rows(domain, *splits)
        return sparse.csr_matrix(
            (rows["rating"].to_numpy(np.float32), (rows["user"].to_numpy(), rows["item"].to_numpy())),
            shape=(self.n_users, self.n_items(domain)),
        )

    @cached_property
    def target_train_counts(self) -> np.ndarray:
        """Target training rows per user; zero means cold-start."""
        rows = self.rows(TARGET, "train")
        return np.bincount(rows["user"].to_numpy(), minlength=self.n_users)

    @cached_property
    def train_activity(self) -> np.ndarray:
        """Training rows per user across both domains."""
        rows = self.interactions[self.interactions["split"] == "train"]
        return np.bincount(rows["user"].to_numpy(), minlength=self.n_users)

    def train_counts(self, domain: str = TARGET) -> np.ndarray:
        """Training rows per user in `domain`; zero means cold-start there."""
        if domain == TARGET:
            return self.target_train_counts
        return np.bincount(self.rows(domain, "train")["user"].to_numpy(), minlength=self.n_users)

    def evaluation_users(self, split: str, domain: str = TARGET) -> np.ndarray:
        """Users with rows of `domain` (target by default) in `split`, sorted."""
        return np.unique(self.rows(domain, split)["user"].to_numpy())

    def cohort(self, users: np.ndarray, domain: str = TARGET) -> np.ndarray:
        """'cold' for users without training rows in `domain` (target by default), else 'warm'."""
        return np.where(self.train_counts(domain)[users] == 0, "cold", "warm")

    def activity_bucket(self, users: np.ndarray) -> np.ndarray:
        """Bucket label of each user's training activity, e.g. '6-10'."""
        activity = self.train_activity[users]
        labels = np.empty(len(users), dtype=object)
        labels[:] = "0"
        for low, high in ACTIVITY_BUCKETS:
            inside = (activity >= low) & (activity <= high if high is not None else True)
            labels[inside] = f"{low}-{high}" if high is not None else f"{low}+"
        return labels

    def user_index(self, raw_user: str) -> int:
        """Global index of a raw user id, with a clear error for unknown users."""
        matches = np.flatnonzero(self.raw_users == raw_user)
        if len(matches) == 0:
            raise XdtError(
                f"Unknown user id {raw_user!r}: it appears in neither domain of dataset {self.manifest['name']!r} "
                f"({self.n_users} users, e.g. {', '.join(map(str, self.raw_users[:3]))})"
            )
        return int(matches[0])

    def bpr_triples(self, domain: str, seed: int, epoch: int, negatives: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Shuffled (user, positive, negatives) training triples for one epoch.

        Users and positives are `(n,)`; negatives are `(n,)` when `negatives` is 1, else
        `(n, negatives)`. Each negative is uniform over the domain's items, resampled (up to 10
        rounds) when it hits one of the user's training items; the draw depends only on (seed,
        epoch), so an interrupted run that resumes at epoch e sees exactly the triples it would
        have seen. It is the single window of `xdt.data.streaming.TrainingStream`: a stream
        whose window holds every training row draws these triples.
        """
        rows = self.rows(domain, "train")
        users = rows["user"].to_numpy(np.int32)
        positives = rows["item"].to_numpy(np.int32)
        n_items = self.n_items(domain)
        rng = np.random.default_rng(window_seed(seed, epoch, 0))
        return shuffled_triples(users, positives, pair_keys(users, positives, n_items), n_items, rng, negatives)


def load_dataset(path: Path) -> PreparedDataset:
    """Load `data/<name>/` written by `xdt prepare`."""
    manifest_file = path / MANIFEST
    if not manifest_file.is_file():
        raise DataError(f"No prepared dataset at {path} (missing {MANIFEST}). Run `xdt prepare CONFIG` first.")
    manifest = json.loads(manifest_file.read_text())
    interactions = pd.read_parquet(path / "interactions.parquet")
    users = pd.read_parquet(path / "users.parquet")
    dataset = PreparedDataset(
        path=path,
        manifest=manifest,
        interactions=interactions,
        raw_users=users["raw_user"].to_numpy(dtype=object),
        source_items=pd.read_parquet(path / "items_source.parquet"),
        target_items=pd.read_parquet(path / "items_target.parquet"),
    )
    object.__setattr__(dataset, "interactions_file", path / "interactions.parquet")
    return dataset
