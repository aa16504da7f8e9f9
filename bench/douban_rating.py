"""Douban cold-start rating benchmark (issue 4): 18 published splits, MAE / RMSE next to PEERS.md.

Each split is prepared through xdt's own pipeline (configs/douban-{book-music,music-book}.yaml
with protocol cold_users, the split's test_users_file and seed) into data/douban-rating/<split>/.
The validation users are `--valid-share` of the meta users (overlapping users minus test users),
drawn with the split's seed; test users are only used for the final numbers.

    .venv/bin/python bench/douban_rating.py                       # all 18 splits (~10 min on 2 cores)
    .venv/bin/python bench/douban_rating.py --tasks book2music --betas 0.2 --seeds 900
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SPLITS = SHARED / "data" / "douban" / "splits"
CONFIGS = {"book2music": ROOT / "configs" / "douban-book-music.yaml", "music2book": ROOT / "configs" / "douban-music-book.yaml"}
METHODS = ("global_mean", "item_mean", "target_mf", "emcdr", "ptupcdr")
# PEERS.md, Douban table: (task, beta) -> column -> (MAE, RMSE); last column: official PTUPCDR meta-stage epoch seconds.
PEERS = {
    ("book2music", 0.2): {"emcdr": (1.863, 2.118), "ptupcdr": (0.877, 1.180), "global_mean": (0.735, 0.968), "item_mean": (0.656, 0.843), "epoch_s": 5.4},
    ("book2music", 0.5): {"emcdr": (2.646, 2.892), "ptupcdr": (1.454, 1.976), "global_mean": (0.738, 0.971), "item_mean": (0.680, 0.882), "epoch_s": 3.2},
    ("book2music", 0.8): {"emcdr": (3.775, 3.966), "ptupcdr": (3.201, 3.822), "global_mean": (0.739, 0.970), "item_mean": (0.720, 0.964), "epoch_s": 1.1},
    ("music2book", 0.2): {"emcdr": (1.631, 2.048), "ptupcdr": (0.960, 1.294), "global_mean": (0.687, 0.921), "item_mean": (0.665, 0.841), "epoch_s": 5.9},
    ("music2book", 0.5): {"emcdr": (2.174, 2.553), "ptupcdr": (1.417, 1.928), "global_mean": (0.682, 0.924), "item_mean": (0.682, 0.871), "epoch_s": 3.5},
    ("music2book", 0.8): {"emcdr": (3.480, 3.709), "ptupcdr": (2.975, 3.618), "global_mean": (0.679, 0.923), "item_mean": (0.710, 0.924), "epoch_s": 1.1},
}


def parse_arguments() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=["book2music", "music2book"], choices=sorted(CONFIGS))
    parser.add_argument("--betas", nargs="+", type=float, default=[0.2, 0.5, 0.8])
    parser.add_argument("--seeds", nargs="+", type=int, default=[900, 1000, 2020])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS) + ["user_mean"])
    parser.add_argument("--valid-share", type=float, default=0.15, help="share of the meta users held out for validation")
    parser.add_argument("--data-dir", default=str(ROOT / "data" / "douban-rating"))
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "douban_rating"))
    return parser.parse_args()


def split_config(task: str, beta: float, seed: int, valid_share: float, data_dir: str):
    """The experiment config of one published split, through xdt's config loader."""
    from xdt.config import load_config

    name = f"{task}_beta{beta:g}_seed{seed}"
    overrides = [
        f"seed={seed}",
        f"dataset.name={name}",
        f"dataset.test_users_file={SPLITS / name / 'test_users.tsv'}",
        f"dataset.cold_fraction={beta}",
        # valid_cold_fraction counts overlapping users; the meta users are (1 - beta) of them.
        f"dataset.valid_cold_fraction={round(valid_share * (1.0 - beta), 6)}",
        f"runtime.data_dir={data_dir}",
    ]
    os.chdir(ROOT)  # the configs' data paths are relative to the repository root
    return name, load_config(CONFIGS[task], overrides).config


def run_split(task: str, beta: float, seed: int, arguments: argparse.Namespace) -> dict:
    """Prepare one split, run every method, return its metrics and timings."""
    from xdt.data.dataset import load_dataset
    from xdt.data.prepare import dataset_dir, is_up_to_date, prepare_dataset
    from xdt.rating.evaluation import evaluate_ratings
    from xdt.rating.training import RatingSettings, rating_data_from_prepared, run_rating_methods

    name, config = split_config(task, beta, seed, arguments.valid_share, arguments.data_dir)
    if not is_up_to_date(config):
        prepare_dataset(config)
    data = rating_data_from_prepared(load_dataset(dataset_dir(config)), seed=seed)
    settings = RatingSettings()
    started = time.perf_counter()
    run = run_rating_methods(data, tuple(arguments.methods), settings, seed)
    activity = data.source_activity()
    results = {
        method: evaluate_ratings(predictions, data.test.ratings, data.test.users, source_activity=activity)
        for method, predictions in run.predictions.items()
    }
    # history[0] is the untrained warm start (epoch 0); the first trained epoch also traces the graph.
    meta_history = [record for record in run.fits["ptupcdr"].history if record["epoch"] >= 1] if "ptupcdr" in run.fits else []
    meta_epochs = [record["seconds"] for record in meta_history[1:]]
    return {
        "split": name,
        "task": task,
        "beta": beta,
        "seed": seed,
        "counts": {
            "test_users": int(len(np.unique(data.test.users))),
            "test_ratings": len(data.test),
            "valid_users": int(len(np.unique(data.valid.users))),
            "meta_train_users": int(len(data.meta_users)),
            "target_train_ratings": len(data.target_train),
        },
        "metrics": {method: result["all"] for method, result in results.items()},
        "source_activity": {method: result.get("source_activity", {}) for method, result in results.items()},
        "fits": {stage: {"best_epoch": fit.best_epoch, "best_valid": fit.best_score, "epochs_run": len(fit.history)} for stage, fit in run.fits.items()},
        "stage_seconds": run.seconds,
        "ptupcdr_meta_epoch_seconds": float(np.median(meta_epochs)) if meta_epochs else None,
        "ptupcdr_first_epoch_seconds_with_tracing": meta_history[0]["seconds"] if meta_history else None,
        "ptupcdr_meta_rows": int(np.isin(data.target_train.users, data.meta_users).sum()),
        "seconds": time.perf_counter() - started,
    }


def summarise(records: list[dict], methods: list[str]) -> list[dict]:
    """Mean over seeds per (task, beta)."""
    rows = []
    for (task, beta) in sorted({(record["task"], record["beta"]) for record in records}):
        group = [record for record in records if record["task"] == task and record["beta"] == beta]
        row = {"task": task, "beta": beta, "seeds": [record["seed"] for record in group]}
        for method in methods:
            for metric in ("mae", "rmse"):
                values = [record["metrics"][method][metric] for record in group if method in record["metrics"]]
                row[f"{method}_{metric}"] = float(np.mean(values)) if values else None
        epochs = [record["ptupcdr_meta_epoch_seconds"] for record in group if record["ptupcdr_meta_epoch_seconds"]]
        row["ptupcdr_epoch_s"] = float(np.mean(epochs)) if epochs else None
        first = [record["ptupcdr_first_epoch_seconds_with_tracing"] for record in group if record["ptupcdr_first_epoch_seconds_with_tracing"]]
        row["ptupcdr_first_epoch_s"] = float(np.mean(first)) if first else None
        rows.append(row)
    return rows


def markdown(rows: list[dict], methods: list[str]) -> str:
    """The table: xdt MAE / RMSE (mean over seeds) with PEERS.md's numbers in brackets where it has them."""
    header = ["task", "beta", "seeds", *methods, "PTUPCDR meta epoch s: xdt steady (first, with tracing) / official"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        peers = PEERS.get((row["task"], row["beta"]), {})
        cells = [row["task"], f"{row['beta']:g}", str(len(row["seeds"]))]
        for method in methods:
            mae, rmse = row[f"{method}_mae"], row[f"{method}_rmse"]
            cell = f"{mae:.3f} / {rmse:.3f}" if mae is not None else "–"
            if method in peers:
                cell += f" ({peers[method][0]:.3f} / {peers[method][1]:.3f})"
            cells.append(cell)
        epoch = row["ptupcdr_epoch_s"]
        first = row["ptupcdr_first_epoch_s"]
        cells.append(f"{epoch:.2f} ({first:.2f}) / {peers.get('epoch_s', float('nan')):.1f}" if epoch and first else "–")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    """Run the requested splits and write bench/results/douban_rating.{json,md}."""
    arguments = parse_arguments()
    if not SPLITS.is_dir():
        print(f"SKIP: {SPLITS} not found (the shared Douban data is absent)")
        return 0
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    records = []
    started = time.perf_counter()
    for task in arguments.tasks:
        for beta in arguments.betas:
            for seed in arguments.seeds:
                record = run_split(task, beta, seed, arguments)
                records.append(record)
                scores = "  ".join(f"{method} {values['mae']:.4f}/{values['rmse']:.4f}" for method, values in record["metrics"].items())
                print(f"{record['split']}: {scores}  ({record['seconds']:.0f}s)", flush=True)
    rows = summarise(records, arguments.methods)
    table = markdown(rows, arguments.methods)
    note = (
        "Douban cold-start ratings, xdt (mean over seeds). Cells: MAE / RMSE; in brackets PEERS.md's numbers "
        "(official PTUPCDR code, best TEST epoch; global/item mean on the same splits). xdt selects epochs on "
        f"validation users ({arguments.valid_share:.0%} of the meta users), never on test. Predictions clipped to [1, 5]. "
        "Epoch: one PTUPCDR meta-stage epoch (emb 10, meta dim 50, batch 256, history 20), median of the epochs after "
        "the first (which also traces the TF graph; in brackets); xdt trains on the "
        "meta-train users only, so its epochs have fewer rows than the official ones (see JSON ptupcdr_meta_rows)."
    )
    output = Path(arguments.out)
    output.parent.mkdir(parents=True, exist_ok=True)
    payload = {"settings": vars(arguments), "summary": rows, "splits": records, "seconds": time.perf_counter() - started}
    output.with_suffix(".json").write_text(json.dumps(payload, indent=1, default=str))
    output.with_suffix(".md").write_text(f"{note}\n\n{table}\n")
    print(f"\n{note}\n\n{table}\n\nwrote {output.with_suffix('.json')} and {output.with_suffix('.md')} in {payload['seconds']:.0f}s")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
