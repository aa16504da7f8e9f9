"""MovieLens reader: detects the 100K, 1M/10M and 20M/25M/latest layouts inside one folder."""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from xdt.data.readers.bad_rows import settle_bad_rows
from xdt.data.readers.conversion import build_interactions, build_items
from xdt.data.readers.files import SplitLines, find_file, require_folder, split_lines
from xdt.data.readers.options import check_options
from xdt.data.readers.result import BadRow, ReadResult
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
    """A MovieLens folder; titles and genres come from u.item / movies.dat / movies.csv when present."""
    check_options("movielens", options, allowed=())
    require_folder(path, "movielens", LAYOUTS)
    if (ratings := find_file(path, "u.data")) is not None:
        return _read_100k(ratings, find_file(path, "u.item"), on_bad_rows)
    if (ratings := find_file(path, "ratings.dat")) is not None:
        return _read_1m(ratings, find_file(path, "movies.dat"), on_bad_rows)
    if (ratings := find_file(path, "ratings.csv")) is not None:
        return _read_csv_layout(ratings, find_file(path, "movies.csv"), on_bad_rows)
    raise DataError(
        f"The movielens reader found no ratings file in folder {str(path)!r}. "
        f"Expected one of: {', '.join(LAYOUTS)} (each may be gzipped)."
    )


def _ratings_from_lines(parsed: SplitLines) -> tuple[pd.DataFrame, list[BadRow]]:
    """Interactions from `user item rating timestamp` fields."""
    frame, bad_rows = build_interactions(
        parsed.file,
        parsed.lines,
        parsed.texts.__getitem__,
        user=parsed.column(0),
        item=parsed.column(1),
        rating=parsed.column(2),
        timestamp=parsed.column(3),
    )
    return frame, parsed.bad_rows + bad_rows


def _read_100k(ratings: Path, movies: Path | None, on_bad_rows: str) -> ReadResult:
    """u.data (tab-separated) and u.item (pipe-separated, latin-1, 19 genre flags)."""
    frame, bad_rows = _ratings_from_lines(split_lines(ratings, "\t", (4,), "user, item, rating, timestamp"))
    bad_rows = settle_bad_rows(bad_rows, on_bad_rows)
    if movies is None:
        return ReadResult(frame, None, bad_rows, [ratings])
    parsed = split_lines(movies, "|", (5 + len(GENRES_100K),), "id, title, dates, url, 19 genre flags", "latin-1")
    bad_rows += settle_bad_rows(parsed.bad_rows, on_bad_rows)
    categories = [
        "|".join(genre for genre, flag in zip(GENRES_100K, row[5:]) if flag.strip() == "1") for row in parsed.fields
    ]
    items = build_items(parsed.column(0), parsed.column(1), categories)
    return ReadResult(frame, items, bad_rows, [ratings, movies])


def _read_1m(ratings: Path, movies: Path | None, on_bad_rows: str) -> ReadResult:
    """ratings.dat and movies.dat, `::`-separated, latin-1 (MovieLens 1M and 10M)."""
    parsed = split_lines(ratings, "::", (4,), "user, item, rating, timestamp", "latin-1")
    frame, bad_rows = _ratings_from_lines(parsed)
    bad_rows = settle_bad_rows(bad_rows, on_bad_rows)
    if movies is None:
        return ReadResult(frame, None, bad_rows, [ratings])
    parsed = split_lines(movies, "::", (3,), "id, title, genres", "latin-1")
    bad_rows += settle_bad_rows(parsed.bad_rows, on_bad_rows)
    items = build_items(parsed.column(0), parsed.column(1), parsed.column(2))
    return ReadResult(frame, items, bad_rows, [ratings, movies])


def _read_csv_layout(ratings: Path, movies: Path | None, on_bad_rows: str) -> ReadResult:
    """ratings.csv (userId,movieId,rating,timestamp) and movies.csv (movieId,title,genres), UTF-8."""
    table = read_delimited_table(ratings, ",", header=True)
    mapping = {"user": "userId", "item": "movieId", "rating": "rating", "timestamp": "timestamp"}
    columns = resolve_columns(table, mapping, tuple(mapping), (), "columns")
    frame, bad_rows = interactions_from_table(table, columns)
    bad_rows = settle_bad_rows(bad_rows, on_bad_rows)
    if movies is None:
        return ReadResult(frame, None, bad_rows, [ratings])
    movie_table = read_delimited_table(movies, ",", header=True)
    movie_mapping = {"item": "movieId", "title": "title", "categories": "genres"}
    resolve_columns(movie_table, movie_mapping, tuple(movie_mapping), (), "columns")
    bad_rows += settle_bad_rows(movie_table.bad_rows, on_bad_rows)
    items = items_from_table(movie_table, movie_mapping)
    return ReadResult(frame, items, bad_rows, [ratings, movies])
