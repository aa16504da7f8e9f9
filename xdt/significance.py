"""Paired statistics for comparing two runs on the same users, and mean ± std over seeds."""

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.stats

from xdt.errors import DataError

# Bounds the bootstrap index matrix at about 16 MiB of int64 per chunk.
_BOOTSTRAP_CHUNK_ELEMENTS = 2_000_000
_MISMATCH_EXAMPLES = 5


@dataclass(frozen=True)
class PairedComparison:
    """Run A against run B on one metric and one cohort of users."""

    metric: str
    cohort: str
    users: int
    mean_a: float
    mean_b: float
    mean_difference: float
    ci_low: float
    ci_high: float
    t_statistic: float
    t_p_value: float
    wilcoxon_p_value: float

    def to_dict(self) -> dict[str, float | int | str]:
        """Return the fields as a flat dictionary, e.g. for one row of a results table."""
        return dataclasses.asdict(self)


def paired_bootstrap_interval(
    differences: np.ndarray,
    *,
    resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of per-user differences `(n,)`."""
    differences = np.asarray(differences, dtype=np.float64)
    if differences.ndim != 1 or differences.size == 0:
        raise ValueError(
            f"Expected differences to be a non-empty 1-D array. Received: shape={differences.shape}"
        )
    if resamples < 1:
        raise ValueError(f"Expected resamples >= 1. Received: resamples={resamples}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"Expected 0 < confidence < 1. Received: confidence={confidence}")
    n = differences.size
    generator = np.random.default_rng(seed)
    chunk_rows = max(1, _BOOTSTRAP_CHUNK_ELEMENTS // n)
    resampled_means = np.empty(resamples, dtype=np.float64)
    for start in range(0, resamples, chunk_rows):
        stop = min(start + chunk_rows, resamples)
        indices = generator.integers(0, n, size=(stop - start, n))
        resampled_means[start:stop] = differences[indices].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(resampled_means, [tail, 1.0 - tail])
    return float(low), float(high)


def compare_paired(
    values_a: np.ndarray,
    values_b: np.ndarray,
    *,
    metric: str,
    cohort: str,
    resamples: int = 10_000,
    seed: int = 0,
) -> PairedComparison:
    """Compare per-user values of run A and run B (same users, same order).

    When every difference is 0 both tests report p = 1.0 (t = 0.0); with a single user the
    t-test is undefined and reports NaN.
    """
    values_a = np.asarray(values_a, dtype=np.float64)
    values_b = np.asarray(values_b, dtype=np.float64)
    if values_a.ndim != 1 or values_a.shape != values_b.shape or values_a.size == 0:
        raise ValueError(
            "Expected values_a and values_b to be non-empty 1-D arrays of the same length. "
            f"Received: values_a.shape={values_a.shape}, values_b.shape={values_b.shape}"
        )
    differences = values_a - values_b
    ci_low, ci_high = paired_bootstrap_interval(differences, resamples=resamples, seed=seed)
    if not np.any(differences):
        t_statistic, t_p_value, wilcoxon_p_value = 0.0, 1.0, 1.0
    else:
        if differences.size < 2:
            t_statistic, t_p_value = float("nan"), float("nan")
        else:
            t_result = scipy.stats.ttest_rel(values_a, values_b)
            t_statistic, t_p_value = float(t_result.statistic), float(t_result.pvalue)
        wilcoxon_p_value = float(
            scipy.stats.wilcoxon(differences, zero_method="wilcox", alternative="two-sided").pvalue
        )
    return PairedComparison(
        metric=metric,
        cohort=cohort,
        users=int(differences.size),
        mean_a=float(values_a.mean()),
        mean_b=float(values_b.mean()),
        mean_difference=float(differences.mean()),
        ci_low=ci_low,
        ci_high=ci_high,
        t_statistic=t_statistic,
        t_p_value=t_p_value,
        wilcoxon_p_value=wilcoxon_p_value,
    )


def compare_per_user(
    per_user_a: pd.DataFrame,
    per_user_b: pd.DataFrame,
    *,
    metrics: Sequence[str],
    cohort_column: str = "cohort",
    activity_column: str | None = "activity_bucket",
    seed: int = 0,
) -> list[PairedComparison]:
    """Paired comparison per metric and per cohort ("all", each cohort value, each activity bucket).

    Activity buckets are labelled "activity <bucket>" (e.g. "activity 3-5") and ordered by their
    categorical order if the column is categorical, otherwise by their leading number.
    """
    if not metrics:
        raise ValueError(f"Expected at least one metric. Received: metrics={list(metrics)}")
    group_columns = [cohort_column] + ([activity_column] if activity_column is not None else [])
    for name, frame in (("per_user_a", per_user_a), ("per_user_b", per_user_b)):
        _check_columns(frame, name=name, columns=["user", *group_columns, *metrics])
    aligned_b = _align_users(per_user_a, per_user_b)

    cohorts: list[tuple[str, np.ndarray]] = [("all", np.ones(len(per_user_a), dtype=bool))]
    for value in _ordered_values(per_user_a[cohort_column]):
        cohorts.append((str(value), (per_user_a[cohort_column] == value).to_numpy()))
    if activity_column is not None:
        for value in _ordered_values(per_user_a[activity_column]):
            mask = (per_user_a[activity_column] == value).to_numpy()
            cohorts.append((f"activity {value}", mask))

    comparisons = []
    for metric in metrics:
        values_a = per_user_a[metric].to_numpy(dtype=np.float64)
        values_b = aligned_b[metric].to_numpy(dtype=np.float64)
        for name, values in (("per_user_a", values_a), ("per_user_b", values_b)):
            if np.isnan(values).any():
                raise DataError(
                    f"Expected no missing values in {name}[{metric!r}]. "
                    f"Received {int(np.isnan(values).sum())} NaN values"
                )
        for cohort, mask in cohorts:
            comparisons.append(
                compare_paired(
                    values_a[mask], values_b[mask], metric=metric, cohort=cohort, seed=seed
                )
            )
    return comparisons


def summarise_over_seeds(values: Sequence[float]) -> tuple[float, float]:
    """Return (mean, sample std with ddof=1) of one metric over seeds; std is 0.0 for one seed."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"Expected at least one value. Received: values={list(values)}")
    standard_deviation = float(array.std(ddof=1)) if array.size > 1 else 0.0
    return float(array.mean()), standard_deviation


def _check_columns(frame: pd.DataFrame, *, name: str, columns: Sequence[str]) -> None:
    """Raise DataError when `frame` lacks a column or lists a user twice."""
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise DataError(
            f"Expected {name} to have columns {list(columns)}. "
            f"Missing: {missing}. Received columns: {list(frame.columns)}"
        )
    duplicated = frame["user"][frame["user"].duplicated()].unique()
    if duplicated.size:
        examples = [str(user) for user in duplicated[:_MISMATCH_EXAMPLES]]
        raise DataError(
            f"Expected one row per user in {name}. "
            f"Received {duplicated.size} duplicated users, e.g. {examples}"
        )


def _align_users(per_user_a: pd.DataFrame, per_user_b: pd.DataFrame) -> pd.DataFrame:
    """Return per_user_b in per_user_a's user order; raise DataError if the users differ."""
    users_a = set(per_user_a["user"])
    users_b = set(per_user_b["user"])
    if users_a != users_b:
        only_a = sorted(users_a - users_b, key=str)
        only_b = sorted(users_b - users_a, key=str)
        raise DataError(
            "Expected per_user_a and per_user_b to contain the same users. "
            f"Received {len(only_a)} users only in A "
            f"(e.g. {[str(user) for user in only_a[:_MISMATCH_EXAMPLES]]}) and "
            f"{len(only_b)} users only in B "
            f"(e.g. {[str(user) for user in only_b[:_MISMATCH_EXAMPLES]]})"
        )
    return per_user_b.set_index("user").loc[per_user_a["user"]].reset_index()


def _ordered_values(column: pd.Series) -> list[object]:
    """Distinct values of a column: categorical order, else natural order ("3-5" before "10+")."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        present = set(column.dropna())
        return [value for value in column.cat.categories if value in present]
    return sorted(column.dropna().unique(), key=_natural_key)


def _natural_key(value: object) -> tuple[float, str]:
    """Sort key that compares a leading number numerically: "10+" -> (10.0, "10+")."""
    text = str(value)
    match = re.match(r"\s*(\d+(?:\.\d+)?)", text)
    return (float(match.group(1)) if match else float("inf"), text)
