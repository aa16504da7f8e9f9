"""Comparing runs: an offline A/B test of two runs, and one table over many runs (mean ± std over seeds).

Never imports TensorFlow: everything here reads results.json, per_user.parquet and run metadata.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from xdt.errors import DamagedRunError, XdtError
from xdt.runs import RunDirectory, iter_runs
from xdt.significance import PairedComparison, compare_per_user, summarise_over_seeds

PER_USER_FILE = "per_user.parquet"
HEADLINE_METRICS = ("ndcg", "recall", "hr", "precision")
SIGNIFICANCE_LEVEL = 0.05
TableFormat = Literal["markdown", "csv", "json"]


def headline_k(ks: Sequence[int]) -> int:
    """The k shown by default: 10 when evaluated, else the largest k."""
    return 10 if 10 in ks else max(ks)


def default_metrics(ks: Sequence[int]) -> list[str]:
    """Headline metrics at the headline k, plus MRR: ["ndcg@10", "recall@10", "hr@10", "precision@10", "mrr"]."""
    k = headline_k(ks)
    return [f"{name}@{k}" for name in HEADLINE_METRICS] + ["mrr"]


# --------------------------------------------------------------------------------------------
# Two runs: paired differences on the same users.


@dataclass(frozen=True)
class ComparisonReport:
    """Run A against run B: one PairedComparison per metric and cohort (all, cohorts, activity buckets)."""

    run_a: str
    run_b: str
    method_a: str
    method_b: str
    dataset: str
    users: int
    metrics: tuple[str, ...]
    comparisons: tuple[PairedComparison, ...]

    def to_frame(self) -> pd.DataFrame:
        """One row per (metric, cohort) with every statistic."""
        return pd.DataFrame([comparison.to_dict() for comparison in self.comparisons])

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        return {
            "run_a": self.run_a,
            "run_b": self.run_b,
            "method_a": self.method_a,
            "method_b": self.method_b,
            "dataset": self.dataset,
            "users": self.users,
            "metrics": list(self.metrics),
            "significance_level": SIGNIFICANCE_LEVEL,
            "comparisons": [{**comparison.to_dict(), "verdict": verdict(comparison)} for comparison in self.comparisons],
        }

    def to_markdown(self) -> str:
        """A readable markdown summary: one table per metric, a row per cohort."""
        lines = [
            f"# {self.method_a} (A) vs {self.method_b} (B)",
            "",
            f"- A: `{self.run_a}`",
            f"- B: `{self.run_b}`",
            f"- dataset `{self.dataset}`, {self.users:,} test users, paired per user; full ranking, seen items excluded",
            "- Δ = A − B with a bootstrap 95% interval; p-values of the paired t-test and the Wilcoxon signed-rank test",
            "",
        ]
        for metric in self.metrics:
            lines += [f"## {metric}", ""]
            rows = [
                [
                    comparison.cohort,
                    f"{comparison.users:,}",
                    f"{comparison.mean_a:.4f}",
                    f"{comparison.mean_b:.4f}",
                    f"{comparison.mean_difference:+.4f}",
                    f"[{comparison.ci_low:+.4f}, {comparison.ci_high:+.4f}]",
                    format_p(comparison.t_p_value),
                    format_p(comparison.wilcoxon_p_value),
                    verdict(comparison),
                ]
                for comparison in self.comparisons
                if comparison.metric == metric
            ]
            lines += markdown_table(["cohort", "users", "A", "B", "Δ (A − B)", "95% CI", "t-test p", "Wilcoxon p", "verdict"], rows)
            lines.append("")
        return "\n".join(lines)


def verdict(comparison: PairedComparison) -> str:
    """'A better' / 'B better' when both tests and the interval agree at the 5% level, else 'no significant difference'."""
    significant = (
        comparison.t_p_value < SIGNIFICANCE_LEVEL
        and comparison.wilcoxon_p_value < SIGNIFICANCE_LEVEL
        and (comparison.ci_low > 0 or comparison.ci_high < 0)
    )
    if not significant:
        return "no significant difference"
    return "A better" if comparison.mean_difference > 0 else "B better"


def format_p(value: float) -> str:
    """p-values as 0.0312, or <1e-4 when tiny, or n/a when undefined (one user)."""
    if math.isnan(value):
        return "n/a"
    return "<1e-4" if value < 1e-4 else f"{value:.4f}"


def compare_runs(run_a: RunDirectory, run_b: RunDirectory, *, metrics: Sequence[str] | None = None, seed: int = 0) -> ComparisonReport:
    """Paired per-user comparison of two evaluated runs on the same test users.

    Refuses (XdtError) runs evaluated on different prepared data or splits (data.json
    content_hash), on different test users, or on different held-out items per user.
    """
    per_user_a, per_user_b = read_per_user(run_a), read_per_user(run_b)
    data_a, data_b = run_a.read_json("data.json"), run_b.read_json("data.json")
    if data_a.get("content_hash") != data_b.get("content_hash"):
        raise XdtError(
            f"Cannot compare runs evaluated on different data or splits: {run_a.path} used dataset "
            f"{data_a.get('name')!r} (content {data_a.get('content_hash')}), {run_b.path} used "
            f"{data_b.get('name')!r} (content {data_b.get('content_hash')}). Compare runs of the same prepared dataset."
        )
    check_same_users(per_user_a, per_user_b, run_a=run_a, run_b=run_b)
    ks = run_a.read_json("results.json").get("ks", [10]) if (run_a.path / "results.json").is_file() else [10]
    chosen = list(metrics) if metrics else default_metrics(ks)
    for metric in chosen:
        missing = [str(run.path) for run, frame in ((run_a, per_user_a), (run_b, per_user_b)) if metric not in frame.columns]
        if missing:
            available = [column for column in per_user_a.columns if "@" in column or column == "mrr"]
            raise XdtError(f"Unknown metric {metric!r} for {', '.join(missing)}. Available: {', '.join(available)}")
    comparisons = compare_per_user(per_user_a, per_user_b, metrics=chosen, seed=seed)
    return ComparisonReport(
        run_a=str(run_a.path),
        run_b=str(run_b.path),
        method_a=str(run_a.info().get("method")),
        method_b=str(run_b.info().get("method")),
        dataset=str(data_a.get("name")),
        users=int(len(per_user_a)),
        metrics=tuple(chosen),
        comparisons=tuple(comparisons),
    )


def read_per_user(run: RunDirectory) -> pd.DataFrame:
    """A run's per-user test metrics, with a clear error when it has not been evaluated."""
    file = run.path / PER_USER_FILE
    if not file.is_file():
        raise XdtError(f"Run {run.path} has no {PER_USER_FILE}: evaluate it first (xdt evaluate {run.path})")
    return pd.read_parquet(file)


def check_same_users(per_user_a: pd.DataFrame, per_user_b: pd.DataFrame, *, run_a: RunDirectory, run_b: RunDirectory) -> None:
    """Both runs must score the same test users, each with the same number of held-out items."""
    users_a, users_b = set(per_user_a["user"]), set(per_user_b["user"])
    if users_a != users_b:
        only_a, only_b = sorted(users_a - users_b), sorted(users_b - users_a)
        raise XdtError(
            f"Cannot compare runs evaluated on different test users: {len(only_a):,} users only in {run_a.path} "
            f"(e.g. {only_a[:3]}), {len(only_b):,} only in {run_b.path} (e.g. {only_b[:3]})."
        )
    relevant_b = per_user_b.set_index("user")["relevant"].reindex(per_user_a["user"]).to_numpy()
    differing = per_user_a["user"].to_numpy()[per_user_a["relevant"].to_numpy() != relevant_b]
    if len(differing):
        raise XdtError(
            f"Cannot compare runs evaluated on different splits: {len(differing):,} test users have a different number "
            f"of held-out items in {run_a.path} and {run_b.path} (e.g. {list(differing[:3])})."
        )


# --------------------------------------------------------------------------------------------
# Many runs: one table, mean ± std over seeds.


@dataclass(frozen=True)
class TableRow:
    """One group of runs (e.g. one method on one dataset) summarised over its seeds."""

    group: dict[str, str]
    runs: list[str]
    seeds: list[Any]
    values: dict[str, tuple[float, float]]  # column → (mean, std)
    best: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class RunsTable:
    """Rows of grouped runs, columns of "<metric>" (all test users) or "<cohort> <metric>"."""

    group_by: tuple[str, ...]
    columns: tuple[str, ...]
    rows: tuple[TableRow, ...]
    split: str
    skipped: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


def compare_many(
    runs_root: Path,
    experiment: str | None = None,
    group_by: Sequence[str] = ("method",),
    *,
    metrics: Sequence[str] | None = None,
    cohorts: Sequence[str] = ("all", "cold", "warm"),
    split: str = "test",
) -> RunsTable:
    """One row per (dataset, *group_by) over every evaluated run; mean ± std over the group's seeds.

    `group_by` fields are run.json keys (method, kind, seed, experiment) or dotted keys of the
    resolved config (e.g. transfer.epochs). Cohorts other than "all" get only the first metric,
    so the table stays narrow: ndcg@10 … mrr, cold ndcg@10, warm ndcg@10. The best mean per
    column and dataset is marked. Runs of a group with the same method and seed are one sample,
    not several: only the newest of them is kept, and a warning names the others.
    """
    groups: dict[tuple[str, ...], list[tuple[RunDirectory, dict[str, Any]]]] = {}
    skipped, ks = [], None
    for run in iter_runs(Path(runs_root), experiment):
        try:
            info = run.info()
            if info.get("kind") != "transfer":
                continue
            if not (run.path / "results.json").is_file():
                skipped.append(f"{run.path} ({info.get('status')}, not evaluated)")
                continue
            results = run.read_json("results.json")
        except DamagedRunError as error:
            skipped.append(f"{run.path} (damaged: {error})")
            continue
        if split not in results:
            skipped.append(f"{run.path} (no {split} results)")
            continue
        ks = ks or results.get("ks")
        dataset = results.get("dataset") or run.read_json("data.json").get("name")
        key = (str(dataset), *(str(group_value(run, info, name)) for name in group_by))
        groups.setdefault(key, []).append((run, results))
    if not groups:
        where = f"{runs_root}/{experiment}" if experiment else str(runs_root)
        raise XdtError(f"No evaluated transfer runs under {where}" + (f" ({len(skipped)} not evaluated)" if skipped else ""))
    chosen = list(metrics) if metrics else default_metrics(ks or [10])
    columns = [metric for metric in chosen] + [f"{cohort} {chosen[0]}" for cohort in cohorts if cohort != "all"]
    rows, warnings = [], []
    for key, runs in groups.items():
        members, note = one_run_per_seed(runs, dict(zip(("dataset", *group_by), key)))
        warnings += note
        values = {}
        for column in columns:
            observed = [value for _, results in members if (value := column_value(results[split], column)) is not None]
            if observed:
                values[column] = summarise_over_seeds(observed)
        rows.append(
            TableRow(
                group=dict(zip(("dataset", *group_by), key)),
                runs=[run.run_id for run, _ in members],
                seeds=[run.info().get("seed") for run, _ in members],
                values=values,
            )
        )
    columns = [column for column in columns if any(column in row.values for row in rows)]
    mark_best(rows, columns)
    return RunsTable(
        group_by=("dataset", *group_by), columns=tuple(columns), rows=tuple(rows), split=split, skipped=tuple(skipped), warnings=tuple(warnings)
    )


def one_run_per_seed(
    members: list[tuple[RunDirectory, dict[str, Any]]], group: dict[str, str]
) -> tuple[list[tuple[RunDirectory, dict[str, Any]]], list[str]]:
    """The newest run of each (method, seed) in a group, oldest first, and one warning per pair that had several.

    Two runs of one method and seed (a re-run, a copy) are not independent samples: averaging
    them would count the seed twice and shrink the std towards 0 (two identical runs: ± 0.0000).
    Runs of different methods with one seed (a group by a config key) are different samples.
    """
    by_seed: dict[tuple[Any, Any], list[RunDirectory]] = {}
    for run, _ in members:
        info = run.info()
        by_seed.setdefault((info.get("method"), info.get("seed")), []).append(run)
    kept = {runs[-1] for runs in by_seed.values()}
    label = ", ".join(f"{name} {value}" for name, value in group.items())
    warnings = [
        f"{label}: {len(runs)} runs of method {method} share seed {seed}; kept the newest, {runs[-1].run_id}, and left out "
        f"{', '.join(run.run_id for run in runs[:-1])} (runs of one seed are not independent samples)"
        for (method, seed), runs in by_seed.items()
        if len(runs) > 1
    ]
    return [(run, results) for run, results in members if run in kept], warnings


def group_value(run: RunDirectory, info: dict[str, Any], name: str) -> Any:
    """A run's value of a group-by field: run.json first, then the resolved config by dotted path."""
    if name in info:
        return info[name]
    if name == "experiment":
        return run.experiment
    value: Any = run.read_json("resolved.json")
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            raise XdtError(f"--group-by {name!r}: not a run field (method, kind, seed, experiment) or a config key of {run.path}")
        value = value[part]
    return value


def column_value(summary: dict[str, Any], column: str) -> float | None:
    """The value of "<metric>" (all users) or "<cohort> <metric>" in one split's summary."""
    cohort, _, metric = column.rpartition(" ")
    if not cohort:
        values = summary.get("all", {})
    else:
        values = summary.get("cohorts", {}).get(cohort) or summary.get("activity", {}).get(cohort) or {}
    value = values.get(metric)
    return None if value is None else float(value)


def mark_best(rows: list[TableRow], columns: Sequence[str]) -> None:
    """Mark the highest mean of each column within each dataset (every metric here is higher-is-better)."""
    for dataset in {row.group["dataset"] for row in rows}:
        members = [row for row in rows if row.group["dataset"] == dataset]
        for column in columns:
            means = [row.values[column][0] for row in members if column in row.values]
            if len(means) < 2:
                continue
            best = max(means)
            for row in members:
                if column in row.values and np.isclose(row.values[column][0], best, rtol=0, atol=1e-12):
                    row.best.add(column)


def render_table(table: RunsTable, format: TableFormat = "markdown") -> str:
    """The table as markdown (best in bold), CSV (mean, std, best columns) or JSON."""
    if format == "json":
        payload = {
            "split": table.split,
            "group_by": list(table.group_by),
            "columns": list(table.columns),
            "rows": [
                {
                    **row.group,
                    "runs": row.runs,
                    "seeds": row.seeds,
                    "values": {
                        column: {"mean": mean, "std": std, "best": column in row.best} for column, (mean, std) in row.values.items()
                    },
                }
                for row in table.rows
            ],
            "skipped": list(table.skipped),
            "warnings": list(table.warnings),
        }
        return json.dumps(payload, indent=2)
    if format == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow([*table.group_by, "runs", "seeds", *(f"{column} {part}" for column in table.columns for part in ("mean", "std", "best"))])
        for row in table.rows:
            cells: list[Any] = [row.group[name] for name in table.group_by] + [len(row.runs), " ".join(map(str, row.seeds))]
            for column in table.columns:
                mean, std = row.values.get(column, (float("nan"), float("nan")))
                cells += [f"{mean:.6f}", f"{std:.6f}", column in row.best]
            writer.writerow(cells)
        return buffer.getvalue()
    if format != "markdown":
        raise XdtError(f"Expected --format markdown, csv or json. Received: {format!r}")
    header = [*table.group_by, "seeds", *table.columns]
    body = []
    for row in table.rows:
        cells = [row.group[name] for name in table.group_by] + [str(len(row.runs))]
        for column in table.columns:
            if column not in row.values:
                cells.append("–")
                continue
            mean, std = row.values[column]
            text = f"{mean:.4f} ± {std:.4f}" if len(row.runs) > 1 else f"{mean:.4f}"
            cells.append(f"**{text}**" if column in row.best else text)
        body.append(cells)
    note = f"Target {table.split} metrics, full ranking; mean ± std over seeds; best per column in bold."
    return "\n".join([note, "", *markdown_table(header, body)]) + "\n"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Lines of a GitHub markdown table, text left-aligned and numbers right-aligned, padded to column width."""
    widths = [max([len(str(header[i]))] + [len(str(row[i])) for row in rows]) for i in range(len(header))]
    numeric = [all(looks_numeric(str(row[i])) for row in rows) and bool(rows) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        padded = [str(cell).rjust(width) if right else str(cell).ljust(width) for cell, width, right in zip(cells, widths, numeric)]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(("-" * (width + 1) + ":") if right else (":" + "-" * (width + 1)) for width, right in zip(widths, numeric)) + "|"
    return [line(header), rule, *(line(row) for row in rows)]


def looks_numeric(text: str) -> bool:
    """Whether a cell is a number (possibly bold, signed, with ± or a comma): such columns are right-aligned."""
    first = text.strip("*").split(" ")[0].replace(",", "").lstrip("<")
    if first in ("–", "n/a"):
        return True
    try:
        float(first)
    except ValueError:
        return False
    return True
