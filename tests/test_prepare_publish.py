"""`data/<name>/` is published whole: staged, fsynced and renamed into place, one prepare at a time."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TINY_CONFIG
from xdt.config import config_from_dict
from xdt.data import prepare
from xdt.data.dataset import load_dataset
from xdt.data.prepare import MANIFEST, dataset_dir, is_up_to_date, prepare_dataset

PREPARE_SCRIPT = """
import json, sys
from xdt.config import config_from_dict
from xdt.data.prepare import prepare_dataset
log = open(sys.argv[2], "a", buffering=1)
prepare_dataset(config_from_dict(json.loads(sys.argv[1])), progress=lambda message: log.write(message + "\\n"))
"""


def tiny_raw(tmp_path: Path, seed: int = 7) -> dict[str, Any]:
    """The shared tiny synthetic config, smaller still, preparing into tmp_path/data."""
    synthetic = {**TINY_CONFIG["dataset"]["synthetic"], "users": 200, "source_items": 60, "target_items": 50}
    return {
        **TINY_CONFIG,
        "seed": seed,
        "dataset": {**TINY_CONFIG["dataset"], "synthetic": synthetic},
        "runtime": {"data_dir": str(tmp_path / "data")},
    }


def assert_consistent(folder: Path) -> dict[str, Any]:
    """The manifest's file hashes match the files, the folder loads, and no staging or old folder is left."""
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["files"] == {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in manifest["files"]}
    assert sorted(manifest["files"]) == ["interactions.parquet", "items_source.parquet", "items_target.parquet", "users.parquet"]
    load_dataset(folder)
    leftovers = [path.name for path in folder.parent.iterdir() if path.name.startswith(f".{folder.name}.") and not path.name.endswith(".lock")]
    assert leftovers == []
    return manifest


def wait_for(path: Path, text: str, timeout: float = 120.0) -> None:
    """Block until the file contains text."""
    deadline = time.monotonic() + timeout
    while not (path.is_file() and text in path.read_text()):
        assert time.monotonic() < deadline, f"{path} never said {text!r}"
        time.sleep(0.05)


def test_concurrent_prepares_of_one_name_leave_one_consistent_folder(tmp_path: Path) -> None:
    raw = tiny_raw(tmp_path)
    config = config_from_dict(raw)
    folder = dataset_dir(config)
    folder.parent.mkdir(parents=True)
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    environment = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    with open(folder.parent / f".{folder.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # both prepares must queue behind this test
        workers = [
            subprocess.Popen([sys.executable, "-c", PREPARE_SCRIPT, json.dumps(raw), str(log)], env=environment) for log in logs
        ]
        for log in logs:
            wait_for(log, "waiting for another prepare of tiny to finish")
        fcntl.flock(lock, fcntl.LOCK_UN)
    assert [worker.wait(timeout=300) for worker in workers] == [0, 0]
    texts = [log.read_text().splitlines() for log in logs]
    assert sorted("writing" in lines for lines in texts) == [False, True]
    assert sum("up to date: prepared by the process this one waited for" in lines for lines in texts) == 1
    assert_consistent(folder)
    assert is_up_to_date(config)


def fail_on_second_items_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make prepare fail between writing items_source.parquet and items_target.parquet."""
    write_items = prepare.write_items

    def failing(path: Path, *arguments: Any) -> None:
        if path.name == "items_target.parquet":
            raise OSError(28, "No space left on device")
        write_items(path, *arguments)

    monkeypatch.setattr(prepare, "write_items", failing)


def test_a_failure_between_files_leaves_no_folder_when_there_was_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = config_from_dict(tiny_raw(tmp_path))
    fail_on_second_items_file(monkeypatch)
    with pytest.raises(OSError, match="No space left on device"):
        prepare_dataset(config)
    assert [path.name for path in (tmp_path / "data").iterdir()] == [".tiny.lock"]


def test_a_failure_between_files_leaves_the_old_folder_untouched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old_config = config_from_dict(tiny_raw(tmp_path, seed=7))
    old_manifest = prepare_dataset(old_config)
    folder = dataset_dir(old_config)
    before = {path.name: path.read_bytes() for path in folder.iterdir()}
    fail_on_second_items_file(monkeypatch)
    with pytest.raises(OSError, match="No space left on device"):
        prepare_dataset(config_from_dict(tiny_raw(tmp_path, seed=8)))
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == before
    assert assert_consistent(folder) == old_manifest
    assert is_up_to_date(old_config)


def test_republishing_keeps_caches_and_replaces_data(tmp_path: Path) -> None:
    prepare_dataset(config_from_dict(tiny_raw(tmp_path, seed=7)))
    folder = tmp_path / "data" / "tiny"
    (folder / "text_cache").mkdir()
    (folder / "text_cache" / "key.npy").write_bytes(b"cached")
    manifest = prepare_dataset(config_from_dict(tiny_raw(tmp_path, seed=8)))
    assert manifest["seed"] == 8 and assert_consistent(folder)["seed"] == 8
    assert (folder / "text_cache" / "key.npy").read_bytes() == b"cached"


def test_a_prepare_killed_between_renames_is_recovered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed after renaming the old folder aside: the next prepare restores it before trying again."""
    config = config_from_dict(tiny_raw(tmp_path))
    manifest = prepare_dataset(config)
    folder = dataset_dir(config)
    os.rename(folder, folder.parent / ".tiny.old-dead")
    (folder.parent / ".tiny.tmp-dead").mkdir()
    fail_on_second_items_file(monkeypatch)
    with pytest.raises(OSError):
        prepare_dataset(config_from_dict(tiny_raw(tmp_path, seed=9)))
    assert assert_consistent(folder) == manifest
