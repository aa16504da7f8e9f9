"""`xdt update`: warm-started runs on feedback, id-map growth, the replay mix, errors, resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.conftest import TINY_CONFIG, write_config
from xdt.cli import app
from xdt.config import load_config
from xdt.data.prepare import prepare_dataset
from xdt.data.protocols import TARGET
from xdt.errors import XdtError
from xdt.models.matrix_factorization import MatrixFactorization
from xdt.pretrain import pretrain_source
from xdt.progress import SilentReporter
from xdt.runs import RunDirectory, open_run
from xdt.runtime import select_strategy
from xdt.session import load_model, load_run_config, open_dataset
from xdt.transfer import transfer_method
from xdt.update import grow_model, replay_mix, start_update, update_run, warm_optimizer

WORKTREE = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def parents(tmp_path_factory: pytest.TempPathFactory) -> dict[str, RunDirectory]:
    """A tiny experiment's trained runs by method, plus its pretrain run."""
    folder = tmp_path_factory.mktemp("update")
    config = {**TINY_CONFIG, "transfer": {**TINY_CONFIG["transfer"], "methods": ["popularity", "target_mf", "finetune"]}}
    loaded = load_config(write_config(folder, config))
    prepare_dataset(loaded.config)
    pretrain = pretrain_source(loaded.config, config_text=loaded.text)
    runs = {method: transfer_method(loaded.config, method, parent=pretrain, config_text=loaded.text) for method in loaded.config.transfer.methods}
    return {**runs, "pretrain": pretrain}


def write_feedback(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("user,item\n" + "".join(f"{user},{item}\n" for user, item in rows))
    return path


def unseen_low_items(run: RunDirectory, raw_user: str, count: int) -> list[str]:
    """The `count` target items the run scores lowest for a user among those the user has not seen."""
    dataset = open_dataset(load_run_config(run))
    user = dataset.user_index(raw_user)
    scores = np.asarray(load_model(run).score_all(np.array([user])))[0]
    seen = dataset.interaction_matrix(TARGET, "train", "valid", "test")[user].indices
    order = [item for item in np.argsort(scores) if item not in set(seen)]
    return dataset.items(TARGET)["raw_item"].to_numpy()[order[:count]].tolist()


def rank_of(run: RunDirectory, raw_user: str, raw_items: list[str]) -> float:
    """Mean rank (0 = best) of the items among all target items in the run's scores for the user."""
    dataset = open_dataset(load_run_config(run))
    scores = np.asarray(load_model(run).score_all(np.array([dataset.user_index(raw_user)])))[0]
    ranks = np.argsort(np.argsort(-scores))
    positions = pd.Index(dataset.items(TARGET)["raw_item"]).get_indexer(raw_items)
    return float(ranks[positions].mean())


@pytest.mark.parametrize("method", ["target_mf", "finetune"])
def test_update_moves_scores_toward_the_feedback_and_records_the_parent(parents: dict, tmp_path: Path, method: str) -> None:
    parent = parents[method]
    user = "u00003"
    items = unseen_low_items(parent, user, 4)
    feedback = write_feedback(tmp_path / "feedback.csv", [(user, item) for item in items])
    result = CliRunner().invoke(app, ["update", str(parent.path), "--feedback", str(feedback), "--epochs", "10"])
    assert result.exit_code == 0, result.output
    updated = open_run(result.output.split("updated run: ")[1].split(" (parent")[0])
    info = updated.info()
    assert info["parent"] == str(parent.path) and info["kind"] == "transfer" and info["method"] == method
    assert updated.read_json("parent.json")["path"] == str(parent.path)
    assert updated.read_json("resolved.json")["update"]["epochs"] == 10
    assert info["feedback"]["rows_added"] == 4 and info["feedback"]["new_users"] == 0 and info["feedback"]["new_items"] == 0
    assert rank_of(updated, user, items) < rank_of(parent, user, items) - 20
    recommended = CliRunner().invoke(app, ["recommend", str(updated.path), "--user", user, "--k", "120", "--output", str(tmp_path / "r.csv")])
    assert recommended.exit_code == 0, recommended.output
    assert not set(items) & set(pd.read_csv(tmp_path / "r.csv")["item"])  # now seen: excluded like any history item


def test_new_users_and_items_grow_the_maps_and_old_rows_stay_byte_identical(parents: dict, tmp_path: Path) -> None:
    parent = parents["target_mf"]
    feedback = write_feedback(tmp_path / "feedback.csv", [("newcomer", "t00005"), ("newcomer", "brand-new"), ("u00001", "brand-new")])
    updated = start_update(parent, load_run_config(parent), feedback, None, {}, select_strategy("default"), SilentReporter())
    before, after = open_dataset(load_run_config(parent)), open_dataset(load_run_config(updated))
    assert after.raw_users.tolist() == [*before.raw_users.tolist(), "newcomer"]
    assert after.items(TARGET)["raw_item"].tolist() == [*before.items(TARGET)["raw_item"].tolist(), "brand-new"]
    assert updated.info()["feedback"]["new_users"] == 1 and updated.info()["feedback"]["new_items"] == 1
    old = load_model(parent)
    start = grow_model(old, after.n_users, after.n_items(TARGET))
    start.load_weights(updated.checkpoints / "update-epoch-0" / "model.weights.h5")
    for table in ("user_embedding", "item_embedding", "item_bias"):
        old_rows, new_rows = getattr(old, table).embeddings.numpy(), getattr(start, table).embeddings.numpy()
        assert new_rows[: len(old_rows)].tobytes() == old_rows.tobytes()
        np.testing.assert_allclose(new_rows[len(old_rows) :], old_rows.mean(axis=0, keepdims=True), rtol=1e-6)
    trained = update_run(parent, feedback)
    served = CliRunner().invoke(app, ["recommend", str(trained.path), "--user", "newcomer", "--k", "3"])
    assert served.exit_code == 0, served.output


def test_warm_optimizer_pads_new_rows_with_zeros_and_keeps_the_step() -> None:
    model = MatrixFactorization(3, 2, 2)
    model.build()
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    model.optimizer.build(model.trainable_variables)
    saved = {"v0": np.array(7), "v1": np.array(0.01, dtype=np.float32)}
    shapes = [(2, 2), (2, 2), (1, 2), (1, 2), (1, 1), (1, 1)]  # the parent: 2 users, 1 item
    for index, shape in enumerate(shapes):
        saved[f"v{index + 2}"] = np.full(shape, index + 1.0, dtype=np.float32)
    assert warm_optimizer(model, saved) == "parent"
    variables = [variable.numpy() for variable in model.optimizer.variables]
    assert int(variables[0]) == 7
    np.testing.assert_array_equal(variables[2], [[1, 1], [1, 1], [0, 0]])
    np.testing.assert_array_equal(variables[5], [[4, 4], [0, 0]])
    np.testing.assert_array_equal(variables[7], [[6], [0]])
    frozen_users = {name: value for name, value in saved.items() if name in ("v0", "v1")}
    frozen_users.update({f"v{index + 2}": saved[f"v{index + 4}"] for index in range(4)})
    assert warm_optimizer(model, frozen_users).startswith("parent (item tables")
    np.testing.assert_array_equal(model.optimizer.variables[2].numpy(), np.zeros((3, 2)))
    np.testing.assert_array_equal(model.optimizer.variables[4].numpy(), [[3, 3], [0, 0]])


def test_replay_mix_draws_the_configured_share_of_old_rows(parents: dict) -> None:
    dataset = open_dataset(load_run_config(parents["target_mf"]))
    feedback = pd.DataFrame({"domain": TARGET, "user": [0, 1], "item": [3, 4], "rating": 1.0, "timestamp": -1, "split": "train"})
    mixed = replay_mix(dataset, feedback, 2.5, seed=1)
    assert len(mixed.interactions) == 2 + 5
    assert mixed.interactions.iloc[:2][["user", "item"]].values.tolist() == [[0, 3], [1, 4]]
    old = dataset.rows(TARGET, "train")
    replayed = set(map(tuple, mixed.interactions.iloc[2:][["user", "item"]].values.tolist()))
    assert replayed <= set(map(tuple, old[["user", "item"]].values.tolist()))
    assert mixed.interactions.equals(replay_mix(dataset, feedback, 2.5, seed=1).interactions)
    assert len(replay_mix(dataset, feedback, 0.0, seed=1).interactions) == 2


def test_a_bad_feedback_row_names_file_and_line(parents: dict, tmp_path: Path) -> None:
    feedback = tmp_path / "feedback.csv"
    feedback.write_text("user,item,rating\nu00001,t00005,5\nu00001,t00006,five\n")
    result = CliRunner().invoke(app, ["update", str(parents["target_mf"].path), "--feedback", str(feedback)])
    assert result.exit_code == 2
    assert f"{feedback}:3: rating 'five' is not a number" in " ".join(result.output.split())


def test_feedback_already_in_the_data_is_counted_and_nothing_left_is_an_error(parents: dict, tmp_path: Path) -> None:
    parent = parents["target_mf"]
    dataset = open_dataset(load_run_config(parent))
    row = dataset.rows(TARGET, "train").iloc[0]
    pair = (dataset.raw_users[row["user"]], dataset.items(TARGET)["raw_item"].iat[row["item"]])
    with pytest.raises(XdtError, match="no feedback rows left to train on .1 read.*already_in_data"):
        update_run(parent, write_feedback(tmp_path / "feedback.csv", [pair]))


def test_unsupported_runs_and_formats_are_refused(parents: dict, tmp_path: Path) -> None:
    feedback = write_feedback(tmp_path / "feedback.csv", [("u00001", "t00005")])
    for name, kind in (("popularity", "a popularity run"), ("pretrain", "a pretrain run")):
        with pytest.raises(XdtError, match=f"supports task: ranking runs of target_mf, finetune, cmf; .* is {kind} of task: ranking"):
            update_run(parents[name], feedback)
    with pytest.raises(XdtError, match=r"cannot tell the format from the suffix '.txt'"):
        update_run(parents["target_mf"], tmp_path / "feedback.txt")


@pytest.mark.slow
def test_killed_update_resumes_to_the_same_model(parents: dict, tmp_path: Path) -> None:
    parent = parents["target_mf"]
    feedback = write_feedback(tmp_path / "feedback.csv", [("u00002", f"t{item:05d}") for item in range(40, 60)])
    env = {**os.environ, "PYTHONPATH": str(WORKTREE)}
    command = [sys.executable, "-m", "xdt", "update", str(parent.path), "--feedback", str(feedback)]
    reference = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert reference.returncode == 0, reference.stderr
    killed = subprocess.run(command, capture_output=True, text=True, env={**env, "XDT_KILL_AFTER_EPOCH": "2"}, timeout=600)
    assert killed.returncode == -signal.SIGKILL
    runs = sorted(path for path in parent.path.parent.iterdir() if (path / "feedback.parquet").is_file())
    interrupted = open_run(runs[-1])
    assert interrupted.info()["status"] == "running"
    resumed = subprocess.run([sys.executable, "-m", "xdt", "update", "--resume", str(interrupted.path)], capture_output=True, text=True, env=env, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert [line["epoch"] for line in interrupted.metrics_history()] == [1, 2, 3]
    reference_run = open_run(reference.stdout.split("updated run: ")[1].split(" (parent")[0])
    for table in ("user_embedding", "item_embedding", "item_bias"):
        expected = getattr(load_model(reference_run), table).embeddings.numpy()
        assert getattr(load_model(interrupted), table).embeddings.numpy().tobytes() == expected.tobytes()


def test_feedback_of_a_held_out_pair_turns_that_test_row_into_training(parents: dict, tmp_path: Path) -> None:
    parent = parents["target_mf"]
    dataset = open_dataset(load_run_config(parent))
    row = dataset.rows(TARGET, "test").iloc[0]
    pair = (dataset.raw_users[row["user"]], dataset.items(TARGET)["raw_item"].iat[row["item"]])
    updated = update_run(parent, write_feedback(tmp_path / "feedback.csv", [pair]), settings={"epochs": 1})
    assert updated.info()["feedback"]["from_holdout"] == 1 and updated.info()["feedback"]["rows_added"] == 1
    grown = open_dataset(load_run_config(updated))
    matches = grown.rows(TARGET, "train", "valid", "test")
    matches = matches[(matches["user"] == row["user"]) & (matches["item"] == row["item"])]
    assert matches["split"].tolist() == ["train"]
    assert len(grown.rows(TARGET, "test")) == len(dataset.rows(TARGET, "test")) - 1
