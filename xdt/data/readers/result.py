"""What every reader returns: the standard interactions frame, item titles, skipped rows and line counts."""

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

INTERACTION_COLUMNS = ("user", "item", "rating", "timestamp", "split")
ITEM_COLUMNS = ("item", "title")
BAD_ROW_TEXT_LIMIT = 200

# Where a line of an input file can go. "rows": it became a row (or an item, in an items file).
ROWS = "rows"
HEADER = "header"
BLANK_LINES = "blank_lines"  # empty, only spaces, or only separators and spaces
BAD_ROWS = "bad_rows"  # skipped under on_bad_rows: skip
CONTINUATION_LINES = "continuation_lines"  # 2nd and later lines of a record whose quoted field holds a line break
OTHER_SIDE_LINES = "other_side_lines"  # llmcdsr: sequences with no item of the side being read
MISSING_ITEMS = "missing_items"  # items files: no item id
DUPLICATE_ITEMS = "duplicate_items"  # items files: an item id seen on an earlier line (the first wins)
OTHER_DOMAIN_LINES = "other_domain_lines"  # recbole: interactions left out by the categories rule that splits domains
METADATA_LINES = "metadata_lines"  # lines of a file read for a fact (llmcdsr item counts, cdrib shared users), not rows


@dataclass(frozen=True)
class BadRow:
    """One input row that could not be parsed, with where it was and why."""

    file: str
    line: int
    text: str
    reason: str


@dataclass(frozen=True)
class FileLines:
    """Where every line of one input file went, so that no line disappears uncounted.

    `lines` is the number of lines the reader saw (rows, for parquet); `counts` splits them into
    the named counters above and sums to `lines` (the tests check both against the file itself).
    """

    file: str
    lines: int
    counts: dict[str, int]


@dataclass(frozen=True)
class ReadResult:
    """One domain's raw interactions in the standard layout, plus optional item titles.

    `interactions` has exactly the columns user (str), item (str), rating (float64, NaN when the
    format has none), timestamp (Int64, <NA> when the format has none) and split ("train",
    "valid", "test", or "" when the format carries no split). `items` has item and title (and
    categories where the format has them), one row per item, or is None. `lines` accounts for
    every line of every file read; `warnings` are facts about the files a person should see.
    """

    interactions: pd.DataFrame
    items: pd.DataFrame | None
    bad_rows: list[BadRow]
    files: list[Path]
    lines: list[FileLines] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def file_lines(file: str | Path, lines: int, **counts: int) -> FileLines:
    """The account of one file: the lines the reader saw and where each went."""
    return FileLines(str(file), lines, dict(counts))
