"""Split protocols over the combined two-domain frame (columns domain, user, item, rating, timestamp, split).

Every protocol is seeded and returns the frame with `split` set to train/valid/test for every
row, plus a summary of what it did (counts a person can check). Users may be raw ids or integer
indices; only equality and order of ids matter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from xdt.errors import DataError

SOURCE = "source"
TARGET = "target"
SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class ProtocolSummary:
    """What a protocol did: the cold-start cohorts it made, cut-offs it used and users it could not hold out."""

    name: str
    cold_test_users: list[Any] = field(default_factory=list)
    cold_valid_users: list[Any] = field(default_factory=list)
    overlap_users: int = 0
    users_too_short_for_holdout: int = 0
    details: dict[str, Any] = field(default_factory=dict)


def split_codes(frame: pd.DataFrame) -> np.ndarray:
    """The split of every row as int8 codes into SPLITS (0 train, 1 valid, 2 test), -1 where there is none."""
    split = frame["split"]
    if isinstance(split.dtype, pd.CategoricalDtype) and tuple(split.cat.categories) == SPLITS:
        return split.cat.codes.to_numpy(dtype=np.int8, copy=True)
    return pd.Index(SPLITS).get_indexer(split.astype(object).fillna("")).astype(np.int8)


def with_split(frame: pd.DataFrame, codes: np.ndarray) -> pd.DataFrame:
    """The frame with `split` set from int8 codes (stored as a categorical of SPLITS)."""
    return frame.assign(split=pd.Categorical.from_codes(codes, categories=list(SPLITS)))


TRAIN, VALID, TEST = 0, 1, 2
CODE = {"train": TRAIN, "valid": VALID, "test": TEST}


def overlapping_users(frame: pd.DataFrame) -> np.ndarray:
    """Users with rows in both domains, sorted."""
    is_target = (frame["domain"] == TARGET).to_numpy()
    users = frame["user"].to_numpy()
    if np.issubdtype(users.dtype, np.integer) and len(users):
        in_source = np.bincount(users[~is_target], minlength=users.max() + 1) > 0
        in_target = np.bincount(users[is_target], minlength=users.max() + 1) > 0
        return np.flatnonzero(in_source & in_target).astype(users.dtype)
    return np.sort(np.intersect1d(pd.unique(users[~is_target]), pd.unique(users[is_target])))


def cold_start_users(frame: pd.DataFrame, split: str) -> np.ndarray:
    """Users with target rows in `split` and no target training rows, sorted."""
    is_target = (frame["domain"] == TARGET).to_numpy()
    codes = split_codes(frame)
    users = frame["user"].to_numpy()
    in_split = pd.unique(users[is_target & (codes == CODE[split])])
    trained = pd.unique(users[is_target & (codes == TRAIN)])
    return np.sort(np.setdiff1d(in_split, trained))


def summarise(name: str, frame: pd.DataFrame, **extra: Any) -> ProtocolSummary:
    """The summary every protocol reports: cold-start cohorts found in the split frame and overlap."""
    return ProtocolSummary(
        name,
        cold_test_users=list(cold_start_users(frame, "test")),
        cold_valid_users=list(cold_start_users(frame, "valid")),
        overlap_users=len(overlapping_users(frame)),
        **extra,
    )


def split_given(frame: pd.DataFrame, *, given_valid: str = "none", seed: int = 0) -> tuple[pd.DataFrame, ProtocolSummary]:
    """Keep the benchmark's own split; every row must carry one.

    given_valid "leave_one_out": in a domain whose files have no valid rows, each user with >= 3
    training rows gives their last (by time; random without time) training row to valid.
    """
    missing = split_codes(frame) < 0
    if missing.any():
        examples = frame.loc[missing, ["domain", "user", "item", "split"]].head(3).to_dict("records")
        raise DataError(
            f"protocol 'given' needs a split (train/valid/test) on every row; {int(missing.sum())} rows have none, "
            f"e.g. {examples}. Use a reader that carries splits (cdrib, disencdr, llmcdsr) or another protocol."
        )
    too_short = 0
    carved: list[str] = []
    if given_valid == "leave_one_out":
        codes = split_codes(frame)
        for domain in (SOURCE, TARGET):
            in_domain = (frame["domain"] == domain).to_numpy()
            if (in_domain & (codes == VALID)).any():
                continue
            frame, short = hold_out_last(frame, in_domain & (codes == TRAIN), seed=seed, labels=("valid",))
            too_short += short
            carved.append(domain)
    elif given_valid != "none":
        raise DataError(f"Expected given_valid to be 'none' or 'leave_one_out'. Received: given_valid={given_valid!r}")
    summary = summarise("given", frame, users_too_short_for_holdout=too_short, details={"valid_carved_from_train": carved})
    return frame, summary


def split_cold_users(
    frame: pd.DataFrame,
    *,
    cold_fraction: float,
    valid_cold_fraction: float,
    warm_holdout: str,
    seed: int,
    test_users: Sequence[Any] | None = None,
    fold: int | None = None,
    folds: int = 1,
) -> tuple[pd.DataFrame, ProtocolSummary]:
    """Hold out a fraction of overlapping users as cold-start users (EMCDR/PTUPCDR/CDRIB protocol).

    With `fold` (cross-validation), the seeded shuffle of overlapping users is cut into `folds`
    disjoint parts and part `fold` is the cold test cohort (`cold_fraction` is then 1/folds).

    All target rows of cold test (valid) users go to test (valid); all source rows are training
    data. With `test_users` (e.g. a published split), those are the cold test users and the valid
    cohort is drawn from the other overlapping users. With `warm_holdout: leave_one_out`, every
    other target user with at least 3 target rows also gives their last row to test and the one
    before to valid.
    """
    overlap = overlapping_users(frame)
    if len(overlap) == 0:
        raise DataError(
            "protocol 'cold_users' needs users present in both domains, but no user id occurs in both. "
            "Link the domains' users (same raw ids, or dataset.link_file) or choose a single-domain protocol."
        )
    rng = np.random.default_rng([seed, 104729])
    valid_count = int(round(valid_cold_fraction * len(overlap)))
    if test_users is not None:
        unknown = sorted(set(test_users) - set(overlap.tolist()))
        if unknown:
            raise DataError(
                f"{len(unknown)} of the {len(test_users)} given test users are not overlapping users, "
                f"e.g. {unknown[:5]}"
            )
        cold_test = np.sort(np.array(list(set(test_users)), dtype=overlap.dtype))
        remaining = np.setdiff1d(overlap, cold_test)
        cold_valid = np.sort(remaining[rng.permutation(len(remaining))][:valid_count])
    elif fold is not None:
        if not 0 <= fold < folds:
            raise DataError(f"Expected 0 <= dataset.fold < dataset.folds. Received: fold={fold}, folds={folds}")
        shuffled = overlap[rng.permutation(len(overlap))]
        parts = np.array_split(np.arange(len(overlap)), folds)
        cold_test = np.sort(shuffled[parts[fold]])
        remaining = np.delete(shuffled, parts[fold])
        cold_valid = np.sort(remaining[:valid_count])
    else:
        shuffled = overlap[rng.permutation(len(overlap))]
        test_count = int(round(cold_fraction * len(overlap)))
        cold_test = np.sort(shuffled[:test_count])
        cold_valid = np.sort(shuffled[test_count : test_count + valid_count])
    codes = np.full(len(frame), TRAIN, dtype=np.int8)
    is_target = (frame["domain"] == TARGET).to_numpy()
    codes[is_target & frame["user"].isin(cold_test).to_numpy()] = TEST
    codes[is_target & frame["user"].isin(cold_valid).to_numpy()] = VALID
    result = with_split(frame, codes)
    too_short = 0
    if warm_holdout == "leave_one_out":
        result, too_short = hold_out_last(result, is_target & (codes == TRAIN), seed=seed)
    summary = ProtocolSummary(
        "cold_users",
        list(cold_test),
        list(cold_valid),
        overlap_users=len(overlap),
        users_too_short_for_holdout=too_short,
        details={"test_users_given": test_users is not None, "fold": fold, "folds": folds},
    )
    return result, summary


def split_leave_one_out(frame: pd.DataFrame, *, seed: int) -> tuple[pd.DataFrame, ProtocolSummary]:
    """In both domains, each user's last row (by time; random without time) is test and the one before valid."""
    result = with_split(frame, np.zeros(len(frame), dtype=np.int8))
    result, too_short = hold_out_last(result, np.ones(len(frame), dtype=bool), seed=seed)
    return result, summarise("leave_one_out", result, users_too_short_for_holdout=too_short)


def split_temporal(
    frame: pd.DataFrame,
    *,
    test_cutoff: float | None = None,
    test_quantile: float | None = None,
    valid_cutoff: float | None = None,
    valid_quantile: float | None = None,
) -> tuple[pd.DataFrame, ProtocolSummary]:
    """One global clock for both domains: rows after the test cut-off are test, rows after the valid cut-off valid.

    A cut-off is a timestamp or a quantile of all rows' timestamps; a row exactly at a cut-off
    stays on the earlier side, so every train timestamp <= every valid one <= every test one.
    Without a valid cut-off there is no valid split.
    """
    time = pd.to_numeric(frame["timestamp"], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    untimed = np.isnan(time)
    if untimed.any():
        examples = frame.loc[untimed, ["domain", "user", "item"]].head(3).to_dict("records")
        raise DataError(
            f"protocol 'temporal' needs a timestamp on every row; {int(untimed.sum())} rows have none, e.g. {examples}. "
            "Use a reader that gives timestamps, or another protocol (ratio, leave_one_out)."
        )
    if len(time) == 0:
        raise DataError("protocol 'temporal': no rows to split")
    test_at = resolve_cutoff(time, test_cutoff, test_quantile, name="test")
    valid_at = resolve_cutoff(time, valid_cutoff, valid_quantile, name="valid")
    if test_at is None:
        raise DataError("protocol 'temporal' needs test_cutoff (a timestamp) or test_quantile (e.g. 0.9)")
    if valid_at is not None and valid_at > test_at:
        raise DataError(f"protocol 'temporal': expected the valid cut-off <= the test cut-off. Received: valid={valid_at:g}, test={test_at:g}")
    codes = np.full(len(frame), TRAIN, dtype=np.int8)
    if valid_at is not None:
        codes[time > valid_at] = VALID
    codes[time > test_at] = TEST
    result = with_split(frame, codes)
    details = {"test_cutoff": float(test_at), "valid_cutoff": None if valid_at is None else float(valid_at)}
    return result, summarise("temporal", result, details=details)


def resolve_cutoff(time: np.ndarray, cutoff: float | None, quantile: float | None, *, name: str) -> float | None:
    """The cut-off timestamp: given directly, or the (lower) quantile of all timestamps."""
    if cutoff is not None and quantile is not None:
        raise DataError(f"protocol 'temporal': give {name}_cutoff or {name}_quantile, not both")
    if quantile is not None:
        # "lower" keeps the cut-off an observed timestamp: with times 1..10 and 0.8 it is 8.
        return float(np.quantile(time, quantile, method="lower"))
    return cutoff


def split_ratio(frame: pd.DataFrame, *, fractions: Sequence[float], seed: int) -> tuple[pd.DataFrame, ProtocolSummary]:
    """Per user and domain, a random fraction of rows to valid and to test (rounded half up), the rest train.

    A user always keeps at least one training row: with fractions [0.8, 0.1, 0.1] a user with 10
    rows gives 1 to valid and 1 to test, a user with 4 rows 0 and 0, a user with 5 rows 1 and 1.
    """
    _, valid_fraction, test_fraction = fractions
    groups = group_codes(frame)
    rng = np.random.default_rng([seed, 7919])
    order = np.lexsort((rng.random(len(frame)), groups))
    rank, sizes = rank_within_groups(groups[order])
    test_count = np.floor(test_fraction * sizes + 0.5).astype(np.int64)
    valid_count = np.floor(valid_fraction * sizes + 0.5).astype(np.int64)
    excess = np.maximum(test_count + valid_count - (sizes - 1), 0)
    valid_count -= np.minimum(excess, valid_count)
    excess = np.maximum(test_count + valid_count - (sizes - 1), 0)
    test_count -= excess
    ordered_codes = np.where(rank < test_count, TEST, np.where(rank < test_count + valid_count, VALID, TRAIN))
    codes = np.empty(len(frame), dtype=np.int8)
    codes[order] = ordered_codes
    result = with_split(frame, codes)
    return result, summarise("ratio", result, details={"fractions": list(fractions)})


def group_codes(frame: pd.DataFrame) -> np.ndarray:
    """An int64 code per row for its (user, domain) pair."""
    users = frame["user"].to_numpy()
    if np.issubdtype(users.dtype, np.integer):
        user_codes = users.astype(np.int64)  # already indices (prepare indexes before splitting)
    else:
        user_codes, _ = pd.factorize(users, sort=True)
    return user_codes.astype(np.int64) * 2 + (frame["domain"] == TARGET).to_numpy()


def rank_within_groups(sorted_groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For rows sorted by group: each row's position in its group and its group's size."""
    count = len(sorted_groups)
    starts = np.ones(count, dtype=bool)
    starts[1:] = sorted_groups[1:] != sorted_groups[:-1]
    start_positions = np.flatnonzero(starts)
    group_sizes = np.diff(np.append(start_positions, count))
    group_of_row = np.cumsum(starts) - 1
    rank = np.arange(count) - start_positions[group_of_row]
    return rank, group_sizes[group_of_row]


def hold_out_last(
    frame: pd.DataFrame,
    eligible: np.ndarray,
    *,
    seed: int,
    labels: Sequence[str] = ("test", "valid"),
    minimum: int = 3,
) -> tuple[pd.DataFrame, int]:
    """Give the last eligible rows of each user and domain (by timestamp, random tie-break) the labels, last first.

    With the default labels, the last row becomes test and the one before valid. Users with fewer
    than `minimum` eligible rows keep all of them; their count is returned.
    """
    rng = np.random.default_rng([seed, 15485863])
    positions = np.flatnonzero(eligible)
    tie = rng.random(len(positions))
    time = pd.to_numeric(frame["timestamp"], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)[positions]
    time = np.where(np.isnan(time), -np.inf, time)
    groups = group_codes(frame)[positions]
    times, time_rank = np.unique(time, return_inverse=True)
    time_bits = len(times).bit_length()
    if int(groups.max(initial=0)).bit_length() + time_bits <= 63:
        # (group, time) packed into one key: two sort keys instead of three.
        order = np.lexsort((tie, (groups << time_bits) | time_rank.astype(np.int64)))
    else:
        order = np.lexsort((tie, time, groups))
    rank, sizes = rank_within_groups(groups[order])
    from_end = sizes - 1 - rank
    long_enough = sizes >= minimum
    codes = split_codes(frame)
    ordered_positions = positions[order]
    for distance, label in enumerate(labels):
        codes[ordered_positions[(from_end == distance) & long_enough]] = CODE[label]
    too_short = int(np.count_nonzero((rank == 0) & ~long_enough))
    return with_split(frame, codes), too_short
