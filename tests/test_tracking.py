"""MLflow tracking (`tracking: {mlflow: true}`, `xdt track`) against a local MLflow file store."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import typer
from conftest import TINY_CONFIG, write_config
from typer.testing import CliRunner

from xdt.commands.analysis import register
from xdt.config import load_config
from xdt.errors import XdtError
from xdt.runs import RunDirectory
from xdt.tracking import MISSING_MLFLOW, flatten_results, log_run_to_mlflow, metric_name, open_tracking_client, run_params

TINY_TRACKED = [
    "pretrain.epochs=2",
    "transfer.epochs=3",
    "transfer.patience=3",
    "transfer.methods=[popularity, target_mf, finetune]",  # finetune loads the source model, so pretraining runs and is tracked
    "evaluate.ks=[5, 10]",
    "tracking.mlflow=true",
]


@pytest.fixture(scope="module")
def tracked(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """(tracking folder, outcome) of one tiny experiment run with MLflow tracking on."""
    pytest.importorskip("mlflow")
    from xdt.experiment import run_experiment

    folder = tmp_path_factory.mktemp("tracking")
    path = write_config(folder, TINY_CONFIG)
    loaded = load_config(path, [*TINY_TRACKED, f"tracking.uri={folder / 'mlruns'}"])
    [outcome] = run_experiment(loaded.config, config_text=loaded.text)
    return folder / "mlruns", outcome


def mlflow_run_of(client, run: RunDirectory):  # noqa: ANN001, ANN201
    """The one MLflow run that logged xdt run `run`."""
    experiment = client.get_experiment_by_name(run.experiment)
    found = client.search_runs([experiment.experiment_id], filter_string=f"tags.`xdt.run_id` = '{run.run_id}'")
    assert len(found) == 1, [item.info.run_name for item in found]
    return found[0]


@pytest.mark.slow
def test_run_logs_params_history_results_and_report(tracked: tuple[Path, object]) -> None:
    uri, outcome = tracked
    client = open_tracking_client(str(uri))
    run = outcome.transfer_runs["target_mf"]
    logged = mlflow_run_of(client, run)

    assert logged.info.run_name == run.run_id and logged.info.status == "FINISHED"
    tags = logged.data.tags
    assert tags["xdt.kind"] == "transfer" and tags["xdt.method"] == "target_mf"
    assert tags["xdt.parent_run_id"] == outcome.pretrain_run.run_id
    assert tags["xdt.dataset_hash"] == run.read_json("data.json")["content_hash"]
    assert tags["xdt.run_path"] == str(run.path.resolve())
    # Nested under the pretrain run's MLflow run, which was logged first.
    assert tags["mlflow.parentRunId"] == mlflow_run_of(client, outcome.pretrain_run).info.run_id

    params = logged.data.params
    assert params["transfer.epochs"] == "3"
    assert params["transfer.methods"] == '["popularity", "target_mf", "finetune"]'
    assert params["tracking.mlflow"] == "true"
    assert params["dataset.synthetic.users"] == str(TINY_CONFIG["dataset"]["synthetic"]["users"])
    assert params == run_params(run)

    epochs = [row for row in run.metrics_history() if row.get("stage") == "target"]
    assert len(epochs) >= 1
    history = client.get_metric_history(logged.info.run_id, "target/loss")
    assert sorted(metric.step for metric in history) == [row["epoch"] for row in epochs]
    assert [metric.value for metric in sorted(history, key=lambda metric: metric.step)] == pytest.approx([row["loss"] for row in epochs])
    scores = client.get_metric_history(logged.info.run_id, "target/valid_score")
    assert len(scores) == len(epochs)

    results = run.read_json("results.json")
    metrics = logged.data.metrics
    assert metrics["test/all/ndcg_at_10"] == pytest.approx(results["test"]["all"]["ndcg@10"])
    assert metrics["test/cold/recall_at_5"] == pytest.approx(results["test"]["cohorts"]["cold"]["recall@5"])
    for name, value in flatten_results(results):
        assert metrics[metric_name(name)] == pytest.approx(value), name

    artifacts = {item.path for item in client.list_artifacts(logged.info.run_id)}
    assert {"report.md", "results.json", "per_user.parquet", "config.yaml"} <= artifacts
    assert any(name.endswith(".png") for name in artifacts)


@pytest.mark.slow
def test_pretrain_and_every_method_are_tracked(tracked: tuple[Path, object]) -> None:
    uri, outcome = tracked
    client = open_tracking_client(str(uri))
    pretrain = mlflow_run_of(client, outcome.pretrain_run)
    assert pretrain.data.tags["xdt.kind"] == "pretrain"
    assert len(client.get_metric_history(pretrain.info.run_id, "pretrain/loss")) == 2
    assert pretrain.data.metrics["final_loss"] == pytest.approx(outcome.pretrain_run.read_json("results.json")["final_loss"])
    for run in outcome.transfer_runs.values():
        mlflow_run_of(client, run)


@pytest.mark.slow
def test_track_command_logs_a_run_into_another_store(tracked: tuple[Path, object], tmp_path: Path) -> None:
    _, outcome = tracked
    app = typer.Typer(pretty_exceptions_enable=False)
    runs_app = typer.Typer()
    app.add_typer(runs_app, name="runs")
    register(app, runs_app)
    run = outcome.transfer_runs["popularity"]
    result = CliRunner().invoke(app, ["track", str(run.path), "--uri", str(tmp_path / "other"), "--experiment", "renamed"])
    assert result.exit_code == 0, result.output
    client = open_tracking_client(str(tmp_path / "other"))
    experiment = client.get_experiment_by_name("renamed")
    [logged] = client.search_runs([experiment.experiment_id])
    assert logged.info.run_id in result.output
    assert logged.data.metrics["test/all/ndcg_at_10"] == pytest.approx(run.read_json("results.json")["test"]["all"]["ndcg@10"])
    # Its pretrain run is not in this store, so it is not nested.
    assert "mlflow.parentRunId" not in logged.data.tags


def test_missing_mlflow_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # `import mlflow` now raises ImportError
    with pytest.raises(XdtError, match=r"pip install 'xdt\[mlflow\]'") as caught:
        log_run_to_mlflow(RunDirectory(tmp_path), tracking_uri=str(tmp_path / "mlruns"))
    assert str(caught.value) == MISSING_MLFLOW


def test_missing_mlflow_fails_before_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from xdt.experiment import run_experiment

    monkeypatch.setitem(sys.modules, "mlflow", None)
    loaded = load_config(write_config(tmp_path, TINY_CONFIG), ["tracking.mlflow=true"])
    with pytest.raises(XdtError, match="optional extra"):
        run_experiment(loaded.config, config_text=loaded.text)
    assert not (tmp_path / "runs").exists() and not (tmp_path / "data").exists()


def test_tracking_is_off_by_default(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, TINY_CONFIG)).config
    assert config.tracking.mlflow is False and config.tracking.uri == "mlruns"


def test_results_flatten_to_names_mlflow_accepts() -> None:
    results = {
        "method": "emcdr",
        "ks": [5, 10],
        "test": {"all": {"ndcg@10": 0.5, "users": 4}, "cohorts": {"cold": {"hr@5": 0.25}}, "activity": {"51+": {"mrr": 0.1}}},
        "beyond_accuracy": {"@10": {"coverage": 0.75}},
    }
    flat = {metric_name(name): value for name, value in flatten_results(results)}
    assert flat == {
        "test/all/ndcg_at_10": 0.5,
        "test/all/users": 4.0,
        "test/cold/hr_at_5": 0.25,
        "test/activity/51plus/mrr": 0.1,
        "beyond_accuracy/coverage_at_10": 0.75,
    }


def test_long_params_are_cut_to_the_mlflow_limit(tmp_path: Path) -> None:
    pytest.importorskip("mlflow")
    from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

    (tmp_path / "resolved.json").write_text(json.dumps({"dataset": {"options": {"names": "x" * 10_000}, "empty": {}}}))
    params = run_params(RunDirectory(tmp_path))
    assert len(params["dataset.options.names"]) == MAX_PARAM_VAL_LENGTH
    assert params["dataset.empty"] == "{}"


def test_mlflow_still_refuses_the_file_store_without_opt_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When this fails, MLflow accepts file stores again and xdt.tracking.file_store_allowed can go."""
    from mlflow.exceptions import MlflowException
    from mlflow.store.tracking.file_store import FileStore

    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    with pytest.raises(MlflowException, match="MLFLOW_ALLOW_FILE_STORE"):
        FileStore(str(tmp_path / "mlruns"), str(tmp_path / "mlruns"))
