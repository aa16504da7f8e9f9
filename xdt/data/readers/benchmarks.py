"""Readers for the tab-separated layouts published with cross-domain papers: Douban, CDRIB, DisenCDR."""

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from xdt.data.readers.bad_rows import make_bad_row, settle_bad_rows
from xdt.data.readers.conversion import build_interactions, concatenate_interactions
from xdt.data.readers.files import (
    find_file,
    is_blank,
    iterate_lines,
    require_file,
    require_files,
    require_folder,
    split_lines,
)
from xdt.data.readers.generic import encoding_option
from xdt.data.readers.options import check_options, integer_option, require_domain, text_option
from xdt.data.readers.result import BLANK_LINES, METADATA_LINES, BadRow, FileLines, ReadResult, file_lines
from xdt.errors import DataError

CDRIB_COMMON_FILE = "common_new_reindex.txt"  # the shared users' rows, under their pre-reindex ids
CDRIB_INFO_PATTERN = "*_data_info.txt"  # the preprocessing log, with a line "common user num N"
COMMON_USERS_LINE = re.compile(r"common user num\s*:?\s*(\d+)")


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
    bare id ("17"); the others exist in this domain only and become "<domain>:<id>". The count
    comes from option shared_users, else from the folder and its partner (see `cdrib_shared_users`).
    """
    check_options("cdrib", options, allowed=("shared_users", "encoding"))
    domain = require_domain("cdrib", domain)
    encoding = encoding_option("cdrib", options)
    names = ("train.txt", "valid.txt", "test.txt")
    require_folder(path, "cdrib", names)
    files = require_files(path, "cdrib", names, may_be_empty=("valid.txt", "test.txt"))
    if "shared_users" in options:
        evidence = SharedUsers(integer_option("cdrib", options, "shared_users", 0))
    else:
        evidence = cdrib_shared_users(path, encoding)
    shared_users = evidence.count
    frames, all_bad_rows, accounts = [], [], list(evidence.lines)
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
    frame = concatenate_interactions(frames)
    return ReadResult(frame, None, all_bad_rows, [*files, *evidence.files], accounts, evidence.warnings)


@dataclass
class SharedUsers:
    """The shared-user count of a CDRIB pair, the files it was read from and what they disagreed on."""

    count: int = 0
    files: list[Path] = field(default_factory=list)
    lines: list[FileLines] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def cdrib_shared_users(folder: Path, encoding: str) -> SharedUsers:
    """How many users the two folders of a CDRIB pair share (ids 0..count-1), read from the files.

    The evidence: the distinct users of common_new_reindex.txt (the shared users' rows), else the
    "common user num" line of *_data_info.txt, in this folder and in its partner (the sibling
    folder named the other way round: game_video <-> video_game). Two folders whose files of
    the same kind disagree are an error naming both; an info file that contradicts agreeing
    common_new_reindex.txt files is a stale log, reported as a warning.
    """
    found = SharedUsers()
    folders = [folder, *_cdrib_partner(folder)]
    common = [_common_users(file, encoding, found) for candidate in folders if (file := find_file(candidate, CDRIB_COMMON_FILE))]
    infos = [_info_users(file, encoding, found) for candidate in folders for file in sorted(candidate.glob(CDRIB_INFO_PATTERN))]
    infos = [info for info in infos if info is not None]
    primary = common or infos
    if not primary:
        raise DataError(
            f"The cdrib reader cannot tell how many users the two domains share: {folder} (and its partner "
            f"folder) holds no {CDRIB_COMMON_FILE} and no {CDRIB_INFO_PATTERN} with a 'common user num' line. "
            "Set the domain's options: {shared_users: N} (users 0..N-1 are the same people in both folders)."
        )
    (first_file, first), *others = primary
    for other_file, other in others:
        if other != first:
            raise DataError(
                f"The cdrib reader found two shared-user counts: {first:,} in {first_file} and {other:,} in "
                f"{other_file}. Expected both folders of the pair to agree; set the domain's options: "
                "{shared_users: N} to the right one."
            )
    if common:
        counted_in = " and ".join(sorted(str(file) for file, _ in common))
        found.warnings += [
            f"{info_file} says {count:,} common users, but {counted_in} list {first:,}; using {first:,} "
            f"(set options: {{shared_users: N}} to override)."
            for info_file, count in sorted(infos)
            if count != first
        ]
    found.count = first
    return found


def _cdrib_partner(folder: Path) -> list[Path]:
    """The other folder of a CDRIB pair (a_b for b_a) when it exists, spelled like folder."""
    parts = folder.resolve().name.split("_")
    if len(parts) != 2 or parts[0] == parts[1]:
        return []
    partner = folder.resolve().parent / f"{parts[1]}_{parts[0]}"
    spelled = folder.parent / partner.name if folder.name else partner
    return [spelled] if partner.is_dir() else []


def _common_users(file: Path, encoding: str, found: SharedUsers) -> tuple[Path, int]:
    """The number of distinct users (first field) in a common_new_reindex.txt."""
    texts = [text for _, text in iterate_lines(file, encoding)]
    users = {text.split("\t", 1)[0].strip() for text in texts if not is_blank(text)}
    blank = sum(1 for text in texts if is_blank(text))
    found.files.append(file)
    found.lines.append(file_lines(file, len(texts), **{METADATA_LINES: len(texts) - blank, BLANK_LINES: blank}))
    return file, len(users)


def _info_users(file: Path, encoding: str, found: SharedUsers) -> tuple[Path, int] | None:
    """The "common user num" of a CDRIB preprocessing log, None when it has no such line."""
    texts = [text for _, text in iterate_lines(file, encoding)]
    found.files.append(file)
    found.lines.append(file_lines(file, len(texts), **{METADATA_LINES: len(texts)}))
    match = next((match for text in texts if (match := COMMON_USERS_LINE.search(text))), None)
    return None if match is None else (file, int(match.group(1)))


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
    files = require_files(path, "disencdr", ("train.txt", test_file), may_be_empty=(test_file,))
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
