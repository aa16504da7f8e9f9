"""The on_bad_rows policy: stop at the first unparseable row, or skip and report every one."""

from xdt.data.readers.result import BAD_ROW_TEXT_LIMIT, BadRow
from xdt.errors import DataError

BAD_ROW_POLICIES = ("error", "skip")


def make_bad_row(file: str, line: int, text: str, reason: str) -> BadRow:
    """Build a BadRow with its text cut to the reporting limit."""
    return BadRow(file=file, line=line, text=text[:BAD_ROW_TEXT_LIMIT], reason=reason)


def check_bad_row_policy(on_bad_rows: str) -> None:
    """Reject an on_bad_rows value other than "error" or "skip"."""
    if on_bad_rows not in BAD_ROW_POLICIES:
        raise DataError(
            f"Expected on_bad_rows to be one of {', '.join(BAD_ROW_POLICIES)}. "
            f"Received: on_bad_rows={on_bad_rows!r}"
        )


def settle_bad_rows(bad_rows: list[BadRow], on_bad_rows: str) -> list[BadRow]:
    """Raise for the first bad row under "error"; return them all, in line order, under "skip"."""
    ordered = sorted(bad_rows, key=lambda bad_row: bad_row.line)
    if ordered and on_bad_rows == "error":
        first = ordered[0]
        raise DataError(
            f"{first.file}:{first.line}: {first.reason}. Offending text: {first.text!r}. "
            "Set on_bad_rows: skip to drop such rows (they are counted and reported)."
        )
    return ordered
