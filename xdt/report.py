"""`report.md` and PNG plots for an evaluated run, and one report over all methods of an experiment.

Reads results.json, per_user.parquet and metrics.jsonl; never imports TensorFlow.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from xdt.comparison import format_p, headline_k, markdown_table, read_per_user
from xdt.errors import XdtError
from xdt.plots import plot_activity_buckets, plot_cohort_bars, plot_metric_at_k, plot_training_curves
from xdt.runs import RunDirectory, open_run
from xdt.significance import compare_paired
from xdt.tables import exclusion_note

REPORT_FILE = "report.md"
CURVE_METRICS = ("ndcg", "recall", "hr", "precision")
COHORT_ORDER = ("all", "cold", "warm")


def write_report(run: RunDirectory) -> Path:
    """Write `<run>/report.md` with metric@k curves, training curves, cohort and activity plots; return its path.

    A rating run (task: rating) gets its own report of MAE / RMSE (xdt.rating.experiment).
    """
    info = run.info()
    if info.get("kind") == "rating":
        from xdt.rating.experiment import write_rating_report

        return write_rating_report(run, run.read_json("results.json"))
    results = read_results(run)
    method = str(info.get("method"))
    test = results["test"]
    ks = list(results["ks"])
    k = headline_k(ks)
    folder = run.path
    figures = []
    curves = {cohort: metric_curve(cohort_values(test, cohort), "ndcg", ks) for cohort in cohorts_of(test)}
    figures.append(("NDCG@k by cohort", plot_metric_at_k(curves, metric="ndcg@k", path=folder / "ndcg_at_k.png", title=f"{method}: test NDCG@k")))
    curves = {name: metric_curve(test["all"], name, ks) for name in CURVE_METRICS}
    figures.append(("Every metric@k, all test users", plot_metric_at_k(curves, metric="metric@k", path=folder / "metrics_at_k.png", title=f"{method}: test metric@k")))
    history = training_history({method: run}, include_parent=True)
    if history:
        figures.append(("Training and validation curves", plot_training_curves(history, path=folder / "training.png", title=f"{method}: training")))
    figures.append(("Cohorts", plot_cohort_bars({method: cohort_metric(test, f"ndcg@{k}")}, metric=f"ndcg@{k}", path=folder / "cohorts.png", title=f"test NDCG@{k} by cohort")))
    if test.get("activity"):
        figures.append(
            ("Activity buckets", plot_activity_buckets({method: activity_metric(test, f"ndcg@{k}")}, metric=f"ndcg@{k}", path=folder / "activity.png", title=f"test NDCG@{k} by training activity"))
        )

    lines = [
        f"# {method} — {run.experiment} / {run.run_id}",
        "",
        *run_facts(run, info, results),
        "",
        f"## Test metrics @{k} (full ranking, {exclusion_note(results)})",
        "",
        *markdown_table(["cohort", "users", *headline_metrics(k)], cohort_rows(test, k)),
        "",
        "## Test metrics by k (all test users)",
        "",
        *markdown_table(["k", *CURVE_METRICS], [[str(each), *(f"{test['all'][f'{name}@{each}']:.4f}" for name in CURVE_METRICS)] for each in ks]),
        "",
        f"## By training activity (interactions in train, both domains) @{k}",
        "",
        *markdown_table(["bucket", "users", *headline_metrics(k)], activity_rows(test, k)),
        "",
    ]
    if "valid" in results:
        lines += [f"## Validation metrics @{k}", "", *markdown_table(["cohort", "users", *headline_metrics(k)], cohort_rows(results["valid"], k)), ""]
    lines += sampled_section({method: results})
    lines += beyond_accuracy_section({method: results})
    lines += training_section({method: run})
    lines += figure_section(figures, folder)
    path = folder / REPORT_FILE
    path.write_text("\n".join(lines).rstrip() + "\n")
    return path


def write_experiment_report(runs: Iterable[RunDirectory] | Mapping[str, RunDirectory], path: Path | str) -> Path:
    """One report over every method of an experiment: all methods on each plot; return the report.md path.

    `path` is a folder (report.md and PNGs go inside, e.g. the pretrain run) or a `.md` file
    (PNGs go next to it, prefixed with its stem).
    """
    runs_by_method = dict(runs) if isinstance(runs, Mapping) else {str(run.info().get("method")): run for run in runs}
    if not runs_by_method:
        raise XdtError("write_experiment_report needs at least one evaluated run")
    path = Path(path)
    report_file = path if path.suffix == ".md" else path / REPORT_FILE
    folder = report_file.parent
    prefix = "" if path.suffix != ".md" else f"{report_file.stem}_"
    folder.mkdir(parents=True, exist_ok=True)
    results_by_method = {method: read_results(run) for method, run in runs_by_method.items()}
    ks = sorted(set.intersection(*(set(results["ks"]) for results in results_by_method.values())))
    k = headline_k(ks)
    tests = {method: results["test"] for method, results in results_by_method.items()}

    figures = []
    for name in ("ndcg", "recall"):
        curves = {method: metric_curve(test["all"], name, ks) for method, test in tests.items()}
        figures.append((f"{name}@k", plot_metric_at_k(curves, metric=f"{name}@k", path=folder / f"{prefix}{name}_at_k.png", title=f"Test {name}@k, all methods")))
    figures.append(
        ("Cohorts", plot_cohort_bars({method: cohort_metric(test, f"ndcg@{k}") for method, test in tests.items()}, metric=f"ndcg@{k}", path=folder / f"{prefix}cohorts.png", title=f"Test NDCG@{k} by cohort"))
    )
    if all(test.get("activity") for test in tests.values()):
        figures.append(
            ("Activity buckets", plot_activity_buckets({method: activity_metric(test, f"ndcg@{k}") for method, test in tests.items()}, metric=f"ndcg@{k}", path=folder / f"{prefix}activity.png", title=f"Test NDCG@{k} by training activity"))
        )
    history = training_history(runs_by_method, include_parent=True)
    if history:
        figures.append(("Training and validation curves", plot_training_curves(history, path=folder / f"{prefix}training.png", title="Training, every method")))

    metrics = headline_metrics(k)
    method_rows = [[method, f"{test['all']['users']:,}", *(f"{test['all'][metric]:.4f}" for metric in metrics)] for method, test in tests.items()]
    cohort_header = ["method", *(f"{cohort} ndcg@{k}" for cohort in COHORT_ORDER[1:])]
    cohort_table = [[method, *(format_value(cohort_values(test, cohort).get(f"ndcg@{k}")) for cohort in COHORT_ORDER[1:])] for method, test in tests.items()]
    first = next(iter(runs_by_method.values()))
    lines = [
        f"# Experiment {first.experiment}: {', '.join(runs_by_method)}",
        "",
        f"- dataset `{next(iter(results_by_method.values())).get('dataset')}`; written {dt.datetime.now():%Y-%m-%d %H:%M}",
        *(f"- {method}: `{run.path}`" for method, run in runs_by_method.items()),
        "",
        f"## Test metrics @{k}, all test users (full ranking, {exclusion_note(next(iter(results_by_method.values())))}; best in bold)",
        "",
        *markdown_table(["method", "users", *metrics], bold_best(method_rows, first_value_column=2)),
        "",
        f"## Cold-start and warm users, NDCG@{k} (best in bold)",
        "",
        *markdown_table(cohort_header, bold_best(cohort_table, first_value_column=1)),
        "",
        *paired_section(runs_by_method, tests, f"ndcg@{k}"),
        *sampled_section(results_by_method),
        *beyond_accuracy_section(results_by_method),
        *training_section(runs_by_method),
        *figure_section(figures, folder),
    ]
    report_file.write_text("\n".join(lines).rstrip() + "\n")
    return report_file


def read_results(run: RunDirectory) -> dict[str, Any]:
    """results.json of an evaluated transfer run, with a clear error otherwise."""
    if not (run.path / "results.json").is_file():
        raise XdtError(f"Run {run.path} has no results.json: evaluate it first (xdt evaluate {run.path})")
    results = run.read_json("results.json")
    if "test" not in results:
        raise XdtError(f"Run {run.path} has no test results (results.json keys: {sorted(results)})")
    return results


def headline_metrics(k: int) -> list[str]:
    """Columns of the headline tables."""
    return [f"{name}@{k}" for name in CURVE_METRICS] + ["mrr"]


def cohorts_of(summary: Mapping[str, Any]) -> list[str]:
    """"all" then each cohort present, cold before warm."""
    present = list(summary.get("cohorts", {}))
    return ["all", *sorted(present, key=lambda name: (COHORT_ORDER.index(name) if name in COHORT_ORDER else len(COHORT_ORDER), name))]


def cohort_values(summary: Mapping[str, Any], cohort: str) -> Mapping[str, Any]:
    """One cohort's metrics ("all" included), or {} when the cohort has no users."""
    return summary["all"] if cohort == "all" else summary.get("cohorts", {}).get(cohort, {})


def metric_curve(values: Mapping[str, Any], name: str, ks: Sequence[int]) -> dict[int, float]:
    """{k: value of name@k}."""
    return {k: float(values[f"{name}@{k}"]) for k in ks if f"{name}@{k}" in values}


def cohort_metric(summary: Mapping[str, Any], metric: str) -> dict[str, float]:
    """{cohort: value} for "all" and each cohort."""
    return {cohort: float(cohort_values(summary, cohort)[metric]) for cohort in cohorts_of(summary) if metric in cohort_values(summary, cohort)}


def activity_metric(summary: Mapping[str, Any], metric: str) -> dict[str, float]:
    """{bucket: value} in natural bucket order (1-5, 6-10, 11-20, …)."""
    activity = summary.get("activity", {})
    return {bucket: float(activity[bucket][metric]) for bucket in sorted(activity, key=bucket_key)}


def bucket_key(bucket: str) -> tuple[float, str]:
    """Sort "6-10" before "11-20" by the leading number."""
    match = re.match(r"\s*(\d+)", bucket)
    return (float(match.group(1)) if match else float("inf"), bucket)


def format_value(value: float | None) -> str:
    """4 decimals, or an en dash when missing."""
    return "–" if value is None else f"{value:.4f}"


def cohort_rows(summary: Mapping[str, Any], k: int) -> list[list[str]]:
    """Rows of (cohort, users, metrics…)."""
    rows = []
    for cohort in cohorts_of(summary):
        values = cohort_values(summary, cohort)
        rows.append([cohort, f"{values['users']:,}", *(format_value(values.get(metric)) for metric in headline_metrics(k))])
    return rows


def activity_rows(summary: Mapping[str, Any], k: int) -> list[list[str]]:
    """Rows of (bucket, users, metrics…) in natural order."""
    activity = summary.get("activity", {})
    return [
        [bucket, f"{activity[bucket]['users']:,}", *(format_value(activity[bucket].get(metric)) for metric in headline_metrics(k))]
        for bucket in sorted(activity, key=bucket_key)
    ]


def bold_best(rows: list[list[str]], *, first_value_column: int) -> list[list[str]]:
    """Bold the highest value of each numeric column (when there are at least two rows)."""
    if len(rows) < 2:
        return rows
    marked = [list(row) for row in rows]
    for column in range(first_value_column, len(rows[0])):
        numbers = [float(row[column]) if row[column] not in ("–", "") else -np.inf for row in rows]
        best = max(numbers)
        for row, number in zip(marked, numbers):
            if number == best and np.isfinite(number):
                row[column] = f"**{row[column]}**"
    return marked


def run_facts(run: RunDirectory, info: Mapping[str, Any], results: Mapping[str, Any]) -> list[str]:
    """Bullet lines: dataset, status, seed, parent, written time."""
    facts = [
        f"- dataset `{results.get('dataset')}`, method `{info.get('method')}`, seed {info.get('seed')}, status {info.get('status')}",
        f"- run `{run.path}`",
    ]
    if info.get("parent"):
        facts.append(f"- parent (pretrain) run `{info['parent']}`")
    facts.append(f"- report written {dt.datetime.now():%Y-%m-%d %H:%M}")
    return facts


def sampled_section(results_by_method: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Sampled-ranking test metrics by method and cohort, one table per number of negatives, under its "not comparable" label."""
    sections_by_label: dict[str, dict[str, Mapping[str, Any]]] = {}
    for method, results in results_by_method.items():
        if "sampled" in results:
            sections_by_label.setdefault(results["sampled"]["label"], {})[method] = results["sampled"]
    ks = sorted({k for results in results_by_method.values() if "sampled" in results for k in results["ks"]})
    names = [f"{name}@{k}" for k in ks for name in ("hr", "ndcg")] + ["mrr"]
    lines = []
    for label, sections in sections_by_label.items():
        rows = []
        for method, section in sections.items():
            for cohort in cohorts_of(section["test"]):
                values = cohort_values(section["test"], cohort)
                rows.append([method, cohort, f"{values['users']:,}", *(format_value(values.get(name)) for name in names)])
        first = next(iter(sections.values()))
        explanation = (
            f"Each test item is ranked among itself and {first['negatives']} negatives drawn from the {first['negatives_from']}; "
            "tie-aware like full ranking; each user's metrics average over their test items, then over users. "
            "Comparable only with numbers sampled the same way (same N), never with the full-ranking tables."
        )
        header = ["method", "cohort", "users", *(f"sampled {name}" for name in names)]
        lines += [f"## {label}", "", *markdown_table(header, rows), "", explanation, ""]
    return lines


def beyond_accuracy_section(results_by_method: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """A table of coverage, novelty, popularity percentile (and diversity) per method."""
    rows, names = [], []
    for results in results_by_method.values():
        for values in results.get("beyond_accuracy", {}).values():
            names += [name for name in values if name not in names]
    for method, results in results_by_method.items():
        for at, values in results.get("beyond_accuracy", {}).items():
            rows.append([method, at, *(format_value(values.get(name)) for name in names)])
    if not rows:
        return []
    explanation = (
        "coverage: fraction of the catalogue recommended to someone; novelty: mean −log2 popularity share (higher = less "
        "popular); popularity_percentile: mean popularity percentile of recommended items (100 = most popular)."
    )
    return ["## Beyond accuracy (test users' top-k lists)", "", *markdown_table(["method", "k", *names], rows), "", explanation, ""]


def training_history(runs_by_method: Mapping[str, RunDirectory], *, include_parent: bool) -> list[dict[str, Any]]:
    """Per-epoch rows (stage, epoch, loss, valid_*) of each run, stages prefixed by method when there are several.

    The parent pretrain run's epochs come first, once per distinct parent.
    """
    history: list[dict[str, Any]] = []
    parents_seen: set[str] = set()
    for method, run in runs_by_method.items():
        parent = run.info().get("parent")
        if include_parent and parent and parent not in parents_seen and Path(parent, "run.json").is_file():
            parents_seen.add(parent)
            label = "pretrain" if len(parents_seen) == 1 else f"pretrain {Path(parent).name}"
            history += [{**row, "stage": label} for row in epoch_rows(open_run(parent))]
        for row in epoch_rows(run):
            history.append({**row, "stage": row["stage"] if len(runs_by_method) == 1 else f"{method}: {row['stage']}"})
    return history


def epoch_rows(run: RunDirectory) -> list[dict[str, Any]]:
    """Rows of metrics.jsonl that describe one epoch (stage, epoch, loss and valid_* keys only)."""
    rows = []
    validation_metric = validation_metric_of(run)
    for row in run.metrics_history():
        if "stage" not in row or "epoch" not in row:
            continue
        kept = {key: value for key, value in row.items() if key in ("stage", "epoch", "loss") or key.startswith("valid_")}
        if "valid_score" in kept and validation_metric:
            kept[f"valid_{validation_metric}"] = kept.pop("valid_score")
        if any(key == "loss" or key.startswith("valid_") for key in kept):
            rows.append(kept)
    return rows


def validation_metric_of(run: RunDirectory) -> str | None:
    """The metric that `valid_score` in metrics.jsonl holds (evaluate.validation_metric), when recorded."""
    try:
        return run.read_json("resolved.json").get("evaluate", {}).get("validation_metric")
    except (XdtError, ValueError):
        return None


def training_section(runs_by_method: Mapping[str, RunDirectory]) -> list[str]:
    """A table of each training stage: epochs run, final loss, best validation score (and phase lines such as EMCDR's mapping)."""
    rows = []
    for method, run in runs_by_method.items():
        history = run.metrics_history()
        for stage in dict.fromkeys(str(row.get("stage")) for row in history):
            stage_rows = [row for row in history if str(row.get("stage")) == stage]
            epochs = [row for row in stage_rows if "epoch" in row]
            last = stage_rows[-1]
            valid_keys = sorted({key for row in stage_rows for key in row if key.startswith("valid_")})
            metric = validation_metric_of(run)
            valid = ", ".join(
                f"{f'valid_{metric}' if key == 'valid_score' and metric else key} {best_of(stage_rows, key)}" for key in valid_keys
            )
            seconds = sum(float(row.get("seconds", 0.0)) for row in stage_rows)
            count = len(epochs) if epochs else last.get("epochs", "–")
            loss = format_value(float(last["loss"])) if "loss" in last else "–"
            rows.append([method, stage, str(count), loss, valid or "–", f"{seconds:.1f}"])
    if not rows:
        return []
    return ["## Training", "", *markdown_table(["method", "stage", "epochs", "final loss", "best validation", "seconds"], rows), ""]


def best_of(rows: Sequence[Mapping[str, Any]], key: str) -> str:
    """The best value of a validation key: the lowest for errors (mse, mae, rmse, loss), else the highest."""
    values = [float(row[key]) for row in rows if key in row]
    lower_is_better = any(word in key for word in ("mse", "mae", "rmse", "loss"))
    return f"{(min(values) if lower_is_better else max(values)):.4f}"


def paired_section(runs_by_method: Mapping[str, RunDirectory], tests: Mapping[str, Any], metric: str) -> list[str]:
    """Each method against the best one on `metric`, paired over all test users (bootstrap CI and p-values)."""
    if len(runs_by_method) < 2:
        return []
    best = max(tests, key=lambda method: tests[method]["all"][metric])
    try:
        frames = {method: read_per_user(run) for method, run in runs_by_method.items()}
    except XdtError:
        return []
    reference = frames[best].set_index("user")
    rows = []
    for method, frame in frames.items():
        if method == best or set(frame["user"]) != set(reference.index):
            continue
        comparison = compare_paired(reference.loc[frame["user"], metric].to_numpy(), frame[metric].to_numpy(), metric=metric, cohort="all", resamples=2000)
        rows.append(
            [method, f"{comparison.mean_b:.4f}", f"{comparison.mean_difference:+.4f}", f"[{comparison.ci_low:+.4f}, {comparison.ci_high:+.4f}]", format_p(comparison.t_p_value), format_p(comparison.wilcoxon_p_value)]
        )
    if not rows:
        return []
    return [
        f"## Paired against the best method ({best}) on {metric}",
        "",
        f"Δ = {best} − method over the same test users; bootstrap 95% interval; p-values of the paired t-test and Wilcoxon test. "
        f"Per cohort and bucket: `xdt compare RUN_A RUN_B`.",
        "",
        *markdown_table(["method", metric, f"Δ ({best} − method)", "95% CI", "t-test p", "Wilcoxon p"], rows),
        "",
    ]


def figure_section(figures: Sequence[tuple[str, Path]], folder: Path) -> list[str]:
    """Markdown image links relative to the report."""
    lines = ["## Plots", ""]
    for caption, file in figures:
        lines += [f"### {caption}", "", f"![{caption}]({Path(file).relative_to(folder)})", ""]
    return lines
