"""`xdt run` with `task: sequential` on tiny generated sequences (CSV files with timestamps, leave-one-out)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import write_config
from typer.testing import CliRunner

from xdt.cli import app
from xdt.config import config_from_dict
from xdt.errors import ConfigError

runner = CliRunner()
METHODS = ["seq_target_only", "seq_finetune", "text_bridge", "c2dsr"]


def write_sequences(folder: Path, users: int = 60, seed: int = 0) -> tuple[Path, Path]:
    """Interleaved two-domain histories; the next target item follows the previous one ((i + 1) mod 10)."""
    rng = np.random.default_rng(seed)
    lines = {"food": ["user,item,timestamp"], "kitchen": ["user,item,timestamp"]}
    for user in range(users):
        target_item = int(rng.integers(10))
        for timestamp in range(int(rng.integers(6, 11))):
            if rng.random() < 0.35:
                lines["food"].append(f"u{user},f{int(rng.integers(8))},{timestamp}")
            else:
                lines["kitchen"].append(f"u{user},k{target_item},{timestamp}")
                target_item = (target_item + 1) % 10
    paths = []
    for name, rows in lines.items():
        path = folder / f"{name}.csv"
        path.write_text("\n".join(rows) + "\n")
        paths.append(path)
    return paths[0], paths[1]


def sequential_config(folder: Path, methods: list[str] = METHODS) -> dict:
    food, kitchen = write_sequences(folder)
    return {
        "experiment": "tiny-sequential",
        "seed": 3,
        "task": "sequential",
        "dataset": {
            "name": "tiny-sequential",
            "source": {"name": "food", "reader": "csv", "path": str(food)},
            "target": {"name": "kitchen", "reader": "csv", "path": str(kitchen)},
            "protocol": "leave_one_out",
        },
        "evaluate": {"ks": [1, 5], "validation_metric": "ndcg@5"},
        "sequence": {
            "methods": methods, "max_length": 8, "width": 16, "layers": 1, "heads": 2, "dropout": 0.0, "epochs": 3,
            "pretrain_epochs": 1, "batch_size": 16, "learning_rate": 0.01, "freeze_epochs": 1,
        },
    }


def test_xdt_run_sequential_writes_pretrain_and_transfer_runs(tmp_path: Path) -> None:
    config_path = write_config(tmp_path, sequential_config(tmp_path))
    result = runner.invoke(app, ["run", str(config_path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "ndcg@5" in result.output and "pretrain run:" in result.output
    runs = [path for path in (tmp_path / "runs" / "tiny-sequential").iterdir() if path.is_dir()]
    infos = {path: json.loads((path / "run.json").read_text()) for path in runs}
    (pretrain,) = [path for path, info in infos.items() if info["kind"] == "pretrain"]
    assert (pretrain / "model.keras").is_file() and (pretrain / "text_model.keras").is_file()
    assert (pretrain / "experiment" / "report.md").is_file()
    transfers = {info["method"]: path for path, info in infos.items() if info["kind"] == "transfer"}
    assert sorted(transfers) == sorted(METHODS)
    for method, path in transfers.items():
        assert infos[path]["status"] == "complete" and infos[path]["parent"] == str(pretrain)
        for name in ("config.yaml", "resolved.json", "env.json", "data.json", "model.keras", "metrics.jsonl", "per_user.parquet", "report.md"):
            assert (path / name).is_file(), (method, name)
        results = json.loads((path / "results.json").read_text())
        assert results["method"] == method and results["dataset"] == "tiny-sequential" and results["ks"] == [1, 5]
        test = results["test"]
        assert set(test) == {"all", "cohorts", "activity"} and test["all"]["users"] >= 50
        assert 0.0 <= test["all"]["ndcg@5"] <= 1.0 and "recall@1" in test["all"] and "mrr" in test["all"]
        epochs = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]
        assert [row["epoch"] for row in epochs] == [1, 2, 3][: len(epochs)] and epochs[0]["stage"] == method
        per_user = pd.read_parquet(path / "per_user.parquet")
        assert {"user", "cohort", "activity_bucket", "ndcg@5"} <= set(per_user.columns) and len(per_user) == test["all"]["users"]
    # The order rule is learnable from target history: the target-only model beats chance (1/10 at k=1) by far.
    target_only = json.loads((transfers["seq_target_only"] / "results.json").read_text())
    assert target_only["test"]["all"]["recall@1"] > 0.3


def test_sequence_methods_are_checked_with_a_did_you_mean(tmp_path: Path) -> None:
    raw = sequential_config(tmp_path, methods=["seq_finetun"])
    with pytest.raises(ConfigError, match="Did you mean 'seq_finetune'"):
        config_from_dict(raw, source="test.yaml")
    raw["sequence"].update(methods=["seq_target_only"], width=15)
    with pytest.raises(ConfigError, match="multiple of sequence.heads"):
        config_from_dict(raw, source="test.yaml")


def test_mixed_pretraining_learns_both_domains_labels_and_never_target_held_out_rows(tmp_path: Path) -> None:
    from xdt.data.prepare import prepare_dataset
    from xdt.sequential.data import ALL_DOMAINS, ItemVocabulary
    from xdt.sequential.experiment import PRETRAIN_DOMAINS, sequence_examples
    from xdt.session import open_dataset

    raw = sequential_config(tmp_path, methods=["seq_finetune"])
    raw["runtime"] = {"data_dir": str(tmp_path / "data"), "runs_dir": str(tmp_path / "runs")}
    raw["sequence"]["pretrain_on"] = "mixed"
    config = config_from_dict(raw)
    prepare_dataset(config)
    dataset = open_dataset(config)
    vocabulary = ItemVocabulary(dataset.n_items("source"), dataset.n_items("target"))
    interactions = dataset.interactions
    examples = sequence_examples(config, interactions, vocabulary, domains=PRETRAIN_DOMAINS["mixed"], label_domains=PRETRAIN_DOMAINS["mixed"])
    labelled = examples.labels[examples.labels > 0]
    assert set(np.unique(vocabulary.domain_ids(labelled))) == {1, 2}  # source and target labels
    # A token range over both domains: every item token, padding (0) excluded.
    assert vocabulary.token_range(ALL_DOMAINS) == (1, vocabulary.size)
    # Target valid/test rows never enter: each user's target tokens in the windows come from train rows only.
    held_out = interactions.loc[(interactions["domain"] == "target") & (interactions["split"] != "train")]
    train_counts = interactions.loc[(interactions["domain"] == "target") & (interactions["split"] == "train")].groupby("user").size()
    assert len(held_out) > 0
    target_tokens = int((vocabulary.domain_ids(np.concatenate([examples.items, examples.labels[:, -1:]], axis=1)) == 2).sum())
    assert target_tokens <= int(train_counts.sum())


def test_xdt_run_sequential_with_mixed_pretraining(tmp_path: Path) -> None:
    raw = sequential_config(tmp_path, methods=["seq_finetune"])
    raw["sequence"]["pretrain_on"] = "mixed"
    config_path = write_config(tmp_path, raw)
    result = runner.invoke(app, ["run", str(config_path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "mixed sequences" in result.output
    runs = [path for path in (tmp_path / "runs" / "tiny-sequential").iterdir() if path.is_dir()]
    (transfer,) = [path for path in runs if json.loads((path / "run.json").read_text())["kind"] == "transfer"]
    results = json.loads((transfer / "results.json").read_text())
    # The order rule is in the target training rows that mixed pretraining also learns from.
    assert results["test"]["all"]["recall@1"] > 0.3


@pytest.mark.parametrize("with_ids", [False, True])
def test_text_bridge_items_carry_an_id_embedding_only_when_configured(tmp_path: Path, with_ids: bool) -> None:
    from xdt.sequential.data import ItemVocabulary
    from xdt.sequential.experiment import new_model

    raw = sequential_config(tmp_path, methods=["text_bridge"])
    raw["sequence"]["text_with_ids"] = with_ids
    config = config_from_dict(raw)
    vocabulary = ItemVocabulary(3, 4)
    text = np.random.default_rng(0).normal(size=(vocabulary.size, 5)).astype(np.float32)
    model = new_model(config, vocabulary, text)
    assert (model.item_embedding is not None) is with_ids
    # The id embedding starts at zero, so both variants start from the text alone.
    assert model.adaptor is not None


def test_score_temperature_reaches_the_model_and_is_bounded(tmp_path: Path) -> None:
    from xdt.sequential.data import ItemVocabulary
    from xdt.sequential.experiment import new_model

    raw = sequential_config(tmp_path, methods=["text_bridge"])
    raw["sequence"]["score_temperature"] = 0.07
    vocabulary = ItemVocabulary(3, 4)
    text = np.random.default_rng(0).normal(size=(vocabulary.size, 5)).astype(np.float32)
    assert new_model(config_from_dict(raw), vocabulary, text).score_temperature == 0.07
    assert new_model(config_from_dict(sequential_config(tmp_path)), vocabulary, None).score_temperature is None
    raw["sequence"]["score_temperature"] = 0
    with pytest.raises(ConfigError, match=r"sequence\.score_temperature: expected a value >= 0\.001, received 0"):
        config_from_dict(raw)
