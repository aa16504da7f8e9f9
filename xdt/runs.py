"""Run directories: ids, layout, metadata and listing. Never imports TensorFlow."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from xdt.errors import DamagedRunError, RunVanishedError, XdtError

STATUS_RUNNING = "running"
STATUS_INTERRUPTED = "interrupted"
STATUS_COMPLETE = "complete"
STATUS_FAILED = "failed"
STATUS_DAMAGED = "damaged"
FINISHED_STATUSES = (STATUS_COMPLETE, STATUS_FAILED)
RUN_ID_PATTERN = re.compile(r"\d{8}-\d{6}-[0-9a-f]{6}")

# The run kind that holds a task's trained target-domain model(s): one transfer run per method for
# ranking and sequential experiments, the single run `xdt run` writes for task: rating.
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
        """Read one JSON file of the run; a damaged one raises DamagedRunError naming the file and the fault."""
        file = self.path / name
        if not file.is_file():
            raise XdtError(f"Run {self.path} has no {name}")
        try:
            return json.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise DamagedRunError(f"Run {self.path}: {name} is damaged: {describe_read_error(error)}") from None

    def write_json(self, name: str, payload: Any) -> Path:
        """Write one JSON file atomically, so a crash never leaves half a file."""
        with self.guard(f"writing {name}"):
            return write_json_atomic(self.path / name, payload)

    def info(self) -> dict[str, Any]:
        """The run's run.json: kind, method, status, parent, timestamps."""
        info = self.read_json("run.json")
        if not isinstance(info, dict):
            raise DamagedRunError(f"Run {self.path}: run.json is damaged: expected a JSON object, found {type(info).__name__}")
        return info

    def update_info(self, **changes: Any) -> dict[str, Any]:
        """Merge `changes` into run.json; a finished run is no longer one this process works on."""
        self.require_present("updating run.json")
        info = self.info()
        info.update(changes)
        self.write_json("run.json", info)
        if info.get("status") in FINISHED_STATUSES:
            forget_process_run(self)
        return info

    def append_metrics(self, record: dict[str, Any]) -> None:
        """Append one line to metrics.jsonl (one JSON object per epoch or phase)."""
        with self.guard("writing metrics.jsonl"), open(self.path / "metrics.jsonl", "a") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def require_present(self, doing: str) -> None:
        """Fail with RunVanishedError when the run folder is gone, before `doing` (e.g. "writing run.json") in it.

        Without this, a folder deleted mid-training surfaces as a FileNotFoundError traceback
        from h5py or the OS, several frames away from the cause.
        """
        if not self.path.is_dir():
            raise RunVanishedError(vanished_message(self.path, doing))

    @contextmanager
    def guard(self, doing: str) -> Iterator[None]:
        """Run the block (`doing`, e.g. "saving the epoch 2 checkpoint") in the folder: if it vanishes before or during it, RunVanishedError."""
        self.require_present(doing)
        try:
            yield
        except OSError as error:
            if not self.path.is_dir():
                raise RunVanishedError(vanished_message(self.path, doing)) from error
            raise

    def metrics_history(self) -> list[dict[str, Any]]:
        """Every line of metrics.jsonl."""
        file = self.path / "metrics.jsonl"
        if not file.is_file():
            return []
        return [json.loads(line) for line in file.read_text().splitlines() if line.strip()]


def describe_read_error(error: Exception) -> str:
    """What is wrong with a file that could not be read as JSON, with the position when known."""
    if isinstance(error, json.JSONDecodeError):
        return f"not valid JSON at line {error.lineno} column {error.colno} ({error.msg})"
    if isinstance(error, UnicodeDecodeError):
        return f"not UTF-8 text (byte offset {error.start})"
    return f"unreadable ({error.strerror or error})"


def vanished_message(path: Path, doing: str) -> str:
    """The message of RunVanishedError: which run folder is gone and what could not be done in it."""
    return (
        f"Run directory {path} vanished (deleted or moved) while {doing}. "
        "Expected it to stay in place until the run ends; its checkpoints went with it, so start a new run"
    )


# Run directories this process created or resumed and has not finished, so that an OS error
# raised by code writing into one directly (Keras, h5py) can be traced to a vanished folder.
PROCESS_RUNS: list[RunDirectory] = []


def remember_process_run(run: RunDirectory) -> None:
    """Note that this process is writing into `run`."""
    if run not in PROCESS_RUNS:
        PROCESS_RUNS.append(run)


def forget_process_run(run: RunDirectory) -> None:
    """`run` is finished: an error from now on is not about it."""
    if run in PROCESS_RUNS:
        PROCESS_RUNS.remove(run)


def vanished_run_error(error: OSError) -> RunVanishedError:
    """The RunVanishedError behind `error` when a run folder of this process is gone; otherwise `error` itself is raised."""
    for run in PROCESS_RUNS:
        if not run.path.is_dir():
            written = Path(error.filename).name if getattr(error, "filename", None) else "its files"
            return RunVanishedError(vanished_message(run.path, f"writing {written}"))
    raise error


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
    remember_process_run(run)
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
    remember_process_run(run)


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
    from xdt.tasks import get_task

    expected = get_task(task).model_run_kind
    kind = run.info().get("kind")
    if kind != expected:
        raise XdtError(
            f"{command} expects a {expected} run (a trained target model) of a task: {task} experiment; {run.path} is a {kind} run"
        )


def iter_runs(runs_root: Path, experiment: str | None = None) -> Iterator[RunDirectory]:
    """Every run under `runs_root` (a folder with a run.json), oldest first."""
    yield from (run for run in run_folders(runs_root, experiment) if (run.path / "run.json").is_file())


def run_folders(runs_root: Path, experiment: str | None = None) -> Iterator[RunDirectory]:
    """Every run under `runs_root`, oldest first, including folders named like a run id that lack run.json.

    Such a folder is a run that died between creating its folder and writing run.json (or lost
    the file): `xdt runs list` shows it as damaged rather than hiding it.
    """
    if not runs_root.is_dir():
        return
    experiments = [runs_root / experiment] if experiment else sorted(p for p in runs_root.iterdir() if p.is_dir())
    runs = [
        RunDirectory(p)
        for folder in experiments
        if folder.is_dir()
        for p in folder.iterdir()
        if p.is_dir() and ((p / "run.json").is_file() or RUN_ID_PATTERN.fullmatch(p.name))
    ]
    yield from sorted(runs, key=lambda run: (run.run_id, run.experiment))


def listing_row(run: RunDirectory) -> dict[str, Any]:
    """One row of `xdt runs list`; a run whose run.json or results.json cannot be read is `damaged`, with the reason."""
    row: dict[str, Any] = {"run": run.run_id, "experiment": run.experiment, "kind": None, "method": None,
                           "status": STATUS_DAMAGED, "score": "", "path": str(run.path)}
    try:
        info = run.info()
        row.update(kind=info.get("kind"), method=info.get("method"), status=run_status(info))
        row["score"] = test_score(run)
    except XdtError as error:
        row.update(status=STATUS_DAMAGED, problem=str(error))
    return row


def test_score(run: RunDirectory) -> str:
    """The run's test NDCG@10 over all users as text, or "" when it has none."""
    if not (run.path / "results.json").is_file():
        return ""
    results = run.read_json("results.json")
    value = results.get("test", {}).get("all", {}).get("ndcg@10") if isinstance(results, dict) else None
    return f"{value:.4f}" if isinstance(value, (int, float)) else ""


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
