"""Cleaning steps on a standard interactions frame; each reports how many rows it dropped and why.

Every function returns (filtered frame with a fresh index, [one DropRecord]); the record is there
even when nothing was dropped, so reports show zeros rather than leaving a step out.
"""

import difflib
from dataclasses import dataclass

import pandas as pd

DEDUPLICATION_POLICIES = ("keep_latest", "keep_first", "mean")


@dataclass(frozen=True)
class DropRecord:
    """How many rows one cleaning step removed from one domain, and why."""

    domain: str
    step: str
    reason: str
    rows: int


def _filtered(
    frame: pd.DataFrame, keep: pd.Series, domain: str, step: str, reason: str
) -> tuple[pd.DataFrame, list[DropRecord]]:
    """Keep the rows where keep is true and record the rest as dropped."""
    dropped = int((~keep).sum())
    return frame[keep].reset_index(drop=True), [DropRecord(domain, step, reason, dropped)]


def drop_missing(frame: pd.DataFrame, *, domain: str) -> tuple[pd.DataFrame, list[DropRecord]]:
    """Drop rows whose user or item is missing."""
    keep = frame["user"].notna() & frame["item"].notna()
    return _filtered(frame, keep, domain, "missing_values", "missing user or item")


def drop_out_of_range(
    frame: pd.DataFrame, *, domain: str, low: float, high: float
) -> tuple[pd.DataFrame, list[DropRecord]]:
    """Drop rows whose rating lies outside [low, high]; rows without a rating are kept."""
    if low > high:
        raise ValueError(f"Expected low <= high for the rating range. Received: low={low}, high={high}")
    rating = frame["rating"]
    keep = rating.isna() | rating.between(low, high)
    return _filtered(frame, keep, domain, "rating_range", f"rating outside [{low:g}, {high:g}]")


def deduplicate(frame: pd.DataFrame, *, domain: str, policy: str) -> tuple[pd.DataFrame, list[DropRecord]]:
    """Keep one row per (user, item) pair, across splits; survivors stay in file order.

    keep_latest: the row with the greatest timestamp (missing counts as oldest; ties: last in
    file). keep_first: the first in file. mean: the keep_latest row with the mean of the pair's
    ratings.
    """
    if policy not in DEDUPLICATION_POLICIES:
        close = difflib.get_close_matches(str(policy), DEDUPLICATION_POLICIES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"Unknown deduplication policy.{hint} Expected one of {', '.join(DEDUPLICATION_POLICIES)}. "
            f"Received: policy={policy!r}"
        )
    pair = ["user", "item"]
    if policy == "keep_first":
        keep = ~frame.duplicated(subset=pair, keep="first")
        return _filtered(frame, keep, domain, "duplicates", "duplicate (user, item) pair, kept the first in file")
    order = pd.Series(range(len(frame)), index=frame.index)
    latest_first = frame.assign(_order=order).sort_values(
        ["timestamp", "_order"], ascending=False, na_position="last", kind="stable"
    )
    keep = pd.Series(False, index=frame.index)
    keep[latest_first.drop_duplicates(subset=pair, keep="first").index] = True
    if policy == "keep_latest":
        return _filtered(frame, keep, domain, "duplicates", "duplicate (user, item) pair, kept the latest")
    mean_rating = frame.groupby(pair, sort=False, dropna=False)["rating"].transform("mean")
    averaged = frame.assign(rating=mean_rating.astype("float64"))
    reason = "duplicate (user, item) pair, kept the latest with the mean rating"
    return _filtered(averaged, keep, domain, "duplicates", reason)


def apply_rating_threshold(
    frame: pd.DataFrame, *, domain: str, min_rating: float
) -> tuple[pd.DataFrame, list[DropRecord]]:
    """Keep ratings >= min_rating and make them implicit (rating 1.0); rows without a rating are kept as positives."""
    rating = frame["rating"]
    keep = rating.isna() | (rating >= min_rating)
    kept, records = _filtered(frame, keep, domain, "rating_threshold", f"rating below {min_rating:g}")
    return kept.assign(rating=1.0), records


def k_core(frame: pd.DataFrame, *, domain: str, user_k: int, item_k: int) -> tuple[pd.DataFrame, list[DropRecord]]:
    """Repeatedly drop users with < user_k rows and items with < item_k rows until none are left."""
    for name, value in (("user_k", user_k), ("item_k", item_k)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"Expected {name} to be an integer >= 0. Received: {name}={value!r}")
    current = frame
    rounds = 0
    while True:
        user_counts = current.groupby("user", dropna=False)["user"].transform("size")
        item_counts = current.groupby("item", dropna=False)["item"].transform("size")
        keep = (user_counts >= user_k) & (item_counts >= item_k)
        if keep.all():
            break
        current = current[keep]
        rounds += 1
    dropped = len(frame) - len(current)
    reason = f"user with < {user_k} or item with < {item_k} rows (k-core, {rounds} rounds until stable)"
    return current.reset_index(drop=True), [DropRecord(domain, "k_core", reason, dropped)]
