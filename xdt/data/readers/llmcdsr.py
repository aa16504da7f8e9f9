"""LLMCDSR reader: mixed two-domain interaction sequences split into one side's rows."""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from xdt.data.readers.bad_rows import make_bad_row, settle_bad_rows
from xdt.data.readers.conversion import build_interactions, concatenate_interactions
from xdt.data.readers.files import is_blank, iterate_lines, require_files, require_folder, split_lines
from xdt.data.readers.generic import encoding_option
from xdt.data.readers.options import check_options, require_domain, text_option
from xdt.data.readers.result import BLANK_LINES, METADATA_LINES, OTHER_SIDE_LINES, BadRow, FileLines, ReadResult, file_lines
from xdt.data.readers.tables import items_from_table, read_delimited_table, resolve_columns
from xdt.errors import DataError

SIDES = ("A", "B")
SEQUENCE_FILES = ("train_A.txt", "train_B.txt", "train_overlap.txt", "valid.txt", "test.txt")


def read_llmcdsr(path: Path, domain: str | None, options: Mapping[str, Any], on_bad_rows: str) -> ReadResult:
    """One side (A or B) of an LLMCDSR folder as one row per interaction.

    Layout: num.txt holds nA then nB, one per line. Sequence files hold `user<TAB>id,id,...`,
    oldest first, with global ids: side A items are 0..nA-1, side B items nA..nA+nB-1 (local id
    + nA). Only this side's ids are kept, as local ids; timestamp is the position in the full
    mixed sequence (0, 1, 2, ...), so the order within and across sides is preserved.

    User ids restart at 1 in every file and name different people in each (the official
    data_partition offsets them per file; valid/test sequences match no train_overlap sequence).
    So: train_A/train_B users (one domain only) become "<domain>:<id>"; train_overlap users keep
    the bare id ("17"), shared by both sides; valid and test users become "valid:<id>" and
    "test:<id>", also shared by both sides.

    valid/test: the last item is the target, split "valid"/"test" on its side. The earlier items
    are that user's history, which exists nowhere else, so they are kept with split "train"
    (a model needs them as input); the official code only feeds them in at evaluation time, so
    exclude users "valid:*"/"test:*" from training to reproduce its protocol exactly.
    """
    check_options("llmcdsr", options, ("side", "encoding"))
    domain = require_domain("llmcdsr", domain)
    encoding = encoding_option("llmcdsr", options)
    side = text_option("llmcdsr", options, "side", None)
    if side not in SIDES:
        raise DataError(f"Expected option side of the llmcdsr reader to be 'A' or 'B'. Received: side={side!r}")
    own_train, items_name = ("train_A.txt", "items_A.tsv") if side == "A" else ("train_B.txt", "items_B.tsv")
    require_folder(path, "llmcdsr", ("num.txt", *SEQUENCE_FILES, "items_A.tsv", "items_B.tsv"))
    num_file, train_file, overlap_file, valid_file, test_file, items_file = require_files(
        path,
        "llmcdsr",
        ("num.txt", own_train, "train_overlap.txt", "valid.txt", "test.txt", items_name),
        may_be_empty=("train_overlap.txt", "valid.txt", "test.txt"),
    )
    (count_a, count_b), num_lines = _read_item_counts(num_file, encoding)
    low, high = (0, count_a) if side == "A" else (count_a, count_a + count_b)
    frames, bad_rows, accounts = [], [], [num_lines]
    for file, user_prefix, target_split in (
        (train_file, f"{domain}:", None),
        (overlap_file, "", None),
        (valid_file, "valid:", "valid"),
        (test_file, "test:", "test"),
    ):
        frame, file_bad_rows, lines = _read_sequences(
            file, user_prefix, target_split, low, high, count_a + count_b, encoding, on_bad_rows
        )
        frames.append(frame)
        bad_rows += file_bad_rows
        accounts.append(lines)
    # Titles are written unquoted (they may contain '"'), so quotes are ordinary characters.
    items_table = read_delimited_table(items_file, "\t", header=True, encoding=encoding, quoted=False)
    mapping = {"item": "item_id", "title": "title"}
    resolve_columns(items_table, mapping, tuple(mapping), (), "columns")
    bad_rows += settle_bad_rows(items_table.bad_rows, on_bad_rows)
    items, items_lines = items_from_table(items_table, mapping)
    files = [num_file, train_file, overlap_file, valid_file, test_file, items_file]
    return ReadResult(concatenate_interactions(frames), items, bad_rows, files, [*accounts, items_lines])


def _read_item_counts(num_file: Path, encoding: str) -> tuple[tuple[int, int], FileLines]:
    """nA and nB from num.txt (two integers, one per line), and the file's line counts."""
    lines = list(iterate_lines(num_file, encoding))
    values = [text.strip() for _, text in lines if not is_blank(text)]
    if len(values) != 2 or not all(value.isascii() and value.isdigit() for value in values):
        raise DataError(f"{num_file}: expected two integers (nA, nB) on two lines. Received: {values!r}")
    account = file_lines(num_file, len(lines), **{METADATA_LINES: 2, BLANK_LINES: len(lines) - 2})
    return (int(values[0]), int(values[1])), account


def _read_sequences(
    file: Path,
    user_prefix: str,
    target_split: str | None,
    low: int,
    high: int,
    item_total: int,
    encoding: str,
    on_bad_rows: str,
) -> tuple[pd.DataFrame, list[BadRow], FileLines]:
    """One row per interaction in [low, high) of every sequence line of one file, the settled bad
    rows, and the line counts (a sequence with none of this side's items is an other-side line)."""
    parsed = split_lines(file, "\t", (2,), "user, comma-separated item ids", encoding)
    bad_rows = list(parsed.bad_rows)
    lines, users, items, positions, splits, texts = [], [], [], [], [], []
    other_side = 0
    for line, text, (user, sequence) in zip(parsed.lines, parsed.texts, parsed.fields):
        tokens = [token.strip() for token in sequence.split(",")]
        wrong = next((token for token in tokens if not _is_item_id(token, item_total)), None)
        if wrong is not None or not user.strip():
            reason = f"item {wrong!r} is not an integer in [0, {item_total})" if wrong is not None else "user is empty"
            bad_rows.append(make_bad_row(parsed.file, line, text, reason))
            continue
        if not any(low <= int(token) < high for token in tokens):
            other_side += 1
            continue
        last = len(tokens) - 1
        for position, token in enumerate(tokens):
            global_id = int(token)
            if not low <= global_id < high:
                continue
            lines.append(line)
            texts.append(text)
            users.append(f"{user_prefix}{user.strip()}")
            items.append(str(global_id - low))
            positions.append(position)
            splits.append(target_split if target_split is not None and position == last else "train")
    frame, _ = build_interactions(
        parsed.file, lines, texts.__getitem__, user=users, item=items, timestamp=positions, split=splits
    )
    bad_rows = settle_bad_rows(bad_rows, on_bad_rows)
    kept_lines = len(parsed.lines) - (len(bad_rows) - len(parsed.bad_rows)) - other_side
    return frame, bad_rows, parsed.account(kept_lines, len(bad_rows), **{OTHER_SIDE_LINES: other_side})


def _is_item_id(token: str, item_total: int) -> bool:
    """Whether a sequence token is a decimal item id below item_total."""
    return token.isascii() and token.isdigit() and int(token) < item_total
