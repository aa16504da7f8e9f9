"""Run directories: ids, layout, metadata and listing. Never imports TensorFlow."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from xdt.errors import XdtError

STATUS_RUNNING = "running"
STATUS_INTERRUPTED = "interrupted"
STATUS_COMPLETE = "complete"
STATUS_FAILED = "failed"

# The run kind that holds a task's trained target-domain model(s): one transfer run per method for
# ranking and sequential experiments, the single run `xdt run` writes for task: rating.
MODEL_RUN_KINDS = {"ranking": "transfer", "rating": "rating", "sequential": "transfer"}

TRACKED_PACKAGES = ("xdt", "tensorflow", "tensorflow-cpu", "keras", "numpy", "pandas", "pyarrow", "scipy", "typer")


@dataclass(frozen=True)
class RunDirectory:
    """One run's folder, `runs/<experiment>/<run-id>/`."""

    path: Path

    @property
    def run_id(self) -> str:
        """The folder name: `YYYYmmdd-HHMMSS-<hex>`, sortable by start time."""
        return self.path.name

    @property
    def experiment(self) -> str:
        """The experiment the run belongs to."""
        return self.path.parent.name

    @property
    def checkpoints(self) -> Path:
        """Folder of resumable checkpoints."""
        return self.path / "checkpoints"

    def read_json(self, name: str) -> Any:
        """Read one JSON file of the run."""
        file = self.path / name
        if not file.is_file():
            raise XdtError(f"Run {self.path} has no {name}")
        return json.loads(file.read_text())

    def write_json(self, name: str, payload: Any) -> Path:
        """Write one JSON file atomically, so a crash never leaves half a file."""
        return write_json_atomic(self.path / name, payload)

    def info(self) -> dict[str, Any]:
        """The run's run.json: kind, method, status, parent, timestamps."""
        return self.read_json("run.json")

    def update_info(self, **changes: Any) -> dict[str, Any]:
        """Merge `changes` into run.json."""
        info = self.info()
        info.update(changes)
        self.write_json("run.json", info)
        return info

    def append_metrics(self, record: dict[str, Any]) -> None:
        """Append one line to metrics.jsonl (one JSON object per epoch or phase)."""
        with open(self.path / "metrics.jsonl", "a") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def metrics_history(self) -> list[dict[str, Any]]:
        """Every line of metrics.jsonl."""
        file = self.path / "metrics.jsonl"
        if not file.is_file():
            return []
        return [json.loads(line) for line in file.read_text().splitlines() if line.strip()]


def write_json_atomic(path: Path, payload: Any) -> Path:
    """Write JSON through a temporary file and an atomic rename."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(temporary, path)
    return path


def new_run_id(now: dt.datetime | None = None) -> str:
    """A sortable, collision-resistant run id: `20261128-004146-3f2a9c`."""
    now = now or dt.datetime.now()
    return f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def create_run(
    runs_root: Path,
    experiment: str,
    *,
    kind: str,
    config_text: str,
    resolved: dict[str, Any],
    seed: int,
    method: str | None = None,
    parent: RunDirectory | None = None,
) -> RunDirectory:
    """Create a fresh run directory; concurrent creations never share one (mkdir is atomic)."""
    experiment_dir = runs_root / experiment
    experiment_dir.mkdir(parents=True, exist_ok=True)
    while True:
        path = experiment_dir / new_run_id()
        try:
            path.mkdir()
            break
        except FileExistsError:
            continue
    run = RunDirectory(path)
    (path / "config.yaml").write_text(config_text)
    run.write_json("resolved.json", resolved)
    run.write_json(
        "run.json",
        {
            "kind": kind,
            "method": method,
            "experiment": experiment,
            "status": STATUS_RUNNING,
            "started": dt.datetime.now().isoformat(timespec="seconds"),
            "parent": str(parent.path) if parent else None,
            "seed": seed,
            **process_record(),
        },
    )
    if parent is not None:
        run.write_json("parent.json", {"path": str(parent.path), "run_id": parent.run_id, **parent.info()})
    run.checkpoints.mkdir()
    return run


def process_record() -> dict[str, Any]:
    """Which process is working on a run, so a dead one can be told from a live one."""
    return {"pid": os.getpid(), "host": platform.node()}


def mark_resumed(run: RunDirectory) -> None:
    """A resumed run is running again, in this process."""
    run.update_info(status=STATUS_RUNNING, **process_record())


def run_status(info: dict[str, Any]) -> str:
    """The status to show: a `running` run whose process on this host is gone is `interrupted`."""
    status = info.get("status", "unknown")
    if status != STATUS_RUNNING or info.get("host") != platform.node() or "pid" not in info:
        return status
    try:
        os.kill(int(info["pid"]), 0)
    except ProcessLookupError:
        return STATUS_INTERRUPTED
    except PermissionError:
        return status
    return status


def open_run(path: Path | str) -> RunDirectory:
    """Open an existing run directory, with a clear error when it is not one."""
    path = Path(path)
    if not (path / "run.json").is_file():
        raise XdtError(f"Not a run directory (no run.json): {path}")
    return RunDirectory(path)


def check_model_run(run: RunDirectory, task: str, command: str) -> None:
    """Refuse a run that holds no trained target model of its task (a pretrain run, say) for `command`."""
    expected = MODEL_RUN_KINDS[task]
    kind = run.info().get("kind")
    if kind != expected:
        raise XdtError(
            f"{command} expects a {expected} run (a trained target model) of a task: {task} experiment; {run.path} is a {kind} run"
        )


def iter_runs(runs_root: Path, experiment: str | None = None) -> Iterator[RunDirectory]:
    """Every run under `runs_root`, oldest first."""
    if not runs_root.is_dir():
        return
    experiments = [runs_root / experiment] if experiment else sorted(p for p in runs_root.iterdir() if p.is_dir())
    runs = [RunDirectory(p) for folder in experiments if folder.is_dir() for p in folder.iterdir() if (p / "run.json").is_file()]
    yield from sorted(runs, key=lambda run: (run.run_id, run.experiment))


def git_commit(directory: Path) -> str | None:
    """The git commit of the code, when it is a git checkout."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=directory, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that decide results."""
    versions = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def environment_record(*, seed: int, strategy: str, replicas: int, devices: list[str]) -> dict[str, Any]:
    """What env.json holds: versions, commit, host, devices, strategy, seed."""
    return {
        "python": sys.version.split()[0],
        "packages": package_versions(),
        "git_commit": git_commit(Path(__file__).resolve().parent),
        "host": platform.node(),
        "platform": platform.platform(),
        "seed": seed,
        "strategy": strategy,
        "replicas": replicas,
        "devices": devices,
        "argv": sys.argv,
    }


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
