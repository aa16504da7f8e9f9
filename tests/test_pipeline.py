"""End to end on tiny synthetic data: run layout, determinism, and that transfer really transfers."""

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import TINY_CONFIG, write_config
from xdt.config import load_config
from xdt.experiment import run_experiment


def run_tiny(folder: Path, overrides: list[str] = ()) -> tuple:
    loaded = load_config(write_config(folder, TINY_CONFIG), list(overrides))
    (outcome,) = run_experiment(loaded.config, config_text=loaded.text)
    return loaded, outcome


def test_run_writes_complete_run_directories(tmp_path: Path) -> None:
    loaded, outcome = run_tiny(tmp_path)
    pretrain = outcome.pretrain_run
    assert (pretrain.path / "config.yaml").read_text() == loaded.text
    assert pretrain.info()["status"] == "complete"
    assert json.loads((pretrain.path / "resolved.json").read_text())["transfer"]["epochs"] == 3
    env = pretrain.read_json("env.json")
    assert env["seed"] == 7 and env["replicas"] == 1 and "tensorflow-cpu" in env["packages"] or "tensorflow" in env["packages"]
    assert set(outcome.transfer_runs) == {"popularity", "target_mf", "finetune", "emcdr"}
    for method, run in outcome.transfer_runs.items():
        info = run.info()
        assert info["status"] == "complete" and info["method"] == method and info["parent"] == str(pretrain.path)
        assert run.read_json("parent.json")["run_id"] == pretrain.run_id
        assert run.read_json("data.json")["content_hash"] == pretrain.read_json("data.json")["content_hash"]
        results = run.read_json("results.json")
        assert set(results["test"]["cohorts"]) == {"cold", "warm"}
        assert set(results["beyond_accuracy"]["@10"]) == {"coverage", "novelty", "popularity_percentile", "intra_list_diversity"}
        per_user = pd.read_parquet(run.path / "per_user.parquet")
        assert len(per_user) == results["test"]["all"]["users"]
        assert per_user["ndcg@10"].mean() == pytest.approx(results["test"]["all"]["ndcg@10"])
    epochs = [line for line in outcome.transfer_runs["finetune"].metrics_history() if line["stage"] == "finetune"]
    assert [line["epoch"] for line in epochs] == list(range(1, len(epochs) + 1))
    assert list((outcome.transfer_runs["finetune"].path / "tensorboard" / "finetune").glob("events.out.tfevents.*"))
    manifest = json.loads((tmp_path / "data" / "tiny" / "manifest.json").read_text())
    # 600 users, 60% overlap = 360 overlapping users; 25% of them are cold-start test users, 10% cold valid.
    assert manifest["overlap_users"] == 360 and manifest["cold_test_users"] == 90 and manifest["cold_valid_users"] == 36


def test_same_config_and_seed_give_identical_results(tmp_path: Path) -> None:
    overrides = ["transfer.methods=[finetune, emcdr]"]
    _, first = run_tiny(tmp_path / "a", overrides)
    _, second = run_tiny(tmp_path / "b", overrides)
    for method in ("finetune", "emcdr"):
        assert (first.transfer_runs[method].path / "results.json").read_text() == (second.transfer_runs[method].path / "results.json").read_text()


@pytest.mark.slow
def test_transfer_helps_cold_users_only_when_tastes_are_shared(tmp_path: Path) -> None:
    base = [
        "dataset.synthetic.users=2000",
        "dataset.synthetic.source_items=300",
        "dataset.synthetic.target_items=250",
        "pretrain.epochs=10",
        "transfer.epochs=10",
        "pretrain.optimizer.learning_rate=0.01",
        "transfer.optimizer.learning_rate=0.01",
        "pretrain.embedding_dim=16",
    ]

    def cold_ndcg(folder: Path, shared: float) -> dict[str, float]:
        _, outcome = run_tiny(folder, base + [f"dataset.synthetic.shared_taste={shared}", f"dataset.name=knob-{shared}"])
        return {method: results["test"]["cohorts"]["cold"]["ndcg@10"] for method, results in outcome.results.items()}

    shared = cold_ndcg(tmp_path / "shared", 0.9)
    independent = cold_ndcg(tmp_path / "independent", 0.0)
    best_shared_baseline = max(shared["popularity"], shared["target_mf"])
    best_independent_baseline = max(independent["popularity"], independent["target_mf"])
    for method in ("finetune", "emcdr"):
        # With shared tastes, transfer clearly beats every target-only baseline on cold-start users …
        assert shared[method] > 1.3 * best_shared_baseline, (method, shared)
        # … and with independent domains it brings no such gain.
        assert independent[method] < 1.1 * best_independent_baseline, (method, independent)


def test_seeds_run_each_seed_on_its_own_split_and_aggregate(tmp_path: Path) -> None:
    from xdt.experiment import aggregate_over_seeds

    loaded = load_config(write_config(tmp_path, TINY_CONFIG), ["seeds=[1, 2]", "transfer.methods=[popularity]"])
    outcomes = run_experiment(loaded.config, config_text=loaded.text)
    assert [outcome.seed for outcome in outcomes] == [1, 2]
    assert (tmp_path / "data" / "tiny-seed1" / "manifest.json").is_file() and (tmp_path / "data" / "tiny-seed2").is_dir()
    values = [outcome.results["popularity"]["test"]["all"]["ndcg@10"] for outcome in outcomes]
    mean, std = aggregate_over_seeds(outcomes, ["ndcg@10"])["popularity"]["all"]["ndcg@10"]
    assert mean == pytest.approx(sum(values) / 2) and std == pytest.approx(abs(values[0] - values[1]) / 2**0.5)
    assert outcomes[0].report.name == "report.md" and outcomes[0].report.is_file()


def test_folds_repeat_the_protocol_over_disjoint_cold_start_test_users(tmp_path: Path) -> None:
    loaded = load_config(write_config(tmp_path, TINY_CONFIG), ["evaluate.folds=3", "transfer.methods=[popularity]"])
    outcomes = run_experiment(loaded.config, config_text=loaded.text)
    assert [outcome.results["popularity"]["dataset"] for outcome in outcomes] == ["tiny-fold0", "tiny-fold1", "tiny-fold2"]
    cohorts = []
    for fold in range(3):
        per_user = pd.read_parquet(outcomes[fold].transfer_runs["popularity"].path / "per_user.parquet")
        cohorts.append(set(per_user.loc[per_user["cohort"] == "cold", "user"]))
    # 360 overlapping users cut into 3 disjoint folds of 120 cold-start test users.
    assert [len(cold) for cold in cohorts] == [120, 120, 120]
    assert not (cohorts[0] & cohorts[1]) and not (cohorts[1] & cohorts[2]) and not (cohorts[0] & cohorts[2])


def test_run_skips_source_pretraining_when_no_method_loads_the_source_model(tmp_path: Path) -> None:
    _, outcome = run_tiny(tmp_path, ["transfer.methods=[popularity, target_mf]"])
    pretrain = outcome.pretrain_run
    assert pretrain.info()["source_model"] == "skipped" and pretrain.info()["status"] == "complete"
    assert not (pretrain.path / "model.keras").exists() and pretrain.metrics_history() == []
    assert set(outcome.transfer_runs) == {"popularity", "target_mf"}
    assert outcome.results["target_mf"]["test"]["all"]["users"] > 0


def test_a_method_that_loads_the_source_model_refuses_a_skipped_pretrain_run(tmp_path: Path) -> None:
    from xdt.errors import XdtError
    from xdt.transfer import transfer_method

    loaded, outcome = run_tiny(tmp_path, ["transfer.methods=[popularity]"])
    with pytest.raises(XdtError, match="finetune needs the pretrained source model, but pretrain run .* skipped training it"):
        transfer_method(loaded.config, "finetune", parent=outcome.pretrain_run, config_text=loaded.text)
