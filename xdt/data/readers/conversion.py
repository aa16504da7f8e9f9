"""Turning parsed raw values into the standard interactions and items frames."""

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from xdt.data.readers.bad_rows import make_bad_row
from xdt.data.readers.result import DUPLICATE_ITEMS, INTERACTION_COLUMNS, MISSING_ITEMS, BadRow


def identifiers(values: Sequence[Any]) -> pd.Series:
    """Ids as strings; None, NaN and blank values become missing (NaN), never the text "nan"."""
    series = pd.Series(values, dtype=object)
    blank = series.isna() | (series.astype("str").str.strip() == "")
    return series.mask(blank).astype("str")


def _is_nan(value: Any) -> bool:
    """Whether value is a floating-point NaN (a value that is not a number), as opposed to None or NA."""
    return isinstance(value, float) and value != value


def _parse_numbers(values: Sequence[Any] | None, size: int) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Return (raw values, parsed floats, mask of present values that failed to parse).

    Absent values (None, NA, blank text) are missing; anything else must be a finite number, so
    a NaN is bad in every format: the text "NaN" in a CSV and the JSON value NaN alike.
    """
    if values is None:
        raw = pd.Series([None] * size, dtype=object)
        return raw, pd.Series(np.nan, index=raw.index, dtype="float64"), pd.Series(False, index=raw.index)
    raw = pd.Series(values, dtype=object)
    absent = (raw.isna() & ~raw.map(_is_nan).astype(bool)) | (raw.astype("str").str.strip() == "")
    parsed = pd.to_numeric(raw.mask(absent), errors="coerce").astype("float64")
    failed = ~absent & ~np.isfinite(parsed)
    return raw, parsed.mask(failed), failed


def build_interactions(
    file: str,
    lines: Sequence[int],
    text_of: Callable[[int], str],
    *,
    user: Sequence[Any],
    item: Sequence[Any],
    rating: Sequence[Any] | None = None,
    timestamp: Sequence[Any] | None = None,
    split: str | Sequence[str] = "",
) -> tuple[pd.DataFrame, list[BadRow]]:
    """Validate raw column values and return the standard frame plus the rows that failed.

    A rating must parse as a finite number and a timestamp as an integer in int64's range; a blank
    or absent value is missing (NaN / <NA>), not bad, but a NaN is bad. Missing users or items are kept for cleaning to count.
    """
    size = len(lines)
    raw_rating, ratings, bad_rating = _parse_numbers(rating, size)
    raw_timestamp, timestamps, bad_timestamp = _parse_numbers(timestamp, size)
    bad_timestamp = bad_timestamp | (timestamps.notna() & ((timestamps != np.floor(timestamps)) | (timestamps.abs() >= 2.0**63)))
    bad_rows = []
    for position in np.flatnonzero(bad_rating.to_numpy() | bad_timestamp.to_numpy()):
        if bad_rating.iloc[position]:
            reason = f"rating {str(raw_rating.iloc[position])!r} is not a number"
        else:
            reason = f"timestamp {str(raw_timestamp.iloc[position])!r} is not an integer"
        bad_rows.append(make_bad_row(file, int(lines[position]), text_of(int(position)), reason))
    keep = ~(bad_rating | bad_timestamp).to_numpy()
    frame = pd.DataFrame(
        {
            "user": identifiers(user),
            "item": identifiers(item),
            "rating": ratings,
            "timestamp": timestamps.mask(bad_timestamp).astype("Int64"),
            "split": pd.Series(split if not isinstance(split, str) else [split] * size, dtype="str"),
        },
        columns=list(INTERACTION_COLUMNS),
    )
    return frame[keep].reset_index(drop=True), bad_rows


def empty_interactions() -> pd.DataFrame:
    """The standard interactions frame with no rows."""
    frame, _ = build_interactions("", [], str, user=[], item=[])
    return frame


def concatenate_interactions(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Stack standard frames, keeping the column dtypes even when some are empty."""
    frames = [frame for frame in frames if len(frame)]
    if not frames:
        return empty_interactions()
    return pd.concat(frames, ignore_index=True)


def build_items(
    item: Sequence[Any],
    title: Sequence[Any],
    categories: Sequence[Any] | None = None,
) -> pd.DataFrame:
    """One row per item (first occurrence wins) with title ("" when unknown) and categories."""
    columns = {"item": identifiers(item), "title": identifiers(title).fillna("")}
    if categories is not None:
        columns["categories"] = identifiers(categories).fillna("")
    frame = pd.DataFrame(columns)
    frame = frame[frame["item"].notna()].drop_duplicates(subset="item", keep="first")
    return frame.reset_index(drop=True)


def item_drops(item: Sequence[Any], items: pd.DataFrame) -> dict[str, int]:
    """How many item lines build_items left out: no item id, or an id already seen."""
    missing = int(identifiers(item).isna().sum())
    return {MISSING_ITEMS: missing, DUPLICATE_ITEMS: len(item) - missing - len(items)}
