"""Cleaning steps: exact survivors and exact drop counts."""

import pandas as pd
import pytest

from xdt.data.cleaning import (
    DropRecord,
    apply_rating_threshold,
    deduplicate,
    drop_missing,
    drop_out_of_range,
    k_core,
)


def frame(
    user: list[str | None],
    item: list[str | None],
    rating: list[float] | None = None,
    timestamp: list[int | None] | None = None,
) -> pd.DataFrame:
    """A standard interactions frame with an empty split."""
    size = len(user)
    return pd.DataFrame(
        {
            "user": pd.Series(user, dtype="str"),
            "item": pd.Series(item, dtype="str"),
            "rating": pd.Series(rating if rating is not None else [float("nan")] * size, dtype="float64"),
            "timestamp": pd.array(timestamp if timestamp is not None else [None] * size, dtype="Int64"),
            "split": pd.Series([""] * size, dtype="str"),
        }
    )


def test_drop_missing_counts_missing_users_and_items() -> None:
    raw = frame(["a", None, "c", "d"], ["x", "y", None, "z"], [1.0, 2.0, 3.0, 4.0])
    cleaned, records = drop_missing(raw, domain="book")
    pd.testing.assert_frame_equal(cleaned, frame(["a", "d"], ["x", "z"], [1.0, 4.0]))
    assert records == [DropRecord("book", "missing_values", "missing user or item", 2)]


def test_drop_missing_records_zero_when_nothing_is_missing() -> None:
    raw = frame(["a"], ["x"])
    cleaned, records = drop_missing(raw, domain="book")
    pd.testing.assert_frame_equal(cleaned, raw)
    assert records == [DropRecord("book", "missing_values", "missing user or item", 0)]


def test_drop_out_of_range_keeps_bounds_and_missing_ratings() -> None:
    raw = frame(["a", "b", "c", "d", "e"], ["x"] * 5, [0.0, 1.0, 5.0, 5.5, float("nan")])
    cleaned, records = drop_out_of_range(raw, domain="book", low=1, high=5)
    pd.testing.assert_frame_equal(cleaned, frame(["b", "c", "e"], ["x"] * 3, [1.0, 5.0, float("nan")]))
    assert records == [DropRecord("book", "rating_range", "rating outside [1, 5]", 2)]


def test_drop_out_of_range_rejects_an_empty_range() -> None:
    with pytest.raises(ValueError, match="Expected low <= high for the rating range. Received: low=5, high=1"):
        drop_out_of_range(frame(["a"], ["x"]), domain="book", low=5, high=1)


# Pair (a, x) appears three times: rating 1 @ t=10, rating 2 @ t=30, rating 3 @ t=30 (a tie with
# the previous row, later in the file). Pair (b, y) twice with no timestamps: ratings 4 then 5.
DUPLICATES = frame(
    ["a", "b", "a", "a", "b", "c"],
    ["x", "y", "x", "x", "y", "z"],
    [1.0, 4.0, 2.0, 3.0, 5.0, 1.0],
    [10, None, 30, 30, None, 5],
)


def test_deduplicate_keep_latest_breaks_ties_by_file_order() -> None:
    cleaned, records = deduplicate(DUPLICATES, domain="book", policy="keep_latest")
    # (a, x): t=30 twice, the later row (rating 3) wins; (b, y): no time, the last row (rating 5) wins.
    pd.testing.assert_frame_equal(cleaned, frame(["a", "b", "c"], ["x", "y", "z"], [3.0, 5.0, 1.0], [30, None, 5]))
    assert records == [DropRecord("book", "duplicates", "duplicate (user, item) pair, kept the latest", 3)]


def test_deduplicate_keep_first() -> None:
    cleaned, records = deduplicate(DUPLICATES, domain="book", policy="keep_first")
    pd.testing.assert_frame_equal(cleaned, frame(["a", "b", "c"], ["x", "y", "z"], [1.0, 4.0, 1.0], [10, None, 5]))
    assert records[0].rows == 3


def test_deduplicate_mean_rating_with_latest_timestamp() -> None:
    cleaned, records = deduplicate(DUPLICATES, domain="book", policy="mean")
    # (a, x): (1 + 2 + 3) / 3 = 2 at t=30; (b, y): (4 + 5) / 2 = 4.5.
    pd.testing.assert_frame_equal(cleaned, frame(["a", "b", "c"], ["x", "y", "z"], [2.0, 4.5, 1.0], [30, None, 5]))
    assert records[0].rows == 3


def test_deduplicate_unknown_policy_suggests_one() -> None:
    with pytest.raises(ValueError, match="Did you mean 'keep_latest'?"):
        deduplicate(DUPLICATES, domain="book", policy="keep_last")


def test_rating_threshold_makes_feedback_implicit() -> None:
    raw = frame(["a", "b", "c", "d"], ["x"] * 4, [3.0, 4.0, 5.0, float("nan")])
    cleaned, records = apply_rating_threshold(raw, domain="music", min_rating=4)
    pd.testing.assert_frame_equal(cleaned, frame(["b", "c", "d"], ["x"] * 3, [1.0, 1.0, 1.0]))
    assert records == [DropRecord("music", "rating_threshold", "rating below 4", 1)]


def test_k_core_needs_two_rounds() -> None:
    # Rows: u1-i1, u1-i2, u2-i1, u2-i2, u3-i1, u3-i3, u4-i3.  user_k = item_k = 2.
    # Round 1: u4 has 1 row -> drop u4-i3. Items all have >= 2 (i3 has u3, u4). 1 row dropped.
    # Round 2: i3 now has 1 row (u3) -> drop u3-i3. 1 row dropped.
    # Round 3: u3 now has 1 row (i1) -> drop u3-i1. 1 row dropped.
    # Round 4: u1, u2 have 2 each; i1, i2 have 2 each -> stable. Total 3 rows in 3 rounds.
    raw = frame(["u1", "u1", "u2", "u2", "u3", "u3", "u4"], ["i1", "i2", "i1", "i2", "i1", "i3", "i3"])
    cleaned, records = k_core(raw, domain="video", user_k=2, item_k=2)
    pd.testing.assert_frame_equal(cleaned, frame(["u1", "u1", "u2", "u2"], ["i1", "i2", "i1", "i2"]))
    assert records == [
        DropRecord("video", "k_core", "user with < 2 or item with < 2 rows (k-core, 3 rounds until stable)", 3)
    ]


def test_k_core_already_stable_records_zero_rounds() -> None:
    raw = frame(["u1", "u1"], ["i1", "i2"])
    cleaned, records = k_core(raw, domain="video", user_k=2, item_k=1)
    pd.testing.assert_frame_equal(cleaned, raw)
    assert records[0].rows == 0
    assert "0 rounds" in records[0].reason


def test_k_core_rejects_negative_k() -> None:
    with pytest.raises(ValueError, match="Expected user_k to be an integer >= 0. Received: user_k=-1"):
        k_core(frame(["a"], ["x"]), domain="video", user_k=-1, item_k=1)
