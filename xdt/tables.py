"""Readable tables of results, manifests and runs (rich). Never imports TensorFlow."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

COHORT_ORDER = ("cold", "warm")


def headline_k(ks: Sequence[int]) -> int:
    """The k shown in tables: 10 when evaluated, else the largest k (results.json has every k)."""
    return 10 if 10 in ks else max(ks)


def exclusion_note(results: dict[str, Any], split: str = "test") -> str:
    """Which of each user's own items the ranking of `split` excluded, as results.json records it.

    Validation always masks train only; test masks `evaluate.test_excludes` (results.json's
    `test_excludes`, train and valid when an older results file does not say).
    """
    splits = ["train"] if split == "valid" else list(results.get("test_excludes", ["train", "valid"]))
    return f"each user's {' and '.join(splits)} items excluded"


def results_table(results_by_method: dict[str, dict[str, Any]], *, ks: Sequence[int], split: str = "test", title_suffix: str = "") -> Table:
    """Methods × metrics at the headline k, one row per method and cohort (all, cold, warm)."""
    k = headline_k(ks)
    suffix = f", {title_suffix}" if title_suffix else ""
    note = exclusion_note(next(iter(results_by_method.values()), {}), split)
    table = Table(title=f"Target-domain {split} metrics @{k} (full ranking, {note}; best in green{suffix})")
    table.add_column("method", style="bold")
    table.add_column("cohort")
    table.add_column("users", justify="right")
    metrics = [f"{name}@{k}" for name in ("ndcg", "recall", "hr", "precision")] + ["mrr"]
    for metric in metrics:
        table.add_column(metric, justify="right")
    best = best_values(results_by_method, metrics, split)
    for method, results in results_by_method.items():
        summary = results.get(split)
        if summary is None:
            continue
        cohorts = [("all", summary["all"])] + [(name, summary["cohorts"][name]) for name in COHORT_ORDER if name in summary["cohorts"]]
        for index, (cohort, values) in enumerate(cohorts):
            cells = []
            for metric in metrics:
                value = values[metric]
                text = f"{value:.4f}"
                cells.append(f"[green]{text}[/green]" if value == best.get((cohort, metric)) else text)
            table.add_row(method if index == 0 else "", cohort, str(values["users"]), *cells, end_section=index == len(cohorts) - 1)
    return table


def sampled_table(results_by_method: dict[str, dict[str, Any]], *, ks: Sequence[int], title_suffix: str = "") -> Table:
    """Sampled-ranking HR, NDCG and MRR at the headline k, one row per method and cohort, titled with its label."""
    k = headline_k(ks)
    sections = {method: results["sampled"] for method, results in results_by_method.items() if "sampled" in results}
    labels = " / ".join(dict.fromkeys(section["label"] for section in sections.values()))
    suffix = f", {title_suffix}" if title_suffix else ""
    table = Table(title=f"Target-domain test metrics @{k}: {labels}{suffix}")
    table.add_column("method", style="bold")
    table.add_column("cohort")
    table.add_column("users", justify="right")
    metrics = [f"hr@{k}", f"ndcg@{k}", "mrr"]
    for metric in metrics:
        table.add_column(f"sampled {metric}", justify="right")
    for method, section in sections.items():
        summary = section["test"]
        cohorts = [("all", summary["all"])] + [(name, summary["cohorts"][name]) for name in COHORT_ORDER if name in summary["cohorts"]]
        for index, (cohort, values) in enumerate(cohorts):
            cells = [f"{values[metric]:.4f}" for metric in metrics]
            table.add_row(method if index == 0 else "", cohort, str(values["users"]), *cells, end_section=index == len(cohorts) - 1)
    return table


def best_values(results_by_method: dict[str, dict[str, Any]], metrics: Sequence[str], split: str) -> dict[tuple[str, str], float]:
    """The best value of each (cohort, metric) over methods, for highlighting."""
    best: dict[tuple[str, str], float] = {}
    for results in results_by_method.values():
        summary = results.get(split)
        if summary is None:
            continue
        cohorts = {"all": summary["all"], **summary["cohorts"]}
        for cohort, values in cohorts.items():
            for metric in metrics:
                best[(cohort, metric)] = max(best.get((cohort, metric), float("-inf")), values[metric])
    return best


def manifest_table(manifest: dict[str, Any]) -> Table:
    """Users, items, rows and density per domain and split."""
    table = Table(
        title=f"Prepared dataset {manifest['name']} (protocol {manifest['protocol']})",
        caption="overlap = users with rows in both domains; cold = users without target training rows",
    )
    for column in ("domain", "split", "users", "items", "rows", "density", "overlap", "cold"):
        table.add_column(column, justify="left" if column in ("domain", "split") else "right")
    for domain, facts in manifest["domains"].items():
        for index, (split, counts) in enumerate(facts["splits"].items()):
            table.add_row(
                (domain if facts["name"] == domain else f"{domain}: {facts['name']}") if index == 0 else "",
                split,
                f"{counts['users']:,}",
                f"{counts['items']:,}",
                f"{counts['rows']:,}",
                f"{counts['density']:.5f}",
                f"{counts.get('overlap_users', 0):,}",
                f"{counts.get('cold_users', 0):,}",
                end_section=index == len(facts["splits"]) - 1,
            )
    return table


def drops_table(drops: list[dict[str, Any]]) -> Table:
    """Every cleaning step and how many rows it dropped."""
    table = Table(title="Rows dropped while cleaning")
    for column in ("domain", "step", "reason", "rows"):
        table.add_column(column, justify="right" if column == "rows" else "left")
    for drop in drops:
        table.add_row(drop["domain"], drop["step"], drop["reason"], f"{drop['rows']:,}")
    return table


def runs_table(rows: list[dict[str, Any]]) -> Table:
    """One line per run (the path is runs/<experiment>/<run>)."""
    table = Table(title="Runs (oldest first)")
    table.add_column("experiment")
    table.add_column("run", no_wrap=True)
    for column in ("kind", "method", "status"):
        table.add_column(column)
    table.add_column("test ndcg@10", justify="right")
    for row in rows:
        status = {"interrupted": "[yellow]interrupted[/yellow]", "failed": "[red]failed[/red]"}.get(row["status"], row["status"])
        table.add_row(row["experiment"], row["run"], row["kind"], row["method"] or "", status, row["score"])
    return table


def recommendations_table(frame: Any, *, title: str = "Recommendations") -> Table:
    """One row per recommended item; the title column only when some recommended item has a title."""
    table = Table(title=title)
    titled = bool(frame["title"].astype(str).str.strip().ne("").any()) if "title" in frame.columns else False
    columns = ("user", "cohort", "rank", "item", *(("title",) if titled else ()), "score")
    for column in columns:
        table.add_column(column, justify="right" if column in ("rank", "score") else "left")
    previous = None
    for row in frame.itertuples(index=False):
        first = row.user != previous
        titles = (row.title,) if titled else ()
        table.add_row(row.user if first else "", row.cohort if first else "", str(row.rank), row.item, *titles, f"{row.score:.4f}")
        previous = row.user
    return table


def seeds_table(aggregated: dict[str, dict[str, dict[str, tuple[float, float]]]], metrics: Sequence[str], *, runs: Sequence[str]) -> Table:
    """Mean ± std over the runs of several seeds or folds (named by their datasets), one row per method and cohort."""
    table = Table(title=f"Test metrics, mean ± std over {len(runs)} runs ({', '.join(runs)})")
    table.add_column("method", style="bold")
    table.add_column("cohort")
    for metric in metrics:
        table.add_column(metric, justify="right")
    for method, cohorts in aggregated.items():
        for index, (cohort, values) in enumerate(cohorts.items()):
            cells = [f"{values[metric][0]:.4f} ± {values[metric][1]:.4f}" for metric in metrics]
            table.add_row(method if index == 0 else "", cohort, *cells, end_section=index == len(cohorts) - 1)
    return table



def explanations_table(explanations: Sequence[dict[str, Any]], *, title: str = "Explanations") -> Group:
    """One small table per explained item: its rank, score and the method in the title, its top history items as rows.

    Takes `Explanation.to_dict()` rows. The method ("exact kNN terms", "occlusion", "none") and its
    note head each table, so an occlusion drop is never read as an exact term.
    """
    tables = []
    for row in explanations:
        rank = "" if row["rank"] is None else f"#{row['rank']} "
        name = f"{row['item']} {row['title']}".strip()
        heading = f"{row['user']} · {rank}{name} · score {row['score']:.4f}"
        if not row["contributions"]:
            tables.append(Text(f"{heading}\n  {row['method']}: {row['note']}"))
            continue
        table = Table(title=heading, caption=f"{row['method']}: {row['note']}", title_justify="left")
        titled = any(part["title"] for part in row["contributions"])
        for column in ("history item", *(("title",) if titled else ()), "domain", "contribution", "share"):
            table.add_column(column, justify="right" if column in ("contribution", "share") else "left")
        for part in row["contributions"]:
            titles = (part["title"],) if titled else ()
            table.add_row(part["item"], *titles, part["domain"], f"{part['contribution']:.4f}", f"{100 * part['share']:.0f}%")
        if row.get("unattributed") is not None:
            table.add_row("(tie-break prior)", *(("",) if titled else ()), "", f"{row['unattributed']:.2e}", "")
        tables.append(table)
    return Group(Text(title, style="bold"), *tables)
