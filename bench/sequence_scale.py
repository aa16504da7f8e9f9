"""The sequence transformer from a CI-sized model to tens of millions of parameters, through the same code.

Builds `SequenceTransformer`s of growing size over a synthetic catalogue (36,299 tokens, the
LLMCDSR Food + Kitchen vocabulary), trains each for two short epochs of random windows with
`train_next_item` (sampled softmax), and reports parameters, training sequences/s of the second
epoch (the first includes tracing) and the ratio to the reference size measured in the same run.
Runs on whatever device TensorFlow picks (a GPU when one is visible). Writes
bench/results/sequence_scale.json.

    .venv/bin/python bench/sequence_scale.py                    # tiny, reference, large
    .venv/bin/python bench/sequence_scale.py --sequences 2048   # more windows per epoch
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from xdt.sequential.data import ItemVocabulary, TrainingExamples  # noqa: E402
from xdt.sequential.training import TrainingSettings, seed_everything, train_next_item  # noqa: E402
from xdt.sequential.transformer import SequenceTransformer, parameter_count  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "sequence_scale.json"
# name: (width, layers, heads, max_length); "reference" is the bench's Food → Kitchen model.
SIZES = {
    "tiny (CI)": (16, 1, 2, 8),
    "reference": (64, 2, 2, 30),
    "large": (512, 6, 8, 50),
}


def windows(vocabulary: ItemVocabulary, count: int, max_length: int, seed: int) -> TrainingExamples:
    """Random target-domain windows of 3..max_length items, left-padded, labelled with the next item."""
    rng = np.random.default_rng(seed)
    low, high = vocabulary.token_range("target")
    items = np.zeros((count, max_length), dtype=np.int32)
    labels = np.zeros((count, max_length), dtype=np.int32)
    for row in range(count):
        length = int(rng.integers(3, max_length + 1))
        sequence = rng.integers(low, high, size=length + 1)
        items[row, -length:] = sequence[:-1]
        labels[row, -length:] = sequence[1:]
    return TrainingExamples(items=items, domains=vocabulary.domain_ids(items), labels=labels)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sequences", type=int, default=1024, help="training windows per epoch")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--negatives", type=int, default=1024)
    parser.add_argument("--out", type=Path, default=RESULTS)
    arguments = parser.parse_args(argv)
    vocabulary = ItemVocabulary(8661, 27637)
    rows = []
    for name, (width, layers, heads, max_length) in SIZES.items():
        seed_everything(0)
        model = SequenceTransformer(vocabulary.size, max_length, width=width, layers=layers, heads=heads, dropout=0.1)
        settings = TrainingSettings(
            epochs=2, batch_size=arguments.batch_size, learning_rate=1e-3, loss="sampled", negatives=arguments.negatives, seed=0
        )
        started = time.perf_counter()
        history = train_next_item(
            model, windows(vocabulary, arguments.sequences, max_length, seed=0), vocabulary, candidate_domain="target", settings=settings
        )
        second = history.epochs[-1]
        rows.append(
            {
                "model": name,
                "width": width,
                "layers": layers,
                "heads": heads,
                "max_length": max_length,
                "parameters": parameter_count(model),
                "sequences_per_second": round(second["sequences"] / second["train_seconds"], 1),
                "loss_epoch_2": round(second["loss"], 4),
                "wall_seconds": round(time.perf_counter() - started, 1),
                "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            }
        )
    reference = next(row for row in rows if row["model"] == "reference")
    for row in rows:
        row["speed_vs_reference"] = round(row["sequences_per_second"] / reference["sequences_per_second"], 3)
    device = ", ".join(device.name for device in tf.config.list_logical_devices() if device.device_type != "CPU") or "CPU only"
    report = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {device}",
        "settings": {key: str(value) if isinstance(value, Path) else value for key, value in vars(arguments).items()},
        "rows": rows,
    }
    print(f"Sequence transformer scale ({report['machine']}; {arguments.sequences} windows/epoch, batch {arguments.batch_size}, "
          f"sampled softmax over {arguments.negatives} negatives; peak RSS is the process's, cumulative)")
    print(f"{'model':<10} {'width':>5} {'layers':>6} {'max_len':>7} {'parameters':>12} {'seq/s':>9} {'vs ref':>7} {'peak MiB':>9}")
    for row in rows:
        print(
            f"{row['model']:<10} {row['width']:>5} {row['layers']:>6} {row['max_length']:>7} {row['parameters']:>12,} "
            f"{row['sequences_per_second']:>9.1f} {row['speed_vs_reference']:>7.3f} {row['peak_rss_mib']:>9.1f}"
        )
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    arguments.out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
