"""The replay protocol's windows on a hand-built timeline: exact contents, and what each window's evaluation sees."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.conftest import TINY_CONFIG, write_config
from xdt.cli import app
from xdt.data.dataset import PreparedDataset
from xdt.errors import XdtError
from xdt.replay import feedback_windows, window_of, window_view
from xdt.runs import iter_runs
from xdt.session import load_run_config, open_dataset


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


def temporal_config(tmp_path: Path) -> Path:
    """TINY_CONFIG split in time (synthetic rows carry per-user orders as timestamps), target_mf only."""
    dataset = {key: value for key, value in TINY_CONFIG["dataset"].items() if key not in ("cold_fraction", "valid_cold_fraction")}
    config = {
        **TINY_CONFIG,
        "dataset": {**dataset, "synthetic": {**dataset["synthetic"], "users": 200}, "protocol": "temporal", "test_quantile": 0.7},
        "transfer": {**TINY_CONFIG["transfer"], "methods": ["target_mf"], "epochs": 2},
        "update": {"epochs": 1, "feedback_windows": 3},
    }
    return write_config(tmp_path, config)


def test_xdt_replay_writes_every_window_into_a_replay_run(tmp_path: Path) -> None:
    runner = CliRunner()
    config = temporal_config(tmp_path)
    assert runner.invoke(app, ["run", str(config)]).exit_code == 0
    (start,) = [run for run in iter_runs(tmp_path / "runs") if run.info().get("method") == "target_mf" and run.info()["kind"] == "transfer"]
    result = runner.invoke(app, ["replay", str(start.path)])
    assert result.exit_code == 0, result.output
    (replayed,) = [run for run in iter_runs(tmp_path / "runs") if run.info()["kind"] == "replay"]
    assert replayed.info()["parent"] == str(start.path) and replayed.info()["status"] == "complete"
    payload = replayed.read_json("replay.json")
    records = payload["windows"]
    windows = feedback_windows(open_dataset(load_run_config(start)), 3)
    assert [record["rows"] for record in records] == [len(window) for window in windows]
    scores = [{key: value for key, value in records[0][arm].items() if key != "seconds_to_feed"} for arm in ("none", "incremental", "retrain")]
    assert scores[0] == scores[1] == scores[2]  # nothing was fed before window 1 is scored
    assert ["seconds_to_feed" in record["incremental"] for record in records] == [True, True, False]  # the last is scored, not fed
    fed = [pd.read_csv(replayed.path / "feedback" / f"feedback-window-{window}.csv") for window in (1, 2)]
    assert [len(frame) for frame in fed] == [len(windows[0]), len(windows[1])]
    assert list(fed[0].columns) == ["user", "item", "timestamp"]
    table = (replayed.path / "replay.md").read_text()
    assert "| fed window | incremental s | retrain s | incremental / retrain |" in table
    assert "- incremental within 5% of retrain's ndcg@10 on every window after the first: " in table
    assert (replayed.path / "replay.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "replay run: " in result.output


def test_xdt_replay_refuses_a_run_on_data_not_split_in_time(tmp_path: Path) -> None:
    runner = CliRunner()
    config = write_config(tmp_path, {**TINY_CONFIG, "transfer": {**TINY_CONFIG["transfer"], "methods": ["target_mf"], "epochs": 1}})
    assert runner.invoke(app, ["run", str(config)]).exit_code == 0
    (start,) = [run for run in iter_runs(tmp_path / "runs") if run.info().get("method") == "target_mf"]
    result = runner.invoke(app, ["replay", str(start.path)])
    assert result.exit_code != 0
    assert "needs dataset.protocol: temporal; dataset 'tiny' was prepared with protocol 'cold_users'" in result.output
    assert [run for run in iter_runs(tmp_path / "runs") if run.info()["kind"] == "replay"] == []  # refused before a run existed
