"""Comparing runs: paired A/B on real tiny runs, refusals, and the many-runs table (mean ± std over seeds)."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from xdt.comparison import compare_many, compare_runs, render_table
from xdt.errors import XdtError
from xdt.runs import RunDirectory, open_run
from xdt.significance import summarise_over_seeds


def copy_run(run: RunDirectory, destination: Path) -> RunDirectory:
    """A copy of a run directory (to alter its files)."""
    shutil.copytree(run.path, destination)
    return open_run(destination)


def test_compare_runs_pairs_every_metric_and_cohort(experiment: dict[str, RunDirectory]) -> None:
    report = compare_runs(experiment["emcdr"], experiment["popularity"])
    per_user = pd.read_parquet(experiment["emcdr"].path / "per_user.parquet")
    cohorts = 1 + per_user["cohort"].nunique() + per_user["activity_bucket"].nunique()
    assert report.metrics == ("ndcg@10", "recall@10", "hr@10", "precision@10", "mrr")
    assert len(report.comparisons) == len(report.metrics) * cohorts
    assert report.users == len(per_user)
    assert (report.method_a, report.method_b) == ("emcdr", "popularity")
    overall = next(c for c in report.comparisons if c.metric == "ndcg@10" and c.cohort == "all")
    assert overall.mean_a == pytest.approx(per_user["ndcg@10"].mean())
    assert overall.mean_difference == pytest.approx(overall.mean_a - overall.mean_b)
    assert overall.ci_low <= overall.mean_difference <= overall.ci_high
    markdown = report.to_markdown()
    assert "## ndcg@10" in markdown and "| cold" in markdown and "activity " in markdown
    payload = json.loads(json.dumps(report.to_dict()))
    assert {"verdict", "t_p_value", "wilcoxon_p_value"} <= set(payload["comparisons"][0])


def test_a_run_against_itself_shows_no_difference(experiment: dict[str, RunDirectory]) -> None:
    report = compare_runs(experiment["emcdr"], experiment["emcdr"], metrics=["ndcg@10", "mrr"])
    for comparison in report.comparisons:
        assert comparison.mean_difference == 0.0
        assert comparison.t_p_value == 1.0 and comparison.wilcoxon_p_value == 1.0
    assert "A better" not in report.to_markdown() and "B better" not in report.to_markdown()


def test_a_clearly_better_run_is_significant_in_the_right_direction(experiment: dict[str, RunDirectory], tmp_path: Path) -> None:
    better = copy_run(experiment["emcdr"], tmp_path / "better")
    frame = pd.read_parquet(better.path / "per_user.parquet")
    rng = np.random.default_rng(0)
    frame["ndcg@10"] = frame["ndcg@10"] + 0.2 + rng.normal(scale=0.01, size=len(frame))
    frame.to_parquet(better.path / "per_user.parquet", index=False)
    report = compare_runs(better, experiment["emcdr"], metrics=["ndcg@10"])
    overall = report.to_dict()["comparisons"][0]
    assert overall["cohort"] == "all"
    assert overall["t_p_value"] < 0.01 and overall["wilcoxon_p_value"] < 0.01
    assert overall["mean_difference"] == pytest.approx(0.2, abs=0.01)
    assert overall["verdict"] == "A better"
    assert compare_runs(experiment["emcdr"], better, metrics=["ndcg@10"]).to_dict()["comparisons"][0]["verdict"] == "B better"


def test_refuses_runs_on_different_data(experiment: dict[str, RunDirectory], tmp_path: Path) -> None:
    other = copy_run(experiment["popularity"], tmp_path / "other-data")
    data = other.read_json("data.json")
    other.write_json("data.json", {**data, "content_hash": "0123456789abcdef"})
    with pytest.raises(XdtError, match="different data or splits"):
        compare_runs(experiment["emcdr"], other)


def test_refuses_runs_on_different_test_users(experiment: dict[str, RunDirectory], tmp_path: Path) -> None:
    fewer = copy_run(experiment["popularity"], tmp_path / "fewer-users")
    frame = pd.read_parquet(fewer.path / "per_user.parquet")
    frame.iloc[1:].to_parquet(fewer.path / "per_user.parquet", index=False)
    with pytest.raises(XdtError, match="different test users: 1 users only in"):
        compare_runs(experiment["emcdr"], fewer)


def test_refuses_runs_with_different_held_out_items(experiment: dict[str, RunDirectory], tmp_path: Path) -> None:
    shifted = copy_run(experiment["popularity"], tmp_path / "other-split")
    frame = pd.read_parquet(shifted.path / "per_user.parquet")
    frame.loc[0, "relevant"] += 1
    frame.to_parquet(shifted.path / "per_user.parquet", index=False)
    with pytest.raises(XdtError, match="different splits"):
        compare_runs(experiment["emcdr"], shifted)


def test_refuses_unevaluated_runs_and_unknown_metrics(experiment: dict[str, RunDirectory], tmp_path: Path) -> None:
    with pytest.raises(XdtError, match="Unknown metric 'ndcg@7'.*Available: .*ndcg@10"):
        compare_runs(experiment["emcdr"], experiment["popularity"], metrics=["ndcg@7"])
    bare = copy_run(experiment["popularity"], tmp_path / "not-evaluated")
    (bare.path / "per_user.parquet").unlink()
    with pytest.raises(XdtError, match="evaluate it first"):
        compare_runs(experiment["emcdr"], bare)


def seeded_copies(experiment: dict[str, RunDirectory], runs_root: Path) -> dict[str, list[float]]:
    """Three 'seeds' per method (copies with shifted ndcg@10) under runs_root/tiny; returns ndcg@10 per method."""
    values: dict[str, list[float]] = {}
    for method, run in experiment.items():
        for seed, shift in ((1, 0.0), (2, 0.01), (3, 0.03)):
            copy = copy_run(run, runs_root / "tiny" / f"20260101-00000{seed}-{method}")
            copy.update_info(seed=seed)
            results = copy.read_json("results.json")
            results["test"]["all"]["ndcg@10"] += shift
            copy.write_json("results.json", results)
            values.setdefault(method, []).append(results["test"]["all"]["ndcg@10"])
    return values


def test_compare_many_summarises_seeds_and_marks_the_best(experiment: dict[str, RunDirectory], tmp_path: Path) -> None:
    values = seeded_copies(experiment, tmp_path / "runs")
    (tmp_path / "runs" / "tiny" / "20260101-000009-pretrain").mkdir()
    (tmp_path / "runs" / "tiny" / "20260101-000009-pretrain" / "run.json").write_text(json.dumps({"kind": "pretrain"}))
    table = compare_many(tmp_path / "runs", "tiny", ["method"])
    assert table.group_by == ("dataset", "method")
    assert sorted(row.group["method"] for row in table.rows) == ["emcdr", "popularity"]
    for row in table.rows:
        assert row.seeds == [1, 2, 3]
        assert row.values["ndcg@10"] == pytest.approx(summarise_over_seeds(values[row.group["method"]]))
    best = max(table.rows, key=lambda row: row.values["ndcg@10"][0])
    assert "ndcg@10" in best.best and all("ndcg@10" not in row.best for row in table.rows if row is not best)
    assert "cold ndcg@10" in table.columns and "warm ndcg@10" in table.columns

    markdown = render_table(table, "markdown")
    mean, std = best.values["ndcg@10"]
    assert f"**{mean:.4f} ± {std:.4f}**" in markdown
    assert markdown.count("\n|") == 2 + len(table.rows)  # header, rule, one line per row
    rows = list(csv.DictReader(io.StringIO(render_table(table, "csv"))))
    assert [row["method"] for row in rows] == [row.group["method"] for row in table.rows]
    assert float(rows[0]["ndcg@10 mean"]) == pytest.approx(table.rows[0].values["ndcg@10"][0], abs=1e-6)
    payload = json.loads(render_table(table, "json"))
    assert payload["rows"][1]["values"]["ndcg@10"]["best"] == ("ndcg@10" in table.rows[1].best)


def test_compare_many_groups_by_config_keys_and_reports_problems(experiment: dict[str, RunDirectory], tmp_path: Path) -> None:
    seeded_copies(experiment, tmp_path / "runs")
    table = compare_many(tmp_path / "runs", "tiny", ["transfer.epochs"])
    assert [row.group["transfer.epochs"] for row in table.rows] == ["2"]
    assert len(table.rows[0].runs) == 6
    with pytest.raises(XdtError, match="--group-by 'transfer.nope'"):
        compare_many(tmp_path / "runs", "tiny", ["transfer.nope"])
    with pytest.raises(XdtError, match="No evaluated transfer runs"):
        compare_many(tmp_path / "runs", "missing-experiment", ["method"])


def test_runs_of_one_seed_count_once_and_are_named_in_a_warning(experiment: dict[str, RunDirectory], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from xdt.cli import app

    runs_root = tmp_path / "runs"
    for name in ("20260101-000001-aaaaaa", "20260101-000002-bbbbbb"):
        copy_run(experiment["emcdr"], runs_root / "tiny" / name).update_info(seed=42)
    newest = copy_run(experiment["emcdr"], runs_root / "tiny" / "20260101-000003-cccccc")
    newest.update_info(seed=42)
    results = newest.read_json("results.json")
    results["test"]["all"]["ndcg@10"] += 0.05
    newest.write_json("results.json", results)
    other_seed = copy_run(experiment["emcdr"], runs_root / "tiny" / "20260101-000004-dddddd")
    other_seed.update_info(seed=43)

    (row,) = compare_many(runs_root, "tiny", ["method"]).rows
    assert row.runs == ["20260101-000003-cccccc", "20260101-000004-dddddd"] and row.seeds == [42, 43]
    assert row.values["ndcg@10"] == pytest.approx(summarise_over_seeds([results["test"]["all"]["ndcg@10"], results["test"]["all"]["ndcg@10"] - 0.05]))

    result = CliRunner().invoke(app, ["runs", "compare", "--experiment", "tiny", "--runs-dir", str(runs_root)])
    assert result.exit_code == 0, result.output
    dataset = row.group["dataset"]
    assert (
        f"warning: dataset {dataset}, method emcdr: 3 runs of method emcdr share seed 42; kept the newest, 20260101-000003-cccccc, and left out "
        "20260101-000001-aaaaaa, 20260101-000002-bbbbbb (runs of one seed are not independent samples)"
    ) in result.output
    table_line = next(line for line in result.output.splitlines() if line.startswith(f"| {dataset}"))
    assert table_line.split("|")[3].strip() == "2"


def test_two_runs_of_one_seed_are_one_sample_not_a_zero_std(experiment: dict[str, RunDirectory], tmp_path: Path) -> None:
    runs_root = tmp_path / "runs"
    for name in ("20260101-000001-aaaaaa", "20260101-000002-bbbbbb"):
        copy_run(experiment["popularity"], runs_root / "tiny" / name).update_info(seed=42)
    table = compare_many(runs_root, "tiny", ["method"])
    markdown = render_table(table, "markdown")
    assert "± 0.0000" not in markdown
    assert markdown.splitlines()[-1].split("|")[3].strip() == "1"
    assert len(table.warnings) == 1 and "2 runs of method popularity share seed 42" in table.warnings[0]


def test_damaged_runs_are_skipped_with_the_reason(experiment: dict[str, RunDirectory], tmp_path: Path) -> None:
    runs_root = tmp_path / "runs"
    copy_run(experiment["emcdr"], runs_root / "tiny" / "20260101-000001-aaaaaa")
    damaged = copy_run(experiment["popularity"], runs_root / "tiny" / "20260101-000002-bbbbbb")
    (damaged.path / "results.json").write_text('{"test": ')
    table = compare_many(runs_root, "tiny", ["method"])
    assert [row.group["method"] for row in table.rows] == ["emcdr"]
    assert table.skipped == (f"{damaged.path} (damaged: Run {damaged.path}: results.json is damaged: not valid JSON at line 1 column 10 (Expecting value))",)
