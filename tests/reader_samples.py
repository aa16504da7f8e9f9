"""Tiny valid inputs for every file reader, and an independent count of a file's lines.

Shared by the accounting tests (every line is a row or a named counter) and the fuzz tests (which
mutate these files). Each sample has a few awkward but legal lines: blank ones, a bad row, a
duplicate item, so that every counter is exercised.
"""

from __future__ import annotations

import gzip
import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class Sample:
    """A reader's input written into a folder: what to call read_domain with, and its files."""

    reader: str
    path: Path
    files: list[Path]  # every file the reader reads
    options: dict[str, Any] = field(default_factory=dict)
    domain: str = "books"
    encoding: str = "utf-8"

    def read_arguments(self) -> dict[str, Any]:
        """Keyword arguments for read_domain besides the reader and path."""
        return {"domain": self.domain, "options": self.options}


def write_text(path: Path, text: str, encoding: str = "utf-8") -> Path:
    """Write text, gzipped when the name ends in .gz."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode(encoding)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def text_of(path: Path, encoding: str = "utf-8") -> str:
    """A file's text, decompressed when gzipped; raises when it is not valid gzip or not valid `encoding`."""
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.GzipFile(fileobj=io.BytesIO(data)).read()
    return data.decode(encoding)


def count_lines(path: Path, encoding: str = "utf-8") -> int:
    """Lines ended by \\n, \\r\\n or \\r (a last line without an ending counts too): what Python's text mode sees."""
    text = text_of(path, encoding)
    return len(re.findall(r"\r\n|\r|\n", text)) + (1 if text and not text.endswith(("\n", "\r")) else 0)


def csv_sample(folder: Path, gz: bool = False) -> Sample:
    """A headed CSV with a blank line, separator-only lines, a short row and a NaN rating."""
    text = (
        "user,item,rating,timestamp\n"
        "u1,b1,5,10\n"
        "\n"
        ",,,\n"
        " , , , \n"
        "u1,b2,4,11\n"
        "u2,b1,3\n"
        "u2,b3,NaN,12\n"
        'u3,"b\n4",2,13\n'
        "u3,b1,4,14"
    )
    path = write_text(folder / ("ratings.csv.gz" if gz else "ratings.csv"), text)
    return Sample("csv", path, [path])


def clean_csv_sample(folder: Path, gz: bool = False) -> Sample:
    """A CSV the fast (pyarrow) path takes: clean rows and one empty line."""
    path = write_text(folder / ("clean.csv.gz" if gz else "clean.csv"), "user,item,rating\nu1,b1,5\n\nu2,b2,4\nu3,b1,1\n")
    return Sample("csv", path, [path])


def jsonl_sample(folder: Path, gz: bool = False) -> Sample:
    """JSON lines with a blank line, a broken line, a NaN rating and a null rating, plus an items file."""
    items = write_text(folder / "items.jsonl", '{"item": "b1", "title": "One"}\n{"item": "b1", "title": "Again"}\n\n{"title": "none"}\n')
    text = (
        '{"user": "u1", "item": "b1", "rating": 5}\n'
        "\n"
        '{"user": "u1", "item": "b2", "rating": NaN}\n'
        '{"user": "u2", "item": "b1", "rating": null}\n'
        "{not json\n"
        '{"user": "u3", "item": "b2", "rating": 4, "timestamp": 7}\n'
    )
    path = write_text(folder / ("ratings.jsonl.gz" if gz else "ratings.jsonl"), text)
    return Sample("jsonl", path, [path, items], {"items_path": str(items)})


def parquet_sample(folder: Path) -> Sample:
    """A parquet file with a NaN rating (bad) and a null rating (missing, kept)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "ratings.parquet"
    table = pa.table(
        {
            "user": ["u1", "u1", "u2", "u3"],
            "item": ["b1", "b2", "b1", "b2"],
            "rating": pa.array([5.0, float("nan"), None, 4.0], type=pa.float64()),
        }
    )
    pq.write_table(table, path)
    return Sample("parquet", path, [path])


def movielens_1m_sample(folder: Path, gz: bool = False) -> Sample:
    """ratings.dat (latin-1) with a blank and a short line; movies.dat with a repeated id."""
    suffix = ".gz" if gz else ""
    ratings = write_text(folder / f"ratings.dat{suffix}", "1::10::5::100\n\n1::11::4::101\n2::10::3\n2::12::2::102\n", "latin-1")
    movies = write_text(folder / f"movies.dat{suffix}", "10::Amélie (2001)::Comedy\n11::Up::Drama\n10::Twice::Drama\n\n", "latin-1")
    return Sample("movielens", folder, [ratings, movies], encoding="latin-1")


def movielens_100k_sample(folder: Path) -> Sample:
    """u.data (tab-separated) and u.item (pipe-separated, latin-1, 19 genre flags)."""
    ratings = write_text(folder / "u.data", "1\t10\t5\t100\n1\t11\t4\t101\n\n2\t10\tx\t102\n")
    flags = "|".join(["0"] * 18 + ["1"])
    movies = write_text(folder / "u.item", f"10|Café|01-Jan-1995||http://x|{flags}\n11|Up|||u|{flags}\n", "latin-1")
    return Sample("movielens", folder, [ratings, movies], options={"encoding": "latin-1"}, encoding="latin-1")


def movielens_csv_sample(folder: Path) -> Sample:
    """ratings.csv and movies.csv of the 20M/25M/latest layout."""
    ratings = write_text(folder / "ratings.csv", "userId,movieId,rating,timestamp\n1,10,5.0,100\n\n1,11,4.5,101\n2,10,x,1\n")
    movies = write_text(folder / "movies.csv", 'movieId,title,genres\n10,"Heat, The (1995)",Action\n11,Up,Drama\n11,Up again,Drama\n')
    return Sample("movielens", folder, [ratings, movies])


def amazon_json_sample(folder: Path, gz: bool = False) -> Sample:
    """2014-style reviews with a broken line, and metadata with a Python-literal line and a repeated asin."""
    reviews = write_text(
        folder / ("reviews.json.gz" if gz else "reviews.json"),
        '{"reviewerID": "A1", "asin": "B1", "overall": 5.0, "unixReviewTime": 100}\n'
        "\n"
        '{"reviewerID": "A2", "asin": "B2", "overall": 4.0, "unixReviewTime": 101}\n'
        '{"reviewerID": "A3", "asin": \n',
    )
    metadata = write_text(
        folder / "meta.json",
        "{'asin': 'B1', 'title': 'One', 'categories': [['Books', 'Fiction']]}\n"
        '{"asin": "B2", "title": "Two", "category": ["Books"]}\n'
        '{"asin": "B2", "title": "Two again"}\n',
    )
    return Sample("amazon", reviews, [reviews, metadata], {"metadata_path": str(metadata)})


def amazon_csv_sample(folder: Path) -> Sample:
    """A headerless ratings-only CSV (2014 order) with a blank line."""
    path = write_text(folder / "ratings_Books.csv", "A1,B1,5.0,100\n\nA2,B1,4.0,101\nA2,B2,x,102\n")
    return Sample("amazon", path, [path])


def douban_sample(folder: Path, gz: bool = False) -> Sample:
    """ratings.dat: user, item, rating per tab-separated line."""
    path = write_text(folder / ("ratings.dat.gz" if gz else "ratings.dat"), "1\t10\t5\n\n1\t11\t4\n2\t10\n2\t12\tNaN\n")
    return Sample("douban", folder, [path])


def cdrib_sample(folder: Path, gz: bool = False) -> Sample:
    """A CDRIB folder: train/valid/test.txt with user<TAB>item lines, shared users below 3."""
    suffix = ".gz" if gz else ""
    files = [
        write_text(folder / f"train.txt{suffix}", "0\t0\n0\t1\n\n1\t1\n3\t2\nx\t1\n"),
        write_text(folder / f"valid.txt{suffix}", "2\t0\n"),
        write_text(folder / f"test.txt{suffix}", "2\t1\n1\t2\t9\n"),
    ]
    return Sample("cdrib", folder, files, {"shared_users": 3})


def cdrib_pair_sample(folder: Path) -> Sample:
    """A CDRIB pair a_b / b_a whose shared-user count (3) comes from common_new_reindex.txt and the info logs."""
    own, partner = folder / "a_b", folder / "b_a"
    files = [
        write_text(own / "train.txt", "0\t0\n1\t1\n3\t2\n"),
        write_text(own / "valid.txt", "2\t0\n"),
        write_text(own / "test.txt", "2\t1\n"),
        write_text(own / "common_new_reindex.txt", "50\t7\t1\n50\t8\t1\n\n61\t7\t1\n72\t9\t1\n"),
        write_text(own / "b_a_data_info.txt", "raw_data1 info : 9 9 9\ncommon user num 3\nwrite data finished!\n"),
        write_text(partner / "common_new_reindex.txt", "50\t1\t1\n61\t2\t1\n72\t2\t1\n"),
    ]
    write_text(partner / "train.txt", "0\t5\n")
    return Sample("cdrib", own, files)


def disencdr_sample(folder: Path, gz: bool = False) -> Sample:
    """A DisenCDR folder: train.txt and test.txt with user<TAB>item<TAB>1 lines."""
    suffix = ".gz" if gz else ""
    files = [
        write_text(folder / f"train.txt{suffix}", "0\t0\t1\n0\t1\t1\n\n1\t1\t1\n1\t2\tx\n"),
        write_text(folder / f"test.txt{suffix}", "0\t2\t1\n1\t0\n"),
    ]
    return Sample("disencdr", folder, files)


def llmcdsr_sample(folder: Path, gz: bool = False) -> Sample:
    """An LLMCDSR folder, side A (items 0..2; side B items are 3..4 globally)."""
    suffix = ".gz" if gz else ""
    files = [
        write_text(folder / f"num.txt{suffix}", "3\n2\n"),
        write_text(folder / f"train_A.txt{suffix}", "1\t0,1\n2\t2\n\n3\t0,9\n"),
        write_text(folder / f"train_overlap.txt{suffix}", "1\t0,3,1\n2\t3,4\n"),
        write_text(folder / f"valid.txt{suffix}", "1\t1,3,2\n"),
        write_text(folder / f"test.txt{suffix}", "1\t4,0\n"),
        write_text(folder / f"items_A.tsv{suffix}", 'item_id\ttitle\n0\tA "zero"\n1\tOne\n1\tOne again\n2\tTwo\n'),
        write_text(folder / f"items_B.tsv{suffix}", "item_id\ttitle\n0\tB zero\n1\tB one\n"),
    ]
    read_files = [files[0], files[1], files[2], files[3], files[4], files[5]]
    return Sample("llmcdsr", folder, read_files, {"side": "A"}, domain="a")


def recbole_sample(folder: Path, gz: bool = False) -> Sample:
    """RecBole atomic files: a .inter with a blank line and a short row, a .item with a repeated id."""
    suffix = ".gz" if gz else ""
    inter = write_text(
        folder / f"tiny.inter{suffix}",
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        "u1\tHeat (1995)\t5\t100\n\nu1\tUp (2009)\t4\t101\nu2\tUp (2009)\t3\nu2\tHeat (1995)\t2\t102\n",
    )
    items = write_text(
        folder / f"tiny.item{suffix}",
        "item_id:token\tmovie_title:token\tgenre:token_seq\n"
        "Heat (1995)\tHeat\tAction Crime\nUp (2009)\tUp\tAnimation\nUp (2009)\tUp again\tDrama\n",
    )
    return Sample("recbole", folder, [inter, items])


SampleBuilder = Callable[[Path], Sample]

SAMPLES: dict[str, SampleBuilder] = {
    "csv": csv_sample,
    "csv.gz": lambda folder: csv_sample(folder, gz=True),
    "csv-fast": clean_csv_sample,
    "csv-fast.gz": lambda folder: clean_csv_sample(folder, gz=True),
    "jsonl": jsonl_sample,
    "jsonl.gz": lambda folder: jsonl_sample(folder, gz=True),
    "parquet": parquet_sample,
    "movielens-1m": movielens_1m_sample,
    "movielens-1m.gz": lambda folder: movielens_1m_sample(folder, gz=True),
    "movielens-100k": movielens_100k_sample,
    "movielens-csv": movielens_csv_sample,
    "amazon-json": amazon_json_sample,
    "amazon-json.gz": lambda folder: amazon_json_sample(folder, gz=True),
    "amazon-csv": amazon_csv_sample,
    "douban": douban_sample,
    "douban.gz": lambda folder: douban_sample(folder, gz=True),
    "cdrib": cdrib_sample,
    "cdrib.gz": lambda folder: cdrib_sample(folder, gz=True),
    "cdrib-pair": cdrib_pair_sample,
    "disencdr": disencdr_sample,
    "disencdr.gz": lambda folder: disencdr_sample(folder, gz=True),
    "llmcdsr": llmcdsr_sample,
    "llmcdsr.gz": lambda folder: llmcdsr_sample(folder, gz=True),
    "recbole": recbole_sample,
    "recbole.gz": lambda folder: recbole_sample(folder, gz=True),
}


def physical_lines(path: Path, encoding: str) -> int:
    """Rows of a parquet file, lines of any other file."""
    if path.suffix == ".parquet":
        return len(pd.read_parquet(path))
    return count_lines(path, encoding)
