"""Delimited, JSON-lines and parquet files as tables of named (or numbered) raw columns."""

import ast
import csv
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from xdt.data.readers.bad_rows import make_bad_row
from xdt.data.readers.conversion import build_interactions, build_items, item_drops
from xdt.data.readers.files import DEFAULT_ENCODING, count_lines, is_blank, iterate_lines, open_text, reading
from xdt.data.readers.options import suggestion
from xdt.data.readers.result import (
    BAD_ROWS,
    BLANK_LINES,
    CONTINUATION_LINES,
    HEADER,
    ROWS,
    BadRow,
    FileLines,
    file_lines,
)
from xdt.errors import DataError

ColumnKey = str | int


@dataclass
class Table:
    """Raw rows of one file: their line numbers and texts, a way to fetch any column, and line counts."""

    file: str
    names: list[str] | None  # column names found; None for a file without a header
    lines: list[int]
    texts: Callable[[int], str]
    column: Callable[[ColumnKey], Sequence[Any]]
    bad_rows: list[BadRow] = field(default_factory=list)
    width: int = 0  # fields per row, for addressing columns by position
    total: int = 0  # lines in the file (rows, for parquet)
    header: int = 0  # header lines
    blank: int = 0  # blank lines, skipped
    continuation: int = 0  # extra lines of records whose quoted fields hold line breaks

    def account(self, rows: int, bad_rows: int, **other: int) -> FileLines:
        """Where this file's lines went, given how many became rows and how many were bad."""
        counts = {ROWS: rows, HEADER: self.header, BLANK_LINES: self.blank, BAD_ROWS: bad_rows}
        if self.continuation:
            counts[CONTINUATION_LINES] = self.continuation
        return file_lines(self.file, self.total, **counts, **other)


def read_delimited_table(
    path: Path, delimiter: str, header: bool, encoding: str = DEFAULT_ENCODING, quoted: bool = True
) -> Table:
    """Parse a delimited text file; a row whose field count differs from the first row's is bad.

    quoted: whether double quotes enclose fields (CSV style) or are ordinary characters. A line
    holding only spaces and delimiters is blank, like an empty one.
    """
    file = str(path)
    table = Table(file, None, [], str, lambda key: [])
    rows: list[list[str]] = []
    expected: int | None = None
    with open_text(path, encoding) as handle, reading(path, encoding):
        reader = csv.reader(handle, delimiter=delimiter, quoting=csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE)
        for row in _records(reader, file):
            table.continuation += reader.line_num - table.total - 1
            table.total = reader.line_num
            if not any(value.strip() for value in row):
                table.blank += 1
                continue
            if expected is None:
                expected = len(row)
                if header:
                    table.names = [name.strip() for name in row]
                    table.header = 1
                    continue
            if len(row) != expected:
                where = "the header" if header else "the first row"
                reason = f"expected {expected} fields like {where}, found {len(row)}"
                table.bad_rows.append(make_bad_row(file, reader.line_num, delimiter.join(row), reason))
                continue
            table.lines.append(reader.line_num)
            rows.append(row)
    if header and table.names is None:
        raise DataError(f"{file}: no header line, only {table.total} blank lines. Expected a header naming the columns, then rows.")
    names = table.names

    def column(key: ColumnKey) -> list[str]:
        position = names.index(key) if isinstance(key, str) and names is not None else key
        return [row[position] for row in rows]

    def text_of(position: int) -> str:
        return delimiter.join(rows[position])

    table.column, table.texts, table.width = column, text_of, expected or 0
    return table


def _records(reader: Any, file: str) -> Iterator[list[str]]:
    """The csv reader's records, with its parse errors (e.g. an over-long field) as DataErrors naming the line."""
    while True:
        try:
            yield next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise DataError(f"{file}:{reader.line_num}: cannot be parsed as delimited text: {error}.") from None


FAST_ENCODINGS = ("utf-8", "utf8")
FAST_TYPES = {"user": "string", "item": "string", "rating": "float64", "timestamp": "int64"}


def read_delimited_interactions_fast(
    path: Path, delimiter: str, header: bool, encoding: str, mapping: Mapping[str, ColumnKey] | None
) -> tuple[pd.DataFrame, FileLines] | None:
    """The standard frame of a clean delimited file and its line counts, parsed by pyarrow; None when
    the file needs the careful reader.

    Only a file whose every row the careful reader would accept unchanged takes this path: any
    row with a wrong field count, an unparseable or non-finite number, a blank user or item, or
    any other surprise (pyarrow error, unreadable gzip) returns None, and
    `read_delimited_table` then finds and reports it with its line number. Column errors (unknown
    names, no header) are raised as the careful reader raises them.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pa_csv

    if encoding.lower() not in FAST_ENCODINGS or path.suffix not in ("", ".csv", ".tsv", ".txt", ".gz", ".dat"):
        return None
    with open_text(path, encoding) as handle, reading(path, encoding):
        first_line = handle.readline()
    first_row = next(csv.reader([first_line], delimiter=delimiter), [])
    if not first_line.strip() or not any(value.strip() for value in first_row):
        return None
    names = [name.strip() for name in first_row] if header else None
    probe = Table(str(path), names, [], str, lambda key: [], width=len(first_row))
    columns = resolve_columns(probe, mapping, ("user", "item"), ("rating", "timestamp"), "columns")
    if len(set(columns.values())) != len(columns):
        return None
    positions = {name: (names.index(key) if isinstance(key, str) and names is not None else key) for name, key in columns.items()}
    raw_names = [f"c{position}" for position in range(len(first_row))]
    types = {f"c{positions[name]}": getattr(pa, FAST_TYPES[name])() for name in positions}
    try:
        table = pa_csv.read_csv(
            path,
            read_options=pa_csv.ReadOptions(column_names=raw_names, skip_rows=1 if header else 0),
            parse_options=pa_csv.ParseOptions(delimiter=delimiter, newlines_in_values=False, ignore_empty_lines=True),
            convert_options=pa_csv.ConvertOptions(
                column_types=types, include_columns=list(types), null_values=[""], strings_can_be_null=True,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowException, OSError, EOFError, ValueError):
        return None  # the careful reader names the line or the broken file
    values = {name: table.column(f"c{position}") for name, position in positions.items()}
    for name in ("user", "item"):
        if values[name].null_count or pc.any(pc.utf8_is_space(values[name])).as_py():
            return None
    if "rating" in values and pc.any(pc.invert(pc.is_finite(values["rating"]))).as_py():
        return None  # inf or nan, which the careful reader reports as a bad row
    size = table.num_rows
    rating = values["rating"].to_numpy() if "rating" in values else None
    timestamp = (
        values["timestamp"].to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get).array
        if "timestamp" in values
        else None
    )
    frame = pd.DataFrame(
        {
            "user": values["user"].to_pandas().astype("str"),
            "item": values["item"].to_pandas().astype("str"),
            "rating": pd.Series(rating if rating is not None else float("nan"), index=range(size), dtype="float64"),
            "timestamp": pd.Series(timestamp if timestamp is not None else pd.NA, index=range(size), dtype="Int64"),
            "split": pd.Series("", index=range(size), dtype="str"),
        },
        columns=["user", "item", "rating", "timestamp", "split"],
    )
    header_lines = 1 if header else 0
    total = count_lines(path)
    blank = total - size - header_lines  # pyarrow skipped only empty lines; a line of spaces fails above
    if blank < 0:
        return None
    return frame, file_lines(path, total, **{ROWS: size, HEADER: header_lines, BLANK_LINES: blank, BAD_ROWS: 0})


def parse_json_object(text: str) -> dict[str, Any]:
    """Parse one JSON object; also accepts the Python-literal lines of the 2014 Amazon metadata."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise ValueError("not valid JSON (nested too deeply)") from None
    except json.JSONDecodeError as json_error:
        try:
            value = ast.literal_eval(text)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            raise ValueError(f"not valid JSON ({json_error.msg} at column {json_error.colno})") from None
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, found {type(value).__name__}")
    wrong = next((key for key in value if not isinstance(key, str)), None)
    if wrong is not None:
        raise ValueError(f"expected text keys, found key {wrong!r}")
    return value


def read_json_lines_table(path: Path, encoding: str = DEFAULT_ENCODING) -> Table:
    """Parse a file with one JSON object per line; a line that is not one is bad."""
    file = str(path)
    table = Table(file, [], [], str, lambda key: [])
    texts: list[str] = []
    records: list[dict[str, Any]] = []
    names: dict[str, None] = {}
    for number, text in iterate_lines(path, encoding):
        table.total = number
        if is_blank(text):
            table.blank += 1
            continue
        try:
            record = parse_json_object(text)
        except ValueError as error:
            table.bad_rows.append(make_bad_row(file, number, text, str(error)))
            continue
        names.update(dict.fromkeys(record))
        table.lines.append(number)
        texts.append(text)
        records.append(record)

    def column(key: ColumnKey) -> list[Any]:
        return [record.get(key) for record in records]

    table.names, table.texts, table.column = list(names), texts.__getitem__, column
    return table


def read_parquet_table(path: Path) -> Table:
    """Load a parquet file; its line numbers are row numbers + 1.

    Columns come back as objects with None for nulls, so a null (missing) stays apart from a
    NaN stored in the file (not a number, a bad row).
    """
    import pyarrow.parquet as pq

    try:
        arrow = pq.read_table(path)
        frame = arrow.to_pandas()
    except Exception as error:  # pyarrow raises several unrelated types for unreadable files
        raise DataError(f"Could not read parquet file {str(path)!r}: {error}. Expected an Apache Parquet file.") from error
    names = [str(name) for name in arrow.column_names]

    def text_of(position: int) -> str:
        return json.dumps(frame.iloc[position].to_dict(), default=str)

    def column(key: ColumnKey) -> Any:
        values = frame[key].to_numpy(dtype=object, copy=True)
        values[arrow.column(names.index(key)).is_null().to_numpy()] = None
        return values

    return Table(str(path), names, list(range(1, len(frame) + 1)), text_of, column, total=len(frame))


def resolve_columns(
    table: Table,
    mapping: Mapping[str, ColumnKey] | None,
    required: Sequence[str],
    optional: Sequence[str],
    option: str,
) -> dict[str, ColumnKey]:
    """Map standard names to the table's columns, failing on unknown names or absent columns.

    Without a mapping, standard names map to same-named columns (a headerless file needs one).
    """
    known = (*required, *optional)
    if mapping is None:
        if table.names is None:
            raise DataError(
                f"{table.file} has no header, so option {option} must give the column position of "
                f"{', '.join(required)} (and optionally {', '.join(optional)}), e.g. {{user: 0, item: 1}}."
            )
        mapping = {name: name for name in known if name in required or name in table.names}
    if not isinstance(mapping, Mapping):
        raise DataError(f"Expected option {option} to be a mapping of standard name to column. Received: {mapping!r}")
    for name in mapping:
        if name not in known:
            raise DataError(
                f"Unknown standard column {name!r} in option {option}.{suggestion(name, known)} "
                f"Known: {', '.join(known)}."
            )
    missing_names = [name for name in required if name not in mapping]
    if missing_names:
        raise DataError(
            f"Option {option} must name a column for {', '.join(missing_names)}. Received: {dict(mapping)!r}"
        )
    absent = [f"{key!r} (for {name})" for name, key in mapping.items() if not _has_column(table, key)]
    if absent:
        found = ", ".join(table.names) if table.names is not None else "none (no header)"
        raise DataError(f"{table.file}: columns not found: {', '.join(absent)}. Columns found: {found}.")
    return dict(mapping)


def _has_column(table: Table, key: ColumnKey) -> bool:
    """Whether key names a column (or, in a headerless file, a position) that the table has."""
    if isinstance(key, bool):
        return False
    if isinstance(key, int):
        return 0 <= key < table.width
    return table.names is not None and key in table.names


def interactions_from_table(
    table: Table, columns: Mapping[str, ColumnKey], split: str = ""
) -> tuple[pd.DataFrame, list[BadRow], FileLines]:
    """Build the standard frame from resolved columns, with the bad rows (those found while parsing
    included) and the file's line counts."""
    values = {name: table.column(key) for name, key in columns.items()}
    frame, bad_rows = build_interactions(table.file, table.lines, table.texts, split=split, **values)
    bad_rows = table.bad_rows + bad_rows
    return frame, bad_rows, table.account(len(frame), len(bad_rows))


def items_from_table(table: Table, columns: Mapping[str, ColumnKey]) -> tuple[pd.DataFrame, FileLines]:
    """Build the items frame (item, title[, categories]) from resolved columns, and the file's line counts."""
    values = {name: table.column(key) for name, key in columns.items()}
    items = build_items(**values)
    return items, table.account(len(items), len(table.bad_rows), **item_drops(values["item"], items))
