"""Amazon review dumps (McAuley et al.): detects the 2014/2018 and 2023 layouts from the file content."""

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from xdt.data.readers.bad_rows import settle_bad_rows
from xdt.data.readers.conversion import build_items, item_drops
from xdt.data.readers.files import is_blank, iterate_lines, require_file
from xdt.data.readers.generic import encoding_option
from xdt.data.readers.options import check_options, text_option
from xdt.data.readers.result import FileLines, ReadResult
from xdt.data.readers.tables import (
    Table,
    interactions_from_table,
    read_delimited_table,
    read_json_lines_table,
)
from xdt.errors import DataError

# Review JSON keys of each release, in standard order: user, item, rating, timestamp.
# 2023 timestamps are milliseconds since the epoch; 2014/2018 ones are seconds. Both are kept as given.
REVIEW_KEYS = {
    "2014/2018": {"user": "reviewerID", "item": "asin", "rating": "overall", "timestamp": "unixReviewTime"},
    "2023": {"user": "user_id", "item": "parent_asin", "rating": "rating", "timestamp": "timestamp"},
}
RATINGS_ONLY_ORDER = "user,item,rating,timestamp"


def read_amazon(path: Path, domain: str | None, options: Mapping[str, Any], on_bad_rows: str) -> ReadResult:
    """Reviews as JSON lines (2014/2018 or 2023 keys) or a headerless ratings-only CSV.

    Ratings-only CSVs are read in column_order (default "user,item,rating,timestamp", the 2014
    order); the 2018 ratings-only files list item first: set column_order "item,user,rating,timestamp".
    metadata_path adds titles (and categories) from a metadata JSON-lines file.
    """
    check_options("amazon", options, ("metadata_path", "column_order", "encoding"))
    require_file(path, "amazon", "a reviews JSON-lines file or a ratings-only CSV")
    column_order = text_option("amazon", options, "column_order", RATINGS_ONLY_ORDER)
    encoding = encoding_option("amazon", options)
    first_line = next((text for _, text in iterate_lines(path, encoding) if not is_blank(text)), "")
    if first_line.lstrip().startswith("{"):
        table = read_json_lines_table(path, encoding)
        columns = _review_keys(table)
    else:
        table = read_delimited_table(path, ",", header=False, encoding=encoding)
        columns = _ratings_only_columns(column_order, table)
    frame, bad_rows, lines = interactions_from_table(table, columns)
    bad_rows = settle_bad_rows(bad_rows, on_bad_rows)
    files, accounts = [path], [lines]
    items: pd.DataFrame | None = None
    metadata_path = text_option("amazon", options, "metadata_path", None)
    if metadata_path is not None:
        metadata_file = Path(metadata_path)
        require_file(metadata_file, "amazon", "a metadata JSON-lines file (option metadata_path)")
        metadata = read_json_lines_table(metadata_file, encoding)
        bad_rows += settle_bad_rows(metadata.bad_rows, on_bad_rows)
        items, metadata_lines = _metadata_items(metadata)
        files.append(metadata_file)
        accounts.append(metadata_lines)
    return ReadResult(frame, items, bad_rows, files, accounts)


def _review_keys(table: Table) -> dict[str, str]:
    """The key mapping of whichever release the file's keys match."""
    found = set(table.names or ())
    for keys in REVIEW_KEYS.values():
        if {keys["user"], keys["item"]} <= found:
            return {name: key for name, key in keys.items() if key in found or name in ("user", "item")}
    expected = "; ".join(f"{release}: {', '.join(keys.values())}" for release, keys in REVIEW_KEYS.items())
    raise DataError(
        f"{table.file}: JSON keys match no known Amazon review layout. Expected {expected}. "
        f"Keys found: {', '.join(table.names or ()) or 'none'}."
    )


def _ratings_only_columns(column_order: str, table: Table) -> dict[str, int]:
    """Positions of user, item, rating, timestamp in a ratings-only CSV."""
    names = [name.strip() for name in column_order.split(",")]
    if sorted(names) != sorted(RATINGS_ONLY_ORDER.split(",")):
        raise DataError(
            "Expected option column_order of the amazon reader to list user, item, rating, timestamp "
            f"once each. Received: column_order={column_order!r}"
        )
    if table.lines and table.width != len(names):
        raise DataError(
            f"{table.file}: a ratings-only CSV has {len(names)} fields ({column_order}), "
            f"but its first row has {table.width}."
        )
    return {name: position for position, name in enumerate(names)}


def _metadata_items(metadata: Table) -> tuple[pd.DataFrame, FileLines]:
    """Items from metadata lines: parent_asin (2023) or asin, title, and flattened categories; the file's line counts."""
    item_key = "parent_asin" if "parent_asin" in (metadata.names or ()) else "asin"
    if item_key not in (metadata.names or ()) or "title" not in (metadata.names or ()):
        raise DataError(
            f"{metadata.file}: metadata needs keys asin (or parent_asin) and title. "
            f"Keys found: {', '.join(metadata.names or ()) or 'none'}."
        )
    categories = [
        "|".join(_flatten_categories(first if first is not None else second))
        for first, second in zip(metadata.column("categories"), metadata.column("category"))
    ]
    items = build_items(metadata.column(item_key), metadata.column("title"), categories)
    return items, metadata.account(len(items), len(metadata.bad_rows), **item_drops(metadata.column(item_key), items))


def _flatten_categories(value: Any) -> list[str]:
    """Unique category names in order: 2014 nests lists of paths, 2018/2023 give a flat list."""
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, Iterable):
        return [str(value)]
    names: dict[str, None] = {}
    for entry in value:
        names.update(dict.fromkeys(_flatten_categories(entry)))
    return list(names)
