"""Turning parsed raw values into the standard interactions and items frames."""

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from xdt.data.readers.bad_rows import make_bad_row
from xdt.data.readers.result import INTERACTION_COLUMNS, BadRow


def identifiers(values: Sequence[Any]) -> pd.Series:
    """Ids as strings; None, NaN and blank values become missing (NaN), never the text "nan"."""
    series = pd.Series(values, dtype=object)
    blank = series.isna() | (series.astype("str").str.strip() == "")
    return series.mask(blank).astype("str")


def _parse_numbers(values: Sequence[Any] | None, size: int) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Return (raw values, parsed floats, mask of present values that failed to parse)."""
    if values is None:
        raw = pd.Series([None] * size, dtype=object)
        return raw, pd.Series(np.nan, index=raw.index, dtype="float64"), pd.Series(False, index=raw.index)
    raw = pd.Series(values, dtype=object)
    present = ~(raw.isna() | (raw.astype("str").str.strip() == ""))
    parsed = pd.to_numeric(raw.mask(~present), errors="coerce").astype("float64")
    failed = present & ~np.isfinite(parsed)
    return raw, parsed, failed


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

    A rating must parse as a finite number and a timestamp as an integer; a blank or absent
    value is missing (NaN / <NA>), not bad. Missing users or items are kept for cleaning to count.
    """
    size = len(lines)
    raw_rating, ratings, bad_rating = _parse_numbers(rating, size)
    raw_timestamp, timestamps, bad_timestamp = _parse_numbers(timestamp, size)
    bad_timestamp = bad_timestamp | (timestamps.notna() & (timestamps != np.floor(timestamps)))
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
