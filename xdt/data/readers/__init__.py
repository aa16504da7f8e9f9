"""Readers: one per public format, each turning raw files into the standard interactions frame."""

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from xdt.data.readers.amazon import read_amazon
from xdt.data.readers.bad_rows import check_bad_row_policy
from xdt.data.readers.benchmarks import read_cdrib, read_disencdr, read_douban
from xdt.data.readers.generic import read_csv, read_jsonl, read_parquet
from xdt.data.readers.llmcdsr import read_llmcdsr
from xdt.data.readers.movielens import read_movielens
from xdt.data.readers.options import suggestion
from xdt.data.readers.recbole import read_recbole
from xdt.data.readers.result import BadRow, ReadResult
from xdt.errors import DataError

Reader = Callable[[Path, str | None, Mapping[str, Any], str], ReadResult]

_READER_FUNCTIONS: dict[str, Reader] = {
    "csv": read_csv,
    "parquet": read_parquet,
    "jsonl": read_jsonl,
    "movielens": read_movielens,
    "amazon": read_amazon,
    "douban": read_douban,
    "cdrib": read_cdrib,
    "disencdr": read_disencdr,
    "llmcdsr": read_llmcdsr,
    "recbole": read_recbole,
}
READERS: tuple[str, ...] = tuple(_READER_FUNCTIONS)

__all__ = ["READERS", "BadRow", "ReadResult", "read_domain"]


def read_domain(
    reader: str,
    path: Path,
    *,
    domain: str | None = None,
    options: Mapping[str, Any] | None = None,
    on_bad_rows: str = "error",
) -> ReadResult:
    """Read one domain's raw interactions in the named format."""
    if reader not in _READER_FUNCTIONS:
        raise DataError(
            f"Unknown reader {reader!r}.{suggestion(str(reader), READERS)} Available readers: {', '.join(READERS)}."
        )
    check_bad_row_policy(on_bad_rows)
    return _READER_FUNCTIONS[reader](Path(path), domain, dict(options or {}), on_bad_rows)
