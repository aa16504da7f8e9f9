"""`xdt run` with `task: rating` on tiny generated ratings (CSV files written by the test): one run, every method, reloadable models."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import write_config
from typer.testing import CliRunner

from xdt.cli import app
from xdt.config import RATING_METHOD_NAMES, RatingConfig, config_from_dict
from xdt.errors import ConfigError

runner = CliRunner()
METHODS = list(RATING_METHOD_NAMES)


def write_ratings(folder: Path, seed: int = 0) -> tuple[Path, Path]:
    """80 users rating in both domains with a shared taste and leniency; CSV files `user,item,rating`."""
    rng = np.random.default_rng(seed)
    users = 80
    taste = rng.normal(size=(users, 3))
    leniency = rng.normal(scale=0.7, size=users)
    paths = []
    for name, items, per_user in (("books", 30, 8), ("music", 25, 6)):
        vectors = rng.normal(size=(items, 3))
        lines = ["user,item,rating"]
        for user in range(users):
            for item in rng.choice(items, per_user, replace=False):
                score = 3.5 + leniency[user] + 0.5 * float(taste[user] @ vectors[item]) + rng.normal(scale=0.3)
                lines.append(f"u{user},{name[0]}{item},{int(np.clip(round(score), 1, 5))}")
        path = folder / f"{name}.csv"
        path.write_text("\n".join(lines) + "\n")
        paths.append(path)
    return paths[0], paths[1]


def rating_config(folder: Path, methods: list[str] = METHODS) -> dict:
    """A tiny task: rating experiment over the CSVs in `folder`."""
    books, music = write_ratings(folder)
    return {
        "experiment": "tiny-rating",
        "seed": 5,
        "task": "rating",
        "dataset": {
            "name": "tiny-rating",
            "source": {"name": "books", "reader": "csv", "path": str(books), "rating_range": [1, 5]},
            "target": {"name": "music", "reader": "csv", "path": str(music), "rating_range": [1, 5]},
            "protocol": "cold_users",
            "cold_fraction": 0.2,
            "valid_cold_fraction": 0.15,
            "warm_holdout": "none",
        },
        "transfer": {"methods": methods},
        "rating": {
            "embedding_dim": 4, "mf_epochs": 3, "mf_batch_size": 128, "mf_learning_rate": 0.05, "mapping_epochs": 3,
            "mapping_batch_size": 16, "meta_epochs": 2, "meta_batch_size": 64, "meta_learning_rate": 0.01, "meta_dim": 8,
            "history_length": 6,
        },
    }


def test_xdt_run_rating_writes_one_complete_run_with_every_method(tmp_path: Path) -> None:
    import keras
    import pandas as pd

    from xdt.data.dataset import load_dataset
    from xdt.data.protocols import TARGET
    from xdt.rating.evaluation import predict_ratings

    config_path = write_config(tmp_path, rating_config(tmp_path))
    result = runner.invoke(app, ["run", str(config_path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "MAE" in result.output and "rating run:" in result.output
    (run_path,) = (tmp_path / "runs" / "tiny-rating").iterdir()
    info = json.loads((run_path / "run.json").read_text())
    assert (info["kind"], info["method"], info["status"]) == ("rating", "rating", "complete")
    for name in ("config.yaml", "resolved.json", "env.json", "data.json", "report.md", "per_rating.parquet"):
        assert (run_path / name).is_file(), name

    results = json.loads((run_path / "results.json").read_text())
    assert sorted(results["methods"]) == sorted(METHODS)
    for method, values in results["methods"].items():
        assert math.isfinite(values["all"]["mae"]) and math.isfinite(values["all"]["rmse"]), method
        assert values["all"]["ratings"] == results["counts"]["test_ratings"]
        assert set(values["cohorts"]) == {"cold"} and values["source_activity"]
    assert "seconds" not in json.dumps(results)  # results.json holds no timings

    history = [json.loads(line) for line in (run_path / "metrics.jsonl").read_text().splitlines()]
    assert {record["stage"] for record in history} == {"target_mf", "source_mf", "emcdr", "ptupcdr"}
    assert all(record["valid_metric"] == "mae" and math.isfinite(record["valid_score"]) for record in history)

    per_rating = pd.read_parquet(run_path / "per_rating.parquet")
    assert list(per_rating.columns) == ["user", "item", "rating", "cohort", "source_activity", *METHODS]
    test = load_dataset(tmp_path / "data" / "tiny-rating").rows(TARGET, "test")
    assert per_rating["item"].str.startswith("m").all() and len(per_rating) == len(test)
    for method in ("target_mf", "emcdr", "ptupcdr"):
        loaded = keras.saving.load_model(run_path / "models" / f"{method}.keras")
        predictions = predict_ratings(loaded, test["user"].to_numpy(), test["item"].to_numpy(), clip=(1.0, 5.0))
        np.testing.assert_array_equal(predictions, per_rating[method].to_numpy())
    assert (run_path / "models" / "source_mf.keras").is_file()


def test_rating_task_rejects_ranking_methods_with_a_did_you_mean(tmp_path: Path) -> None:
    raw = rating_config(tmp_path, methods=["global_mean", "popularity"])
    with pytest.raises(ConfigError, match=r"transfer.methods\[1\]: 'popularity' is a ranking method.*Available rating methods: global_mean"):
        config_from_dict(raw)
    with pytest.raises(ConfigError, match="Did you mean 'ptupcdr'"):
        config_from_dict({**raw, "transfer": {"methods": ["ptupcdrr"]}})
    with pytest.raises(ConfigError, match="warm_holdout none"):
        config_from_dict({**raw, "transfer": {"methods": ["emcdr"]}, "dataset": {**raw["dataset"], "warm_holdout": "leave_one_out"}})
    # task: ranking keeps its own check: ranking methods pass, rating-only ones do not
    config_from_dict({**raw, "task": "ranking", "transfer": {"methods": ["popularity"]}})
    with pytest.raises(ConfigError, match="unknown name 'global_mean'"):
        config_from_dict({**raw, "task": "ranking", "transfer": {"methods": ["global_mean"]}})
    result = runner.invoke(app, ["run", str(write_config(tmp_path, raw))], catch_exceptions=False)
    assert result.exit_code == 2 and "is a ranking method" in result.output


def test_pretrain_source_and_transfer_refuse_task_rating(tmp_path: Path) -> None:
    config_path = write_config(tmp_path, rating_config(tmp_path))
    result = runner.invoke(app, ["pretrain-source", str(config_path)], catch_exceptions=False)
    assert result.exit_code == 2 and "task: rating runs all its stages in `xdt run`" in result.output
    parent = tmp_path / "runs" / "some-pretrain-run"
    parent.mkdir(parents=True)
    (parent / "run.json").write_text(json.dumps({"kind": "pretrain", "status": "complete"}))
    result = runner.invoke(app, ["transfer", str(config_path), "--from", str(parent)], catch_exceptions=False)
    assert result.exit_code == 2 and "task: rating runs all its stages in `xdt run`" in result.output


def test_rating_config_defaults_are_the_bench_settings() -> None:
    from xdt.rating.experiment import rating_settings
    from xdt.rating.training import METHODS as TRAINING_METHODS
    from xdt.rating.training import RatingSettings

    assert rating_settings(RatingConfig()) == RatingSettings()
    assert tuple(RATING_METHOD_NAMES) == tuple(TRAINING_METHODS)


def test_rating_results_repeat_exactly_across_processes(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    outputs = []
    for attempt in ("first", "second"):
        folder = tmp_path / attempt
        folder.mkdir()
        config_path = write_config(folder, rating_config(folder, ["item_mean", "target_mf", "emcdr"]))
        result = subprocess.run([sys.executable, "-m", "xdt", "run", str(config_path)], capture_output=True, text=True, env=os.environ, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        (run_path,) = (folder / "runs" / "tiny-rating").iterdir()
        outputs.append(json.loads((run_path / "results.json").read_text())["methods"])
    assert outputs[0] == outputs[1]
