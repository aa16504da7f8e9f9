"""Dual-target reporting: evaluate_model(domain="source") and evaluate_run's results["source"] for joint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from tests.conftest import TINY_CONFIG, write_config
from tests.test_neighbourhood import frame_dataset
from xdt.config import load_config
from xdt.data.prepare import prepare_dataset
from xdt.data.protocols import SOURCE
from xdt.errors import XdtError
from xdt.evaluate import evaluate_model, evaluate_run
from xdt.pretrain import pretrain_source
from xdt.transfer import transfer_method


def hand_dataset():
    # Source: u0 train {s0}, test {s1}; u1 test {s2} only (cold in the source domain).
    # Target: u0 train {t0}, test {t1}; u2 train {t1}.
    rows = [
        ("source", 0, 0, "train"), ("source", 0, 1, "test"), ("source", 1, 2, "test"),
        ("target", 0, 0, "train"), ("target", 0, 1, "test"), ("target", 2, 1, "train"),
    ]
    return frame_dataset(rows, 3, 3, 2)


def test_source_domain_uses_source_rows_masks_and_cohorts() -> None:
    dataset = hand_dataset()
    # Source scores: s0 > s2 > s1 for every user.
    source_scores = lambda users: tf.tile(tf.constant([[3.0, 1.0, 2.0]]), [tf.shape(users)[0], 1])  # noqa: E731
    per_user = evaluate_model(source_scores, dataset, split="test", ks=[1, 2], batch_size=8, domain=SOURCE)
    assert per_user["user_index"].tolist() == [0, 1]
    # u0: s0 (train) masked → s2 then s1: the relevant s1 is rank 2 → hr@1 0, hr@2 1, mrr 1/2.
    # u1: nothing masked → s0, s2: s2 is rank 2 → mrr 1/2.
    assert per_user["hr@1"].tolist() == [0.0, 0.0]
    assert per_user["hr@2"].tolist() == [1.0, 1.0]
    np.testing.assert_allclose(per_user["mrr"], [0.5, 0.5])
    # Cohorts follow the evaluated domain: u1 has no source training rows.
    assert per_user["cohort"].tolist() == ["warm", "cold"]
    # The default is still the target domain (u0 only: t0 masked, t1 ranked first).
    target = evaluate_model(lambda users: tf.ones([tf.shape(users)[0], 2]), dataset, split="test", ks=[1], batch_size=8)
    assert target["user_index"].tolist() == [0] and target["hr@1"].tolist() == [1.0]


def test_unknown_domain_is_refused() -> None:
    with pytest.raises(XdtError, match="domain"):
        evaluate_model(lambda users: users, hand_dataset(), split="test", ks=[1], batch_size=8, domain="both")


def test_evaluate_run_reports_both_domains_for_joint(tmp_path: Path) -> None:
    config = {**TINY_CONFIG, "dataset": {**TINY_CONFIG["dataset"], "protocol": "leave_one_out"}}
    loaded = load_config(write_config(tmp_path, config), ["transfer.methods=[joint]"])
    prepare_dataset(loaded.config)
    pretrain = pretrain_source(loaded.config, config_text=loaded.text)
    run = transfer_method(loaded.config, "joint", parent=pretrain, config_text=loaded.text)
    results = evaluate_run(run)
    assert set(results["source"]) == {"valid", "test"}
    assert results["source"]["test"]["all"]["users"] > 0
    assert "ndcg@10" in results["source"]["test"]["all"] and "ndcg@10" in results["test"]["all"]
    per_user = pd.read_parquet(run.path / "per_user_source.parquet")
    assert len(per_user) == results["source"]["test"]["all"]["users"]
    # A target-only model has no source report.
    baseline = transfer_method(loaded.config, "popularity", parent=pretrain, config_text=loaded.text)
    assert "source" not in evaluate_run(baseline)
    assert not (baseline.path / "per_user_source.parquet").exists()
