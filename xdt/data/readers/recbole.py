"""Reader for RecBole atomic files: `<name>.inter` and, beside it, `<name>.item`.

RecBole's format is a header line of `field:type` entries (types token, token_seq, float,
float_seq), then one tab-separated row per line; ids are tokens (strings). Interactions come from
the .inter file (fields user_id, item_id, rating and timestamp by default, the last two optional),
titles and categories from the .item file when there is one (the title field is the first of
title, movie_title, item_name, name that exists; categories from genre or categories, a
token_seq whose space-separated tokens become `|`-joined categories as in the other readers).
A .user file is not read: xdt models no user attributes.

Option `categories_any` / `categories_none` (a list of categories) keeps only the interactions
with an item that has at least one / none of them, which splits one dataset into domains by
genre; every interaction line dropped by that rule is counted under other_domain_lines.
"""

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from xdt.data.readers.bad_rows import settle_bad_rows
from xdt.data.readers.conversion import build_interactions, build_items, item_drops
from xdt.data.readers.files import SplitLines, find_file, iterate_lines, require_file, split_lines
from xdt.data.readers.generic import encoding_option
from xdt.data.readers.options import check_options, text_option
from xdt.data.readers.result import HEADER, OTHER_DOMAIN_LINES, BadRow, FileLines, ReadResult
from xdt.errors import DataError

FIELD_TYPES = ("token", "token_seq", "float", "float_seq")
INTERACTION_FIELDS = {"user": "user_id", "item": "item_id", "rating": "rating", "timestamp": "timestamp"}
TITLE_FIELDS = ("title", "movie_title", "item_name", "name")
CATEGORY_FIELDS = ("genre", "categories", "category", "class")
OPTIONS = ("encoding", "user_field", "item_field", "rating_field", "timestamp_field", "title_field",
           "categories_field", "categories_any", "categories_none")  # fmt: skip


def read_recbole(path: Path, domain: str | None, options: Mapping[str, Any], on_bad_rows: str) -> ReadResult:
    """A .inter file (or a folder holding exactly one) and the .item file of the same name beside it."""
    check_options("recbole", options, OPTIONS)
    encoding = encoding_option("recbole", options)
    inter = _inter_file(path)
    parsed, header = _parse(inter, encoding)
    fields = {key: text_option("recbole", options, f"{key}_field", None) for key in INTERACTION_FIELDS}
    positions = {
        key: _position(header, inter, fields[key] or default, required=key in ("user", "item") or bool(fields[key]))
        for key, default in INTERACTION_FIELDS.items()
    }
    frame, bad_rows = build_interactions(
        parsed.file,
        parsed.lines,
        parsed.texts.__getitem__,
        **{key: (parsed.column(position) if position is not None else None) for key, position in positions.items()},
    )
    bad_rows = settle_bad_rows(parsed.bad_rows + bad_rows, on_bad_rows)
    items_file = find_file(inter.parent, _stem(inter) + ".item")
    items, item_bad_rows, item_accounts = None, [], []
    if items_file is not None:
        items, item_bad_rows, item_account = _read_items(items_file, options, encoding, on_bad_rows)
        item_accounts = [item_account]
    frame, other_domain = _filter_by_categories(frame, items, options, inter)
    account = parsed.account(len(frame), len(bad_rows), **{HEADER: 1, OTHER_DOMAIN_LINES: other_domain})
    files = [inter] + ([items_file] if items_file is not None else [])
    return ReadResult(frame, items, bad_rows + item_bad_rows, files, [account, *item_accounts])


def _stem(path: Path) -> str:
    """The dataset name of an atomic file: its name without .inter / .item (and .gz)."""
    name = path.name.removesuffix(".gz")
    return name.rsplit(".", 1)[0]


def _inter_file(path: Path) -> Path:
    """The .inter file named by path, or the single one in the folder path."""
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.name.endswith((".inter", ".inter.gz")))
        if len(found) != 1:
            names = ", ".join(p.name for p in found) or "none"
            raise DataError(
                f"The recbole reader expects exactly one <name>.inter file in folder {str(path)!r}; found: {names}. "
                "Give the path of the .inter file itself to choose one."
            )
        path = found[0]
    require_file(path, "recbole", "a RecBole .inter file (a name:type header, then tab-separated rows)")
    return path


def _parse(path: Path, encoding: str) -> tuple[SplitLines, list[str]]:
    """The header's field names and the tab-separated rows after it, rows of another width being bad."""
    number, text = next(iterate_lines(path, encoding))
    header = text.split("\t")
    names = []
    for entry in header:
        name, _, kind = entry.partition(":")
        if not name.strip() or kind.strip() not in FIELD_TYPES:
            raise DataError(
                f"{path}:{number}: header field {entry!r} is not name:type with type one of {', '.join(FIELD_TYPES)}. "
                "Expected a RecBole atomic-file header such as 'user_id:token<TAB>item_id:token<TAB>rating:float'."
            )
        names.append(name.strip())
    parsed = split_lines(path, "\t", (len(header),), ", ".join(names), encoding)
    if parsed.lines and parsed.lines[0] == 1:
        del parsed.lines[0], parsed.texts[0], parsed.fields[0]
    return parsed, names


def _position(header: list[str], path: Path, name: str, required: bool) -> int | None:
    """Where field `name` is in the header; a required field that is absent fails naming what is there."""
    if name in header:
        return header.index(name)
    if required:
        raise DataError(
            f"{path}:1: the header has no field {name!r}. Fields found: {', '.join(header)}. "
            "Name the field with the reader's options, e.g. options: {user_field: uid}."
        )
    return None


def _read_items(
    path: Path, options: Mapping[str, Any], encoding: str, on_bad_rows: str
) -> tuple[pd.DataFrame, list[BadRow], FileLines]:
    """Items (id, title, categories) from a .item file, its bad rows and its line account."""
    parsed, header = _parse(path, encoding)
    item_field = text_option("recbole", options, "item_field", None) or INTERACTION_FIELDS["item"]
    item = _position(header, path, item_field, required=True)
    title_field = text_option("recbole", options, "title_field", None)
    category_field = text_option("recbole", options, "categories_field", None)
    title = _position(header, path, title_field, True) if title_field else _first(header, TITLE_FIELDS)
    category = _position(header, path, category_field, True) if category_field else _first(header, CATEGORY_FIELDS)
    titles = parsed.column(title) if title is not None else [None] * len(parsed.fields)
    categories = None
    if category is not None:
        categories = ["|".join(value.split()) if value else value for value in parsed.column(category)]
    bad_rows = settle_bad_rows(parsed.bad_rows, on_bad_rows)
    items = build_items(parsed.column(item), titles, categories)
    drops = item_drops(parsed.column(item), items)
    return items, bad_rows, parsed.account(len(items), len(bad_rows), **{HEADER: 1}, **drops)


def _first(header: list[str], names: Sequence[str]) -> int | None:
    """The position of the first of names in the header, or None."""
    return next((header.index(name) for name in names if name in header), None)


def _category_list(options: Mapping[str, Any], name: str) -> set[str] | None:
    """A categories_any / categories_none option as a set, or None when absent."""
    value = options.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(entry, str) for entry in value):
        raise DataError(
            f"Expected option {name} of the recbole reader to be a non-empty list of category names. "
            f"Received: {name}={value!r}"
        )
    return set(value)


def _filter_by_categories(
    frame: pd.DataFrame, items: pd.DataFrame | None, options: Mapping[str, Any], inter: Path
) -> tuple[pd.DataFrame, int]:
    """Keep the interactions whose item has any of categories_any and none of categories_none."""
    wanted, unwanted = _category_list(options, "categories_any"), _category_list(options, "categories_none")
    if wanted is None and unwanted is None:
        return frame, 0
    if items is None or "categories" not in items:
        raise DataError(
            f"Options categories_any / categories_none of the recbole reader need a .item file with a "
            f"categories field beside {inter} (fields tried: {', '.join(CATEGORY_FIELDS)}, or option categories_field)."
        )
    tags = items.set_index("item")["categories"].str.split("|")
    keep_items = tags.map(
        lambda entry: (wanted is None or bool(wanted & set(entry))) and (unwanted is None or not unwanted & set(entry))
    )
    keep = frame["item"].map(keep_items).fillna(False).astype(bool).to_numpy()
    return frame[keep].reset_index(drop=True), int((~keep).sum())
