"""Locating input files (plain or gzip) and splitting line-oriented text into fields."""

import gzip
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from xdt.data.readers.bad_rows import make_bad_row
from xdt.data.readers.result import BadRow
from xdt.errors import DataError


def open_text(path: Path, encoding: str = "utf-8") -> IO[str]:
    """Open a text file for reading, decompressing it when its name ends in .gz."""
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding=encoding, newline="")
    return open(path, encoding=encoding, newline="")


def find_file(folder: Path, name: str) -> Path | None:
    """Return folder/name or folder/name.gz, whichever exists, else None."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def require_folder(path: Path, reader: str, expected: Sequence[str]) -> None:
    """Fail unless path is an existing folder, naming the files the reader expects in it."""
    if not path.is_dir():
        state = "is a file, not a folder" if path.exists() else "does not exist"
        raise DataError(
            f"The {reader} reader expects a folder with {', '.join(expected)}, "
            f"but path {str(path)!r} {state}."
        )


def require_files(folder: Path, reader: str, names: Sequence[str]) -> list[Path]:
    """Return the named files in folder (each may be gzipped), failing on any that are missing."""
    found = {name: find_file(folder, name) for name in names}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        raise DataError(
            f"The {reader} reader found no {', '.join(missing)} (nor .gz) in folder "
            f"{str(folder)!r}. Expected files: {', '.join(names)}."
        )
    return [path for path in found.values() if path is not None]


def require_file(path: Path, reader: str, description: str) -> None:
    """Fail unless path is an existing file."""
    if not path.is_file():
        state = "is a folder, not a file" if path.exists() else "does not exist"
        raise DataError(f"The {reader} reader expects {description}, but path {str(path)!r} {state}.")


def iterate_lines(path: Path, encoding: str = "utf-8") -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, text without line ending) for every non-blank line."""
    with open_text(path, encoding) as handle:
        for number, text in enumerate(handle, start=1):
            text = text.rstrip("\r\n")
            if text.strip():
                yield number, text


@dataclass
class SplitLines:
    """The fields of every well-formed line of one file, and the lines that were not."""

    file: str
    lines: list[int] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    fields: list[list[str]] = field(default_factory=list)
    bad_rows: list[BadRow] = field(default_factory=list)

    def column(self, position: int) -> list[str | None]:
        """Field `position` of every line, None where a line is shorter."""
        return [row[position] if position < len(row) else None for row in self.fields]


def split_lines(
    path: Path,
    separator: str,
    field_counts: Sequence[int],
    layout: str,
    encoding: str = "utf-8",
) -> SplitLines:
    """Split each non-blank line on separator, rejecting lines whose field count is not allowed.

    `layout` names the expected fields for the error text, e.g. "user, item, rating".
    """
    result = SplitLines(file=str(path))
    allowed = " or ".join(str(count) for count in field_counts)
    for number, text in iterate_lines(path, encoding):
        row = text.split(separator)
        if len(row) not in field_counts:
            reason = f"expected {allowed} {separator!r}-separated fields ({layout}), found {len(row)}"
            result.bad_rows.append(make_bad_row(result.file, number, text, reason))
            continue
        result.lines.append(number)
        result.texts.append(text)
        result.fields.append(row)
    return result
