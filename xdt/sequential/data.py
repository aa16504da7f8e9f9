"""Per-user item sequences for next-item models: one token vocabulary, training windows, held-out targets.

Tokens: 0 is padding; source item i is token `1 + i`; target item j is token `1 + n_source + j`.
One vocabulary serves source-only, target-only and mixed sequences, so a model pretrained on one
view loads into another unchanged. Domain ids per position: 0 padding, 1 source, 2 target.
Sequences are ordered by timestamp (ties keep input order) and left-padded, so the most recent
item is always at position `max_length - 1`.

Input is any frame with the prepared-dataset columns `domain` ("source"/"target"), `user`,
`item` (int, per-domain index), `timestamp` and `split` — `PreparedDataset.interactions`, or
`interactions_from_domains` over the frames of two `read_domain` results.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from xdt.data.protocols import SOURCE, TARGET

PAD = 0
DOMAIN_IDS = {SOURCE: 1, TARGET: 2}
DOMAINS = (SOURCE, TARGET)
# Candidate "domain" of a next-item objective over the items of both domains (mixed-domain pretraining).
ALL_DOMAINS = "all"


@dataclass(frozen=True)
class ItemVocabulary:
    """Token ids for the items of both domains (see the module docstring for the layout)."""

    n_source: int
    n_target: int

    @property
    def size(self) -> int:
        """Number of tokens, padding included."""
        return 1 + self.n_source + self.n_target

    def token_range(self, domain: str) -> tuple[int, int]:
        """`[low, high)` tokens of one domain's items, or of both with `domain="all"` (the ranges are adjacent)."""
        if domain == ALL_DOMAINS:
            return 1, self.size
        check_domain(domain)
        return (1, 1 + self.n_source) if domain == SOURCE else (1 + self.n_source, self.size)

    def tokens(self, domain: str, items: np.ndarray) -> np.ndarray:
        """Tokens of per-domain item indices."""
        return np.asarray(items, dtype=np.int64) + self.token_range(domain)[0]

    def items(self, domain: str, tokens: np.ndarray) -> np.ndarray:
        """Per-domain item indices of tokens of that domain."""
        return np.asarray(tokens, dtype=np.int64) - self.token_range(domain)[0]

    def domain_ids(self, tokens: np.ndarray) -> np.ndarray:
        """0 for padding, 1 for source tokens, 2 for target tokens; same shape as `tokens`."""
        tokens = np.asarray(tokens)
        return np.where(tokens == PAD, 0, np.where(tokens <= self.n_source, 1, 2)).astype(np.int32)


@dataclass(frozen=True)
class UserSequences:
    """Ragged per-user token sequences: user `users[u]` owns `tokens[offsets[u]:offsets[u+1]]`."""

    users: np.ndarray
    offsets: np.ndarray
    tokens: np.ndarray

    def __len__(self) -> int:
        return len(self.users)

    def sequence(self, index: int) -> np.ndarray:
        """Tokens of the `index`-th user, oldest first."""
        return self.tokens[self.offsets[index] : self.offsets[index + 1]]

    def lengths(self) -> np.ndarray:
        """Sequence length per user."""
        return np.diff(self.offsets)


@dataclass(frozen=True)
class TrainingExamples:
    """Next-item training windows, all `(n, max_length)` int32: label 0 means no loss there."""

    items: np.ndarray
    domains: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.items)


@dataclass(frozen=True)
class EvaluationExamples:
    """One held-out next item per user with the history before it.

    `items`/`domains` `(n, max_length)` hold the history; `targets` the held-out item (per-domain
    index of `domain`); `seen` each user's history items of `domain` (to exclude from ranking);
    `cohort` "cold" when the history has no item of `domain`, else "warm".
    """

    users: np.ndarray
    items: np.ndarray
    domains: np.ndarray
    targets: np.ndarray
    seen: list[np.ndarray]
    cohort: np.ndarray
    domain: str

    def __len__(self) -> int:
        return len(self.users)

    def subset(self, mask: np.ndarray) -> EvaluationExamples:
        """The examples where `mask` is true."""
        indices = np.flatnonzero(mask)
        return EvaluationExamples(
            users=self.users[indices],
            items=self.items[indices],
            domains=self.domains[indices],
            targets=self.targets[indices],
            seen=[self.seen[index] for index in indices],
            cohort=self.cohort[indices],
            domain=self.domain,
        )


def check_domain(domain: str) -> None:
    """Raise for a domain name other than source/target."""
    if domain not in DOMAINS:
        raise ValueError(f"Expected domain in {DOMAINS}. Received: domain={domain!r}")


def vocabulary_for(interactions: pd.DataFrame) -> ItemVocabulary:
    """The vocabulary covering every item index seen in `interactions` (max index + 1 per domain)."""
    counts = []
    for domain in DOMAINS:
        items = interactions.loc[interactions["domain"] == domain, "item"]
        counts.append(int(items.max()) + 1 if len(items) else 0)
    return ItemVocabulary(*counts)


def interactions_from_domains(
    source: pd.DataFrame, target: pd.DataFrame, *, n_source: int | None = None, n_target: int | None = None
) -> tuple[pd.DataFrame, ItemVocabulary]:
    """Standard frame (domain, user, item, timestamp, split) from two reader frames with int-like item ids.

    Item ids must already be dense per-domain indices (as LLMCDSR's local ids are); `n_source`
    and `n_target` default to the largest id + 1.
    """
    frames = []
    for domain, frame in ((SOURCE, source), (TARGET, target)):
        frames.append(
            pd.DataFrame(
                {
                    "domain": domain,
                    "user": frame["user"].astype(str).to_numpy(),
                    "item": frame["item"].astype(np.int64).to_numpy(),
                    "timestamp": frame["timestamp"].astype(np.int64).to_numpy(),
                    "split": frame["split"].astype(str).to_numpy(),
                }
            )
        )
    interactions = pd.concat(frames, ignore_index=True)
    found = vocabulary_for(interactions)
    vocabulary = ItemVocabulary(
        found.n_source if n_source is None else n_source, found.n_target if n_target is None else n_target
    )
    return interactions, vocabulary


def user_sequences(
    interactions: pd.DataFrame,
    vocabulary: ItemVocabulary,
    *,
    domains: Sequence[str] = DOMAINS,
    splits: Sequence[str] = ("train",),
    exclude_users: Sequence | np.ndarray = (),
    min_length: int = 1,
) -> UserSequences:
    """Each user's tokens of `domains` in `splits`, ordered by timestamp (mixed when both domains)."""
    for domain in domains:
        check_domain(domain)
    mask = interactions["domain"].isin(list(domains)) & interactions["split"].isin(list(splits))
    if len(exclude_users):
        mask &= ~interactions["user"].isin(list(exclude_users))
    rows = interactions.loc[mask]
    tokens = np.where(
        rows["domain"].to_numpy() == SOURCE,
        vocabulary.tokens(SOURCE, rows["item"].to_numpy()),
        vocabulary.tokens(TARGET, rows["item"].to_numpy()),
    )
    codes, users = pd.factorize(rows["user"], sort=True)
    order = np.lexsort((np.arange(len(rows)), rows["timestamp"].to_numpy(), codes))
    codes, tokens = codes[order], tokens[order]
    offsets = np.concatenate([[0], np.cumsum(np.bincount(codes, minlength=len(users)))])
    sequences = UserSequences(np.asarray(users), offsets, tokens)
    if min_length > 1:
        sequences = keep_sequences(sequences, sequences.lengths() >= min_length)
    return sequences


def keep_sequences(sequences: UserSequences, mask: np.ndarray) -> UserSequences:
    """The sequences where `mask` is true."""
    indices = np.flatnonzero(mask)
    parts = [sequences.sequence(index) for index in indices]
    lengths = np.array([len(part) for part in parts], dtype=np.int64)
    tokens = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    return UserSequences(sequences.users[indices], np.concatenate([[0], np.cumsum(lengths)]), tokens)


def drop_tokens(sequences: UserSequences, tokens: np.ndarray) -> UserSequences:
    """The sequences with every occurrence of `tokens` removed (e.g. items held out as cold)."""
    keep = ~np.isin(sequences.tokens, tokens)
    kept_per_user = np.add.reduceat(keep.astype(np.int64), sequences.offsets[:-1]) if len(keep) else keep
    lengths = np.where(sequences.lengths() > 0, kept_per_user, 0)
    return UserSequences(sequences.users, np.concatenate([[0], np.cumsum(lengths)]), sequences.tokens[keep])


def left_pad(sequence: np.ndarray, max_length: int) -> np.ndarray:
    """The last `max_length` tokens, left-padded with PAD."""
    window = np.zeros(max_length, dtype=np.int32)
    tail = sequence[-max_length:]
    if len(tail):
        window[max_length - len(tail) :] = tail
    return window


def training_examples(
    sequences: UserSequences,
    vocabulary: ItemVocabulary,
    *,
    max_length: int,
    label_domains: Sequence[str] = DOMAINS,
) -> TrainingExamples:
    """One window per user: the last `max_length + 1` tokens, inputs `w[:-1]`, labels `w[1:]`.

    Labels of items outside `label_domains` are 0 (no loss), so a mixed sequence can train a
    target-domain next-item objective while its source items still serve as context. Users
    with no labelled position are dropped. Example: tokens [3, 9, 4], max_length 4 →
    items [0, 0, 3, 9], labels [0, 0, 9, 4].
    """
    if max_length < 1:
        raise ValueError(f"Expected max_length >= 1. Received: max_length={max_length}")
    windows = np.stack([left_pad(sequences.sequence(index), max_length + 1) for index in range(len(sequences))]) if len(
        sequences
    ) else np.zeros((0, max_length + 1), dtype=np.int32)
    items, labels = windows[:, :-1], windows[:, 1:].copy()
    allowed = np.isin(vocabulary.domain_ids(labels), [DOMAIN_IDS[domain] for domain in label_domains])
    labels[~allowed | (items == PAD)] = PAD
    keep = (labels != PAD).any(axis=1)
    items, labels = items[keep], labels[keep]
    return TrainingExamples(items=items, domains=vocabulary.domain_ids(items), labels=labels.astype(np.int32))


def evaluation_examples(
    interactions: pd.DataFrame,
    vocabulary: ItemVocabulary,
    *,
    split: str,
    max_length: int,
    domain: str = TARGET,
    history_domains: Sequence[str] = DOMAINS,
) -> EvaluationExamples:
    """Next-item examples for the users with a `domain` row in `split` (valid or test).

    The target is the user's earliest `domain` row of `split`; the history is every earlier row
    of `history_domains` (any split), by timestamp. A user with several held-out rows is
    evaluated once, on the first.
    """
    check_domain(domain)
    held_out = interactions.loc[(interactions["domain"] == domain) & (interactions["split"] == split)]
    held_out = held_out.sort_values(["user", "timestamp"], kind="mergesort").drop_duplicates("user", keep="first")
    history_rows = interactions.loc[
        interactions["user"].isin(held_out["user"]) & interactions["domain"].isin(list(history_domains))
    ]
    by_user = {user: frame for user, frame in history_rows.groupby("user", sort=False)}
    items = np.zeros((len(held_out), max_length), dtype=np.int32)
    seen, cohort = [], []
    for row, (user, target_time) in enumerate(zip(held_out["user"], held_out["timestamp"])):
        frame = by_user.get(user)
        if frame is None:
            frame = history_rows.iloc[:0]
        frame = frame.loc[frame["timestamp"] < target_time].sort_values("timestamp", kind="mergesort")
        tokens = np.where(
            frame["domain"].to_numpy() == SOURCE,
            vocabulary.tokens(SOURCE, frame["item"].to_numpy()),
            vocabulary.tokens(TARGET, frame["item"].to_numpy()),
        )
        items[row] = left_pad(tokens, max_length)
        own = np.unique(frame.loc[frame["domain"] == domain, "item"].to_numpy(np.int64))
        seen.append(own)
        cohort.append("warm" if len(own) else "cold")
    return EvaluationExamples(
        users=held_out["user"].to_numpy(),
        items=items,
        domains=vocabulary.domain_ids(items),
        targets=held_out["item"].to_numpy(np.int64),
        seen=seen,
        cohort=np.array(cohort, dtype=object),
        domain=domain,
    )
