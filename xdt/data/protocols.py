"""Split protocols over the combined two-domain frame (columns domain, user, item, rating, timestamp, split).

Every protocol is seeded and returns the frame with `split` set to train/valid/test for every
row, plus a summary of what it did (counts a person can check).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from xdt.errors import DataError

SOURCE = "source"
TARGET = "target"
SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class ProtocolSummary:
    """What a protocol did: the cold-start cohorts it made and users it could not hold out."""

    name: str
    cold_test_users: list[str] = field(default_factory=list)
    cold_valid_users: list[str] = field(default_factory=list)
    overlap_users: int = 0
    users_too_short_for_holdout: int = 0


def overlapping_users(frame: pd.DataFrame) -> np.ndarray:
    """Users with rows in both domains, sorted."""
    source_users = set(frame.loc[frame["domain"] == SOURCE, "user"].unique())
    target_users = set(frame.loc[frame["domain"] == TARGET, "user"].unique())
    return np.array(sorted(source_users & target_users), dtype=object)


def split_given(frame: pd.DataFrame) -> tuple[pd.DataFrame, ProtocolSummary]:
    """Keep the benchmark's own split; every row must carry one."""
    missing = ~frame["split"].isin(SPLITS)
    if missing.any():
        examples = frame.loc[missing, ["domain", "user", "item", "split"]].head(3).to_dict("records")
        raise DataError(
            f"protocol 'given' needs a split (train/valid/test) on every row; {int(missing.sum())} rows have none, "
            f"e.g. {examples}. Use a reader that carries splits (cdrib, disencdr, llmcdsr) or another protocol."
        )
    target = frame[frame["domain"] == TARGET]
    trained = set(target.loc[target["split"] == "train", "user"])
    cold_test = sorted(set(target.loc[target["split"] == "test", "user"]) - trained)
    cold_valid = sorted(set(target.loc[target["split"] == "valid", "user"]) - trained)
    summary = ProtocolSummary("given", cold_test, cold_valid, overlap_users=len(overlapping_users(frame)))
    return frame, summary


def split_cold_users(
    frame: pd.DataFrame,
    *,
    cold_fraction: float,
    valid_cold_fraction: float,
    warm_holdout: str,
    seed: int,
    test_users: list[str] | None = None,
) -> tuple[pd.DataFrame, ProtocolSummary]:
    """Hold out a fraction of overlapping users as cold-start users (EMCDR/PTUPCDR/CDRIB protocol).

    All target rows of cold test (valid) users go to test (valid); all source rows are training
    data. With `warm_holdout: leave_one_out`, every other target user with at least 3 target rows
    also gives their last row to test and the one before to valid.
    """
    overlap = overlapping_users(frame)
    if len(overlap) == 0:
        raise DataError(
            "protocol 'cold_users' needs users present in both domains, but no user id occurs in both. "
            "Link the domains' users (same raw ids) or choose a single-domain protocol."
        )
    rng = np.random.default_rng([seed, 104729])
    if test_users is not None:
        unknown = sorted(set(test_users) - set(overlap))
        if unknown:
            raise DataError(
                f"{len(unknown)} of the {len(test_users)} given test users are not overlapping users, "
                f"e.g. {unknown[:5]}"
            )
        cold_test = sorted(set(test_users))
        remaining = np.array([user for user in overlap if user not in set(cold_test)], dtype=object)
        shuffled = remaining[rng.permutation(len(remaining))]
        cold_valid = sorted(shuffled[: int(round(valid_cold_fraction * len(overlap)))])
    else:
        shuffled = overlap[rng.permutation(len(overlap))]
        test_count = int(round(cold_fraction * len(overlap)))
        valid_count = int(round(valid_cold_fraction * len(overlap)))
        cold_test = sorted(shuffled[:test_count])
        cold_valid = sorted(shuffled[test_count : test_count + valid_count])
    split = np.full(len(frame), "train", dtype=object)
    is_target = (frame["domain"] == TARGET).to_numpy()
    split[is_target & frame["user"].isin(cold_test).to_numpy()] = "test"
    split[is_target & frame["user"].isin(cold_valid).to_numpy()] = "valid"
    result = frame.assign(split=split)
    too_short = 0
    if warm_holdout == "leave_one_out":
        warm = is_target & (split == "train")
        result, too_short = hold_out_last(result, warm, seed=seed)
    summary = ProtocolSummary(
        "cold_users", list(cold_test), list(cold_valid), overlap_users=len(overlap), users_too_short_for_holdout=too_short
    )
    return result, summary


def split_leave_one_out(frame: pd.DataFrame, *, seed: int) -> tuple[pd.DataFrame, ProtocolSummary]:
    """In both domains, each user's last row (by time; random without time) is test and the one before valid."""
    result = frame.assign(split="train")
    result, too_short = hold_out_last(result, np.ones(len(frame), dtype=bool), seed=seed)
    summary = ProtocolSummary(
        "leave_one_out", overlap_users=len(overlapping_users(frame)), users_too_short_for_holdout=too_short
    )
    return result, summary


def hold_out_last(frame: pd.DataFrame, eligible: np.ndarray, *, seed: int) -> tuple[pd.DataFrame, int]:
    """Move the last (by timestamp, random tie-break) eligible row of each user and domain to test, the previous to valid.

    Users with fewer than 3 eligible rows keep all of them in training; their count is returned.
    """
    rng = np.random.default_rng([seed, 15485863])
    candidates = frame.loc[eligible, ["domain", "user", "timestamp"]].copy()
    candidates["tie"] = rng.random(len(candidates))
    time = pd.to_numeric(candidates["timestamp"], errors="coerce").astype("float64").fillna(-np.inf)
    candidates["time"] = time.to_numpy()
    candidates = candidates.sort_values(["domain", "user", "time", "tie"], kind="mergesort")
    groups = candidates.groupby(["domain", "user"], sort=False)
    from_end = groups.cumcount(ascending=False).to_numpy()
    sizes = groups["user"].transform("size").to_numpy()
    long_enough = sizes >= 3
    split = frame["split"].to_numpy().copy()
    positions = frame.index.get_indexer(candidates.index)
    split[positions[(from_end == 0) & long_enough]] = "test"
    split[positions[(from_end == 1) & long_enough]] = "valid"
    too_short = int(groups.ngroups - groups.ngroup()[long_enough].nunique()) if len(candidates) else 0
    return frame.assign(split=split), too_short
