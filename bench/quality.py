"""Quality benchmark: every method on every shared dataset, full ranking, next to PEERS.md's references.

    .venv/bin/python bench/quality.py                     # all datasets, each config's methods, 1 seed
    .venv/bin/python bench/quality.py --seeds 3 --methods popularity,itemknn,xknn --datasets cdrib-game-video
    .venv/bin/python bench/quality.py --datasets '' --config my-pair.yaml --cohort cold   # any config

Each dataset is its shipped config (configs/<name>.yaml), which carries every training setting;
the bench adds only the seed, its own data/runs folders, the methods and the sampled negatives.
For each dataset and seed: prepare (cached under bench/results/work/data) → pretrain the source
model → transfer each method → `xdt.evaluate.evaluate_run` (full ranking over all target items,
the user's own target training items excluded). Writes bench/results/quality.md and
quality.json: methods × datasets × cohorts × metrics (mean ± std over seeds), wall time per
method (transfer + evaluation) and per training epoch (from metrics.jsonl), and the PEERS.md
reference values in the same rows. Needs ../shared/data (skips a dataset whose folders are
missing, with a message). Run from the repository root.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "bench" / "results"
METRICS = ("ndcg@10", "recall@10", "hr@10", "mrr")
SAMPLED_METRICS = ("ndcg@10", "hr@10", "mrr")
CONFIGS = ROOT / "configs"

# Every training setting comes from the dataset's shipped config (one source of truth: `xdt run
# configs/<name>.yaml` trains exactly what this bench measures). The bench only adds what a bench
# needs: the seed, a prepared-data folder per seed, its own data/runs folders, the methods asked
# for, the sampled negatives, and --set overrides (recorded in the JSON).
DATASETS: dict[str, dict[str, Any]] = {
    "cdrib-game-video": {"config": CONFIGS / "cdrib-game-video.yaml", "cohort": "cold"},
    "cdrib-video-game": {"config": CONFIGS / "cdrib-video-game.yaml", "cohort": "cold"},
    "disencdr-sport-phone": {"config": CONFIGS / "disencdr-sport-phone.yaml", "cohort": "all"},
    "disencdr-phone-sport": {"config": CONFIGS / "disencdr-phone-sport.yaml", "cohort": "all"},
    # The id-based methods on the sequential benchmark's data and test users: the bar for
    # bench/sequential_quality.py's transformers. content needs titles, which only LLMCDSR has.
    "llmcdsr-food-kitchen": {"config": CONFIGS / "llmcdsr-food-kitchen-ids.yaml", "cohort": "all", "titles": True},
}


def config_spec(path: Path, cohort: str) -> dict[str, Any]:
    """A --config dataset: any experiment config (e.g. a new CDRIB- or DisenCDR-layout pair)."""
    return {"config": path, "cohort": cohort, "titles": True}


# ../shared/benchmarks/PEERS.md (CDRIB: cold-start test users; DisenCDR: all test.txt rows).
PEERS: dict[tuple[str, str], dict[str, float]] = {
    ("cdrib-game-video", "popularity"): {"ndcg@10": 0.0275, "recall@10": 0.0248, "hr@10": 0.1296},
    ("cdrib-game-video", "xknn"): {"ndcg@10": 0.0483, "recall@10": 0.0368, "hr@10": 0.1713},
    ("cdrib-video-game", "popularity"): {"ndcg@10": 0.0082, "recall@10": 0.0073, "hr@10": 0.0519},
    ("cdrib-video-game", "xknn"): {"ndcg@10": 0.0298, "recall@10": 0.0272, "hr@10": 0.0802},
    ("disencdr-sport-phone", "popularity"): {"hr@10": 0.0363, "ndcg@10": 0.0169, "mrr": 0.0157},
    ("disencdr-sport-phone", "itemknn"): {"hr@10": 0.0393, "ndcg@10": 0.0232, "mrr": 0.0220},
    ("disencdr-phone-sport", "popularity"): {"hr@10": 0.0227, "ndcg@10": 0.0127, "mrr": 0.0125},
    ("disencdr-phone-sport", "itemknn"): {"hr@10": 0.0195, "ndcg@10": 0.0120, "mrr": 0.0124},
}


def build_config(
    name: str,
    spec: dict[str, Any],
    seed: int,
    methods: list[str],
    work: Path,
    sampled: int = 999,
    overrides: tuple[str, ...] = (),
) -> Any:
    """The dataset's config for one seed, its data prepared once per seed under `work`.

    `sampled` random negatives per test item give the sampled metrics next to full ranking;
    `overrides` are `KEY=VALUE` like `xdt run --set`, applied last.
    """
    from xdt.config import load_config

    dataset_name = load_config(spec["config"]).config.dataset.name
    bench = [
        f"seed={seed}",
        f"experiment=quality-{name}",
        f"dataset.name={dataset_name}-seed{seed}",
        f"transfer.methods=[{', '.join(methods)}]",
        f"evaluate.sampled_negatives={sampled}",
        "runtime.strategy=default",
        f"runtime.data_dir={work / 'data'}",
        f"runtime.runs_dir={work / 'runs'}",
    ]
    return load_config(spec["config"], [*bench, *overrides]).config


def epoch_seconds(run_path: Path) -> float | None:
    """Mean seconds of the training epochs recorded in a run's metrics.jsonl."""
    file = run_path / "metrics.jsonl"
    if not file.is_file():
        return None
    seconds = [record["seconds"] for record in map(json.loads, file.read_text().splitlines()) if "epoch" in record and "seconds" in record]
    return float(np.mean(seconds)) if seconds else None


def run_dataset(
    name: str,
    spec: dict[str, Any],
    methods: list[str],
    seeds: list[int],
    work: Path,
    sampled: int = 999,
    overrides: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Every method and seed on one dataset: metrics by cohort, timings."""
    from xdt.data.prepare import is_up_to_date, prepare_dataset
    from xdt.evaluate import evaluate_run
    from xdt.models.registry import get_method
    from xdt.pretrain import pretrain_source
    from xdt.transfer import transfer_method

    outcome: dict[str, Any] = {"seeds": seeds, "methods": {}, "pretrain": []}
    needs_source_training = any(get_method(method).needs_source_model for method in methods)
    for seed in seeds:
        config = build_config(name, spec, seed, methods, work, sampled, overrides)
        text = json.dumps(config.to_dict())
        started = time.perf_counter()
        if not is_up_to_date(config):
            prepare_dataset(config)
        prepare_seconds = time.perf_counter() - started
        started = time.perf_counter()
        pretrain_run = pretrain_source(config, config_text=text, train_model=needs_source_training)
        outcome["pretrain"].append(
            {"seed": seed, "seconds": time.perf_counter() - started, "epoch_seconds": epoch_seconds(pretrain_run.path), "prepare_seconds": prepare_seconds}
        )
        for method in methods:
            started = time.perf_counter()
            run = transfer_method(config, method, parent=pretrain_run, config_text=text)
            trained = time.perf_counter() - started
            results = evaluate_run(run)
            total = time.perf_counter() - started
            test = results["test"]
            cohorts = {"all": test["all"], **test["cohorts"]}
            record = {
                "seed": seed,
                "run": str(run.path),
                "train_seconds": trained,
                "seconds": total,
                "epoch_seconds": epoch_seconds(run.path),
                "cohorts": {cohort: {key: value for key, value in values.items() if key in METRICS or key == "users"} for cohort, values in cohorts.items()},
                "valid": results.get("valid", {}).get("all"),
            }
            if "sampled" in results:
                sampled_test = results["sampled"]["test"]
                record["sampled"] = {
                    cohort: {key: value for key, value in values.items() if key in SAMPLED_METRICS}
                    for cohort, values in {"all": sampled_test["all"], **sampled_test["cohorts"]}.items()
                }
            if "source" in results and "test" in results["source"]:
                # Dual-target models (joint): the source domain's test split, same metrics.
                record["source"] = {key: value for key, value in results["source"]["test"]["all"].items() if key in METRICS or key == "users"}
            if method == "fusion":
                record["fusion"] = fusion_record(run.path)
            outcome["methods"].setdefault(method, []).append(record)
            main = cohorts.get(spec["cohort"], test["all"])
            print(
                f"  {name} seed {seed} {method:<11} {spec['cohort']}: "
                + " ".join(f"{metric} {main[metric]:.4f}" for metric in METRICS)
                + f"  ({total:.1f}s)",
                flush=True,
            )
    return outcome


def run_sequential(seeds: list[int], parts: str, results: Path) -> dict[str, Any]:
    """The transformers of bench/sequential_quality.py on LLMCDSR (same seeds), their summary rows and markdown."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import sequential_quality

    out = results / "quality-sequential"
    sequential_quality.main(["--parts", parts, "--seeds", ",".join(str(seed) for seed in seeds), "--out", str(out)])
    report = json.loads((out / "sequential_quality.json").read_text())
    return {"summary": report["summary"], "markdown": (out / "sequential_quality.md").read_text()}


def fusion_record(run_path: Path) -> dict[str, Any] | None:
    """The fusion stage's chosen weights, validation score and content note from metrics.jsonl."""
    file = run_path / "metrics.jsonl"
    for record in map(json.loads, file.read_text().splitlines()):
        if record.get("stage") == "fusion":
            return {key: record[key] for key in ("chosen_weights", "chosen_validation", "content", "validation_cohort", "validation_users")}
    return None


def summarise(outcome: dict[str, Any]) -> dict[str, Any]:
    """Mean and std over seeds of every metric and timing."""
    summary = {}
    for method, records in outcome["methods"].items():
        cohorts = {}
        for cohort in records[0]["cohorts"]:
            values = {metric: [record["cohorts"][cohort][metric] for record in records] for metric in METRICS}
            cohorts[cohort] = {
                "users": records[0]["cohorts"][cohort]["users"],
                **{metric: {"mean": float(np.mean(v)), "std": float(np.std(v))} for metric, v in values.items()},
            }
        epochs = [record["epoch_seconds"] for record in records if record["epoch_seconds"] is not None]
        sources = [record["source"] for record in records if "source" in record]
        sampled = [record["sampled"] for record in records if "sampled" in record]
        summary[method] = {
            "sampled": {
                cohort: {metric: float(np.mean([r[cohort][metric] for r in sampled])) for metric in SAMPLED_METRICS}
                for cohort in sampled[0]
            }
            if sampled
            else None,
            "source": {
                "users": sources[0]["users"],
                **{metric: {"mean": float(np.mean([r[metric] for r in sources])), "std": float(np.std([r[metric] for r in sources]))} for metric in METRICS},
            }
            if sources
            else None,
            "fusion": [record["fusion"] for record in records if record.get("fusion")],
            "cohorts": cohorts,
            "seconds": float(np.mean([record["seconds"] for record in records])),
            "epoch_seconds": float(np.mean(epochs)) if epochs else None,
        }
    return summary


def markdown(all_results: dict[str, Any]) -> str:
    """The comparison table: one row per dataset × method × cohort, PEERS.md values alongside."""
    lines = [
        "# Quality benchmark (full ranking, target test split)",
        "",
        "Mean ± std over seeds; `peers` = ../shared/benchmarks/PEERS.md on the same cohort (CDRIB: cold-start",
        "test users; DisenCDR: all test.txt rows). Seconds = transfer + evaluation per method and seed;",
        "s/epoch = mean training epoch (target stage) from metrics.jsonl.",
        "",
        "Sampled = the same test items each ranked against the run's `evaluate.sampled_negatives` random items",
        "the user never interacted with (mean over seeds; NDCG@10/HR@10/MRR) — not comparable with full ranking.",
        "",
        "| dataset | method | cohort | users | NDCG@10 | Recall@10 | HR@10 | MRR | sampled NDCG/HR/MRR | peers NDCG/Recall/HR/MRR | s | s/epoch |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, payload in all_results["datasets"].items():
        if "skipped" in payload:
            lines.append(f"| {name} | — | skipped: {payload['skipped']} | | | | | | | | | |")
            continue
        for method, values in payload["summary"].items():
            for cohort, metrics in values["cohorts"].items():
                if cohort != payload["cohort"] and not (cohort == "warm" and payload["cohort"] == "cold"):
                    continue
                peers = PEERS.get((name, method)) if cohort == payload["cohort"] else None
                peer_text = "/".join(f"{peers[m]:.4f}" if m in peers else "–" for m in METRICS) if peers else ""
                cells = [
                    f"{metrics[m]['mean']:.4f}" + (f" ± {metrics[m]['std']:.4f}" if len(payload["seeds"]) > 1 else "") for m in METRICS
                ]
                epoch = f"{values['epoch_seconds']:.2f}" if values["epoch_seconds"] is not None else ""
                sampled = (values.get("sampled") or {}).get(cohort)
                sampled_text = "/".join(f"{sampled[m]:.4f}" for m in SAMPLED_METRICS) if sampled else ""
                lines.append(
                    f"| {name} | {method} | {cohort} | {metrics['users']} | " + " | ".join(cells)
                    + f" | {sampled_text} | {peer_text} | {values['seconds']:.1f} | {epoch} |"
                )
    dual = [
        (name, method, values)
        for name, payload in all_results["datasets"].items()
        for method, values in payload.get("summary", {}).items()
        if values.get("source")
    ]
    if dual:
        lines += [
            "",
            "## Dual-target models: the source domain's test split (same evaluation, the source domain's train items excluded)",
            "",
            "| dataset (source domain reported) | method | users | NDCG@10 | Recall@10 | HR@10 | MRR |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, method, values in dual:
            metrics = values["source"]
            cells = [f"{metrics[m]['mean']:.4f}" + (f" ± {metrics[m]['std']:.4f}" if len(all_results["datasets"][name]["seeds"]) > 1 else "") for m in METRICS]
            lines.append(f"| {name} | {method} | {metrics['users']} | " + " | ".join(cells) + " |")
    fusions = [(name, values["fusion"]) for name, payload in all_results["datasets"].items() for method, values in payload.get("summary", {}).items() if values.get("fusion")]
    if fusions:
        lines += ["", "Fusion blend weights (chosen on validation, per seed):"]
        for name, records in fusions:
            for record in records:
                lines.append(
                    f"- {name}: {json.dumps(record['chosen_weights'])}, validation {record['chosen_validation']} on "
                    f"{record['validation_users']} {record['validation_cohort']} users; content {record['content']}"
                )
    lines += [
        "",
        "## Reproduction of PEERS.md (xdt's own evaluation, tie-aware; equal when every figure is within 0.0005 of PEERS.md)",
        "",
        "| dataset | method | xdt | PEERS.md | equal to 3 decimals |",
        "|---|---|---|---|---|",
    ]
    for (name, method), peers in PEERS.items():
        summary = all_results["datasets"].get(name, {}).get("summary", {}).get(method)
        if summary is None:
            continue
        cohort = summary["cohorts"].get(all_results["datasets"][name]["cohort"], summary["cohorts"]["all"])
        ours = {metric: cohort[metric]["mean"] for metric in peers}
        equal = all(abs(ours[metric] - peers[metric]) < 5e-4 for metric in peers)  # within half a unit of the 3rd decimal
        text = "/".join(f"{metric} {ours[metric]:.4f}" for metric in peers)
        lines.append(f"| {name} | {method} | {text} | " + "/".join(f"{peers[m]:.4f}" for m in peers) + f" | {'yes' if equal else 'no'} |")
    pretrain = [
        f"- {name}: pretrain {np.mean([p['seconds'] for p in payload['pretrain']]):.1f}s "
        f"({np.mean([p['epoch_seconds'] or 0 for p in payload['pretrain']]):.2f} s/epoch)"
        if any(p["epoch_seconds"] for p in payload["pretrain"])
        else f"- {name}: pretraining skipped (no method asked for loads the source model)"
        for name, payload in all_results["datasets"].items()
        if "pretrain" in payload
    ]
    lines += ["", "Source pretraining (shared by the transfer methods of a dataset and seed):", *pretrain, ""]
    for name, payload in all_results["datasets"].items():
        if "sequential" in payload:
            lines += [f"## {name}: sequence models on the same test users (bench/sequential_quality.py)", ""]
            lines += payload["sequential"]["markdown"].split("\n", 1)[1].strip().splitlines() + [""]
    lines += [f"Settings: {json.dumps(all_results['settings'])}", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run, write bench/results/quality.{md,json}."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="", help="comma-separated registry names (default: each config's transfer.methods)")
    parser.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated: " + ", ".join(DATASETS) + " ('' for none)")
    parser.add_argument(
        "--config", action="append", default=[], metavar="YAML", help="also run this experiment config (any dataset; repeatable), named by its file stem"
    )
    parser.add_argument("--cohort", default="all", choices=["all", "cold", "warm"], help="the cohort reported for --config datasets")
    parser.add_argument("--seeds", type=int, default=1, help="number of seeds (2022, 2023, ...); 3 for the issue's bar")
    parser.add_argument("--output", default=str(RESULTS / "quality"), help="output path without suffix")
    parser.add_argument("--work", default=str(RESULTS / "work"), help="prepared data and runs")
    parser.add_argument("--sampled", type=int, default=999, help="random negatives per test item for the sampled metrics (0: none)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override, as `xdt run --set`")
    parser.add_argument(
        "--sequential-parts",
        default="a",
        help="with llmcdsr-food-kitchen: the parts of sequential_quality.py run on the same seeds and test users ('' for none)",
    )
    arguments = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    asked = [method.strip() for method in arguments.methods.split(",") if method.strip()]
    names = [name.strip() for name in arguments.datasets.split(",") if name.strip()]
    unknown = [name for name in names if name not in DATASETS]
    if unknown:
        print(f"Unknown dataset(s) {unknown}. Available: {', '.join(DATASETS)}", file=sys.stderr)
        return 2
    specs = {name: DATASETS[name] for name in names}
    specs.update({Path(path).stem: config_spec(Path(path), arguments.cohort) for path in arguments.config})
    from xdt.config import load_config
    from xdt.errors import XdtError
    from xdt.models.registry import get_method

    try:
        for method in asked:
            get_method(method)
        configured = {name: load_config(spec["config"], arguments.set).config for name, spec in specs.items()}
    except XdtError as error:
        print(error, file=sys.stderr)
        return 2
    seeds = [2022 + index for index in range(arguments.seeds)]
    work = Path(arguments.work)
    all_results: dict[str, Any] = {
        "settings": {
            "methods": asked or "each config's transfer.methods",
            "seeds": seeds,
            "sampled_negatives": arguments.sampled,
            "overrides": arguments.set,
            "configs": {name: str(spec["config"]) for name, spec in specs.items()},
            "training": {name: {"pretrain": asdict(config.pretrain), "transfer": asdict(config.transfer)} for name, config in configured.items()},
        },
        "datasets": {},
    }
    started = time.perf_counter()
    for name, spec in specs.items():
        dataset = configured[name].dataset
        missing = [domain.path for domain in (dataset.source, dataset.target) if domain is not None and not Path(domain.path).is_dir()]
        if missing:
            print(f"skip {name}: data not found at {', '.join(missing)}", flush=True)
            all_results["datasets"][name] = {"skipped": f"missing {', '.join(missing)}"}
            continue
        methods = asked or list(configured[name].transfer.methods)
        dataset_methods = [method for method in methods if method != "content" or spec.get("titles")]
        print(f"{name}: methods {', '.join(dataset_methods)}; seeds {seeds}", flush=True)
        outcome = run_dataset(name, spec, dataset_methods, seeds, work, arguments.sampled, tuple(arguments.set))
        all_results["datasets"][name] = {
            **outcome,
            "cohort": spec["cohort"],
            "summary": summarise(outcome),
            "peers": {method: PEERS[(name, method)] for method in dataset_methods if (name, method) in PEERS},
        }
        if name == "llmcdsr-food-kitchen" and arguments.sequential_parts:
            all_results["datasets"][name]["sequential"] = run_sequential(seeds, arguments.sequential_parts, Path(arguments.output).parent)
    all_results["total_seconds"] = time.perf_counter() - started
    output = Path(arguments.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    # Suffixes appended, not substituted: `--output sweep-l2-0.01` must not become sweep-l2-0.json.
    written = output.parent / f"{output.name}.md"
    (output.parent / f"{output.name}.json").write_text(json.dumps(all_results, indent=2, sort_keys=True))
    written.write_text(markdown(all_results))
    print(markdown(all_results))
    print(f"wrote {written} and .json ({all_results['total_seconds']:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
