"""Readers for the tab-separated layouts published with cross-domain papers: Douban, CDRIB, DisenCDR."""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from xdt.data.readers.bad_rows import make_bad_row, settle_bad_rows
from xdt.data.readers.conversion import build_interactions, concatenate_interactions
from xdt.data.readers.files import find_file, require_file, require_files, require_folder, split_lines
from xdt.data.readers.generic import encoding_option
from xdt.data.readers.options import check_options, integer_option, require_domain, text_option
from xdt.data.readers.result import BadRow, FileLines, ReadResult
from xdt.errors import DataError

CDRIB_SHARED_USERS = 2179  # users 0..2178 are the same people in both CDRIB folders (data README)


def read_douban(path: Path, domain: str | None, options: Mapping[str, Any], on_bad_rows: str) -> ReadResult:
    """Douban ratings: lines `user<TAB>item<TAB>rating`, no header, no time; path is the file or its folder."""
    check_options("douban", options, allowed=("encoding",))
    encoding = encoding_option("douban", options)
    if path.is_dir():
        found = find_file(path, "ratings.dat")
        if found is None:
            raise DataError(f"The douban reader found no ratings.dat (nor .gz) in folder {str(path)!r}.")
        path = found
    require_file(path, "douban", "ratings.dat or the folder holding it")
    parsed = split_lines(path, "\t", (3,), "user, item, rating", encoding)
    frame, bad_rows = build_interactions(
        parsed.file,
        parsed.lines,
        parsed.texts.__getitem__,
        user=parsed.column(0),
        item=parsed.column(1),
        rating=parsed.column(2),
    )
    bad_rows = settle_bad_rows(parsed.bad_rows + bad_rows, on_bad_rows)
    return ReadResult(frame, None, bad_rows, [path], [parsed.account(len(frame), len(bad_rows))])


def read_cdrib(path: Path, domain: str | None, options: Mapping[str, Any], on_bad_rows: str) -> ReadResult:
    """CDRIB folder: train/valid/test.txt with `user<TAB>item` lines (implicit feedback).

    Users with id < shared_users are the same person in both folders of a pair and keep the
    bare id ("17"); the others exist in this domain only and become "<domain>:<id>".
    """
    check_options("cdrib", options, allowed=("shared_users", "encoding"))
    domain = require_domain("cdrib", domain)
    encoding = encoding_option("cdrib", options)
    shared_users = integer_option("cdrib", options, "shared_users", CDRIB_SHARED_USERS)
    names = ("train.txt", "valid.txt", "test.txt")
    require_folder(path, "cdrib", names)
    files = require_files(path, "cdrib", names)
    frames, all_bad_rows, accounts = [], [], []
    for file, split in zip(files, ("train", "valid", "test")):
        parsed = split_lines(file, "\t", (2,), "user, item", encoding)
        users, bad_rows = _cdrib_users(parsed.file, parsed.lines, parsed.texts, parsed.column(0), domain, shared_users)
        keep = [position for position, user in enumerate(users) if user is not None]
        items = parsed.column(1)
        texts = [parsed.texts[position] for position in keep]
        frame, _ = build_interactions(
            parsed.file,
            [parsed.lines[position] for position in keep],
            texts.__getitem__,
            user=[users[position] for position in keep],
            item=[items[position] for position in keep],
            split=split,
        )
        frames.append(frame)
        file_bad_rows = settle_bad_rows(parsed.bad_rows + bad_rows, on_bad_rows)
        all_bad_rows += file_bad_rows
        accounts.append(parsed.account(len(frame), len(file_bad_rows)))
    return ReadResult(concatenate_interactions(frames), None, all_bad_rows, files, accounts)


def _cdrib_users(
    file: str,
    lines: list[int],
    texts: list[str],
    raw_users: list[str | None],
    domain: str,
    shared_users: int,
) -> tuple[list[str | None], list[BadRow]]:
    """Map raw CDRIB user ids to user strings; None (and a bad row) where the id is not an integer."""
    users: list[str | None] = []
    bad_rows = []
    for line, text, raw in zip(lines, texts, raw_users):
        if raw is None or not (raw.strip().isascii() and raw.strip().isdigit()):
            users.append(None)
            bad_rows.append(make_bad_row(file, line, text, f"user {raw!r} is not a non-negative integer"))
            continue
        number = int(raw)
        users.append(str(number) if number < shared_users else f"{domain}:{number}")
    return users, bad_rows


def read_disencdr(path: Path, domain: str | None, options: Mapping[str, Any], on_bad_rows: str) -> ReadResult:
    """DisenCDR folder: train.txt and a test file with `user<TAB>item<TAB>1` lines; every user is shared.

    test_file picks test.txt (default; test items never seen in train removed, as the official
    code evaluates) or test_original.txt (exactly one held-out item per user).
    """
    check_options("disencdr", options, allowed=("test_file", "encoding"))
    test_file = text_option("disencdr", options, "test_file", "test.txt")
    encoding = encoding_option("disencdr", options)
    require_folder(path, "disencdr", ("train.txt", test_file))
    files = require_files(path, "disencdr", ("train.txt", test_file))
    frames: list[pd.DataFrame] = []
    all_bad_rows: list[BadRow] = []
    accounts: list[FileLines] = []
    for file, split in zip(files, ("train", "test")):
        parsed = split_lines(file, "\t", (2, 3), "user, item[, rating]", encoding)
        frame, bad_rows = build_interactions(
            parsed.file,
            parsed.lines,
            parsed.texts.__getitem__,
            user=parsed.column(0),
            item=parsed.column(1),
            rating=parsed.column(2),
            split=split,
        )
        frames.append(frame)
        file_bad_rows = settle_bad_rows(parsed.bad_rows + bad_rows, on_bad_rows)
        all_bad_rows += file_bad_rows
        accounts.append(parsed.account(len(frame), len(file_bad_rows)))
    return ReadResult(concatenate_interactions(frames), None, all_bad_rows, files, accounts)
