"""Quality benchmark: every method on every shared dataset, full ranking, next to PEERS.md's references.

    .venv/bin/python bench/quality.py                     # all datasets, default methods, 1 seed
    .venv/bin/python bench/quality.py --seeds 3 --methods popularity,itemknn,xknn --datasets cdrib-game-video

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
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "bench" / "results"
METRICS = ("ndcg@10", "recall@10", "hr@10", "mrr")
SAMPLED_METRICS = ("ndcg@10", "hr@10", "mrr")
# content runs only on datasets with item titles (LLMCDSR); the CDRIB and DisenCDR files have none.
DEFAULT_METHODS = (
    "popularity", "itemknn", "xknn", "content", "target_mf", "two_tower", "cmf", "finetune", "emcdr", "ptupcdr", "dann", "joint", "fusion",
)

# Learned-method settings per dataset family, chosen on the validation split (CDRIB) or kept
# fixed (DisenCDR has no validation file: given_valid none keeps PEERS.md's training rows, so
# training runs a fixed number of epochs and never looks at test). See bench/README.md.
# Shared learned-method settings (chosen on CDRIB's validation split); each family differs only where said.
PRETRAIN = {"embedding_dim": 64, "epochs": 15, "batch_size": 1024, "l2": 0.01, "optimizer": {"name": "adam", "learning_rate": 0.005}}
TRANSFER = {
    "embedding_dim": 64,
    "epochs": 15,
    "batch_size": 1024,
    "patience": 3,
    "l2": 0.01,
    "optimizer": {"name": "adam", "learning_rate": 0.005},
    "mapping": "mlp",
    "mapping_epochs": 300,
    # joint: zero a training row's private part half the time, so the shared part serves cold-start users.
    "private_dropout": 0.5,
}


def without_l2(settings: dict[str, Any]) -> dict[str, Any]:
    """`settings` with no L2 penalty."""
    return {key: value for key, value in settings.items() if key != "l2"}


TRAINING = {
    # CDRIB's given split has no warm validation users, so the target-MF stages train their
    # full epochs: L2 keeps them from overfitting (target BPR loss fell to 0.02 without it).
    "cdrib": {"pretrain": PRETRAIN, "transfer": TRANSFER},
    "disencdr": {"pretrain": without_l2(PRETRAIN), "transfer": without_l2(TRANSFER)},
    # LLMCDSR has a validation split (each valid user's last item): learned methods stop early on it.
    "llmcdsr": {"pretrain": PRETRAIN, "transfer": {**TRANSFER, "epochs": 20}},
}


def domain(name: str, reader: str, folder: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """A dataset.source/target section."""
    return {"name": name, "reader": reader, "path": str(SHARED / folder), "options": options or {}}


DATASETS: dict[str, dict[str, Any]] = {
    "cdrib-game-video": {
        "family": "cdrib",
        "cohort": "cold",
        "source": domain("game", "cdrib", "cdrib/game_video"),
        "target": domain("video", "cdrib", "cdrib/video_game"),
        "test_excludes": ["train"],
    },
    "cdrib-video-game": {
        "family": "cdrib",
        "cohort": "cold",
        "source": domain("video", "cdrib", "cdrib/video_game"),
        "target": domain("game", "cdrib", "cdrib/game_video"),
        "test_excludes": ["train"],
    },
    "disencdr-sport-phone": {
        "family": "disencdr",
        "cohort": "all",
        "source": domain("sport", "disencdr", "disencdr/sport_phone"),
        "target": domain("phone", "disencdr", "disencdr/phone_sport"),
    },
    "disencdr-phone-sport": {
        "family": "disencdr",
        "cohort": "all",
        "source": domain("phone", "disencdr", "disencdr/phone_sport"),
        "target": domain("sport", "disencdr", "disencdr/sport_phone"),
    },
    # The id-based methods on the sequential benchmark's data and test users (each valid/test
    # user's last item, when it is a Kitchen item, ranked against all Kitchen items, their earlier
    # Kitchen items excluded): the bar for bench/sequential_quality.py's transformers.
    "llmcdsr-food-kitchen": {
        "family": "llmcdsr",
        "cohort": "all",
        "source": domain("food", "llmcdsr", "llmcdsr/food-kitchen", {"side": "A"}),
        "target": domain("kitchen", "llmcdsr", "llmcdsr/food-kitchen", {"side": "B"}),
        "test_excludes": ["train"],
        "titles": True,
    },
}

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
    given_valid: str = "none",
    sampled: int = 999,
    overrides: tuple[str, ...] = (),
) -> Any:
    """An ExperimentConfig for one dataset and seed (data prepared once per seed under `work`).

    `given_valid` applies to datasets without a validation file (DisenCDR): leave_one_out carves
    one training row per user into valid, so learned methods can stop early (baselines' training
    rows then differ slightly from PEERS.md's). `sampled` random negatives per test item give the
    sampled metrics next to full ranking; `overrides` are `KEY=VALUE` like `xdt run --set`.
    """
    from xdt.config import config_from_dict
    from xdt.typed_yaml import apply_override

    training = TRAINING[spec["family"]]
    carve = given_valid if spec["family"] == "disencdr" else "none"
    suffix = "" if carve == "none" else "-loo"
    raw = {
        "experiment": f"quality-{name}{suffix}",
        "seed": seed,
        "dataset": {
            "name": f"{name}-seed{seed}{suffix}",
            "source": spec["source"],
            "target": spec["target"],
            "protocol": "given",
            "given_valid": carve,
        },
        "pretrain": training["pretrain"],
        "transfer": {**training["transfer"], "methods": methods},
        # CDRIB masks only train items at test time, as PEERS.md and the official code do (see configs/cdrib-*.yaml).
        "evaluate": {
            "ks": [10],
            "batch_size": 512,
            "test_excludes": spec.get("test_excludes", ["train", "valid"]),
            "sampled_negatives": sampled,
        },
        "runtime": {"strategy": "default", "data_dir": str(work / "data"), "runs_dir": str(work / "runs")},
    }
    raw = json.loads(json.dumps(raw))  # the shared TRAINING dictionaries stay untouched by overrides
    for override in overrides:
        apply_override(raw, override, source="bench/quality.py --set")
    return config_from_dict(raw, source=f"bench/quality.py:{name}")


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
    given_valid: str = "none",
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
        config = build_config(name, spec, seed, methods, work, given_valid, sampled, overrides)
        if not needs_source_training:
            # Baselines only: the parent pretrain run is required by `transfer` but never used.
            from dataclasses import replace

            config = replace(config, pretrain=replace(config.pretrain, epochs=1))
        text = json.dumps(config.to_dict())
        started = time.perf_counter()
        if not is_up_to_date(config):
            prepare_dataset(config)
        prepare_seconds = time.perf_counter() - started
        started = time.perf_counter()
        pretrain_run = pretrain_source(config, config_text=text)
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
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS), help="comma-separated registry names")
    parser.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated: " + ", ".join(DATASETS))
    parser.add_argument("--seeds", type=int, default=1, help="number of seeds (2022, 2023, ...); 3 for the issue's bar")
    parser.add_argument("--output", default=str(RESULTS / "quality"), help="output path without suffix")
    parser.add_argument("--work", default=str(RESULTS / "work"), help="prepared data and runs")
    parser.add_argument(
        "--given-valid",
        default="none",
        choices=["none", "leave_one_out"],
        help="DisenCDR (no validation file): leave_one_out carves a validation row per user so learned methods stop early",
    )
    parser.add_argument("--sampled", type=int, default=999, help="random negatives per test item for the sampled metrics (0: none)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override, as `xdt run --set`")
    parser.add_argument(
        "--sequential-parts",
        default="a",
        help="with llmcdsr-food-kitchen: the parts of sequential_quality.py run on the same seeds and test users ('' for none)",
    )
    arguments = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    methods = [method.strip() for method in arguments.methods.split(",") if method.strip()]
    names = [name.strip() for name in arguments.datasets.split(",") if name.strip()]
    unknown = [name for name in names if name not in DATASETS]
    if unknown:
        print(f"Unknown dataset(s) {unknown}. Available: {', '.join(DATASETS)}", file=sys.stderr)
        return 2
    from xdt.models.registry import get_method

    for method in methods:
        get_method(method)
    seeds = [2022 + index for index in range(arguments.seeds)]
    work = Path(arguments.work)
    all_results: dict[str, Any] = {
        "settings": {
            "methods": methods,
            "seeds": seeds,
            "given_valid_disencdr": arguments.given_valid,
            "sampled_negatives": arguments.sampled,
            "overrides": arguments.set,
            "training": {name: TRAINING[DATASETS[name]["family"]] for name in names},
        },
        "datasets": {},
    }
    started = time.perf_counter()
    for name in names:
        spec = DATASETS[name]
        missing = [section["path"] for section in (spec["source"], spec["target"]) if not Path(section["path"]).is_dir()]
        if missing:
            print(f"skip {name}: shared data not found at {', '.join(missing)}", flush=True)
            all_results["datasets"][name] = {"skipped": f"missing {', '.join(missing)}"}
            continue
        print(f"{name}: methods {', '.join(methods)}; seeds {seeds}", flush=True)
        dataset_methods = [method for method in methods if method != "content" or spec.get("titles")]
        outcome = run_dataset(name, spec, dataset_methods, seeds, work, arguments.given_valid, arguments.sampled, tuple(arguments.set))
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
    output.with_suffix(".json").write_text(json.dumps(all_results, indent=2, sort_keys=True))
    output.with_suffix(".md").write_text(markdown(all_results))
    print(markdown(all_results))
    print(f"wrote {output.with_suffix('.md')} and .json ({all_results['total_seconds']:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
