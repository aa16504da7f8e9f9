"""Time `xdt prepare` on a generated two-domain CSV next to a plain `pandas.read_csv` of the same files.

    .venv/bin/python bench/prepare_scale.py [--rows 10000000] [--users 1000000] [--items 200000]
                                           [--workdir DIR] [--keep] [--json bench/results/prepare_scale.json]

Writes `source.csv` and `target.csv` (columns user,item,rating,timestamp; half the rows each) into a
temporary folder (never into the repository), a config for them (protocol cold_users with the
default leave-one-out holdout of warm users), then runs, each in its own process:
`pandas.read_csv` of both files, and `xdt prepare`. Reports wall time, rows/s, peak RSS (the
child's ru_maxrss) and the ratio prepare / read_csv. Target: 10M rows under 60 s and 4 GB.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 60.0
TARGET_RSS_GB = 4.0

# Runs a command as a child and prints its wall time and peak RSS (KiB on Linux) as JSON.
MEASURE = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
completed = subprocess.run(sys.argv[1:], capture_output=True, text=True)
wall = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": completed.returncode, "wall_s": wall, "max_rss_kib": usage.ru_maxrss,
                  "stderr_tail": completed.stderr[-2000:]}))
"""

READ_CSV = """
import sys, pandas
rows = sum(len(pandas.read_csv(path)) for path in sys.argv[1:])
print(rows)
"""


def generate(folder: Path, rows: int, users: int, items: int, seed: int) -> list[Path]:
    """Two CSVs of rows/2 interactions each; user ids shared across domains, popular items more frequent."""
    rng = np.random.default_rng(seed)
    paths = []
    for domain in ("source", "target"):
        count = rows // 2 if domain == "source" else rows - rows // 2
        path = folder / f"{domain}.csv"
        with pa_csv.CSVWriter(path, pa.schema([("user", pa.string()), ("item", pa.string()),
                                               ("rating", pa.int8()), ("timestamp", pa.int64())])) as writer:
            for start in range(0, count, 1_000_000):
                size = min(1_000_000, count - start)
                user = rng.integers(0, users, size)
                item = np.minimum(rng.zipf(1.3, size) - 1, items - 1) if domain == "target" else rng.integers(0, items, size)
                table = pa.table(
                    {
                        "user": pa.array(np.char.add("u", user.astype(str))),
                        "item": pa.array(np.char.add(domain[0], item.astype(str))),
                        "rating": pa.array(rng.integers(1, 6, size).astype(np.int8)),
                        "timestamp": pa.array(1_500_000_000 + rng.integers(0, 100_000_000, size)),
                    }
                )
                writer.write_table(table)
        paths.append(path)
    return paths


def write_config(folder: Path, paths: list[Path]) -> Path:
    """An experiment config preparing the generated files into folder/data."""
    config = folder / "scale.yaml"
    config.write_text(
        f"""experiment: prepare-scale
seed: 1
dataset:
  name: prepare-scale
  source: {{name: source, reader: csv, path: {paths[0]}, rating_range: [1, 5]}}
  target: {{name: target, reader: csv, path: {paths[1]}, rating_range: [1, 5]}}
  protocol: cold_users
runtime:
  data_dir: {folder / 'data'}
"""
    )
    return config


def measure(command: list[str]) -> dict:
    """Wall time and peak RSS of one command run in a fresh process."""
    completed = subprocess.run([sys.executable, "-c", MEASURE, *command], capture_output=True, text=True, check=True)
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    if result["rc"] != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result['stderr_tail']}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=None, help="keep generated files here (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="do not delete the generated files")
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "prepare_scale.json")
    arguments = parser.parse_args()

    folder = arguments.workdir or Path(tempfile.mkdtemp(prefix="xdt-prepare-scale-"))
    folder.mkdir(parents=True, exist_ok=True)
    console = Console()
    try:
        start = time.perf_counter()
        paths = generate(folder, arguments.rows, arguments.users, arguments.items, arguments.seed)
        generate_seconds = time.perf_counter() - start
        input_mb = sum(path.stat().st_size for path in paths) / 1e6
        config = write_config(folder, paths)
        console.print(f"generated {arguments.rows:,} rows in {generate_seconds:.1f} s → {folder}")
        read_csv = measure([sys.executable, "-c", READ_CSV, *map(str, paths)])
        prepare = measure([sys.executable, "-m", "xdt", "prepare", str(config)])
        manifest = json.loads((folder / "data" / "prepare-scale" / "manifest.json").read_text())
    finally:
        if not arguments.keep and arguments.workdir is None:
            shutil.rmtree(folder, ignore_errors=True)

    rows = arguments.rows
    results = {
        "rows": rows,
        "users": arguments.users,
        "items_per_domain": arguments.items,
        "input_mb": input_mb,
        "pandas_read_csv": {"seconds": read_csv["wall_s"], "peak_rss_gb": read_csv["max_rss_kib"] / 2**20},
        "xdt_prepare": {"seconds": prepare["wall_s"], "peak_rss_gb": prepare["max_rss_kib"] / 2**20},
        "ratio_prepare_to_read_csv": prepare["wall_s"] / read_csv["wall_s"],
        "prepared": {"users": manifest["users"], "overlap_users": manifest["overlap_users"],
                     "cold_test_users": manifest["cold_test_users"],
                     "rows": {domain: facts["rows"] for domain, facts in manifest["domains"].items()}},
        "target": {"seconds": TARGET_SECONDS, "peak_rss_gb": TARGET_RSS_GB},
        "host": {"machine": platform.machine(), "python": platform.python_version(), "cpus": _cpus()},
    }
    table = Table(title=f"prepare at scale: {rows:,} rows, {arguments.users:,} users, {arguments.items:,} items per domain")
    for column in ("step", "seconds", "rows/s", "peak RSS (GB)"):
        table.add_column(column, justify="left" if column == "step" else "right")
    for name, key in (("pandas.read_csv (both files)", "pandas_read_csv"), ("xdt prepare", "xdt_prepare")):
        facts = results[key]
        table.add_row(name, f"{facts['seconds']:.1f}", f"{rows / facts['seconds']:,.0f}", f"{facts['peak_rss_gb']:.2f}")
    console.print(table)
    met = prepare["wall_s"] < TARGET_SECONDS and results["xdt_prepare"]["peak_rss_gb"] < TARGET_RSS_GB
    console.print(
        f"prepare / read_csv = {results['ratio_prepare_to_read_csv']:.2f}×; target (< {TARGET_SECONDS:.0f} s, "
        f"< {TARGET_RSS_GB:.0f} GB): {'met' if met else 'NOT met'}"
    )
    arguments.json.parent.mkdir(parents=True, exist_ok=True)
    arguments.json.write_text(json.dumps(results, indent=1) + "\n")
    console.print(f"→ {arguments.json}")


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    main()
