"""Locating input files (plain or gzip), opening them as text, and splitting lines into fields.

Every way a file can fail to be read (wrong encoding, not gzip, truncated gzip, empty, unreadable)
ends in a DataError naming the file, what was expected and what was found.
"""

import codecs
import gzip
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, BinaryIO

from xdt.data.readers.bad_rows import make_bad_row
from xdt.data.readers.result import BAD_ROWS, BLANK_LINES, ROWS, BadRow, FileLines, file_lines
from xdt.errors import DataError

DEFAULT_ENCODING = "utf-8"
SCAN_CHUNK = 1 << 16


def check_encoding(encoding: str, where: str) -> None:
    """Fail on an encoding name Python does not know, before any file is opened."""
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise DataError(
            f"Unknown encoding {encoding!r} in option encoding of the {where} reader. "
            "Expected a Python codec name such as utf-8, latin-1 or cp1252."
        ) from None


def open_binary(path: Path) -> BinaryIO:
    """Open a file's bytes, decompressed when its name ends in .gz."""
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    return open(path, "rb")


def open_text(path: Path, encoding: str = DEFAULT_ENCODING) -> IO[str]:
    """Open a text file for reading, decompressing it when its name ends in .gz.

    UTF-8 is read as utf-8-sig, so the byte-order mark that spreadsheet exports put first does
    not end up in the first column's name (pyarrow drops it too).
    """
    codec = "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding
    with reading(path, encoding):
        if path.suffix == ".gz":
            return gzip.open(path, "rt", encoding=codec, newline="")
        return open(path, encoding=codec, newline="")


@contextmanager
def reading(path: Path, encoding: str = DEFAULT_ENCODING) -> Iterator[None]:
    """Turn decoding, decompression and I/O failures while reading path into DataErrors naming it."""
    try:
        yield
    except UnicodeDecodeError:
        raise decode_error(path, encoding) from None
    except (OSError, EOFError, zlib.error) as error:
        raise read_error(path, error) from None


def read_error(path: Path, error: OSError | EOFError | zlib.error) -> DataError:
    """The DataError for a file that cannot be read or decompressed."""
    if isinstance(error, EOFError):
        return DataError(
            f"{path}: the gzip stream is truncated ({error}). Expected a complete .gz file; "
            "it was probably cut short while downloading or copying — fetch it again."
        )
    if isinstance(error, (gzip.BadGzipFile, zlib.error)):
        return DataError(
            f"{path}: not a readable gzip file ({error}). Expected gzip-compressed text because the name "
            "ends in .gz; if the file is plain text, rename it without .gz."
        )
    if path.suffix == ".gz":
        return DataError(f"{path}: cannot read the gzip file ({error}). Expected complete gzip-compressed text.")
    return DataError(f"{path}: cannot read the file: {error.strerror or error}.")


def decode_error(path: Path, encoding: str) -> DataError:
    """A DataError giving the line and byte offset of the first bytes that are not valid `encoding`.

    A .gz file that also fails to decompress gets the decompression error, the root cause.
    """
    decoder = codecs.getincrementaldecoder(encoding)()
    offset, newlines = 0, 0
    try:
        with open_binary(path) as handle:
            while True:
                chunk = handle.read(SCAN_CHUNK)
                try:
                    decoder.decode(chunk, final=not chunk)
                except UnicodeDecodeError as error:
                    pending = len(error.object) - len(chunk)  # undecoded bytes carried over from the last chunk
                    start = offset - pending + error.start
                    line = newlines - error.object[:pending].count(b"\n") + error.object[: error.start].count(b"\n") + 1
                    found = error.object[error.start : error.end].hex(" ")
                    return _decode_error(path, encoding, f"{path}:{line}: bytes {found} at byte offset {start:,}")
                if not chunk:
                    break
                offset += len(chunk)
                newlines += chunk.count(b"\n")
    except (OSError, EOFError, zlib.error) as error:
        return read_error(path, error)
    return _decode_error(path, encoding, f"{path}: some bytes")


def _decode_error(path: Path, encoding: str, where: str) -> DataError:
    """The encoding message, with the hint that fixes the usual cause (a Latin-1 or cp1252 file)."""
    compressed = " (offsets count decompressed bytes)" if path.suffix == ".gz" else ""
    return DataError(
        f"{where}{compressed} are not valid {encoding} text. Expected a file in {encoding}; it is probably in "
        "another encoding: set the domain's reader option encoding, e.g. options: {encoding: latin-1}."
    )


def count_lines(path: Path) -> int:
    """Lines in a (possibly gzipped) text file, ended by \\n, \\r\\n or \\r as Python's text mode ends them."""
    lines, previous = 0, b""
    with reading(path), open_binary(path) as handle:
        while chunk := handle.read(SCAN_CHUNK):
            lines += chunk.count(b"\n") + chunk.count(b"\r") - chunk.count(b"\r\n")
            if previous == b"\r" and chunk[:1] == b"\n":
                lines -= 1  # a \r\n split across two chunks
            previous = chunk[-1:]
    return lines + (1 if previous not in (b"", b"\n", b"\r") else 0)


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


def require_files(folder: Path, reader: str, names: Sequence[str], may_be_empty: Sequence[str] = ()) -> list[Path]:
    """Return the named files in folder (each may be gzipped), failing on any that are missing or,
    unless named in may_be_empty (a split that can hold no rows), empty."""
    found = {name: find_file(folder, name) for name in names}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        raise DataError(
            f"The {reader} reader found no {', '.join(missing)} (nor .gz) in folder "
            f"{str(folder)!r}. Expected files: {', '.join(names)}."
        )
    files = [path for path in found.values() if path is not None]
    for name, path in zip(names, files):
        if name not in may_be_empty:
            require_content(path, reader, f"{name} with rows")
    return files


def require_file(path: Path, reader: str, description: str) -> None:
    """Fail unless path is an existing file with content."""
    if not path.is_file():
        state = "is a folder, not a file" if path.exists() else "does not exist"
        raise DataError(f"The {reader} reader expects {description}, but path {str(path)!r} {state}.")
    require_content(path, reader, description)


def require_content(path: Path, reader: str, description: str) -> None:
    """Fail on a zero-byte file, which is a failed copy or download rather than data."""
    if path.stat().st_size == 0:
        raise DataError(
            f"{path}: the file is empty (0 bytes). The {reader} reader expects {description}; "
            "check that it was copied completely."
        )


def iterate_lines(path: Path, encoding: str = DEFAULT_ENCODING) -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, text without line ending) for every line, blank ones included."""
    with open_text(path, encoding) as handle, reading(path, encoding):
        for number, text in enumerate(handle, start=1):
            yield number, text.rstrip("\r\n")


def is_blank(text: str) -> bool:
    """Whether a line holds nothing but spaces."""
    return not text.strip()


@dataclass
class SplitLines:
    """The fields of every well-formed line of one file, the lines that were not, and the line counts."""

    file: str
    lines: list[int] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    fields: list[list[str]] = field(default_factory=list)
    bad_rows: list[BadRow] = field(default_factory=list)
    total: int = 0  # lines in the file
    blank: int = 0  # blank lines, skipped

    def column(self, position: int) -> list[str | None]:
        """Field `position` of every line, None where a line is shorter."""
        return [row[position] if position < len(row) else None for row in self.fields]

    def account(self, rows: int, bad_rows: int, **other: int) -> FileLines:
        """Where this file's lines went, given how many became rows and how many were bad."""
        return file_lines(self.file, self.total, **{ROWS: rows, BLANK_LINES: self.blank, BAD_ROWS: bad_rows}, **other)


def split_lines(
    path: Path,
    separator: str,
    field_counts: Sequence[int],
    layout: str,
    encoding: str = DEFAULT_ENCODING,
) -> SplitLines:
    """Split each non-blank line on separator, rejecting lines whose field count is not allowed.

    `layout` names the expected fields for the error text, e.g. "user, item, rating".
    """
    result = SplitLines(file=str(path))
    allowed = " or ".join(str(count) for count in field_counts)
    for number, text in iterate_lines(path, encoding):
        result.total = number
        if is_blank(text):
            result.blank += 1
            continue
        row = text.split(separator)
        if len(row) not in field_counts:
            reason = f"expected {allowed} {separator!r}-separated fields ({layout}), found {len(row)}"
            result.bad_rows.append(make_bad_row(result.file, number, text, reason))
            continue
        result.lines.append(number)
        result.texts.append(text)
        result.fields.append(row)
    return result
