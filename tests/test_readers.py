"""Readers against tiny files written here, including gzip copies and malformed lines."""

import gzip
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from xdt.data.readers import READERS, BadRow, read_domain
from xdt.errors import DataError

SKIP_HINT = "Set on_bad_rows: skip to drop such rows (they are counted and reported)."


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    """Write text (gzipped when the name ends in .gz) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding=encoding) as handle:
            handle.write(text)
    else:
        path.write_text(text, encoding=encoding)
    return path


def interactions(
    user: list[str],
    item: list[str],
    rating: list[float] | None = None,
    timestamp: list[int | None] | None = None,
    split: list[str] | str = "",
) -> pd.DataFrame:
    """The standard frame, spelled out for comparisons."""
    size = len(user)
    return pd.DataFrame(
        {
            "user": pd.Series(user, dtype="str"),
            "item": pd.Series(item, dtype="str"),
            "rating": pd.Series(rating if rating is not None else [float("nan")] * size, dtype="float64"),
            "timestamp": pd.array(timestamp if timestamp is not None else [None] * size, dtype="Int64"),
            "split": pd.Series([split] * size if isinstance(split, str) else split, dtype="str"),
        }
    )


def items_frame(item: list[str], title: list[str], categories: list[str] | None = None) -> pd.DataFrame:
    """The standard items frame."""
    columns = {"item": pd.Series(item, dtype="str"), "title": pd.Series(title, dtype="str")}
    if categories is not None:
        columns["categories"] = pd.Series(categories, dtype="str")
    return pd.DataFrame(columns)


def expect_error(message: str, *args: object, **kwargs: object) -> None:
    """read_domain(*args, **kwargs) raises DataError with exactly message."""
    with pytest.raises(DataError) as caught:
        read_domain(*args, **kwargs)
    assert str(caught.value) == message


# --- registry -------------------------------------------------------------------------------


def test_readers_lists_every_format() -> None:
    assert READERS == ("csv", "parquet", "jsonl", "movielens", "amazon", "douban", "cdrib", "disencdr", "llmcdsr", "recbole")


def test_unknown_reader_suggests_the_closest_name(tmp_path: Path) -> None:
    expect_error(
        "Unknown reader 'movielen'. Did you mean 'movielens'? Available readers: "
        "csv, parquet, jsonl, movielens, amazon, douban, cdrib, disencdr, llmcdsr, recbole.",
        "movielen",
        tmp_path,
    )


def test_unknown_option_suggests_the_closest_name(tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", "user,item\nu,i\n")
    with pytest.raises(DataError, match="Unknown option 'delimeter' for the csv reader. Did you mean 'delimiter'?"):
        read_domain("csv", path, options={"delimeter": ";"})


def test_unknown_bad_row_policy_is_rejected(tmp_path: Path) -> None:
    expect_error(
        "Expected on_bad_rows to be one of error, skip. Received: on_bad_rows='drop'",
        "csv",
        tmp_path,
        on_bad_rows="drop",
    )


# --- csv ------------------------------------------------------------------------------------

CSV_TEXT = "user,item,rating,timestamp\nu1,i1,4,100\nu2,i2,3.5,\n\nu1,i2,,300\n"


@pytest.mark.parametrize("name", ["r.csv", "r.csv.gz"])
def test_csv_reads_plain_and_gzip(tmp_path: Path, name: str) -> None:
    path = write(tmp_path / name, CSV_TEXT)
    result = read_domain("csv", path)
    expected = interactions(["u1", "u2", "u1"], ["i1", "i2", "i2"], [4.0, 3.5, float("nan")], [100, None, 300])
    pd.testing.assert_frame_equal(result.interactions, expected)
    assert result.items is None
    assert result.bad_rows == []
    assert result.files == [path]


def test_csv_headerless_tsv_with_positions_and_items(tmp_path: Path) -> None:
    path = write(tmp_path / "r.tsv", "7\tu1\t5\n8\tu2\t1\n")
    items_path = write(tmp_path / "items.tsv", '9\t"Tab\tTitle"\n7\tSeven\n7\tDuplicate\n')
    options = {
        "delimiter": "\t",
        "header": False,
        "columns": {"user": 1, "item": 0, "rating": 2},
        "items_path": str(items_path),
        "items_columns": {"item": 0, "title": 1},
    }
    result = read_domain("csv", path, options=options)
    pd.testing.assert_frame_equal(result.interactions, interactions(["u1", "u2"], ["7", "8"], [5.0, 1.0]))
    pd.testing.assert_frame_equal(result.items, items_frame(["9", "7"], ["Tab\tTitle", "Seven"]))
    assert result.files == [path, items_path]


def test_csv_renamed_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", "who;what;when\na;b;5\n")
    options = {"delimiter": ";", "columns": {"user": "who", "item": "what", "timestamp": "when"}}
    result = read_domain("csv", path, options=options)
    pd.testing.assert_frame_equal(result.interactions, interactions(["a"], ["b"], timestamp=[5]))


MALFORMED_CSV = "user,item,rating,timestamp\nu1,i1,4,100\nu2,i2,abc,200\nu3,i3\nu4,i4,2,1.5\nu5,i5,1,5\n"


def test_csv_first_bad_row_is_an_error_with_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", MALFORMED_CSV)
    expect_error(
        f"{path}:3: rating 'abc' is not a number. Offending text: 'u2,i2,abc,200'. {SKIP_HINT}",
        "csv",
        path,
    )


def test_csv_skip_reports_every_bad_row(tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", MALFORMED_CSV)
    result = read_domain("csv", path, on_bad_rows="skip")
    pd.testing.assert_frame_equal(result.interactions, interactions(["u1", "u5"], ["i1", "i5"], [4.0, 1.0], [100, 5]))
    assert result.bad_rows == [
        BadRow(str(path), 3, "u2,i2,abc,200", "rating 'abc' is not a number"),
        BadRow(str(path), 4, "u3,i3", "expected 4 fields like the header, found 2"),
        BadRow(str(path), 5, "u4,i4,2,1.5", "timestamp '1.5' is not an integer"),
    ]


def test_bad_row_text_is_truncated(tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", "user,item,rating\nu,i," + "x" * 300 + "\n")
    result = read_domain("csv", path, on_bad_rows="skip")
    assert len(result.bad_rows[0].text) == 200


def test_csv_missing_columns_are_named(tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", "userId,item\nu,i\n")
    expect_error(f"{path}: columns not found: 'user' (for user). Columns found: userId, item.", "csv", path)


def test_csv_headerless_without_columns_asks_for_positions(tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", "u,i\n")
    with pytest.raises(DataError, match="has no header, so option columns must give the column position"):
        read_domain("csv", path, options={"header": False})


def test_csv_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "absent.csv"
    expect_error(f"The csv reader expects an interactions file, but path {str(path)!r} does not exist.", "csv", path)


# --- parquet and jsonl ------------------------------------------------------------------------


def test_parquet_with_column_mapping(tmp_path: Path) -> None:
    path = tmp_path / "r.parquet"
    pd.DataFrame({"u": [1, 2], "i": ["a", None], "score": [5.0, 2.0]}).to_parquet(path)
    result = read_domain("parquet", path, options={"columns": {"user": "u", "item": "i", "rating": "score"}})
    expected = interactions(["1", "2"], ["a", None], [5.0, 2.0])
    pd.testing.assert_frame_equal(result.interactions, expected)


def test_parquet_bad_value_names_row_number_plus_one(tmp_path: Path) -> None:
    path = tmp_path / "r.parquet"
    pd.DataFrame({"user": ["a", "b"], "item": ["x", "y"], "rating": ["1", "bad"]}).to_parquet(path)
    result = read_domain("parquet", path, on_bad_rows="skip")
    assert result.bad_rows == [
        BadRow(str(path), 2, '{"user": "b", "item": "y", "rating": "bad"}', "rating 'bad' is not a number")
    ]


def test_parquet_missing_columns_are_named(tmp_path: Path) -> None:
    path = tmp_path / "r.parquet"
    pd.DataFrame({"user": ["a"], "product": ["x"]}).to_parquet(path)
    expect_error(f"{path}: columns not found: 'item' (for item). Columns found: user, product.", "parquet", path)


JSONL_TEXT = '{"user": "a", "item": "x", "rating": 5}\n{"user": "b", "item": "y"}\nnot json\n[1]\n'


def test_jsonl_skips_and_reports_bad_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "r.jsonl", JSONL_TEXT)
    result = read_domain("jsonl", path, on_bad_rows="skip")
    pd.testing.assert_frame_equal(result.interactions, interactions(["a", "b"], ["x", "y"], [5.0, float("nan")]))
    assert result.bad_rows == [
        BadRow(str(path), 3, "not json", "not valid JSON (Expecting value at column 1)"),
        BadRow(str(path), 4, "[1]", "expected a JSON object, found list"),
    ]


def test_jsonl_first_bad_line_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "r.jsonl", JSONL_TEXT)
    expect_error(
        f"{path}:3: not valid JSON (Expecting value at column 1). Offending text: 'not json'. {SKIP_HINT}",
        "jsonl",
        path,
    )


# --- movielens ------------------------------------------------------------------------------


def test_movielens_100k(tmp_path: Path) -> None:
    write(tmp_path / "u.data", "196\t242\t3\t881250949\n186\t302\t3\t891717742\n")
    flags = ["0"] * 19
    flags[1], flags[5] = "1", "1"  # Action, Comedy
    write(tmp_path / "u.item", f"242|Kolya (1996)|24-Jan-1997||http://x|{'|'.join(flags)}\n", "latin-1")
    result = read_domain("movielens", tmp_path)
    expected = interactions(["196", "186"], ["242", "302"], [3.0, 3.0], [881250949, 891717742])
    pd.testing.assert_frame_equal(result.interactions, expected)
    pd.testing.assert_frame_equal(result.items, items_frame(["242"], ["Kolya (1996)"], ["Action|Comedy"]))


def test_movielens_1m_latin1_and_bad_line(tmp_path: Path) -> None:
    write(tmp_path / "ratings.dat", "1::1193::5::978300760\n1::661\n")
    write(tmp_path / "movies.dat", "1193::Café (1975)::Drama|Comedy\n", "latin-1")
    expect_error(
        f"{tmp_path / 'ratings.dat'}:2: expected 4 '::'-separated fields (user, item, rating, timestamp), "
        f"found 2. Offending text: '1::661'. {SKIP_HINT}",
        "movielens",
        tmp_path,
    )
    result = read_domain("movielens", tmp_path, on_bad_rows="skip")
    pd.testing.assert_frame_equal(result.interactions, interactions(["1"], ["1193"], [5.0], [978300760]))
    pd.testing.assert_frame_equal(result.items, items_frame(["1193"], ["Café (1975)"], ["Drama|Comedy"]))


def test_movielens_csv_layout_gzip(tmp_path: Path) -> None:
    write(tmp_path / "ratings.csv.gz", "userId,movieId,rating,timestamp\n1,2,3.5,1112486027\n")
    write(tmp_path / "movies.csv", 'movieId,title,genres\n2,"Jumanji, The (1995)",Adventure|Children\n')
    result = read_domain("movielens", tmp_path)
    pd.testing.assert_frame_equal(result.interactions, interactions(["1"], ["2"], [3.5], [1112486027]))
    pd.testing.assert_frame_equal(result.items, items_frame(["2"], ["Jumanji, The (1995)"], ["Adventure|Children"]))


def test_movielens_csv_missing_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "ratings.csv", "user,movieId,rating,timestamp\n1,2,3,4\n")
    expect_error(
        f"{path}: columns not found: 'userId' (for user). Columns found: user, movieId, rating, timestamp.",
        "movielens",
        tmp_path,
    )


def test_movielens_empty_folder_lists_expected_files(tmp_path: Path) -> None:
    expect_error(
        f"The movielens reader found no ratings file in folder {str(tmp_path)!r}. Expected one of: "
        "u.data (100K), ratings.dat (1M, 10M), ratings.csv (20M, 25M, latest) (each may be gzipped).",
        "movielens",
        tmp_path,
    )


# --- amazon ---------------------------------------------------------------------------------


def test_amazon_ratings_only_csv(tmp_path: Path) -> None:
    path = write(tmp_path / "ratings.csv", "A1,B001,5.0,1360000000\nA2,B002,3.0,1370000000\n")
    result = read_domain("amazon", path)
    expected = interactions(["A1", "A2"], ["B001", "B002"], [5.0, 3.0], [1360000000, 1370000000])
    pd.testing.assert_frame_equal(result.interactions, expected)
    item_first = read_domain("amazon", path, options={"column_order": "item,user,rating,timestamp"})
    assert item_first.interactions["user"].tolist() == ["B001", "B002"]


@pytest.mark.parametrize("name", ["reviews.json", "reviews.json.gz"])
def test_amazon_2014_reviews_with_metadata(tmp_path: Path, name: str) -> None:
    reviews = [
        {"reviewerID": "A1", "asin": "B001", "overall": 4.0, "unixReviewTime": 1400000000, "reviewText": "ok"},
        {"reviewerID": "A2", "asin": "B002", "overall": 5.0, "unixReviewTime": 1400000001},
    ]
    path = write(tmp_path / name, "".join(json.dumps(review) + "\n" for review in reviews))
    # 2014 metadata is written as Python literals (single quotes), not JSON.
    metadata = write(
        tmp_path / "meta.json",
        "{'asin': 'B001', 'title': 'Kettle', 'categories': [['Home', 'Kitchen'], ['Home', 'Tea']]}\n"
        '{"asin": "B002", "category": ["Tools"], "brand": "X"}\n',
    )
    result = read_domain("amazon", path, options={"metadata_path": str(metadata)})
    expected = interactions(["A1", "A2"], ["B001", "B002"], [4.0, 5.0], [1400000000, 1400000001])
    pd.testing.assert_frame_equal(result.interactions, expected)
    expected_items = items_frame(["B001", "B002"], ["Kettle", ""], ["Home|Kitchen|Tea", "Tools"])
    pd.testing.assert_frame_equal(result.items, expected_items)
    assert result.files == [path, metadata]


def test_amazon_2023_reviews_keep_millisecond_timestamps(tmp_path: Path) -> None:
    review = {"user_id": "AG", "parent_asin": "B0P", "asin": "B0C", "rating": 3.0, "timestamp": 1588687728923}
    path = write(tmp_path / "reviews.jsonl", json.dumps(review) + "\n" + '{"user_id": "AH", "parent_asin"\n')
    result = read_domain("amazon", path, on_bad_rows="skip")
    pd.testing.assert_frame_equal(result.interactions, interactions(["AG"], ["B0P"], [3.0], [1588687728923]))
    assert [bad_row.line for bad_row in result.bad_rows] == [2]


def test_amazon_unknown_json_keys(tmp_path: Path) -> None:
    path = write(tmp_path / "reviews.jsonl", '{"who": "a", "what": "b"}\n')
    expect_error(
        f"{path}: JSON keys match no known Amazon review layout. Expected 2014/2018: reviewerID, asin, "
        "overall, unixReviewTime; 2023: user_id, parent_asin, rating, timestamp. Keys found: who, what.",
        "amazon",
        path,
    )


# --- douban ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ratings.dat", "ratings.dat.gz"])
def test_douban_folder_plain_and_gzip(tmp_path: Path, name: str) -> None:
    write(tmp_path / name, "1\t1630\t4\n2\t82\t5")  # the real files end without a newline
    result = read_domain("douban", tmp_path)
    pd.testing.assert_frame_equal(result.interactions, interactions(["1", "2"], ["1630", "82"], [4.0, 5.0]))
    assert result.files == [tmp_path / name]


def test_douban_bad_rows(tmp_path: Path) -> None:
    path = write(tmp_path / "ratings.dat", "1\t2\t3\n1\t2\n1\t3\tfive\n")
    expect_error(
        f"{path}:2: expected 3 '\\t'-separated fields (user, item, rating), found 2. "
        f"Offending text: '1\\t2'. {SKIP_HINT}",
        "douban",
        path,
    )
    result = read_domain("douban", path, on_bad_rows="skip")
    assert result.bad_rows == [
        BadRow(str(path), 2, "1\t2", "expected 3 '\\t'-separated fields (user, item, rating), found 2"),
        BadRow(str(path), 3, "1\t3\tfive", "rating 'five' is not a number"),
    ]
    assert len(result.interactions) == 1


def test_douban_folder_without_ratings(tmp_path: Path) -> None:
    expect_error(f"The douban reader found no ratings.dat (nor .gz) in folder {str(tmp_path)!r}.", "douban", tmp_path)


# --- cdrib ----------------------------------------------------------------------------------


def write_cdrib(folder: Path, train: str = "0\t5\n3\t6\n", valid: str = "1\t5\n", test: str = "2\t7\n") -> Path:
    """A CDRIB folder with the three split files."""
    write(folder / "train.txt", train)
    write(folder / "valid.txt", valid)
    write(folder / "test.txt", test)
    return folder


def test_cdrib_prefixes_private_users(tmp_path: Path) -> None:
    folder = write_cdrib(tmp_path)
    result = read_domain("cdrib", folder, domain="game", options={"shared_users": 3})
    expected = interactions(["0", "game:3", "1", "2"], ["5", "6", "5", "7"], split=["train", "train", "valid", "test"])
    pd.testing.assert_frame_equal(result.interactions, expected)
    assert result.files == [folder / "train.txt", folder / "valid.txt", folder / "test.txt"]


def write_cdrib_pair(root: Path, common: tuple[int, int] | None, info: tuple[int, int] | None) -> tuple[Path, Path]:
    """Folders game_video and video_game; each may have a common_new_reindex.txt and an info log with its count."""
    folders = (write_cdrib(root / "game_video", train="4\t1\n5\t1\n"), write_cdrib(root / "video_game", train="4\t2\n5\t2\n"))
    for position, folder in enumerate(folders):
        if common is not None:
            write(folder / "common_new_reindex.txt", "".join(f"{100 + user}\t{user}\t1\n" for user in range(common[position])))
        if info is not None:
            partner = folders[1 - position].name
            write(folder / f"{partner}_data_info.txt", f"raw_data1 info : 1 2 3\ncommon user num {info[position]}\n")
    return folders


def test_cdrib_derives_shared_users_from_the_pair(tmp_path: Path) -> None:
    game, video = write_cdrib_pair(tmp_path, common=(5, 5), info=(5, 5))
    result = read_domain("cdrib", game, domain="game")
    assert result.interactions["user"].tolist()[:2] == ["4", "game:5"]
    assert result.warnings == []
    assert result.files[3:] == [
        game / "common_new_reindex.txt",
        video / "common_new_reindex.txt",
        game / "video_game_data_info.txt",
        video / "game_video_data_info.txt",
    ]


def test_cdrib_info_logs_alone_give_the_count(tmp_path: Path) -> None:
    game, _ = write_cdrib_pair(tmp_path, common=None, info=(5, 5))
    assert read_domain("cdrib", game, domain="game").interactions["user"].tolist()[:2] == ["4", "game:5"]


def test_cdrib_contradictory_info_logs_name_both_files_and_values(tmp_path: Path) -> None:
    game, video = write_cdrib_pair(tmp_path, common=None, info=(5, 6))
    expect_error(
        f"The cdrib reader found two shared-user counts: 5 in {game / 'video_game_data_info.txt'} and 6 in "
        f"{video / 'game_video_data_info.txt'}. Expected both folders of the pair to agree; set the domain's "
        "options: {shared_users: N} to the right one.",
        "cdrib",
        game,
        domain="game",
    )
    assert read_domain("cdrib", game, domain="game", options={"shared_users": 6}).interactions["user"].tolist()[:2] == ["4", "5"]


def test_cdrib_contradictory_common_files_name_both(tmp_path: Path) -> None:
    game, video = write_cdrib_pair(tmp_path, common=(5, 4), info=None)
    with pytest.raises(DataError, match=r"5 in .*game_video/common_new_reindex.txt and 4 in .*video_game/common_new_reindex.txt"):
        read_domain("cdrib", video.parent / "game_video", domain="game")


def test_cdrib_stale_info_log_is_a_warning(tmp_path: Path) -> None:
    """As in the published Game/Video data: one log says 2,193, the shared users' files hold 2,179."""
    game, _ = write_cdrib_pair(tmp_path, common=(5, 5), info=(7, 5))
    result = read_domain("cdrib", game, domain="game")
    assert result.interactions["user"].tolist()[:2] == ["4", "game:5"]
    assert result.warnings == [
        f"{game / 'video_game_data_info.txt'} says 7 common users, but {game / 'common_new_reindex.txt'} and "
        f"{tmp_path / 'video_game' / 'common_new_reindex.txt'} list 5; using 5 (set options: {{shared_users: N}} to override)."
    ]


def test_cdrib_without_evidence_asks_for_the_option(tmp_path: Path) -> None:
    folder = write_cdrib(tmp_path / "games")
    expect_error(
        f"The cdrib reader cannot tell how many users the two domains share: {folder} (and its partner folder) "
        "holds no common_new_reindex.txt and no *_data_info.txt with a 'common user num' line. Set the domain's "
        "options: {shared_users: N} (users 0..N-1 are the same people in both folders).",
        "cdrib",
        folder,
        domain="game",
    )


def test_cdrib_needs_domain(tmp_path: Path) -> None:
    expect_error(
        "The cdrib reader needs the domain name to tell domain-private users apart "
        "(they are written as '<domain>:<id>'). Received: domain=None",
        "cdrib",
        write_cdrib(tmp_path),
    )


def test_cdrib_bad_user_id(tmp_path: Path) -> None:
    folder = write_cdrib(tmp_path, train="0\t5\nx\t6\n0\t1\t2\n")
    result = read_domain("cdrib", folder, domain="game", options={"shared_users": 3}, on_bad_rows="skip")
    train_file = str(folder / "train.txt")
    assert result.bad_rows == [
        BadRow(train_file, 2, "x\t6", "user 'x' is not a non-negative integer"),
        BadRow(train_file, 3, "0\t1\t2", "expected 2 '\\t'-separated fields (user, item), found 3"),
    ]
    assert len(result.interactions) == 3


def test_cdrib_missing_split_file(tmp_path: Path) -> None:
    write(tmp_path / "train.txt", "0\t1\n")
    expect_error(
        f"The cdrib reader found no valid.txt, test.txt (nor .gz) in folder {str(tmp_path)!r}. "
        "Expected files: train.txt, valid.txt, test.txt.",
        "cdrib",
        tmp_path,
        domain="game",
    )


# --- disencdr -------------------------------------------------------------------------------


def test_disencdr_train_and_chosen_test_file(tmp_path: Path) -> None:
    write(tmp_path / "train.txt", "0\t10\t1\n1\t11\t1\n")
    write(tmp_path / "test.txt", "0\t12\t1\n")
    write(tmp_path / "test_original.txt", "0\t12\t1\n1\t99\t1\n")
    result = read_domain("disencdr", tmp_path)
    expected = interactions(["0", "1", "0"], ["10", "11", "12"], [1.0, 1.0, 1.0], split=["train", "train", "test"])
    pd.testing.assert_frame_equal(result.interactions, expected)
    original = read_domain("disencdr", tmp_path, options={"test_file": "test_original.txt"})
    assert original.interactions["item"].tolist() == ["10", "11", "12", "99"]


def test_disencdr_missing_folder(tmp_path: Path) -> None:
    path = tmp_path / "absent"
    expect_error(
        f"The disencdr reader expects a folder with train.txt, test.txt, but path {str(path)!r} does not exist.",
        "disencdr",
        path,
    )


# --- llmcdsr --------------------------------------------------------------------------------


def write_llmcdsr(folder: Path, test: str = "1\t4,0\n") -> Path:
    """An LLMCDSR folder with nA = 2 (ids 0, 1) and nB = 3 (ids 2, 3, 4 = local 0, 1, 2)."""
    write(folder / "num.txt", "2\n3\n")
    write(folder / "train_A.txt", "1\t0,1\n")
    write(folder / "train_B.txt", "1\t2,3\n")
    write(folder / "train_overlap.txt", "1\t1,4,0\n")
    write(folder / "valid.txt", "1\t0,2,3\n")
    write(folder / "test.txt", test)
    write(folder / "items_A.tsv", "item_id\tasin\ttitle\n0\tA0\tTea\n1\tA1\t\"Best\" Rice\n")
    write(folder / "items_B.tsv", "item_id\tasin\ttitle\n0\tB0\tPan\n1\tB1\tPot\n2\tB2\tCup\n")
    return folder


def test_llmcdsr_side_a(tmp_path: Path) -> None:
    result = read_domain("llmcdsr", write_llmcdsr(tmp_path), domain="food", options={"side": "A"})
    # valid "0,2,3": target 3 is a B item, so on side A item 0 is only history (train).
    # test "4,0": target 0 is an A item (test).
    expected = interactions(
        ["food:1", "food:1", "1", "1", "valid:1", "test:1"],
        ["0", "1", "1", "0", "0", "0"],
        timestamp=[0, 1, 0, 2, 0, 1],
        split=["train", "train", "train", "train", "train", "test"],
    )
    pd.testing.assert_frame_equal(result.interactions, expected)
    pd.testing.assert_frame_equal(result.items, items_frame(["0", "1"], ["Tea", '"Best" Rice']))
    assert [path.name for path in result.files] == [
        "num.txt", "train_A.txt", "train_overlap.txt", "valid.txt", "test.txt", "items_A.tsv",
    ]  # fmt: skip


def test_llmcdsr_side_b_maps_back_to_local_ids(tmp_path: Path) -> None:
    result = read_domain("llmcdsr", write_llmcdsr(tmp_path), domain="kitchen", options={"side": "B"})
    expected = interactions(
        ["kitchen:1", "kitchen:1", "1", "valid:1", "valid:1", "test:1"],
        ["0", "1", "2", "0", "1", "2"],
        timestamp=[0, 1, 1, 1, 2, 0],
        split=["train", "train", "train", "train", "valid", "train"],
    )
    pd.testing.assert_frame_equal(result.interactions, expected)
    assert result.items["title"].tolist() == ["Pan", "Pot", "Cup"]


def test_llmcdsr_item_outside_the_id_range(tmp_path: Path) -> None:
    folder = write_llmcdsr(tmp_path, test="1\t4,0\n2\t0,5\n")
    expect_error(
        f"{folder / 'test.txt'}:2: item '5' is not an integer in [0, 5). Offending text: '2\\t0,5'. {SKIP_HINT}",
        "llmcdsr",
        folder,
        domain="food",
        options={"side": "A"},
    )


def test_llmcdsr_needs_a_side(tmp_path: Path) -> None:
    expect_error(
        "Expected option side of the llmcdsr reader to be 'A' or 'B'. Received: side=None",
        "llmcdsr",
        write_llmcdsr(tmp_path),
        domain="food",
    )


def test_items_columns_without_items_path(tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", "user,item\nu,i\n")
    expect_error(
        "Option items_columns of the csv reader needs option items_path. Received: items_path=None",
        "csv",
        path,
        options={"items_columns": {"item": "id", "title": "name"}},
    )


# --- files that cannot be read: always a DataError naming the file, never a traceback ----------

LATIN1_HINT = "set the domain's reader option encoding, e.g. options: {encoding: latin-1}."


@pytest.mark.parametrize("policy", ["error", "skip"])
@pytest.mark.parametrize("reader", ["csv", "jsonl"])
def test_a_latin1_byte_names_line_offset_and_the_encoding_option(tmp_path: Path, policy: str, reader: str) -> None:
    lines = ["user,item", "u1,i1", "u2,café"] if reader == "csv" else ['{"user": "u1", "item": "i1"}', '{"user": "u2", "item": "café"}']
    path = tmp_path / f"r.{reader}"
    path.write_bytes("\n".join(lines).encode("latin-1") + b"\n")
    offset = len("\n".join(lines).encode("latin-1").split(b"\xe9")[0])
    expect_error(
        f"{path}:{len(lines)}: bytes e9 at byte offset {offset} are not valid utf-8 text. Expected a file in utf-8; "
        f"it is probably in another encoding: {LATIN1_HINT}",
        reader,
        path,
        on_bad_rows=policy,
    )
    read = read_domain(reader, path, options={"encoding": "latin-1"}, on_bad_rows=policy)
    assert read.interactions["item"].tolist() == ["i1", "café"]


def test_a_bad_byte_in_a_gzip_file_counts_decompressed_offsets(tmp_path: Path) -> None:
    path = tmp_path / "ratings.dat.gz"
    path.write_bytes(gzip.compress(b"1\t10\t5\n2\t1\xff\t4\n"))
    expect_error(
        f"{path}:2: bytes ff at byte offset 10 (offsets count decompressed bytes) are not valid utf-8 text. "
        f"Expected a file in utf-8; it is probably in another encoding: {LATIN1_HINT}",
        "douban",
        path,
    )


@pytest.mark.parametrize("reader", ["csv", "jsonl", "amazon"])
def test_a_gz_file_that_is_not_gzip_is_named(tmp_path: Path, reader: str) -> None:
    path = write(tmp_path / "r.csv", "user,item\nu,i\n").rename(tmp_path / "r.csv.gz")
    expect_error(
        f"{path}: not a readable gzip file (Not a gzipped file (b'us')). Expected gzip-compressed text because the "
        "name ends in .gz; if the file is plain text, rename it without .gz.",
        reader,
        path,
    )


@pytest.mark.parametrize("reader", ["csv", "jsonl"])
def test_a_truncated_gz_file_is_named(tmp_path: Path, reader: str) -> None:
    rows = "".join(f"u{index * 7919 % 10007},i{index * 104729 % 99991}\n" for index in range(3000))
    data = gzip.compress(("user,item\n" + rows).encode())
    path = tmp_path / "r.csv.gz"
    path.write_bytes(data[: len(data) // 2])
    expect_error(
        f"{path}: the gzip stream is truncated (Compressed file ended before the end-of-stream marker was reached). "
        "Expected a complete .gz file; it was probably cut short while downloading or copying — fetch it again.",
        reader,
        path,
    )


@pytest.mark.parametrize(
    ("reader", "name", "expected"),
    [
        ("csv", "r.csv", "an interactions file"),
        ("jsonl", "r.jsonl", "an interactions file"),
        ("parquet", "r.parquet", "an interactions file"),
        ("douban", "ratings.dat", "ratings.dat or the folder holding it"),
        ("amazon", "reviews.json.gz", "a reviews JSON-lines file or a ratings-only CSV"),
    ],
)
def test_a_zero_byte_file_is_named(tmp_path: Path, reader: str, name: str, expected: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"")
    expect_error(
        f"{path}: the file is empty (0 bytes). The {reader} reader expects {expected}; check that it was copied completely.",
        reader,
        path,
    )


def test_a_zero_byte_train_file_is_named_but_an_empty_split_is_allowed(tmp_path: Path) -> None:
    folder = write_cdrib(tmp_path, valid="")
    assert (folder / "valid.txt").stat().st_size == 0
    result = read_domain("cdrib", folder, domain="game", options={"shared_users": 3})
    assert result.interactions["split"].tolist() == ["train", "train", "test"]
    write(folder / "train.txt", "")
    expect_error(
        f"{folder / 'train.txt'}: the file is empty (0 bytes). The cdrib reader expects train.txt with rows; "
        "check that it was copied completely.",
        "cdrib",
        folder,
        domain="game",
        options={"shared_users": 3},
    )


def test_a_csv_of_blank_lines_has_no_header(tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", "\n , \n")
    expect_error(f"{path}: no header line, only 2 blank lines. Expected a header naming the columns, then rows.", "csv", path)


def test_an_unknown_encoding_is_named(tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", "user,item\nu,i\n")
    expect_error(
        "Unknown encoding 'latin-9x' in option encoding of the csv reader. "
        "Expected a Python codec name such as utf-8, latin-1 or cp1252.",
        "csv",
        path,
        options={"encoding": "latin-9x"},
    )


def test_every_text_reader_accepts_the_encoding_option(tmp_path: Path) -> None:
    write(tmp_path / "douban" / "ratings.dat", "1\tcafé\t5\n", encoding="latin-1")
    write(tmp_path / "cdrib" / "train.txt", "0\tcafé\n", encoding="latin-1")
    write(tmp_path / "cdrib" / "valid.txt", "0\t1\n")
    write(tmp_path / "cdrib" / "test.txt", "0\t2\n")
    write(tmp_path / "amazon.json", '{"reviewerID": "A", "asin": "café"}\n', encoding="latin-1")
    options = {"encoding": "latin-1"}
    for reader, path in (("douban", tmp_path / "douban"), ("amazon", tmp_path / "amazon.json")):
        assert read_domain(reader, path, domain="d", options=options).interactions["item"].tolist() == ["café"]
    cdrib = read_domain("cdrib", tmp_path / "cdrib", domain="d", options={**options, "shared_users": 1})
    assert cdrib.interactions["item"].tolist() == ["café", "1", "2"]


# --- NaN is a bad row in every reader; a null or blank is a missing value ------------------------


def test_nan_ratings_are_bad_rows_in_every_reader(tmp_path: Path) -> None:
    csv_path = write(tmp_path / "r.csv", "user,item,rating\nu1,i1,NaN\nu2,i2,\n")
    jsonl_path = write(tmp_path / "r.jsonl", '{"user": "u1", "item": "i1", "rating": NaN}\n{"user": "u2", "item": "i2", "rating": null}\n')
    parquet_path = tmp_path / "r.parquet"
    rating = pa.array([float("nan"), None], type=pa.float64())
    pq.write_table(pa.table({"user": ["u1", "u2"], "item": ["i1", "i2"], "rating": rating}), parquet_path)
    douban_path = write(tmp_path / "ratings.dat", "u1\ti1\tnan\nu2\ti2\t\n")
    for reader, path, line, text in (
        ("csv", csv_path, 2, "NaN"),
        ("jsonl", jsonl_path, 1, "nan"),
        ("parquet", parquet_path, 1, "nan"),
        ("douban", douban_path, 1, "nan"),
    ):
        result = read_domain(reader, path, on_bad_rows="skip")
        assert [(bad.line, bad.reason) for bad in result.bad_rows] == [(line, f"rating {text!r} is not a number")]
        assert result.interactions["user"].tolist() == ["u2"]
        assert result.interactions["rating"].isna().tolist() == [True]  # missing: implicit feedback later


@pytest.mark.parametrize("name", ["r.csv", "r.csv.gz", "r.jsonl"])
def test_a_utf8_byte_order_mark_is_not_part_of_the_first_column(tmp_path: Path, name: str) -> None:
    text = "user,item\nu1,i1\n" if ".csv" in name else '{"user": "u1", "item": "i1"}\n'
    path = write(tmp_path / name, "\ufeff" + text)
    result = read_domain("jsonl" if name.endswith("jsonl") else "csv", path)
    assert (result.interactions["user"].tolist(), result.bad_rows) == (["u1"], [])
