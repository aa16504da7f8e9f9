"""Tests for paired comparisons, the bootstrap interval and mean ± std over seeds."""

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from xdt.errors import XdtError
from xdt.significance import (
    PairedComparison,
    compare_paired,
    compare_per_user,
    paired_bootstrap_interval,
    summarise_over_seeds,
)


def _per_user_frame(users: list[str], ndcg: np.ndarray, recall: np.ndarray) -> pd.DataFrame:
    """A per-user frame with alternating cohorts and three activity buckets."""
    buckets = ["1-2", "3-5", "10+"]
    return pd.DataFrame(
        {
            "user": users,
            "cohort": ["cold" if i % 2 else "warm" for i in range(len(users))],
            "activity_bucket": [buckets[i % 3] for i in range(len(users))],
            "ndcg@10": ndcg,
            "recall@10": recall,
        }
    )


def test_hand_computed_t_statistic() -> None:
    values_a = np.array([3.0, 5.0, 4.0, 6.0])
    values_b = np.array([1.0, 2.0, 3.0, 3.0])
    # d = [2, 3, 1, 3], mean 2.25; squared deviations 0.0625 + 0.5625 + 1.5625 + 0.5625 = 2.75;
    # s = sqrt(2.75 / 3) = 0.9574271; standard error s / sqrt(4) = 0.4787136;
    # t = 2.25 / 0.4787136 = 4.700097.
    comparison = compare_paired(values_a, values_b, metric="ndcg@10", cohort="all", resamples=200)
    assert comparison.t_statistic == pytest.approx(4.700097, abs=1e-6)
    assert comparison.mean_difference == pytest.approx(2.25)
    assert comparison.mean_a == pytest.approx(4.5)
    assert comparison.mean_b == pytest.approx(2.25)
    assert comparison.users == 4


@pytest.mark.parametrize("zero_differences", [0, 6])
def test_p_values_match_scipy(zero_differences: int) -> None:
    generator = np.random.default_rng(7)
    values_b = generator.uniform(size=40)
    values_a = values_b + generator.normal(0.02, 0.1, size=40)
    # Users with no difference are dropped by zero_method="wilcox" but not by "pratt"/"zsplit".
    values_a[:zero_differences] = values_b[:zero_differences]
    comparison = compare_paired(values_a, values_b, metric="ndcg@10", cohort="all", resamples=200)
    expected_t = scipy.stats.ttest_rel(values_a, values_b)
    expected_wilcoxon = scipy.stats.wilcoxon(values_a - values_b, zero_method="wilcox")
    assert comparison.t_statistic == pytest.approx(float(expected_t.statistic), rel=1e-12)
    assert comparison.t_p_value == pytest.approx(float(expected_t.pvalue), rel=1e-12)
    assert comparison.wilcoxon_p_value == pytest.approx(float(expected_wilcoxon.pvalue), rel=1e-12)


def test_clearly_better_run_is_significant() -> None:
    generator = np.random.default_rng(0)
    values_b = generator.uniform(0.0, 0.5, size=300)
    values_a = values_b + 0.05 + generator.normal(0.0, 0.1, size=300)
    comparison = compare_paired(values_a, values_b, metric="ndcg@10", cohort="all", resamples=2000)
    assert comparison.t_p_value < 0.01
    assert comparison.wilcoxon_p_value < 0.01
    assert 0.0 < comparison.ci_low < comparison.mean_difference < comparison.ci_high


def test_run_against_itself_is_not_significant() -> None:
    values = np.random.default_rng(1).uniform(size=50)
    comparison = compare_paired(values, values, metric="ndcg@10", cohort="all", resamples=200)
    assert comparison.t_statistic == 0.0
    assert comparison.t_p_value == 1.0
    assert comparison.wilcoxon_p_value == 1.0
    assert (comparison.ci_low, comparison.ci_high) == (0.0, 0.0)


def test_bootstrap_interval_covers_true_mean_difference() -> None:
    generator = np.random.default_rng(123)
    true_difference = 0.03
    covered = 0
    for seed in range(200):
        differences = true_difference + generator.normal(0.0, 0.1, size=100)
        low, high = paired_bootstrap_interval(differences, resamples=500, seed=seed)
        covered += low <= true_difference <= high
    assert covered / 200 >= 0.92


def test_bootstrap_interval_is_seeded() -> None:
    differences = np.random.default_rng(2).normal(size=30)
    first = paired_bootstrap_interval(differences, resamples=300, seed=5)
    assert paired_bootstrap_interval(differences, resamples=300, seed=5) == first
    assert paired_bootstrap_interval(differences, resamples=300, seed=6) != first


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"resamples": 0}, "Expected resamples >= 1. Received: resamples=0"),
        ({"confidence": 1.0}, "Expected 0 < confidence < 1. Received: confidence=1.0"),
    ],
)
def test_bootstrap_interval_rejects_bad_arguments(arguments: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        paired_bootstrap_interval(np.ones(3), **arguments)


def test_compare_per_user_reports_every_cohort_and_metric() -> None:
    generator = np.random.default_rng(3)
    users = [f"u{i}" for i in range(60)]
    per_user_b = _per_user_frame(users, generator.uniform(size=60), generator.uniform(size=60))
    per_user_a = per_user_b.copy()
    per_user_a["ndcg@10"] += 0.1 + generator.normal(0.0, 0.01, size=60)
    # B in another row order must still be paired by user.
    shuffled_b = per_user_b.sample(frac=1.0, random_state=0)

    comparisons = compare_per_user(
        per_user_a, shuffled_b, metrics=["ndcg@10", "recall@10"], seed=0
    )

    labels = ["all", "cold", "warm", "activity 1-2", "activity 3-5", "activity 10+"]
    assert [(c.metric, c.cohort) for c in comparisons] == [
        (metric, label) for metric in ["ndcg@10", "recall@10"] for label in labels
    ]
    by_key = {(c.metric, c.cohort): c for c in comparisons}
    assert by_key[("ndcg@10", "all")].mean_difference == pytest.approx(0.1, abs=0.005)
    assert by_key[("ndcg@10", "all")].t_p_value < 1e-10
    assert by_key[("ndcg@10", "all")].users == 60
    assert by_key[("ndcg@10", "cold")].users == 30
    assert by_key[("ndcg@10", "activity 3-5")].users == 20
    assert by_key[("recall@10", "all")].t_p_value == 1.0
    assert by_key[("recall@10", "all")].to_dict()["cohort"] == "all"


def test_compare_per_user_without_activity_column() -> None:
    users = [f"u{i}" for i in range(10)]
    per_user = _per_user_frame(users, np.linspace(0, 1, 10), np.linspace(0, 1, 10))
    comparisons = compare_per_user(
        per_user, per_user, metrics=["ndcg@10"], activity_column=None
    )
    assert [c.cohort for c in comparisons] == ["all", "cold", "warm"]


def test_compare_per_user_rejects_mismatched_users() -> None:
    values = np.zeros(8)
    per_user_a = _per_user_frame([f"u{i}" for i in range(8)], values, values)
    per_user_b = _per_user_frame([f"u{i}" for i in range(1, 9)], values, values)
    with pytest.raises(
        XdtError,
        match=r"1 users only in A \(e\.g\. \['u0'\]\) and 1 users only in B \(e\.g\. \['u8'\]\)",
    ):
        compare_per_user(per_user_a, per_user_b, metrics=["ndcg@10"])


def test_compare_per_user_shows_at_most_five_examples() -> None:
    per_user_a = _per_user_frame([f"a{i}" for i in range(7)], np.zeros(7), np.zeros(7))
    per_user_b = _per_user_frame([f"b{i}" for i in range(7)], np.zeros(7), np.zeros(7))
    with pytest.raises(
        XdtError, match=r"7 users only in A \(e\.g\. \['a0', 'a1', 'a2', 'a3', 'a4'\]\)"
    ):
        compare_per_user(per_user_a, per_user_b, metrics=["ndcg@10"])


def test_compare_per_user_rejects_missing_metric() -> None:
    per_user_a = _per_user_frame(["u0", "u1"], np.zeros(2), np.zeros(2))
    per_user_b = per_user_a.drop(columns=["recall@10"])
    with pytest.raises(XdtError, match=r"per_user_b .*Missing: \['recall@10'\]"):
        compare_per_user(per_user_a, per_user_b, metrics=["ndcg@10", "recall@10"])


def test_summarise_over_seeds() -> None:
    # mean (1 + 2 + 6) / 3 = 3; sample variance ((-2)^2 + (-1)^2 + 3^2) / 2 = 7.
    mean, standard_deviation = summarise_over_seeds([1.0, 2.0, 6.0])
    assert mean == pytest.approx(3.0)
    assert standard_deviation == pytest.approx(np.sqrt(7.0))
    assert summarise_over_seeds([0.4]) == (0.4, 0.0)
    with pytest.raises(ValueError, match="Expected at least one value"):
        summarise_over_seeds([])


def test_paired_comparison_to_dict_has_every_field() -> None:
    comparison = compare_paired(
        np.array([1.0, 2.0, 4.0]), np.zeros(3), metric="m", cohort="c", resamples=10
    )
    assert isinstance(comparison, PairedComparison)
    assert list(comparison.to_dict()) == [
        "metric", "cohort", "users", "mean_a", "mean_b", "mean_difference", "ci_low",
        "ci_high", "t_statistic", "t_p_value", "wilcoxon_p_value",
    ]


def test_bootstrap_interval_does_not_depend_on_chunk_size(monkeypatch: pytest.MonkeyPatch) -> None:
    differences = np.random.default_rng(4).normal(size=7)
    whole = paired_bootstrap_interval(differences, resamples=1000, seed=1)
    # 14 elements per chunk -> 2 resamples per chunk, 500 chunks.
    monkeypatch.setattr("xdt.significance._BOOTSTRAP_CHUNK_ELEMENTS", 14)
    assert paired_bootstrap_interval(differences, resamples=1000, seed=1) == whole
