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


def test_a_damaged_run_is_listed_as_damaged_with_the_reason(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from xdt.cli import app

    healthy, truncated, not_an_object = make(tmp_path), make(tmp_path), make(tmp_path)
    (truncated.path / "run.json").write_text('{"kind": "pretrain", "sta')
    (not_an_object.path / "run.json").write_text("[1, 2]")
    (tmp_path / "e" / "20260101-000000-abcdef").mkdir()
    (tmp_path / "e" / "notes").mkdir()
    listing = CliRunner().invoke(app, ["runs", "list", "--runs-dir", str(tmp_path), "--json"])
    assert listing.exit_code == 0, listing.output
    rows = {row["path"]: row for row in json.loads(listing.output)}
    assert len(rows) == 4 and str(tmp_path / "e" / "notes") not in rows
    assert rows[str(healthy.path)]["status"] == "running" and "problem" not in rows[str(healthy.path)]
    assert rows[str(truncated.path)]["status"] == "damaged"
    assert rows[str(truncated.path)]["problem"] == f"Run {truncated.path}: run.json is damaged: not valid JSON at line 1 column 22 (Unterminated string starting at)"
    assert rows[str(not_an_object.path)]["problem"].endswith("run.json is damaged: expected a JSON object, found list")
    assert rows[str(tmp_path / "e" / "20260101-000000-abcdef")]["problem"] == f"Run {tmp_path / 'e' / '20260101-000000-abcdef'} has no run.json"
    table = CliRunner().invoke(app, ["runs", "list", "--runs-dir", str(tmp_path)])
    assert table.exit_code == 0
    assert table.output.count("│ damaged ") == 3
    # Runs created in the same second sort by their random suffix, so compare the reasons as a set.
    assert sorted(line.split(": run.json")[-1] for line in table.output.splitlines() if line.startswith("damaged: ") and ": run.json" in line) == [
        " is damaged: expected a JSON object, found list",
        " is damaged: not valid JSON at line 1 column 22 (Unterminated string starting at)",
    ]


def test_writing_into_a_vanished_run_names_the_folder(tmp_path: Path) -> None:
    import shutil

    from xdt.errors import RunVanishedError

    run = make(tmp_path)
    shutil.rmtree(run.path)
    with pytest.raises(RunVanishedError, match=rf"^Run directory {run.path} vanished \(deleted or moved\) while writing metrics.jsonl\."):
        run.append_metrics({"epoch": 1})
    with pytest.raises(RunVanishedError, match="while updating run.json"):
        run.update_info(status="complete")


def test_an_os_error_is_traced_to_a_vanished_run_of_this_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    import xdt.runs
    from xdt.runs import vanished_run_error

    monkeypatch.setattr(xdt.runs, "PROCESS_RUNS", [])
    run = make(tmp_path)
    unrelated = FileNotFoundError(2, "No such file or directory", str(tmp_path / "elsewhere.csv"))
    with pytest.raises(FileNotFoundError):
        raise vanished_run_error(unrelated)
    shutil.rmtree(run.path)
    h5py_error = FileNotFoundError(2, "Unable to synchronously create file", str(run.path / "checkpoints" / "model.weights.h5"))
    assert str(vanished_run_error(h5py_error)).startswith(f"Run directory {run.path} vanished (deleted or moved) while writing model.weights.h5.")
    make(tmp_path).update_info(status="complete")
    assert xdt.runs.PROCESS_RUNS == [run]


def test_runs_show_names_a_damaged_file_with_exit_2(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from xdt.cli import app

    run = make(tmp_path)
    (run.path / "results.json").write_bytes(b'{"stage": "pr\xe9train"}')
    result = CliRunner().invoke(app, ["runs", "show", str(run.path)])
    assert result.exit_code == 2
    assert f"Run {run.path}: results.json is damaged: not UTF-8 text (byte offset 13)" in result.output
    assert "Traceback" not in result.output
