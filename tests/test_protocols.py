"""Split protocols on tiny hand-written frames: exact rows, seeded randomness, no future leakage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xdt.data import protocols
from xdt.errors import DataError


def frame_of(rows: list[tuple]) -> pd.DataFrame:
    """Rows (domain, user, item, timestamp[, split]) as a standard combined frame; missing time is None."""
    records = [row if len(row) == 5 else (*row, "") for row in rows]
    frame = pd.DataFrame(records, columns=["domain", "user", "item", "timestamp", "split"])
    frame["timestamp"] = frame["timestamp"].astype("Int64")
    frame["rating"] = 1.0
    return frame


def splits_of(frame: pd.DataFrame) -> dict[tuple[str, str, str], str]:
    """(domain, user, item) → split."""
    return {
        (row.domain, row.user, row.item): str(row.split)
        for row in frame[["domain", "user", "item", "split"]].itertuples(index=False)
    }


# ---- given -------------------------------------------------------------------------------------


def test_given_keeps_the_split_and_finds_cold_users() -> None:
    frame = frame_of(
        [
            ("source", "a", "s1", None, "train"),
            ("target", "a", "t1", None, "test"),  # a has no target train rows: cold test user
            ("target", "b", "t1", None, "train"),
            ("target", "b", "t2", None, "test"),  # b is warm
            ("target", "c", "t2", None, "valid"),  # c: cold valid user, target only
        ]
    )
    result, summary = protocols.split_given(frame)
    assert splits_of(result) == splits_of(frame)
    assert summary.cold_test_users == ["a"]
    assert summary.cold_valid_users == ["c"]
    assert summary.overlap_users == 1


def test_given_without_splits_names_the_rows() -> None:
    frame = frame_of([("source", "a", "s1", None, "train"), ("target", "a", "t1", None, "")])
    with pytest.raises(DataError, match=r"protocol 'given' needs a split .* 1 rows have none"):
        protocols.split_given(frame)


def test_given_valid_carves_the_last_train_row_in_domains_without_valid() -> None:
    frame = frame_of(
        [
            # source has its own valid rows: untouched
            ("source", "a", "s1", 1, "train"),
            ("source", "a", "s2", 2, "train"),
            ("source", "a", "s3", 3, "train"),
            ("source", "a", "s4", 4, "valid"),
            # target has none: a (3 train rows) gives t3 (latest) to valid, b (2 rows) keeps both
            ("target", "a", "t1", 5, "train"),
            ("target", "a", "t3", 9, "train"),
            ("target", "a", "t2", 7, "train"),
            ("target", "a", "t9", 10, "test"),
            ("target", "b", "t1", 1, "train"),
            ("target", "b", "t2", 2, "train"),
            ("target", "b", "t3", 3, "test"),
        ]
    )
    result, summary = protocols.split_given(frame, given_valid="leave_one_out", seed=3)
    expected = splits_of(frame)
    expected[("target", "a", "t3")] = "valid"
    assert splits_of(result) == expected
    assert summary.users_too_short_for_holdout == 1
    assert summary.details == {"valid_carved_from_train": ["target"]}


# ---- cold_users --------------------------------------------------------------------------------


def cold_frame() -> pd.DataFrame:
    """Four overlapping users a-d, one source-only user e, one target-only user f."""
    rows = []
    for user in "abcde":
        rows.append(("source", user, f"s-{user}", 1))
    for user in "abcdf":
        for step in range(4):
            rows.append(("target", user, f"t{step}", 10 + step))
    return frame_of(rows)


def test_cold_users_with_given_test_users_exact_rows() -> None:
    frame = cold_frame()
    result, summary = protocols.split_cold_users(
        frame, cold_fraction=0.5, valid_cold_fraction=0.25, warm_holdout="leave_one_out", seed=1, test_users=["b"]
    )
    assert summary.cold_test_users == ["b"]
    (valid_user,) = summary.cold_valid_users  # round(0.25 * 4) = 1 user drawn from a, c, d
    assert valid_user in {"a", "c", "d"}
    got = splits_of(result)
    assert all(got[("source", user, f"s-{user}")] == "train" for user in "abcde")
    for user in "abcdf":
        target = [got[("target", user, f"t{step}")] for step in range(4)]
        if user == "b":
            assert target == ["test"] * 4
        elif user == valid_user:
            assert target == ["valid"] * 4
        else:  # warm: last by time to test, the one before to valid
            assert target == ["train", "train", "valid", "test"]
    again, _ = protocols.split_cold_users(
        frame, cold_fraction=0.5, valid_cold_fraction=0.25, warm_holdout="leave_one_out", seed=1, test_users=["b"]
    )
    assert splits_of(again) == got


def test_cold_users_fraction_draw_is_seeded_and_disjoint() -> None:
    frame = cold_frame()
    results = [
        protocols.split_cold_users(frame, cold_fraction=0.5, valid_cold_fraction=0.25, warm_holdout="none", seed=seed)[1]
        for seed in (4, 4, 5)
    ]
    first, same, _ = results
    assert (first.cold_test_users, first.cold_valid_users) == (same.cold_test_users, same.cold_valid_users)
    assert len(first.cold_test_users) == 2 and len(first.cold_valid_users) == 1
    assert not set(first.cold_test_users) & set(first.cold_valid_users)
    assert set(first.cold_test_users) <= set("abcd")


def test_cold_users_without_overlap_fails_clearly() -> None:
    frame = frame_of([("source", "a", "s1", 1), ("target", "b", "t1", 1)])
    with pytest.raises(DataError, match="needs users present in both domains, but no user id occurs in both"):
        protocols.split_cold_users(frame, cold_fraction=0.2, valid_cold_fraction=0.1, warm_holdout="none", seed=0)


def test_cold_users_rejects_test_users_outside_the_overlap() -> None:
    with pytest.raises(DataError, match=r"1 of the 2 given test users are not overlapping users, e.g. \['e'\]"):
        protocols.split_cold_users(
            cold_frame(), cold_fraction=0.2, valid_cold_fraction=0.0, warm_holdout="none", seed=0, test_users=["a", "e"]
        )


# ---- leave_one_out -----------------------------------------------------------------------------


def test_leave_one_out_last_by_time_in_each_domain() -> None:
    frame = frame_of(
        [
            ("source", "a", "s1", 30),
            ("source", "a", "s2", 10),
            ("source", "a", "s3", 20),
            ("target", "a", "t1", 5),
            ("target", "a", "t2", 6),  # only 2 target rows: both stay in train
            ("target", "b", "t1", 3),
            ("target", "b", "t2", 1),
            ("target", "b", "t3", 2),
            ("target", "b", "t4", 4),
        ]
    )
    result, summary = protocols.split_leave_one_out(frame, seed=0)
    assert splits_of(result) == {
        ("source", "a", "s1"): "test",
        ("source", "a", "s2"): "train",
        ("source", "a", "s3"): "valid",
        ("target", "a", "t1"): "train",
        ("target", "a", "t2"): "train",
        ("target", "b", "t1"): "valid",
        ("target", "b", "t2"): "train",
        ("target", "b", "t3"): "train",
        ("target", "b", "t4"): "test",
    }
    assert summary.users_too_short_for_holdout == 1


def test_leave_one_out_without_time_is_random_but_seeded() -> None:
    frame = frame_of([("target", "a", f"t{index}", None) for index in range(20)])
    first, _ = protocols.split_leave_one_out(frame, seed=11)
    again, _ = protocols.split_leave_one_out(frame, seed=11)
    other, _ = protocols.split_leave_one_out(frame, seed=12)
    assert splits_of(first) == splits_of(again)
    assert list(first["split"].astype(str)).count("test") == 1
    assert list(first["split"].astype(str)).count("valid") == 1
    assert splits_of(first) != splits_of(other)  # 380 possible (test, valid) pairs; these seeds differ


# ---- temporal ----------------------------------------------------------------------------------


def test_temporal_cutoffs_exact_rows() -> None:
    frame = frame_of(
        [
            ("source", "a", "s1", 1),
            ("source", "a", "s2", 5),
            ("source", "b", "s1", 8),
            ("target", "a", "t1", 6),
            ("target", "b", "t1", 7),  # exactly at the test cut-off: stays valid
            ("target", "b", "t2", 9),
        ]
    )
    result, summary = protocols.split_temporal(frame, test_cutoff=7, valid_cutoff=5)
    assert splits_of(result) == {
        ("source", "a", "s1"): "train",
        ("source", "a", "s2"): "train",  # at the valid cut-off: train
        ("source", "b", "s1"): "test",
        ("target", "a", "t1"): "valid",
        ("target", "b", "t1"): "valid",
        ("target", "b", "t2"): "test",
    }
    assert summary.details == {"test_cutoff": 7.0, "valid_cutoff": 5.0}
    assert summary.cold_test_users == ["b"]  # b has no target train rows


def test_temporal_quantiles_pick_observed_times() -> None:
    # Times 1..10: the lower 0.8 quantile is 8 and the lower 0.6 quantile 6.
    frame = frame_of([("target", "a", f"t{time}", time) for time in range(1, 11)])
    result, summary = protocols.split_temporal(frame, test_quantile=0.8, valid_quantile=0.6)
    assert summary.details == {"test_cutoff": 8.0, "valid_cutoff": 6.0}
    split = dict(zip(frame["timestamp"].astype(int), result["split"].astype(str)))
    assert split == {1: "train", 2: "train", 3: "train", 4: "train", 5: "train", 6: "train",
                     7: "valid", 8: "valid", 9: "test", 10: "test"}


def test_temporal_has_no_future_leakage() -> None:
    rng = np.random.default_rng(0)
    rows = [
        (str(domain), f"u{user}", f"i{item}", int(time))
        for domain, user, item, time in zip(
            rng.choice(["source", "target"], 500), rng.integers(0, 40, 500), rng.integers(0, 60, 500), rng.integers(0, 1000, 500)
        )
    ]
    result, _ = protocols.split_temporal(frame_of(rows), test_quantile=0.85, valid_quantile=0.7)
    time = result["timestamp"].astype(int)
    split = result["split"].astype(str)
    assert time[split == "train"].max() < time[split == "valid"].min()
    assert time[split == "valid"].max() < time[split == "test"].min()
    assert set(split) == {"train", "valid", "test"}


def test_temporal_needs_timestamps() -> None:
    frame = frame_of([("target", "a", "t1", 1), ("target", "a", "t2", None)])
    with pytest.raises(DataError, match="protocol 'temporal' needs a timestamp on every row; 1 rows have none"):
        protocols.split_temporal(frame, test_cutoff=1)


# ---- ratio -------------------------------------------------------------------------------------


def test_ratio_counts_per_user_and_domain() -> None:
    rows = [("target", "a", f"t{index}", None) for index in range(10)]
    rows += [("target", "b", f"t{index}", None) for index in range(4)]
    rows += [("source", "b", f"s{index}", None) for index in range(5)]
    rows += [("source", "c", "s0", None)]
    frame = frame_of(rows)
    result, _ = protocols.split_ratio(frame, fractions=[0.8, 0.1, 0.1], seed=2)
    counts = result.assign(split=result["split"].astype(str)).groupby(["domain", "user", "split"]).size().to_dict()
    # a: 10 rows → 1 valid, 1 test. b target: 4 rows → 0.4 rounds to 0. b source: 5 rows → 0.5 rounds up to 1.
    # c: 1 row → always kept for training.
    assert counts == {
        ("target", "a", "train"): 8,
        ("target", "a", "valid"): 1,
        ("target", "a", "test"): 1,
        ("target", "b", "train"): 4,
        ("source", "b", "train"): 3,
        ("source", "b", "valid"): 1,
        ("source", "b", "test"): 1,
        ("source", "c", "train"): 1,
    }
    again, _ = protocols.split_ratio(frame, fractions=[0.8, 0.1, 0.1], seed=2)
    other, _ = protocols.split_ratio(frame, fractions=[0.8, 0.1, 0.1], seed=3)
    assert splits_of(again) == splits_of(result)
    assert splits_of(other) != splits_of(result)


def test_ratio_keeps_one_training_row() -> None:
    frame = frame_of([("target", "a", f"t{index}", None) for index in range(2)])
    result, _ = protocols.split_ratio(frame, fractions=[0.2, 0.4, 0.4], seed=0)
    # 0.4 * 2 = 0.8 rounds to 1 each: valid gives way first, so 1 train and 1 test.
    assert sorted(result["split"].astype(str)) == ["test", "train"]
