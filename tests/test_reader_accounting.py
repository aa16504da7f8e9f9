"""Every line of every input file is accounted for: a row, or a named counter (readers and manifest)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reader_samples import SAMPLES, Sample, csv_sample, physical_lines, write_text
from xdt.config import config_from_dict
from xdt.data.prepare import prepare_dataset
from xdt.data.readers import ReadResult, read_domain
from xdt.data.readers.result import DUPLICATE_ITEMS, METADATA_LINES


def read_sample(sample: Sample, on_bad_rows: str = "skip") -> ReadResult:
    return read_domain(sample.reader, sample.path, on_bad_rows=on_bad_rows, **sample.read_arguments())


def check_accounting(sample: Sample, result: ReadResult) -> None:
    """Each file's counters sum to its lines, and the rows and bad rows they claim are the ones returned."""
    accounts = {account.file: account for account in result.lines}
    assert set(accounts) == {str(file) for file in sample.files}
    for file in sample.files:
        account = accounts[str(file)]
        assert account.lines == physical_lines(file, sample.encoding), account
        assert sum(account.counts.values()) == account.lines, account
    assert sum(account.counts.get("bad_rows", 0) for account in result.lines) == len(result.bad_rows)
    item_accounts = [account for account in result.lines if DUPLICATE_ITEMS in account.counts]
    if item_accounts:
        assert result.items is not None and sum(account.counts["rows"] for account in item_accounts) == len(result.items)
    interaction_accounts = [
        account for account in result.lines if not {DUPLICATE_ITEMS, METADATA_LINES} & set(account.counts)
    ]
    if sample.reader == "llmcdsr":
        # A kept sequence line is one user (the files' users never repeat in the samples).
        kept_lines = sum(account.counts["rows"] for account in interaction_accounts)
        assert kept_lines == result.interactions["user"].nunique()
    else:
        assert sum(account.counts["rows"] for account in interaction_accounts) == len(result.interactions)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_line_is_a_row_or_a_counter(tmp_path: Path, name: str) -> None:
    sample = SAMPLES[name](tmp_path / "input")
    check_accounting(sample, read_sample(sample))


def test_csv_counters_are_exact(tmp_path: Path) -> None:
    sample = csv_sample(tmp_path)
    result = read_sample(sample)
    (account,) = result.lines
    assert account.lines == 11
    assert account.counts == {"rows": 4, "header": 1, "blank_lines": 3, "bad_rows": 2, "continuation_lines": 1}
    assert [(bad.line, bad.reason) for bad in result.bad_rows] == [
        (7, "expected 4 fields like the header, found 3"),
        (8, "rating 'NaN' is not a number"),
    ]


@pytest.mark.parametrize("gzipped", [False, True])
def test_separator_only_lines_are_counted_in_the_manifest(tmp_path: Path, gzipped: bool) -> None:
    """2,400 good rows and the lines ',,,' and ' , , , ': rows_read 2,402, of which 2 blank lines."""
    rows = [f"u{index % 300},b{index},4,{index}" for index in range(2400)]
    rows[700:700] = [",,,"]
    rows[1800:1800] = [" , , , "]
    suffix = ".csv.gz" if gzipped else ".csv"
    source = write_text(tmp_path / f"source{suffix}", "user,item,rating,timestamp\n" + "\n".join(rows) + "\n")
    target = write_text(tmp_path / "target.csv", "user,item\n" + "".join(f"u{index},m{index % 7}\n" for index in range(300)))
    config = config_from_dict(
        {
            "experiment": "t",
            "dataset": {
                "name": "lines",
                "source": {"name": "books", "reader": "csv", "path": str(source)},
                "target": {"name": "movies", "reader": "csv", "path": str(target)},
                "protocol": "ratio",
            },
            "runtime": {"data_dir": str(tmp_path / "data")},
        }
    )
    manifest = prepare_dataset(config)
    books = manifest["domains"]["source"]
    drops = {drop["step"]: drop["rows"] for drop in manifest["drops"] if drop["domain"] == "books"}
    assert books["rows_read"] == 2402
    assert drops["blank_lines"] == 2
    assert books["rows"] == books["rows_read"] - sum(drops.values()) == 2400
    lines = books["input_lines"][str(source)]
    assert lines == {"lines": 2403, "rows": 2400, "header": 1, "blank_lines": 2, "bad_rows": 0}
    assert lines["lines"] == books["rows"] + sum(drops.values()) + lines["header"]
