"""`xdt evaluate` and `xdt recommend` on rating and sequential runs (tiny runs of the task tests' configs)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import write_config
from test_rating_experiment import rating_config
from test_sequential_experiment import sequential_config
from typer.testing import CliRunner

from xdt.cli import app
from xdt.data.dataset import PreparedDataset, load_dataset
from xdt.data.protocols import TARGET

runner = CliRunner()
SEQUENCE_METHODS = ["seq_target_only", "seq_finetune", "text_bridge", "c2dsr", "unisrec"]


def invoke(*arguments: str | Path):  # noqa: ANN201
    """Run one xdt command in-process."""
    return runner.invoke(app, [str(argument) for argument in arguments], catch_exceptions=False)


def run_experiment(folder: Path, config: dict) -> dict[str, Path]:
    """`xdt run` a config in `folder`; every run directory it wrote, by "<kind>" or "<kind>:<method>"."""
    result = invoke("run", write_config(folder, config))
    assert result.exit_code == 0, result.output
    runs = {}
    for path in (folder / "runs" / config["experiment"]).iterdir():
        info = json.loads((path / "run.json").read_text())
        runs[info["kind"] if info["kind"] != "transfer" else f"transfer:{info['method']}"] = path
    return runs


@pytest.fixture(scope="module")
def rating_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny rating run with every rating method."""
    folder = tmp_path_factory.mktemp("rating")
    return run_experiment(folder, rating_config(folder))["rating"]


@pytest.fixture(scope="module")
def sequential_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny sequential experiment: its pretrain run and one transfer run per sequence method."""
    folder = tmp_path_factory.mktemp("sequential")
    return run_experiment(folder, sequential_config(folder, SEQUENCE_METHODS))


def dataset_of(run: Path) -> PreparedDataset:
    """The prepared dataset a run was trained on."""
    return load_dataset(Path(json.loads((run / "data.json").read_text())["path"]))


def without_ansi(text: str) -> str:
    """Terminal output without colour codes."""
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def test_evaluate_rating_run_recomputes_the_metrics_xdt_run_wrote(rating_run: Path) -> None:
    written = json.loads((rating_run / "results.json").read_text())
    per_rating = pd.read_parquet(rating_run / "per_rating.parquet")
    # Blank the metrics, so that matching values can only come from recomputing them.
    (rating_run / "results.json").write_text(json.dumps({**written, "methods": {}}))
    (rating_run / "per_rating.parquet").unlink()
    result = invoke("evaluate", rating_run)
    assert result.exit_code == 0, result.output
    assert json.loads((rating_run / "results.json").read_text()) == written
    pd.testing.assert_frame_equal(pd.read_parquet(rating_run / "per_rating.parquet"), per_rating)
    output = without_ansi(result.output)
    assert "Cold-start users' target-domain test ratings: MAE / RMSE" in output and "seed 5)" in output
    emcdr = written["methods"]["emcdr"]["all"]
    assert f"{emcdr['mae']:.4f} │ {emcdr['rmse']:.4f}" in output
    assert f"report: {rating_run / 'report.md'}" in output
    assert "## Test MAE / RMSE" in (rating_run / "report.md").read_text()


def test_evaluate_sequential_runs_reproduce_results_json(sequential_runs: dict[str, Path]) -> None:
    for method in SEQUENCE_METHODS:
        run = sequential_runs[f"transfer:{method}"]
        written = json.loads((run / "results.json").read_text())
        per_user = pd.read_parquet(run / "per_user.parquet")
        (run / "results.json").unlink()
        (run / "per_user.parquet").unlink()
        result = invoke("evaluate", run)
        assert result.exit_code == 0, result.output
        assert json.loads((run / "results.json").read_text()) == written, method
        pd.testing.assert_frame_equal(pd.read_parquet(run / "per_user.parquet"), per_user)
        output = without_ansi(result.output)
        assert "Target-domain test metrics @5 (full ranking" in output
        assert f"{written['test']['all']['ndcg@5']:.4f}" in output


def test_recommend_rating_run_ranks_unrated_items_by_predicted_rating(rating_run: Path, tmp_path: Path) -> None:
    from xdt.rating.evaluation import predict_ratings
    from xdt.rating.experiment import load_rating_model
    from xdt.runs import RunDirectory

    dataset = dataset_of(rating_run)
    rows = dataset.rows(TARGET, "train", "valid", "test")
    cold_user = int(dataset.rows(TARGET, "test")["user"].iloc[0])
    warm_user = int(dataset.rows(TARGET, "train")["user"].iloc[0])
    raw = {user: str(dataset.raw_users[user]) for user in (cold_user, warm_user)}
    output = tmp_path / "recommendations.csv"
    result = invoke("recommend", rating_run, "--user", raw[cold_user], "--user", raw[warm_user], "--k", "3", "--output", output)
    assert result.exit_code == 0, result.output
    assert "6 recommendations for 2 users" in result.output
    frame = pd.read_csv(output, dtype={"user": str, "item": str})
    assert list(frame.columns) == ["user", "rank", "item", "title", "score", "cohort"]

    # The learned method with the lowest validation MAE serves: here ptupcdr.
    fits = json.loads((rating_run / "results.json").read_text())["fits"]
    assert min(("target_mf", "emcdr", "ptupcdr"), key=lambda method: fits[method]["best_valid"]) == "ptupcdr"
    model = load_rating_model(RunDirectory(rating_run), "ptupcdr")
    items = np.arange(dataset.n_items(TARGET))
    raw_items = dataset.items(TARGET)["raw_item"].to_numpy()
    for user, cohort in ((cold_user, "cold-start"), (warm_user, "warm")):
        predicted = predict_ratings(model, np.full(len(items), user), items).astype(np.float64)
        rated = rows.loc[rows["user"] == user, "item"].to_numpy()
        predicted[rated] = -np.inf
        best = np.argsort(-predicted, kind="stable")[:3]
        recommended = frame.loc[frame["user"] == raw[user]]
        assert recommended["item"].tolist() == raw_items[best].tolist()
        np.testing.assert_array_equal(recommended["score"].to_numpy(), predicted[best])
        assert recommended["rank"].tolist() == [1, 2, 3] and set(recommended["cohort"]) == {cohort}
        assert not set(recommended["item"]) & set(raw_items[rated])


@pytest.mark.parametrize("method", ["seq_finetune", "c2dsr", "unisrec"])
def test_recommend_sequential_run_ranks_next_items_after_the_whole_history(
    sequential_runs: dict[str, Path], tmp_path: Path, method: str
) -> None:
    from xdt.config import config_from_dict
    from xdt.runs import RunDirectory
    from xdt.sequential.data import EvaluationExamples, left_pad, user_sequences
    from xdt.sequential.evaluation import rank_next_items
    from xdt.sequential.experiment import HISTORY, load_sequence_model, sequence_view

    run = sequential_runs[f"transfer:{method}"]
    dataset = dataset_of(run)
    user = int(dataset.rows(TARGET, "test")["user"].iloc[0])
    output = tmp_path / "recommendations.json"
    result = invoke("recommend", run, "--user", str(dataset.raw_users[user]), "--k", "2", "--output", output)
    assert result.exit_code == 0, result.output
    recommended = pd.DataFrame(json.loads(output.read_text()))
    assert list(recommended.columns) == ["user", "rank", "item", "title", "score", "cohort"]

    # Reference: the evaluation ranking of one example whose history is everything the user did in the
    # method's history domains (source and target; target only for unisrec).
    assert HISTORY[method] == (("target",) if method == "unisrec" else ("source", "target"))
    config = config_from_dict(json.loads((run / "resolved.json").read_text()))
    interactions, vocabulary = sequence_view(dataset)
    sequences = user_sequences(interactions, vocabulary, domains=HISTORY[method], splits=("train", "valid", "test"))
    (position,) = np.flatnonzero(sequences.users == user)
    history = left_pad(sequences.sequence(position), config.sequence.max_length)[None]
    rows = dataset.rows(TARGET, "train", "valid", "test")
    seen = np.unique(rows.loc[rows["user"] == user, "item"].to_numpy())
    unseen = np.setdiff1d(np.arange(dataset.n_items(TARGET)), seen)
    example = EvaluationExamples(
        users=np.array([user]), items=history, domains=vocabulary.domain_ids(history), targets=unseen[:1], seen=[seen],
        cohort=np.array(["warm"], dtype=object), domain=TARGET,
    )
    top_items, _ = rank_next_items(load_sequence_model(RunDirectory(run)), example, vocabulary, k=2)
    raw_items = dataset.items(TARGET)["raw_item"].to_numpy()
    assert recommended["item"].tolist() == raw_items[top_items[0]].tolist()
    assert not set(recommended["item"]) & set(raw_items[seen])
    assert recommended["score"].is_monotonic_decreasing and recommended["rank"].tolist() == [1, 2]


def test_unknown_users_and_runs_without_a_target_model_exit_2(
    rating_run: Path, sequential_runs: dict[str, Path], tmp_path: Path
) -> None:
    for run in (rating_run, sequential_runs["transfer:seq_target_only"]):
        result = invoke("recommend", run, "--user", "nobody")
        assert result.exit_code == 2 and "Unknown user id 'nobody': not in either domain of dataset" in result.output
    pretrain = sequential_runs["pretrain"]
    for command in ("evaluate", "recommend"):
        result = invoke(command, pretrain, *(("--user", "u1") if command == "recommend" else ()))
        assert result.exit_code == 2, result.output
        assert f"{command} expects a transfer run (a trained target model) of a task: sequential experiment" in result.output
        assert "is a pretrain run" in result.output and "Traceback" not in result.output
    # A rating run of baselines only has nothing that scores every item; it still evaluates.
    baselines = tmp_path / "baselines"
    shutil.copytree(rating_run, baselines)
    resolved = json.loads((baselines / "resolved.json").read_text())
    resolved["transfer"]["methods"] = ["global_mean", "item_mean"]
    (baselines / "resolved.json").write_text(json.dumps(resolved))
    result = invoke("recommend", baselines, "--user", "u1")
    assert result.exit_code == 2
    assert "recommend needs a trained rating model (target_mf, emcdr, ptupcdr in transfer.methods)" in result.output
    assert "has only global_mean, item_mean" in result.output
    result = invoke("evaluate", baselines)
    assert result.exit_code == 0, result.output
    assert sorted(json.loads((baselines / "results.json").read_text())["methods"]) == ["global_mean", "item_mean"]
