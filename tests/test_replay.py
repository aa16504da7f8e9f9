"""The replay protocol's windows on a hand-built timeline: exact contents, and what each window's evaluation sees."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from xdt.data.dataset import PreparedDataset
from xdt.errors import XdtError
from xdt.replay import feedback_windows, window_of, window_view


def timeline() -> PreparedDataset:
    """Target rows: 3 training rows, then 6 test rows at times 10, 11, 11, 12, 13, 20 (one source row)."""
    rows = [
        ("source", 0, 0, 1), ("target", 0, 0, 1), ("target", 1, 1, 2), ("target", 2, 0, 3),
        ("target", 0, 1, 10), ("target", 1, 2, 11), ("target", 2, 1, 11), ("target", 0, 2, 12), ("target", 1, 0, 13), ("target", 2, 2, 20),
    ]  # fmt: skip
    frame = pd.DataFrame(rows, columns=["domain", "user", "item", "timestamp"]).assign(rating=1.0)
    frame["split"] = np.where(frame["timestamp"] >= 10, "test", "train")
    items = pd.DataFrame({"item": [0, 1, 2], "raw_item": ["a", "b", "c"]})
    return PreparedDataset(Path("."), {"name": "t", "protocol": "temporal"}, frame, np.array(["u0", "u1", "u2"], dtype=object), items, items)


def pairs(frame: pd.DataFrame) -> list[tuple[int, int, int]]:
    return list(zip(frame["user"], frame["item"], frame["timestamp"]))


def test_windows_cut_at_quantiles_with_ties_on_the_earlier_side() -> None:
    assert window_of(np.array([10, 11, 11, 12, 13, 20]), 3).tolist() == [1, 1, 1, 2, 3, 3]
    assert window_of(np.array([5, 5, 5, 5]), 2).tolist() == [1, 1, 1, 1]
    assert window_of(np.array([3, 1, 2]), 1).tolist() == [1, 1, 1]


def test_feedback_windows_hold_the_test_rows_in_time_order() -> None:
    windows = feedback_windows(timeline(), 3)
    assert [pairs(window) for window in windows] == [
        [(0, 1, 10), (1, 2, 11), (2, 1, 11)],
        [(0, 2, 12)],
        [(1, 0, 13), (2, 2, 20)],
    ]


def test_a_window_is_evaluated_against_the_history_before_it() -> None:
    dataset = timeline()
    windows = feedback_windows(dataset, 3)
    view = window_view(dataset, windows, 3)
    train = view.rows("target", "train")
    assert sorted(pairs(train)) == [(0, 0, 1), (0, 1, 10), (0, 2, 12), (1, 1, 2), (1, 2, 11), (2, 0, 3), (2, 1, 11)]
    assert pairs(view.rows("target", "test")) == [(1, 0, 13), (2, 2, 20)]
    assert view.rows("source", "train").empty


def test_the_replay_needs_a_temporal_dataset() -> None:
    dataset = timeline()
    other = PreparedDataset(dataset.path, {"name": "t", "protocol": "cold_users"}, dataset.interactions, dataset.raw_users, dataset.source_items, dataset.target_items)
    with pytest.raises(XdtError, match="needs dataset.protocol: temporal; dataset 't' was prepared with protocol 'cold_users'"):
        feedback_windows(other, 2)
