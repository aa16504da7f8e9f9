"""MovieLens reader: detects the 100K, 1M/10M and 20M/25M/latest layouts inside one folder."""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from xdt.data.readers.bad_rows import settle_bad_rows
from xdt.data.readers.conversion import build_interactions, build_items, item_drops
from xdt.data.readers.files import SplitLines, find_file, require_content, require_folder, split_lines
from xdt.data.readers.generic import encoding_option
from xdt.data.readers.options import check_options
from xdt.data.readers.result import BadRow, FileLines, ReadResult
from xdt.data.readers.tables import interactions_from_table, items_from_table, read_delimited_table, resolve_columns
from xdt.errors import DataError

# The 19 genre flags at the end of each u.item line of MovieLens 100K, in file order.
GENRES_100K = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)  # fmt: skip
LAYOUTS = ("u.data (100K)", "ratings.dat (1M, 10M)", "ratings.csv (20M, 25M, latest)")


def read_movielens(path: Path, domain: str | None, options: Mapping[str, Any], on_bad_rows: str) -> ReadResult:
    """A MovieLens folder; titles and genres come from u.item / movies.dat / movies.csv when present.

    Each layout has its published encoding (100K u.item and 1M/10M: latin-1; the rest: utf-8);
    option encoding overrides it for every file of the folder.
    """
    check_options("movielens", options, allowed=("encoding",))
    encoding = encoding_option("movielens", options) if "encoding" in options else None
    require_folder(path, "movielens", LAYOUTS)
    for name in ("u.data", "ratings.dat", "ratings.csv", "u.item", "movies.dat", "movies.csv"):
        if (found := find_file(path, name)) is not None:
            require_content(found, "movielens", f"{name} with rows")
    if (ratings := find_file(path, "u.data")) is not None:
        return _read_100k(ratings, find_file(path, "u.item"), on_bad_rows, encoding)
    if (ratings := find_file(path, "ratings.dat")) is not None:
        return _read_1m(ratings, find_file(path, "movies.dat"), on_bad_rows, encoding)
    if (ratings := find_file(path, "ratings.csv")) is not None:
        return _read_csv_layout(ratings, find_file(path, "movies.csv"), on_bad_rows, encoding)
    raise DataError(
        f"The movielens reader found no ratings file in folder {str(path)!r}. "
        f"Expected one of: {', '.join(LAYOUTS)} (each may be gzipped)."
    )


def _ratings_from_lines(parsed: SplitLines, on_bad_rows: str) -> tuple[pd.DataFrame, list[BadRow], FileLines]:
    """Interactions from `user item rating timestamp` fields, the settled bad rows and the line counts."""
    frame, bad_rows = build_interactions(
        parsed.file,
        parsed.lines,
        parsed.texts.__getitem__,
        user=parsed.column(0),
        item=parsed.column(1),
        rating=parsed.column(2),
        timestamp=parsed.column(3),
    )
    bad_rows = settle_bad_rows(parsed.bad_rows + bad_rows, on_bad_rows)
    return frame, bad_rows, parsed.account(len(frame), len(bad_rows))


def _items_from_lines(parsed: SplitLines, categories: list[str], on_bad_rows: str) -> tuple[pd.DataFrame, list[BadRow], FileLines]:
    """Items from id and title fields, the settled bad rows and the line counts."""
    bad_rows = settle_bad_rows(parsed.bad_rows, on_bad_rows)
    items = build_items(parsed.column(0), parsed.column(1), categories)
    return items, bad_rows, parsed.account(len(items), len(bad_rows), **item_drops(parsed.column(0), items))


def _read_100k(ratings: Path, movies: Path | None, on_bad_rows: str, encoding: str | None) -> ReadResult:
    """u.data (tab-separated) and u.item (pipe-separated, latin-1, 19 genre flags)."""
    parsed = split_lines(ratings, "\t", (4,), "user, item, rating, timestamp", encoding or "utf-8")
    frame, bad_rows, lines = _ratings_from_lines(parsed, on_bad_rows)
    if movies is None:
        return ReadResult(frame, None, bad_rows, [ratings], [lines])
    layout = "id, title, dates, url, 19 genre flags"
    parsed = split_lines(movies, "|", (5 + len(GENRES_100K),), layout, encoding or "latin-1")
    categories = [
        "|".join(genre for genre, flag in zip(GENRES_100K, row[5:]) if flag.strip() == "1") for row in parsed.fields
    ]
    items, item_bad_rows, item_lines = _items_from_lines(parsed, categories, on_bad_rows)
    return ReadResult(frame, items, bad_rows + item_bad_rows, [ratings, movies], [lines, item_lines])


def _read_1m(ratings: Path, movies: Path | None, on_bad_rows: str, encoding: str | None) -> ReadResult:
    """ratings.dat and movies.dat, `::`-separated, latin-1 (MovieLens 1M and 10M)."""
    parsed = split_lines(ratings, "::", (4,), "user, item, rating, timestamp", encoding or "latin-1")
    frame, bad_rows, lines = _ratings_from_lines(parsed, on_bad_rows)
    if movies is None:
        return ReadResult(frame, None, bad_rows, [ratings], [lines])
    parsed = split_lines(movies, "::", (3,), "id, title, genres", encoding or "latin-1")
    items, item_bad_rows, item_lines = _items_from_lines(parsed, parsed.column(2), on_bad_rows)
    return ReadResult(frame, items, bad_rows + item_bad_rows, [ratings, movies], [lines, item_lines])


def _read_csv_layout(ratings: Path, movies: Path | None, on_bad_rows: str, encoding: str | None) -> ReadResult:
    """ratings.csv (userId,movieId,rating,timestamp) and movies.csv (movieId,title,genres), UTF-8."""
    table = read_delimited_table(ratings, ",", header=True, encoding=encoding or "utf-8")
    mapping = {"user": "userId", "item": "movieId", "rating": "rating", "timestamp": "timestamp"}
    columns = resolve_columns(table, mapping, tuple(mapping), (), "columns")
    frame, bad_rows, lines = interactions_from_table(table, columns)
    bad_rows = settle_bad_rows(bad_rows, on_bad_rows)
    if movies is None:
        return ReadResult(frame, None, bad_rows, [ratings], [lines])
    movie_table = read_delimited_table(movies, ",", header=True, encoding=encoding or "utf-8")
    movie_mapping = {"item": "movieId", "title": "title", "categories": "genres"}
    resolve_columns(movie_table, movie_mapping, tuple(movie_mapping), (), "columns")
    bad_rows += settle_bad_rows(movie_table.bad_rows, on_bad_rows)
    items, item_lines = items_from_table(movie_table, movie_mapping)
    return ReadResult(frame, items, bad_rows, [ratings, movies], [lines, item_lines])
