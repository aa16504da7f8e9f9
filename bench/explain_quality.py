"""Explanation quality on synthetic data with planted causes: do explanations name the source items that matter?

    .venv/bin/python bench/explain_quality.py                          # quickstart scale, planted_sources 5
    .venv/bin/python bench/explain_quality.py --methods xknn --set dataset.synthetic.users=1000

The data is configs/quickstart.yaml with `dataset.synthetic.planted_sources: N`: each target
item t is relevant to a user exactly through the N source items P(t) planted for it (see
xdt.data.synthetic). Each method is trained by `xdt.experiment.run_experiment`; then, for up to
`--users` cold-start test users (scored from their source history alone) and their top-k
recommendations:

- recovery: precision@3 of the explanation's top source items against P(t), with the
  denominator min(3, |P(t) ∩ history|) (`xdt.explain.planted_precision`), over the pairs whose
  user holds at least one planted item; also plain precision@3 over pairs holding ≥ 3, and the
  same measure for 3 random history items (the chance level).
- faithfulness: for each user's rank-1 item, the score drop when the explanation's top-3 items
  are removed from the history the model reads, against the mean drop for 3 random history
  items (5 draws), both by rescoring the shortened history (`explainer.without`).

Methods whose model has no history input (emcdr, finetune, target_mf, …) are listed as not
explainable. Writes bench/results/explain_quality.json and .md and prints the table. Run from
the repository root.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
WORK = RESULTS / "work" / "explain"
RANDOM_DRAWS = 5
AT = 3


def build_config(methods: list[str], planted: int, seed: int, overrides: list[str]):  # noqa: ANN201  (a LoadedConfig)
    """configs/quickstart.yaml with planted sources, the bench's methods and its own data and runs folders."""
    from xdt.config import load_config

    bench = [
        "experiment=explain-quality",
        f"seed={seed}",
        f"dataset.name=synthetic-planted-{planted}",
        f"dataset.synthetic.planted_sources={planted}",
        f"transfer.methods=[{', '.join(methods)}]",
        f"runtime.data_dir={WORK / 'data'}",
        f"runtime.runs_dir={WORK / 'runs'}",
    ]
    return load_config(ROOT / "configs" / "quickstart.yaml", [*bench, *overrides])


def cold_test_users(run: Any, limit: int) -> list[str]:
    """The first `limit` cold-start test users of an evaluated run."""
    import pandas as pd

    per_user = pd.read_parquet(run.path / "per_user.parquet")
    return per_user.loc[per_user["cohort"] == "cold", "user"].astype(str).tolist()[:limit]


def measure_method(run: Any, planted: dict[str, list[str]], users: list[str], k: int, seed: int) -> dict[str, Any]:
    """Recovery and faithfulness of one run's explanations (module docstring)."""
    from xdt.data.protocols import SOURCE
    from xdt.explain import NOT_EXPLAINABLE, explain, open_explained_run, planted_precision

    opened = open_explained_run(run)
    dataset = opened.dataset
    raw_source = dataset.items(SOURCE)["raw_item"].astype(str).to_numpy()
    source_index = {item: index for index, item in enumerate(raw_source)}
    target_index = {item: index for index, item in enumerate(dataset.items("target")["raw_item"].astype(str))}
    histories = dataset.interaction_matrix(SOURCE, "train")
    rng = np.random.default_rng(seed)
    capped, plain, chance, top_drops, random_drops = [], [], [], [], []
    method = None
    started = time.perf_counter()
    for raw_user in users:
        user = dataset.user_index(raw_user)
        history = set(raw_source[histories[user].indices])
        explanations = explain(opened, raw_user, k=k, top=10**6)
        method = explanations[0].method
        if method == NOT_EXPLAINABLE:
            return {"method": method, "note": explanations[0].note, "users": len(users)}
        for explanation in explanations:
            reachable = set(planted[explanation.item]) & history
            score = planted_precision(explanation, set(planted[explanation.item]), history, at=AT)
            if score is None:
                continue
            capped.append(score)
            if len(reachable) >= AT:
                plain.append(score)
            read = [part.item for part in explanation.contributions if part.domain == SOURCE]
            draws = [rng.choice(read, size=min(AT, len(read)), replace=False) for _ in range(RANDOM_DRAWS)]
            chance.append(np.mean([len(set(draw) & reachable) / min(AT, len(reachable)) for draw in draws]))
        first = explanations[0]
        parts = [(part.domain, source_index[part.item] if part.domain == SOURCE else target_index[part.item]) for part in first.contributions]
        if len(parts) < 2 * AT:
            continue
        random_sets = [[parts[i] for i in rng.choice(len(parts), size=AT, replace=False)] for _ in range(RANDOM_DRAWS)]
        scores = opened.explainer.without(user, [[], parts[:AT], *random_sets])[:, target_index[first.item]]
        top_drops.append(scores[0] - scores[1])
        random_drops.append(float(np.mean(scores[0] - scores[2:])))
    return {
        "method": method,
        "users": len(users),
        "pairs": len(capped),
        "precision@3": float(np.mean(capped)) if capped else None,
        "pairs_with_3_planted": len(plain),
        "precision@3_with_3_planted": float(np.mean(plain)) if plain else None,
        "chance_precision@3": float(np.mean(chance)) if chance else None,
        "faithfulness_users": len(top_drops),
        "drop_top3": float(np.mean(top_drops)) if top_drops else None,
        "drop_random3": float(np.mean(random_drops)) if random_drops else None,
        "faithful": bool(top_drops) and float(np.mean(top_drops)) > float(np.mean(random_drops)),
        "seconds": round(time.perf_counter() - started, 2),
    }


def fmt(value: Any) -> str:
    """A table cell: 4 decimals for floats, 'n/a' for None."""
    if value is None:
        return "n/a"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def markdown(report: dict[str, Any]) -> str:
    """The results as a markdown table with its settings."""
    columns = ["method", "explanation", "pairs", "precision@3", "precision@3 (≥3 planted)", "chance", "drop top-3", "drop random-3", "faithful"]
    lines = [
        f"# Explanation quality (planted_sources {report['planted_sources']}, seed {report['seed']}, {report['users']} cold-start test users, top-{report['k']})",
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
    ]
    for name, row in report["methods"].items():
        if row["method"] == "none":
            lines.append(f"| {name} | not explainable | | | | | | | |")
            continue
        cells = [
            name,
            row["method"],
            row["pairs"],
            row["precision@3"],
            row["precision@3_with_3_planted"],
            row["chance_precision@3"],
            row["drop_top3"],
            row["drop_random3"],
            "yes" if row["faithful"] else "no",
        ]
        lines.append("| " + " | ".join(fmt(cell) for cell in cells) + " |")
    lines += ["", "precision@3: denominator min(3, planted items in the user's history); chance: 3 random history items the model reads."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Train, explain, measure, write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="xknn,ptupcdr,dann,emcdr", help="comma-separated transfer methods")
    parser.add_argument("--planted", type=int, default=5, help="planted source items per target item")
    parser.add_argument("--users", type=int, default=200, help="cold-start test users to explain")
    parser.add_argument("--k", type=int, default=10, help="recommendations explained per user")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="config override, e.g. transfer.epochs=10")
    args = parser.parse_args(argv)
    from xdt.data.synthetic import planted_sets
    from xdt.experiment import run_experiment

    methods = [name.strip() for name in args.methods.split(",") if name.strip()]
    loaded = build_config(methods, args.planted, args.seed, args.overrides)
    config = loaded.config
    started = time.perf_counter()
    outcome = run_experiment(config, config_text=loaded.text)[0]
    train_seconds = time.perf_counter() - started
    planted = planted_sets(config.dataset.synthetic, config.seed)
    report = {
        "planted_sources": args.planted,
        "seed": args.seed,
        "users": args.users,
        "k": args.k,
        "overrides": args.overrides,
        "train_seconds": round(train_seconds, 1),
        "methods": {},
    }
    for name, run in outcome.transfer_runs.items():
        report["methods"][name] = {**measure_method(run, planted, cold_test_users(run, args.users), args.k, args.seed), "run": str(run.path)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "explain_quality.json").write_text(json.dumps(report, indent=2) + "\n")
    text = markdown(report)
    (RESULTS / "explain_quality.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
