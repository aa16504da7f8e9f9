"""A run killed with SIGKILL mid-training and resumed ends with the same results as an uninterrupted run; one whose folder vanishes fails clearly."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from typer.testing import CliRunner

import xdt.cli as cli_module
import xdt.runs as runs_module
from tests.conftest import TINY_CONFIG, write_config
from tests.test_sequential_experiment import sequential_config
from xdt.cli import app
from xdt.progress import EpochReport, SilentReporter
from xdt.runs import iter_runs, open_run


def xdt(*arguments: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "xdt", *arguments], cwd=cwd, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=600
    )


@pytest.mark.parametrize(
    "settings",
    [
        {"methods": ["finetune"], "epochs": 5, "patience": 5},
        {"methods": ["cdrib"], "epochs": 4, "patience": 4, "cdrib_layers": 2},  # stateless draws keyed on the optimiser step
    ],
    ids=["finetune", "cdrib"],
)
def test_killed_transfer_resumes_to_identical_results(tmp_path: Path, settings: dict) -> None:
    config = {**TINY_CONFIG, "transfer": {**TINY_CONFIG["transfer"], **settings}}
    path = write_config(tmp_path, config)
    assert xdt("prepare", str(path), cwd=tmp_path).returncode == 0
    pretrain = xdt("pretrain-source", str(path), cwd=tmp_path)
    assert pretrain.returncode == 0, pretrain.stderr
    parent = pretrain.stdout.strip().split("pretrain run: ")[-1]

    reference = xdt("transfer", str(path), "--from", parent, cwd=tmp_path)
    assert reference.returncode == 0, reference.stderr
    reference_run = reference.stdout.strip().split(": ")[-1]

    killed = xdt("transfer", str(path), "--from", parent, cwd=tmp_path, env={"XDT_KILL_AFTER_EPOCH": "2"})
    assert killed.returncode == -signal.SIGKILL
    interrupted = [run for run in iter_runs(tmp_path / "runs", "tiny") if run.info()["status"] == "running"]
    assert len(interrupted) == 1
    assert [line["epoch"] for line in interrupted[0].metrics_history()] == [1, 2]
    listing = xdt("runs", "list", "--runs-dir", str(tmp_path / "runs"), "--json", cwd=tmp_path)
    statuses = {row["path"]: row["status"] for row in json.loads(listing.stdout)}
    assert statuses[str(interrupted[0].path)] == "interrupted"

    resumed = xdt("transfer", "--resume", str(interrupted[0].path), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert [line["epoch"] for line in interrupted[0].metrics_history()] == list(range(1, settings["epochs"] + 1))
    for run in (reference_run, str(interrupted[0].path)):
        assert xdt("evaluate", run, cwd=tmp_path).returncode == 0
    assert (interrupted[0].path / "results.json").read_text() == (Path(reference_run) / "results.json").read_text()


class DeletesRunsAfterFirstEpoch(SilentReporter):
    """A reporter that deletes the experiment's run folders when the first epoch is reported, as a user's `rm -r` might."""

    def __init__(self, experiment_dir: Path) -> None:
        self.experiment_dir = experiment_dir

    def epoch(self, report: EpochReport) -> None:
        shutil.rmtree(self.experiment_dir, ignore_errors=True)


def prepared(tmp_path: Path, config: dict = TINY_CONFIG) -> Path:
    """A tiny config whose data is prepared."""
    path = write_config(tmp_path, config)
    assert CliRunner().invoke(app, ["prepare", str(path)]).exit_code == 0
    return path


def test_a_run_folder_deleted_during_training_fails_with_one_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runs_module, "PROCESS_RUNS", [])
    path = prepared(tmp_path)
    monkeypatch.setattr(cli_module, "reporter", lambda: DeletesRunsAfterFirstEpoch(tmp_path / "runs" / "tiny"))
    result = CliRunner().invoke(app, ["pretrain-source", str(path)])
    assert result.exit_code == 2, result.output
    assert re.search(r"error: Run directory \S+/runs/tiny/\S+ vanished \(deleted or moved\) while saving the epoch 2 checkpoint of pretrain", result.output)
    assert "Traceback" not in result.output and "h5py" not in result.output


def test_a_vanished_run_is_named_where_keras_writes_into_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sequential loop saves weights itself (no xdt.runs helper in between): the CLI traces the OS error to the folder."""
    monkeypatch.setattr(runs_module, "PROCESS_RUNS", [])
    path = write_config(tmp_path, sequential_config(tmp_path, ["seq_target_only"]))
    monkeypatch.setattr(cli_module, "reporter", lambda: DeletesRunsAfterFirstEpoch(tmp_path / "runs" / "tiny-sequential"))
    result = CliRunner().invoke(app, ["run", str(path)])
    assert result.exit_code == 2, result.output
    assert re.search(r"error: Run directory \S+/runs/tiny-sequential/\S+ vanished \(deleted or moved\) while writing ", result.output)
    assert "Traceback" not in result.output


def test_resuming_restores_the_optimiser_without_warnings_and_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    path = prepared(tmp_path)
    straight = CliRunner().invoke(app, ["pretrain-source", str(path), "--set", "pretrain.epochs=2"])
    assert straight.exit_code == 0, straight.output
    halted = CliRunner().invoke(app, ["pretrain-source", str(path), "--set", "pretrain.epochs=1"])
    assert halted.exit_code == 0, halted.output
    reference, run = (Path(result.output.strip().split("pretrain run: ")[-1]) for result in (straight, halted))
    # As if killed after epoch 1 of 2: the run's config asks for 2 epochs and it never finished.
    resolved = json.loads((run / "resolved.json").read_text())
    resolved["pretrain"]["epochs"] = 2
    (run / "resolved.json").write_text(json.dumps(resolved))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resumed = CliRunner().invoke(app, ["pretrain-source", "--resume", str(run)])
    assert resumed.exit_code == 0, resumed.output
    assert [str(warning.message) for warning in caught if "optimizer" in str(warning.message).lower()] == []
    assert [line["epoch"] for line in open_run(run).metrics_history()] == [1, 2]
    assert json.loads((run / "results.json").read_text()) == json.loads((reference / "results.json").read_text())
