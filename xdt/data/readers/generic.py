"""Readers for generic files with a column mapping: delimited text (csv), parquet and JSON lines."""

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from xdt.data.readers.bad_rows import settle_bad_rows
from xdt.data.readers.files import DEFAULT_ENCODING, check_encoding, require_file
from xdt.data.readers.options import check_options, flag_option, text_option
from xdt.data.readers.result import ReadResult
from xdt.data.readers.tables import (
    Table,
    interactions_from_table,
    items_from_table,
    read_delimited_interactions_fast,
    read_delimited_table,
    read_json_lines_table,
    read_parquet_table,
    resolve_columns,
)
from xdt.errors import DataError

INTERACTION_REQUIRED = ("user", "item")
INTERACTION_OPTIONAL = ("rating", "timestamp")
ITEM_REQUIRED = ("item", "title")
ITEM_OPTIONAL = ("categories",)
COMMON_OPTIONS = ("columns", "items_path", "items_columns")


def encoding_option(reader: str, options: Mapping[str, Any], default: str = DEFAULT_ENCODING) -> str:
    """The encoding option of a text reader (a known codec), or default."""
    encoding = text_option(reader, options, "encoding", default) or default
    check_encoding(encoding, reader)
    return encoding


def read_csv(path: Path, domain: str | None, options: Mapping[str, Any], on_bad_rows: str) -> ReadResult:
    """Delimited text with a header (default) or without one, columns mapped by the columns option."""
    check_options("csv", options, (*COMMON_OPTIONS, "delimiter", "header", "encoding"))
    delimiter = text_option("csv", options, "delimiter", ",")
    if delimiter is None or len(delimiter) != 1:
        raise DataError(
            f"Expected option delimiter of the csv reader to be one character. Received: delimiter={delimiter!r}"
        )
    header = flag_option("csv", options, "header", True)
    encoding = encoding_option("csv", options)

    def load(file: Path) -> Table:
        return read_delimited_table(file, delimiter, header, encoding)

    if path.is_file() and not {"items_path", "items_columns"} & set(options):
        # A clean file is parsed by pyarrow (much faster); anything unusual goes the careful way.
        fast = read_delimited_interactions_fast(path, delimiter, header, encoding, options.get("columns"))
        if fast is not None:
            return ReadResult(fast[0], None, [], [path], [fast[1]])
    return _read_mapped("csv", path, options, on_bad_rows, load)


def read_parquet(path: Path, domain: str | None, options: Mapping[str, Any], on_bad_rows: str) -> ReadResult:
    """A parquet file, columns mapped by the columns option; "lines" are row numbers + 1."""
    check_options("parquet", options, COMMON_OPTIONS)
    return _read_mapped("parquet", path, options, on_bad_rows, read_parquet_table)


def read_jsonl(path: Path, domain: str | None, options: Mapping[str, Any], on_bad_rows: str) -> ReadResult:
    """One JSON object per line, keys mapped by the columns option; a key absent from a line is missing."""
    check_options("jsonl", options, (*COMMON_OPTIONS, "encoding"))
    encoding = encoding_option("jsonl", options)
    return _read_mapped("jsonl", path, options, on_bad_rows, lambda file: read_json_lines_table(file, encoding))


def _read_mapped(
    reader: str,
    path: Path,
    options: Mapping[str, Any],
    on_bad_rows: str,
    load: Callable[[Path], Table],
) -> ReadResult:
    """Read interactions (and optional items from items_path) in one generic format."""
    require_file(path, reader, "an interactions file")
    table = load(path)
    columns = resolve_columns(table, options.get("columns"), INTERACTION_REQUIRED, INTERACTION_OPTIONAL, "columns")
    frame, bad_rows, lines = interactions_from_table(table, columns)
    bad_rows = settle_bad_rows(bad_rows, on_bad_rows)
    files, accounts = [path], [lines]
    items: pd.DataFrame | None = None
    items_path = text_option(reader, options, "items_path", None)
    if items_path is None and "items_columns" in options:
        raise DataError(
            f"Option items_columns of the {reader} reader needs option items_path. Received: items_path=None"
        )
    if items_path is not None:
        items_file = Path(items_path)
        require_file(items_file, reader, "an items file (option items_path)")
        items_table = load(items_file)
        items_columns = resolve_columns(
            items_table, options.get("items_columns"), ITEM_REQUIRED, ITEM_OPTIONAL, "items_columns"
        )
        bad_rows += settle_bad_rows(items_table.bad_rows, on_bad_rows)
        items, items_lines = items_from_table(items_table, items_columns)
        files.append(items_file)
        accounts.append(items_lines)
    return ReadResult(frame, items, bad_rows, files, accounts)
