"""A run killed with SIGKILL mid-training and resumed ends with the same results as an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.conftest import TINY_CONFIG, write_config
from xdt.runs import iter_runs


def xdt(*arguments: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "xdt", *arguments], cwd=cwd, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=600
    )


def test_killed_transfer_resumes_to_identical_results(tmp_path: Path) -> None:
    config = {**TINY_CONFIG, "transfer": {**TINY_CONFIG["transfer"], "methods": ["finetune"], "epochs": 5, "patience": 5}}
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
    assert [line["epoch"] for line in interrupted[0].metrics_history()] == [1, 2, 3, 4, 5]
    for run in (reference_run, str(interrupted[0].path)):
        assert xdt("evaluate", run, cwd=tmp_path).returncode == 0
    assert (interrupted[0].path / "results.json").read_text() == (Path(reference_run) / "results.json").read_text()
