"""Data larger than memory: prepare a generated interaction file, then one MF epoch streamed and one in memory.

    .venv/bin/python bench/scale.py [--rows 4000000] [--users 400000] [--items 50000] [--window 1000000]
                                    [--dim 64] [--batch-size 1024] [--workdir DIR] [--keep] [--skip-memory]
                                    [--stage all|prepare|epochs] [--json bench/results/scale.json]

Generates two CSVs (`bench/prepare_scale.py`'s seeded generator, written 1M rows at a time) into a
temporary folder, runs `xdt prepare` on them, then trains one BPR-MF epoch (Adam, one negative) on
the source domain's training rows twice, each in its own process: streamed from
interactions.parquet in shuffle windows of `--window` rows (`xdt.data.streaming`, what
`runtime.max_in_memory_rows: WINDOW` does), and in memory (the whole prepared dataset loaded,
the epoch's triples drawn at once). Prints rows/s and peak RSS (each process's ru_maxrss) of
prepare and of both epochs, and the ratio of streamed to in-memory epoch throughput (goal ≥ 0.8).
An epoch's time includes drawing its triples; the one-time setup (loading the dataset, or the
stream's pass that indexes the training pairs) is reported separately. `--stage prepare` (with
`--workdir`) stops after prepare and `--stage epochs` trains on what it prepared there, so that a
size whose whole run exceeds one sitting can run in two.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from prepare_scale import _cpus, generate, measure, write_config  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
GOAL_RATIO = 0.8
SEED = 1


def train_one_epoch(mode: str, data: Path, window: int, dim: int, batch_size: int, output: Path) -> None:
    """In this process: one MF epoch on the source training rows, `stream` or `memory`; facts as JSON into `output`."""
    import tensorflow as tf

    from xdt.config import TrainingConfig
    from xdt.data.protocols import SOURCE
    from xdt.models.matrix_factorization import MatrixFactorization
    from xdt.train import compile_model, epoch_batches, seed_everything, train_epoch

    manifest = json.loads((data / "manifest.json").read_text())
    n_users, n_items = manifest["users"], manifest["domains"][SOURCE]["items"]
    seed_everything(SEED)
    model = MatrixFactorization(n_users, n_items, dim, l2=0.0, name="mf")
    model.build()
    compile_model(model, TrainingConfig(epochs=1, batch_size=batch_size), freeze_users=False)
    started = time.perf_counter()
    if mode == "stream":
        from xdt.data.streaming import TrainingStream

        stream = TrainingStream(data / "interactions.parquet", SOURCE, n_items, window_rows=window)
        rows = stream.rows  # the pass that indexes the training pairs
        setup = time.perf_counter() - started
        started = time.perf_counter()
        batches = stream.batches(SEED, 1, negatives=1, batch_size=batch_size)
    else:
        from xdt.data.dataset import load_dataset

        dataset = load_dataset(data)
        setup = time.perf_counter() - started
        started = time.perf_counter()
        triples = dataset.bpr_triples(SOURCE, SEED, 1)
        rows = len(triples[0])
        batches = epoch_batches(*triples, batch_size)
    loss = train_epoch(model, batches, tf.distribute.get_strategy())
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    facts = {"mode": mode, "rows": rows, "setup_s": setup, "epoch_s": seconds, "rows_per_s": rows / seconds, "loss": loss, "peak_rss_gb": peak}
    output.write_text(json.dumps(facts) + "\n")


def timed_epoch(mode: str, data: Path, arguments: argparse.Namespace, folder: Path) -> dict:
    """One epoch in a fresh process (`measure`: wall time and peak RSS of the child)."""
    output = folder / f"epoch-{mode}.json"
    command = [sys.executable, __file__, "--epoch", mode, "--data", str(data), "--window", str(arguments.window),
               "--dim", str(arguments.dim), "--batch-size", str(arguments.batch_size), "--output", str(output)]  # fmt: skip
    measured = measure(command)
    return {**json.loads(output.read_text()), "process_peak_rss_gb": measured["max_rss_kib"] / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4_000_000)
    parser.add_argument("--users", type=int, default=400_000)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--window", type=int, default=1_000_000, help="shuffle window of the streamed epoch (runtime.max_in_memory_rows)")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--skip-memory", action="store_true", help="only the streamed epoch (for data that does not fit)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep generated files here (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="do not delete the generated files")
    parser.add_argument("--stage", choices=["all", "prepare", "epochs"], default="all", help="prepare and epochs need --workdir")
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "scale.json")
    parser.add_argument("--epoch", choices=["stream", "memory"], help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.epoch:
        train_one_epoch(arguments.epoch, arguments.data, arguments.window, arguments.dim, arguments.batch_size, arguments.output)
        return

    if arguments.stage != "all" and arguments.workdir is None:
        parser.error(f"--stage {arguments.stage} needs --workdir")
    folder = arguments.workdir or Path(tempfile.mkdtemp(prefix="xdt-scale-"))
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "data" / "prepare-scale"
    prepare = None
    epochs = {}
    try:
        if arguments.stage != "epochs":
            started = time.perf_counter()
            paths = generate(folder, arguments.rows, arguments.users, arguments.items, arguments.seed)
            print(f"generated {arguments.rows:,} rows in {time.perf_counter() - started:.1f} s → {folder}", flush=True)
            prepare = measure([sys.executable, "-m", "xdt", "prepare", str(write_config(folder, paths))])
            print(f"prepared in {prepare['wall_s']:.1f} s", flush=True)
        if arguments.stage != "prepare":
            modes = ["stream"] if arguments.skip_memory else ["stream", "memory"]
            epochs = {mode: timed_epoch(mode, data, arguments, folder) for mode in modes}
    finally:
        if not arguments.keep and arguments.workdir is None:
            shutil.rmtree(folder, ignore_errors=True)
    report(arguments, prepare, epochs)


def report(arguments: argparse.Namespace, prepare: dict | None, epochs: dict) -> None:
    """Print the table and write the JSON."""
    results = {
        "rows": arguments.rows,
        "users": arguments.users,
        "items_per_domain": arguments.items,
        "window": arguments.window,
        "dim": arguments.dim,
        "batch_size": arguments.batch_size,
        "epochs": epochs,
        "cpus": _cpus(),
    }
    print(f"{'step':<34}{'rows':>12}{'seconds':>10}{'rows/s':>12}{'peak RSS (GB)':>15}")
    if prepare is not None:
        results["prepare"] = {"seconds": prepare["wall_s"], "rows_per_s": arguments.rows / prepare["wall_s"],
                              "peak_rss_gb": prepare["max_rss_kib"] / 2**20, "peak_rss_bytes_per_row": prepare["max_rss_kib"] * 1024 / arguments.rows}  # fmt: skip
        facts = results["prepare"]
        print(f"{'xdt prepare':<34}{arguments.rows:>12,}{facts['seconds']:>10.1f}{facts['rows_per_s']:>12,.0f}{facts['peak_rss_gb']:>15.2f}")
    for mode, facts in epochs.items():
        name = f"MF epoch, {mode}" + (f" (window {arguments.window:,})" if mode == "stream" else "")
        print(f"{name:<34}{facts['rows']:>12,}{facts['epoch_s']:>10.1f}{facts['rows_per_s']:>12,.0f}{facts['process_peak_rss_gb']:>15.2f}")
    if prepare is not None:
        print(f"prepare peak RSS per input row: {results['prepare']['peak_rss_bytes_per_row']:.0f} B")
    if "memory" in epochs:
        ratio = epochs["stream"]["rows_per_s"] / epochs["memory"]["rows_per_s"]
        results["ratio_stream_to_memory"] = ratio
        print(f"streamed / in-memory epoch throughput: {ratio:.2f} (goal ≥ {GOAL_RATIO}: {'met' if ratio >= GOAL_RATIO else 'NOT met'})")
    arguments.json.parent.mkdir(parents=True, exist_ok=True)
    arguments.json.write_text(json.dumps(results, indent=1) + "\n")
    print(f"→ {arguments.json}")


if __name__ == "__main__":
    main()
