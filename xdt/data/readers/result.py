"""What every reader returns: the standard interactions frame, item titles and skipped rows."""

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

INTERACTION_COLUMNS = ("user", "item", "rating", "timestamp", "split")
ITEM_COLUMNS = ("item", "title")
BAD_ROW_TEXT_LIMIT = 200


@dataclass(frozen=True)
class BadRow:
    """One input row that could not be parsed, with where it was and why."""

    file: str
    line: int
    text: str
    reason: str


@dataclass(frozen=True)
class ReadResult:
    """One domain's raw interactions in the standard layout, plus optional item titles.

    `interactions` has exactly the columns user (str), item (str), rating (float64, NaN when the
    format has none), timestamp (Int64, <NA> when the format has none) and split ("train",
    "valid", "test", or "" when the format carries no split). `items` has item and title (and
    categories where the format has them), one row per item, or is None.
    """

    interactions: pd.DataFrame
    items: pd.DataFrame | None
    bad_rows: list[BadRow]
    files: list[Path]
