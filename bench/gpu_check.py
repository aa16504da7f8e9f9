"""GPU check, one script under 8 minutes: what a lent GPU machine must confirm, on generated data only.

    .venv/bin/pip uninstall -y tensorflow-cpu && .venv/bin/pip install 'tensorflow[and-cuda]==2.21.*'
    .venv/bin/python bench/gpu_check.py                 # on the GPU machine
    .venv/bin/python bench/gpu_check.py --quick         # the same steps at toy sizes (a CPU smoke run)

1. The quickstart experiment (configs/quickstart.yaml, embedded synthetic data) under
   `runtime.strategy: default` and `mirrored`: seconds, replicas and each method's test NDCG@10
   (one GPU: mirrored has one replica and must give the same numbers).
2. BPR-MF training throughput (examples/s over one timed epoch after a warm-up epoch) on generated
   triples, for every `runtime.precision` × `runtime.jit_compile`, through xdt's own
   `compile_model` + `epoch_batches` (what `fit_pairwise` runs).
3. One LightGCN epoch (sparse propagation over the generated graph) at float32.

Nothing reads ../shared (the device machine has no copy). Writes bench/results/gpu_check.json
and prints a table per part; every part's figures are written as soon as they exist.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SIZES = {
    "full": {"users": 200_000, "items": 50_000, "rows": 4_000_000, "dim": 64, "batch": 8192, "graph_rows": 1_000_000},
    "quick": {"users": 2_000, "items": 500, "rows": 20_000, "dim": 16, "batch": 1024, "graph_rows": 10_000},
}


def parse_arguments() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="toy sizes: checks that every step runs")
    parser.add_argument("--output", type=Path, default=RESULTS / "gpu_check.json")
    return parser.parse_args()


def write(report: dict[str, Any], path: Path) -> None:
    """Write the report so far."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")


def quickstart(strategy: str, work: Path, *, quick: bool) -> dict[str, Any]:
    """`xdt run configs/quickstart.yaml` under one strategy: seconds, replicas, test NDCG@10 per method (`quick`: 1 epoch per stage)."""
    from xdt.config import load_config
    from xdt.experiment import run_experiment

    overrides = [f"runtime.strategy={strategy}", f"runtime.data_dir={work / 'data'}", f"runtime.runs_dir={work / 'runs'}"]
    if quick:
        overrides += ["pretrain.epochs=1", "transfer.epochs=1", "transfer.mapping_epochs=5"]
    loaded = load_config(ROOT / "configs" / "quickstart.yaml", overrides)
    started = time.perf_counter()
    (outcome,) = run_experiment(loaded.config, config_text=loaded.text)
    seconds = time.perf_counter() - started
    ndcg = {method: run.read_json("results.json")["test"]["all"]["ndcg@10"] for method, run in outcome.transfer_runs.items()}
    replicas = outcome.pretrain_run.read_json("env.json")["replicas"]
    return {"strategy": strategy, "seconds": round(seconds, 1), "replicas": replicas, "ndcg@10": ndcg}


def triples(size: dict[str, int], seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Uniform random (user, positive, negative) triples: throughput does not depend on what they mean."""
    rng = np.random.default_rng(seed)
    users = rng.integers(0, size["users"], size["rows"], dtype=np.int64).astype(np.int32)
    positives = rng.integers(0, size["items"], size["rows"], dtype=np.int64).astype(np.int32)
    negatives = rng.integers(0, size["items"], size["rows"], dtype=np.int64).astype(np.int32)
    return users, positives, negatives


def timed_epoch(model: Any, batches: Any) -> float:
    """Seconds of one `model.fit` epoch."""
    started = time.perf_counter()
    model.fit(batches, epochs=1, shuffle=False, verbose=0)
    return time.perf_counter() - started


def mf_throughput(size: dict[str, int], precision: str, jit_compile: bool) -> dict[str, Any]:
    """Examples/s of one BPR-MF epoch (after a warm-up epoch) under a precision policy and XLA setting."""
    from xdt.config import TrainingConfig
    from xdt.models.matrix_factorization import MatrixFactorization
    from xdt.runtime import precision_policy
    from xdt.train import compile_model, epoch_batches, seed_everything

    seed_everything(0, deterministic=not jit_compile)
    users, positives, negatives = triples(size, seed=1)
    with precision_policy(precision):
        model = MatrixFactorization(size["users"], size["items"], size["dim"], l2=0.01, name="mf")
        model.build()
        compile_model(model, TrainingConfig(), freeze_users=False, jit_compile=jit_compile)
        batches = epoch_batches(users, positives, negatives, size["batch"])
        timed_epoch(model, batches)
        seconds = timed_epoch(model, batches)
    return {"precision": precision, "jit_compile": jit_compile, "xla_used": bool(model.jit_compile), "seconds": round(seconds, 3),
            "examples_per_s": round(size["rows"] / seconds)}


def lightgcn_epoch(size: dict[str, int]) -> dict[str, Any]:
    """Seconds of one LightGCN (3 layers) epoch over a generated graph, float32, after a warm-up epoch."""
    from xdt.config import TrainingConfig
    from xdt.models.lightgcn import lightgcn_from_rows
    from xdt.train import compile_model, epoch_batches, seed_everything

    seed_everything(0)
    graph = dict(size, rows=size["graph_rows"])
    users, positives, negatives = triples(graph, seed=2)
    model = lightgcn_from_rows(users, positives, graph["users"], graph["items"], graph["dim"], layers=3, l2=0.01, name="lightgcn")
    compile_model(model, TrainingConfig(), freeze_users=False)
    batches = epoch_batches(users, positives, negatives, graph["batch"])
    timed_epoch(model, batches)
    seconds = timed_epoch(model, batches)
    return {"edges": int(model.edges), "seconds": round(seconds, 3), "examples_per_s": round(graph["rows"] / seconds)}


def main() -> None:
    """Run the three parts, writing the report after each."""
    import tensorflow as tf

    arguments = parse_arguments()
    size = SIZES["quick" if arguments.quick else "full"]
    report: dict[str, Any] = {
        "tensorflow": tf.__version__,
        "devices": [device.name for device in tf.config.list_logical_devices()],
        "gpus": [tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name) for gpu in tf.config.list_physical_devices("GPU")],
        "sizes": size,
    }
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="xdt-gpu-check-"))
    try:
        report["quickstart"] = [quickstart(strategy, work / strategy, quick=arguments.quick) for strategy in ("default", "mirrored")]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write(report, arguments.output)
    for row in report["quickstart"]:
        print(f"quickstart {row['strategy']:8s} {row['seconds']:7.1f} s  replicas {row['replicas']}  " + "  ".join(f"{m} {v:.4f}" for m, v in row["ndcg@10"].items()))
    report["mf"] = []
    for precision in ("float32", "mixed_float16", "mixed_bfloat16"):
        for jit_compile in (False, True):
            report["mf"].append(mf_throughput(size, precision, jit_compile))
            write(report, arguments.output)
            row = report["mf"][-1]
            print(f"mf {precision:15s} xla {str(row['xla_used']):5s} {row['seconds']:8.3f} s  {row['examples_per_s']:>12,} examples/s")
    report["lightgcn"] = lightgcn_epoch(size)
    report["seconds"] = round(time.perf_counter() - started, 1)
    write(report, arguments.output)
    print(f"lightgcn {report['lightgcn']['edges']:,} edges  {report['lightgcn']['seconds']:.3f} s/epoch   total {report['seconds']} s")


if __name__ == "__main__":
    main()
