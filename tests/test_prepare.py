"""`prepare_dataset` end to end on tiny files written here: drops, overlap, links, manifest, fingerprint."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from xdt.config import config_from_dict
from xdt.data import protocols
from xdt.data.dataset import load_dataset
from xdt.data.prepare import MANIFEST, check_premises, dataset_dir, dataset_fingerprint, is_up_to_date, prepare_dataset
from xdt.data.readers import read_domain
from xdt.data.readers.generic import _read_mapped
from xdt.data.readers.tables import read_delimited_interactions_fast, read_delimited_table
from xdt.errors import ConfigError, DataError


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def experiment(tmp_path: Path, source: Path, target: Path, **dataset: Any) -> Any:
    """A validated config over two CSV files, prepared into tmp_path/data."""
    cleaning = dataset.pop("cleaning", {})
    source_options = dataset.pop("source_options", {})
    raw = {
        "experiment": "t",
        "seed": 5,
        "dataset": {
            "name": "tiny",
            "source": {"name": "books", "reader": "csv", "path": str(source), **source_options},
            "target": {"name": "movies", "reader": "csv", "path": str(target)},
            "cleaning": cleaning,
            **dataset,
        },
        "runtime": {"data_dir": str(tmp_path / "data")},
    }
    return config_from_dict(raw)


SOURCE_CSV = """user,item,rating,timestamp
u1,b1,5,10
u1,b2,4,11
u2,b1,3,12
u3,b3,2,13
"""
TARGET_CSV = """user,item,rating,timestamp
u1,m1,5,20
u1,m2,4,21
u1,m3,4,22
u2,m1,3,23
u4,m2,1,24
"""


@pytest.fixture
def tiny(tmp_path: Path) -> tuple[Path, Path]:
    return write(tmp_path / "source.csv", SOURCE_CSV), write(tmp_path / "target.csv", TARGET_CSV)


def test_manifest_counts_per_domain_and_split(tmp_path: Path, tiny: tuple[Path, Path]) -> None:
    config = experiment(tmp_path, *tiny, protocol="cold_users", test_users_file=str(write(tmp_path / "t.txt", "u2\n")),
                        valid_cold_fraction=0.0, warm_holdout="leave_one_out")
    manifest = prepare_dataset(config)
    # Users u1..u4 sorted; overlap u1, u2; u2 is the cold test user; u1 (3 target rows) gives m3
    # to test and m2 to valid; u4 (1 row) is too short for a holdout.
    assert manifest["users"] == 4 and manifest["overlap_users"] == 2
    assert manifest["cold_test_users"] == 1 and manifest["cold_valid_users"] == 0
    assert manifest["users_too_short_for_holdout"] == 1
    target = manifest["domains"]["target"]
    assert (target["name"], target["users"], target["items"], target["rows"], target["overlap_users"]) == ("movies", 3, 3, 5, 2)
    assert target["splits"]["train"] == {"users": 2, "items": 2, "rows": 2, "density": 0.5, "overlap_users": 1, "cold_users": 0}
    assert target["splits"]["valid"] == {"users": 1, "items": 1, "rows": 1, "density": 1.0, "overlap_users": 1, "cold_users": 0}
    assert target["splits"]["test"] == {"users": 2, "items": 2, "rows": 2, "density": 0.5, "overlap_users": 2, "cold_users": 1}
    source = manifest["domains"]["source"]
    assert (source["users"], source["items"], source["rows"], source["rows_read"]) == (3, 3, 4, 4)
    assert manifest["inputs"] == {str(path): hashlib.sha256(path.read_bytes()).hexdigest() for path in tiny}
    assert manifest["config"]["test_users_file"] == str(tmp_path / "t.txt")
    assert json.loads((dataset_dir(config) / MANIFEST).read_text()) == manifest

    dataset = load_dataset(dataset_dir(config))
    assert list(dataset.raw_users) == ["u1", "u2", "u3", "u4"]
    assert list(dataset.interactions.columns) == ["domain", "user", "item", "rating", "timestamp", "split"]
    test_rows = dataset.rows("target", "test")
    assert sorted(zip(dataset.raw_users[test_rows["user"]], dataset.target_items["raw_item"].to_numpy()[test_rows["item"]])) == [
        ("u1", "m3"),
        ("u2", "m1"),
    ]


def test_cleaning_drops_are_counted_exactly(tmp_path: Path) -> None:
    source = write(
        tmp_path / "source.csv",
        "user,item,rating,timestamp\n"
        "u1,b1,5,10\n"
        "u1,b1,4,15\n"  # duplicate pair: keep_latest keeps this one
        "u1,b2,not-a-number,11\n"  # bad row (skip)
        "u2,b1,9,12\n"  # outside [1, 5]
        "u2,b2,3\n"  # wrong field count (skip)
        "u2,b3,2,13\n"  # below min_rating 3
        ",b4,4,14\n"  # missing user
        "u3,b1,4,16\n",
    )
    target = write(tmp_path / "target.csv", "user,item,rating,timestamp\nu1,m1,5,1\nu3,m1,4,2\nu3,m2,4,3\n")
    config = experiment(
        tmp_path,
        source,
        target,
        protocol="leave_one_out",
        cleaning={"on_bad_rows": "skip", "duplicates": "keep_latest", "min_rating": 3},
        source_options={"rating_range": [1, 5]},
    )
    manifest = prepare_dataset(config)
    books = {drop["step"]: drop["rows"] for drop in manifest["drops"] if drop["domain"] == "books"}
    assert books == {"bad_rows": 2, "missing_values": 1, "rating_range": 1, "duplicates": 1, "rating_threshold": 1}
    bad = next(drop for drop in manifest["drops"] if drop["step"] == "bad_rows")
    assert [(example["line"], example["text"]) for example in bad["examples"]] == [(4, "u1,b2,not-a-number,11"), (6, "u2,b2,3")]
    assert manifest["domains"]["source"]["rows_read"] == 8
    assert manifest["domains"]["source"]["rows"] == 2  # u1,b1 (t=15) and u3,b1
    dataset = load_dataset(dataset_dir(config))
    source_rows = dataset.rows("source", "train", "valid", "test")
    assert source_rows["rating"].tolist() == [1.0, 1.0]  # the threshold makes ratings implicit
    assert source_rows["timestamp"].tolist() == [15, 16]


def test_bad_rows_stop_by_default_with_file_and_line(tmp_path: Path, tiny: tuple[Path, Path]) -> None:
    source = write(tmp_path / "bad.csv", "user,item,rating,timestamp\nu1,b1,5,10\nu1,b2,five,11\n")
    config = experiment(tmp_path, source, tiny[1])
    with pytest.raises(DataError, match=rf"{source}:3: rating 'five' is not a number"):
        prepare_dataset(config)


def test_k_core_is_counted(tmp_path: Path, tiny: tuple[Path, Path]) -> None:
    config = experiment(tmp_path, *tiny, protocol="ratio", cleaning={"user_core": 2})
    manifest = prepare_dataset(config)
    k_core = {drop["domain"]: drop["rows"] for drop in manifest["drops"] if drop["step"] == "k_core"}
    assert k_core == {"books": 2, "movies": 2}  # u2, u3 in books; u2, u4 in movies have 1 row


def test_link_file_links_users_and_keeps_unlinked_ids_apart(tmp_path: Path) -> None:
    source = write(tmp_path / "source.csv", "user,item\na1,b1\na2,b2\nx9,b3\n")
    # Target ids are another id space: x1 is a1, x2 is a2; "x9" is NOT the source's x9.
    target = write(tmp_path / "target.csv", "user,item\nx1,m1\nx2,m2\nx9,m3\nx3,m1\n")
    links = write(tmp_path / "links.tsv", "source_user\ttarget_user\na1\tx1\na2\tx2\na7\tx7\n")
    config = experiment(tmp_path, source, target, protocol="cold_users", link_file=str(links),
                        cold_fraction=0.5, valid_cold_fraction=0.0, warm_holdout="none")
    manifest = prepare_dataset(config)
    assert manifest["overlap_users"] == 2
    assert manifest["cold_test_users"] == 1
    assert manifest["user_links"]["links"] == 3
    assert manifest["user_links"]["links_with_rows_in_both_domains"] == 2
    assert str(links) in manifest["inputs"]
    users = load_dataset(dataset_dir(config)).raw_users.tolist()
    assert users == ["a1", "a2", "movies:x3", "movies:x9", "x9"]

    without_links = experiment(tmp_path, source, target, protocol="cold_users")
    assert prepare_dataset(without_links)["overlap_users"] == 1  # only the raw id x9


def test_link_file_must_be_one_to_one(tmp_path: Path, tiny: tuple[Path, Path]) -> None:
    links = write(tmp_path / "links.csv", "a,x\nb,x\n")
    config = experiment(tmp_path, *tiny, link_file=str(links))
    with pytest.raises(DataError, match="target_user 'x' appears more than once"):
        prepare_dataset(config)


def test_cold_users_without_overlap_fails_clearly(tmp_path: Path) -> None:
    source = write(tmp_path / "source.csv", "user,item\na,b1\n")
    target = write(tmp_path / "target.csv", "user,item\nz,m1\n")
    with pytest.raises(DataError, match="protocol 'cold_users' needs users present in both domains"):
        prepare_dataset(experiment(tmp_path, source, target, protocol="cold_users"))


def test_test_users_file_must_name_overlapping_users(tmp_path: Path, tiny: tuple[Path, Path]) -> None:
    users = write(tmp_path / "t.txt", "u1\nu4\nnobody\n")
    config = experiment(tmp_path, *tiny, test_users_file=str(users))
    with pytest.raises(DataError, match=r"2 of the 3 test users are not users of both domains, e.g. \['u4', 'nobody'\]"):
        prepare_dataset(config)


def test_temporal_prepare_has_no_future_leakage(tmp_path: Path, tiny: tuple[Path, Path]) -> None:
    config = experiment(tmp_path, *tiny, protocol="temporal", test_cutoff=22, valid_quantile=0.5)
    manifest = prepare_dataset(config)
    assert manifest["protocol_details"] == {"test_cutoff": 22.0, "valid_cutoff": 20.0}
    frame = load_dataset(dataset_dir(config)).interactions
    assert sorted(frame.loc[frame["split"] == "test", "timestamp"]) == [23, 24]
    assert sorted(frame.loc[frame["split"] == "valid", "timestamp"]) == [21, 22]
    assert frame.loc[frame["split"] == "train", "timestamp"].max() == 20


def test_fingerprint_and_up_to_date(tmp_path: Path, tiny: tuple[Path, Path]) -> None:
    config = experiment(tmp_path, *tiny, protocol="leave_one_out")
    assert not is_up_to_date(config)
    prepare_dataset(config)
    assert is_up_to_date(config)
    assert dataset_fingerprint(config) == dataset_fingerprint(experiment(tmp_path, *tiny, protocol="leave_one_out"))
    for changed in (
        experiment(tmp_path, *tiny, protocol="ratio"),
        experiment(tmp_path, *tiny, protocol="leave_one_out", cleaning={"min_rating": 4}),
    ):
        assert dataset_fingerprint(changed) != dataset_fingerprint(config)
        assert not is_up_to_date(changed)
    reseeded = config_from_dict({**json.loads(json.dumps(config.to_dict())), "seed": 6})
    assert not is_up_to_date(reseeded)


@pytest.mark.parametrize(
    ("dataset", "message"),
    [
        ({"protocol": "temporal"}, "protocol 'temporal' needs test_cutoff"),
        ({"protocol": "temporal", "test_cutoff": 5, "test_quantile": 0.9}, "give either test_cutoff or test_quantile"),
        ({"protocol": "temporal", "test_cutoff": 5, "valid_cutoff": 9}, "expected valid_cutoff <= test_cutoff"),
        ({"protocol": "ratio", "ratio_fractions": [0.5, 0.2, 0.2]}, "ratio_fractions: expected \\[train, valid, test\\]"),
        ({"protocol": "given", "test_users_file": "x"}, "test_users_file: only used by protocol 'cold_users'"),
        ({"protocol": "ratio", "given_valid": "leave_one_out"}, "given_valid: only used by protocol 'given'"),
        ({"protocol": "ratio", "source_options": {"rating_range": [5, 1]}}, "source.rating_range: expected \\[low, high\\]"),
        ({"protocol": "temporal", "test_quantile": 1.5}, "test_quantile: expected a value <= 1"),
    ],
)
def test_bad_dataset_configs_fail_clearly(tmp_path: Path, dataset: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        experiment(tmp_path, tmp_path / "s.csv", tmp_path / "t.csv", **dataset)


# ---- the fast path of the csv reader gives what the careful reader gives -------------------------


def careful(path: Path, options: dict[str, Any], header: bool = True, delimiter: str = ",") -> pd.DataFrame:
    return _read_mapped("csv", path, options, "error", lambda file: read_delimited_table(file, delimiter, header)).interactions


@pytest.mark.parametrize("gzipped", [False, True])
def test_fast_csv_matches_the_careful_reader(tmp_path: Path, gzipped: bool) -> None:
    text = 'user ,item,rating,timestamp,extra\nu1,"b,1",5,10,x\n\nu2,b2,,11,y\nu3,b3,4.5,,z\n'
    path = tmp_path / ("r.csv.gz" if gzipped else "r.csv")
    if gzipped:
        with gzip.open(path, "wt") as handle:
            handle.write(text)
    else:
        path.write_text(text)
    fast = read_delimited_interactions_fast(path, ",", True, "utf-8", None)
    assert fast is not None
    frame, lines = fast
    pd.testing.assert_frame_equal(frame, careful(path, {}))
    pd.testing.assert_frame_equal(read_domain("csv", path).interactions, frame)
    assert (lines.lines, lines.counts) == (5, {"rows": 3, "header": 1, "blank_lines": 1, "bad_rows": 0})


def test_fast_csv_headerless_positions(tmp_path: Path) -> None:
    path = write(tmp_path / "r.tsv", "7\tu1\ti1\t3\n8\tu2\ti2\t4\n")
    columns = {"user": 1, "item": 2, "rating": 3, "timestamp": 0}
    fast = read_delimited_interactions_fast(path, "\t", False, "utf-8", columns)
    assert fast is not None
    pd.testing.assert_frame_equal(fast[0], careful(path, {"columns": columns}, header=False, delimiter="\t"))
    assert fast[0]["timestamp"].tolist() == [7, 8]


@pytest.mark.parametrize(
    "body",
    ["u1,b1,5,10\nu2,b2,3\n", "u1,b1,five,10\n", "u1,b1,5,1.5\n", "u1,b1,inf,1\n", " ,b1,5,1\n", ",,,\nu1,b1,5,1\n"],
)
def test_fast_csv_leaves_unusual_files_to_the_careful_reader(tmp_path: Path, body: str) -> None:
    path = write(tmp_path / "r.csv", "user,item,rating,timestamp\n" + body)
    assert read_delimited_interactions_fast(path, ",", True, "utf-8", None) is None


def test_prepared_interactions_are_sorted_and_typed(tmp_path: Path, tiny: tuple[Path, Path]) -> None:
    config = experiment(tmp_path, *tiny, protocol="ratio")
    prepare_dataset(config)
    frame = pd.read_parquet(dataset_dir(config) / "interactions.parquet")
    assert [str(dtype) for dtype in frame.dtypes] == ["str", "int32", "int32", "float32", "int64", "str"]
    domain_order = (frame["domain"] == "target").to_numpy().astype(int)
    keys = list(zip(domain_order, frame["user"], frame["timestamp"], frame["item"]))
    assert keys == sorted(keys)
    assert np.isin(frame["split"].unique(), ["train", "valid", "test"]).all()


@pytest.mark.parametrize("policy", ["keep_latest", "keep_first", "mean"])
def test_deduplicating_only_repeated_rows_matches_cleaning(policy: str) -> None:
    from xdt.data import cleaning
    from xdt.data.prepare import deduplicate_duplicated_rows

    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {
            "user": pd.array(rng.integers(0, 5, 60), dtype="Int64"),
            "item": pd.array(rng.integers(0, 6, 60), dtype="Int64"),
            "rating": rng.integers(1, 6, 60).astype(float),
            "timestamp": pd.array(rng.integers(0, 4, 60), dtype="Int64"),
            "split": "",
        }
    )
    expected, expected_records = cleaning.deduplicate(frame, domain="d", policy=policy)
    got, records = deduplicate_duplicated_rows(frame, domain="d", policy=policy)
    pd.testing.assert_frame_equal(got, expected)
    assert records == expected_records and records[0].rows > 0


# ---- data it has never seen: CDRIB shared users from the files, protocol premises checked -------


def write_cdrib_domain(folder: Path, train: str, valid: str, test: str, common_users: int | None = None) -> Path:
    folder.mkdir(parents=True)
    for name, text in (("train.txt", train), ("valid.txt", valid), ("test.txt", test)):
        write(folder / name, text)
    if common_users is not None:
        write(folder / "common_new_reindex.txt", "".join(f"{900 + user}\t{user}\t1\n" for user in range(common_users)))
    return folder


def cdrib_experiment(tmp_path: Path, source_test: str = "4\t9\n", *, common_users: int | None = 5, **options: Any) -> Any:
    """Game (source) and Video (target) in CDRIB layout; users 0..4 shared, 5 and 6 private; cold: 3 (valid), 4 (test)."""
    game = write_cdrib_domain(
        tmp_path / "game_video", "0\t0\n1\t1\n2\t0\n3\t1\n5\t0\n6\t1\n", "", source_test, common_users
    )
    video = write_cdrib_domain(tmp_path / "video_game", "0\t0\n1\t1\n2\t1\n5\t0\n6\t0\n", "3\t0\n", "4\t1\n", common_users)
    raw = {
        "experiment": "t",
        "seed": 1,
        "dataset": {
            "name": "cdrib-tiny",
            "source": {"name": "game", "reader": "cdrib", "path": str(game), "options": options},
            "target": {"name": "video", "reader": "cdrib", "path": str(video), "options": options},
            "protocol": "given",
        },
        "runtime": {"data_dir": str(tmp_path / "data")},
    }
    return config_from_dict(raw)


def test_prepare_finds_the_cdrib_shared_user_count_in_the_files(tmp_path: Path) -> None:
    messages: list[str] = []
    config = cdrib_experiment(tmp_path)
    manifest = prepare_dataset(config, progress=messages.append)
    assert manifest["overlap_users"] == 5
    assert manifest["cold_test_users"] == 1 and manifest["cold_valid_users"] == 1
    assert manifest["warnings"] == [] and not [message for message in messages if message.startswith("warning")]
    users = load_dataset(dataset_dir(config)).raw_users.tolist()
    assert users == ["0", "1", "2", "3", "4", "game:5", "game:6", "video:5", "video:6"]
    assert str(tmp_path / "video_game" / "common_new_reindex.txt") in manifest["inputs"]


def test_prepare_refuses_contradictory_cdrib_info_files(tmp_path: Path) -> None:
    config = cdrib_experiment(tmp_path, common_users=None)
    write(tmp_path / "game_video" / "video_game_data_info.txt", "common user num 5\n")
    write(tmp_path / "video_game" / "game_video_data_info.txt", "common user num 7\n")
    with pytest.raises(DataError, match=r"found two shared-user counts: 5 in .*video_game_data_info.txt and 7 in .*game_video_data_info.txt"):
        prepare_dataset(config)


def test_a_transfer_protocol_without_overlap_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError) as caught:
        prepare_dataset(cdrib_experiment(tmp_path, shared_users=0))
    assert str(caught.value).startswith("protocol 'given': no user has rows in both domains, so there is nothing to transfer through.")
    assert not (tmp_path / "data" / "cdrib-tiny").exists()


def test_no_overlap_under_another_protocol_is_a_warning(tmp_path: Path) -> None:
    source = write(tmp_path / "source.csv", "user,item\na,b1\na,b2\n")
    target = write(tmp_path / "target.csv", "user,item\nz,m1\nz,m2\nz,m3\n")
    messages: list[str] = []
    manifest = prepare_dataset(experiment(tmp_path, source, target, protocol="leave_one_out"), progress=messages.append)
    warning = manifest["warnings"][0]
    assert warning.startswith("protocol 'leave_one_out': no user has rows in both domains")
    assert f"warning: {warning}" in messages


def test_cold_users_without_any_source_rows_are_refused(tmp_path: Path) -> None:
    """Too small a shared_users makes the cold-start users 3 and 4 private: neither has source rows."""
    with pytest.raises(DataError) as caught:
        prepare_dataset(cdrib_experiment(tmp_path, shared_users=3))
    assert str(caught.value).startswith(
        "protocol 'given': none of the 2 cold-start valid/test users (target rows only in valid/test) has source rows"
    )


def test_some_cold_users_without_source_rows_are_a_warning(tmp_path: Path) -> None:
    messages: list[str] = []
    manifest = prepare_dataset(cdrib_experiment(tmp_path, source_test="5\t9\n"), progress=messages.append)
    expected = "1 of the 2 cold-start valid/test users have no source rows; only non-transfer baselines can score them."
    assert manifest["warnings"] == [expected]
    assert f"warning: {expected}" in messages
    assert json.loads((tmp_path / "data" / "cdrib-tiny" / MANIFEST).read_text())["warnings"] == [expected]


def test_cold_users_protocol_premise_is_checked(tmp_path: Path) -> None:
    """split_cold_users draws cold users from the overlap; the check still guards the cohort it returns."""
    frame = pd.DataFrame(
        {
            "domain": ["source", "source", "target", "target", "target", "target"],
            "user": [0, 1, 0, 0, 1, 2],
            "item": [0, 0, 0, 1, 1, 0],
            "split": pd.Categorical(["train", "train", "train", "train", "test", "test"], categories=["train", "valid", "test"]),
        }
    )
    summary = protocols.ProtocolSummary("cold_users", cold_test_users=[1, 2], overlap_users=2)
    assert check_premises(frame, summary, "cold_users") == [
        "1 of the 2 cold-start valid/test users have no source rows; only non-transfer baselines can score them."
    ]
    with pytest.raises(DataError, match="protocol 'cold_users': none of the 1 cold-start valid/test users"):
        check_premises(frame, protocols.ProtocolSummary("cold_users", cold_test_users=[2], overlap_users=2), "cold_users")


def test_test_items_never_trained_are_a_warning(tmp_path: Path) -> None:
    source = write(tmp_path / "source.csv", "user,item,timestamp\nu1,b1,1\nu2,b1,1\nu3,b2,1\n")
    target = write(tmp_path / "target.csv", "user,item,timestamp\nu1,m1,1\nu1,m2,2\nu1,m9,3\nu2,m1,1\nu2,m2,2\nu2,m8,3\n")
    manifest = prepare_dataset(experiment(tmp_path, source, target, protocol="temporal", test_cutoff=2))
    assert manifest["warnings"] == [
        "2 of the 2 target test items (2 of 2 test rows) never occur in target training rows; "
        "no model learns them, so they can only be ranked by chance."
    ]


@pytest.mark.parametrize("policy", ["error", "skip"])
def test_xdt_prepare_exits_2_without_a_traceback_on_a_latin1_csv(tmp_path: Path, tiny: tuple[Path, Path], policy: str) -> None:
    from typer.testing import CliRunner

    from xdt.cli import app

    source = tmp_path / "latin1.csv"
    source.write_bytes("user,item\nu1,b1\nu2,café\n".encode("latin-1"))
    raw = {
        "experiment": "t",
        "dataset": {
            "name": "tiny",
            "source": {"name": "books", "reader": "csv", "path": str(source)},
            "target": {"name": "movies", "reader": "csv", "path": str(tiny[1])},
            "cleaning": {"on_bad_rows": policy},
        },
        "runtime": {"data_dir": str(tmp_path / "data")},
    }
    config = write(tmp_path / "config.yaml", json.dumps(raw))
    result = CliRunner().invoke(app, ["prepare", str(config)], catch_exceptions=False)
    assert result.exit_code == 2
    assert f"{source}:3: bytes e9 at byte offset 22 are not valid utf-8 text" in " ".join(result.output.split())
    assert "Traceback" not in result.output
