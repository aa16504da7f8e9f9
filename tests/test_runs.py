"""Run directories: unique ids under concurrency, sortable, metadata round trips."""

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from xdt.errors import XdtError
from xdt.runs import create_run, iter_runs, new_run_id, open_run


def make(root: Path, experiment: str = "e"):
    return create_run(root, experiment, kind="pretrain", config_text="a: 1\n", resolved={"a": 1}, seed=3)


def test_concurrent_runs_never_share_a_directory(tmp_path: Path) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        runs = list(pool.map(lambda _: make(tmp_path), range(64)))
    assert len({run.path for run in runs}) == 64
    assert len(list(iter_runs(tmp_path, "e"))) == 64


def test_run_ids_sort_by_start_time() -> None:
    early = new_run_id(dt.datetime(2026, 1, 2, 3, 4, 5))
    late = new_run_id(dt.datetime(2026, 1, 2, 3, 4, 6))
    assert early.startswith("20260102-030405-") and len(early) == len("20260102-030405-") + 6
    assert sorted([late, early]) == [early, late]


def test_run_layout_and_metadata(tmp_path: Path) -> None:
    parent = make(tmp_path)
    child = create_run(tmp_path, "e", kind="transfer", config_text="b: 2\n", resolved={"b": 2}, seed=3, method="emcdr", parent=parent)
    assert (child.path / "config.yaml").read_text() == "b: 2\n"
    assert child.read_json("resolved.json") == {"b": 2}
    assert child.info()["status"] == "running" and child.info()["parent"] == str(parent.path)
    assert child.read_json("parent.json")["run_id"] == parent.run_id
    child.append_metrics({"epoch": 1, "loss": 0.5})
    child.append_metrics({"epoch": 2, "loss": 0.25})
    assert [line["loss"] for line in child.metrics_history()] == [0.5, 0.25]
    assert open_run(child.path).info()["method"] == "emcdr"
    with pytest.raises(XdtError, match="Not a run directory"):
        open_run(tmp_path)
