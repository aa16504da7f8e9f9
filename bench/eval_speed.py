"""Full-ranking evaluation speed: `xdt.evaluate.rank_items` against a bare `matmul + top_k` loop.

Both loops rank the same random user and item tensors (100,000 users × 50,000 items at dim 64
by default) in the same process, with the same batch size; rank_items also masks each user's
seen items. Prints users/s for each and their ratio (target: rank_items ≥ 0.9 of the bare loop),
the bare loop's matmul GFLOP/s as a share of a plain large matmul's measured in the same run,
checks rank_items against a slow numpy reference on a subset of users, and writes
bench/results/eval_speed.json.

    .venv/bin/python bench/eval_speed.py                        # the full size
    .venv/bin/python bench/eval_speed.py --users 20000 --items 20000   # a quick run

The loops run chunk by chunk in rotating order, so that every loop sees the same machine load
(timing one whole loop after the other on this shared machine gave ratios from 0.6 to 1.1).

`--variant graph` also times the batch step as one tf.function (gather + matmul + scatter of
-inf + tf.math.top_k). `--with-relevant` also times the evaluate path: rank_items with held-out
items (about 2 per user), which counts for each the unseen items scoring above and equal to it.
`--intra-op-threads` / `--inter-op-threads` set tf.config.threading before anything runs (0: TF's
default); allocator and oneDNN settings come from the environment (LD_PRELOAD,
TF_ENABLE_ONEDNN_OPTS) and are recorded in the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import scipy.sparse as sparse  # noqa: E402
import tensorflow as tf  # noqa: E402

from xdt.evaluate import rank_items  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "eval_speed.json"


def parse_arguments() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--seen-per-user", type=int, default=20, help="Mean number of seen (masked) items per user.")
    parser.add_argument("--check-users", type=int, default=256, help="Users checked against the numpy reference.")
    parser.add_argument("--repeats", type=int, default=1, help="Timed tries of each chunk (the best is kept).")
    parser.add_argument("--chunk-batches", type=int, default=4, help="Batches per alternately timed chunk.")
    parser.add_argument("--variant", choices=["none", "graph"], default="none")
    parser.add_argument(
        "--with-relevant",
        action="store_true",
        help="Also time rank_items with held-out items (the evaluate path: each relevant item's full-ranking position).",
    )
    parser.add_argument("--intra-op-threads", type=int, default=0, help="tf.config.threading intra-op threads (0: TF's default).")
    parser.add_argument("--inter-op-threads", type=int, default=0, help="tf.config.threading inter-op threads (0: TF's default).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=RESULTS)
    return parser.parse_args()


def random_seen(users: int, items: int, mean_per_user: int, rng: np.random.Generator) -> sparse.csr_matrix:
    """A binary users × items CSR matrix with about `mean_per_user` random items per row."""
    counts = rng.poisson(mean_per_user, size=users)
    rows = np.repeat(np.arange(users), counts)
    columns = rng.integers(0, items, size=int(counts.sum()))
    matrix = sparse.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, columns)), shape=(users, items))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


def bare_loop(user_embeddings: tf.Tensor, item_embeddings: tf.Tensor, *, k: int, batch_size: int) -> None:
    """The practical limit: batched `matmul + top_k` with no masking, results copied to host."""
    users = user_embeddings.shape[0]
    for start in range(0, users, batch_size):
        scores = tf.matmul(user_embeddings[start : start + batch_size], item_embeddings, transpose_b=True)
        values, indices = tf.math.top_k(scores, k=k)
        values.numpy(), indices.numpy()


def graph_step(user_embeddings: tf.Tensor, item_embeddings: tf.Tensor, *, k: int) -> Callable[[tf.Tensor, tf.Tensor], tuple[tf.Tensor, tf.Tensor]]:
    """The proposed rank_items batch step: gather + matmul + scatter of -inf + top_k as one tf.function."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int32), tf.TensorSpec([None, 2], tf.int64)], autograph=False)
    def step(batch: tf.Tensor, coordinates: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        scores = tf.matmul(tf.gather(user_embeddings, batch), item_embeddings, transpose_b=True)
        scores = tf.tensor_scatter_nd_update(scores, coordinates, tf.fill([tf.shape(coordinates)[0]], -np.inf))
        return tf.math.top_k(scores, k=k)

    return step


def graph_rank_items(
    step: Callable[[tf.Tensor, tf.Tensor], tuple[tf.Tensor, tf.Tensor]], users: np.ndarray, *, seen: sparse.csr_matrix, k: int, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """rank_items with the batch step compiled once: (top_items, top_scores)."""
    top_items = np.zeros((len(users), k), dtype=np.int64)
    top_scores = np.zeros((len(users), k), dtype=np.float32)
    for start in range(0, len(users), batch_size):
        batch = users[start : start + batch_size]
        rows = seen[batch]
        coordinates = np.stack([np.repeat(np.arange(len(batch)), np.diff(rows.indptr)), rows.indices], axis=1).astype(np.int64)
        values, indices = step(tf.constant(batch, tf.int32), tf.constant(coordinates.reshape(-1, 2)))
        top_items[start : start + len(batch)] = indices.numpy()
        top_scores[start : start + len(batch)] = values.numpy()
    return top_items, top_scores


def numpy_reference(
    user_vectors: np.ndarray, item_vectors: np.ndarray, users: np.ndarray, seen: sparse.csr_matrix, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Slow and obvious: score, set seen items to -inf, sort descending (stable, lower index first on ties)."""
    top_items, top_scores = [], []
    for user in users:
        scores = (user_vectors[user].astype(np.float64) @ item_vectors.T.astype(np.float64)).astype(np.float32)
        scores[seen[user].indices] = -np.inf
        order = np.argsort(-scores, kind="stable")[:k]
        top_items.append(order)
        top_scores.append(scores[order])
    return np.array(top_items), np.array(top_scores)


def check_against_reference(top_items: np.ndarray, top_scores: np.ndarray, reference: tuple[np.ndarray, np.ndarray]) -> dict[str, Any]:
    """Scores must match within float32 matmul round-off; items must match except where scores tie that closely."""
    reference_items, reference_scores = reference
    score_error = float(np.max(np.abs(top_scores - reference_scores)))
    same_items = top_items == reference_items
    # A position may differ only where two candidate scores are within round-off of each other.
    near_ties = np.abs(top_scores - reference_scores) <= 1e-4
    ok = score_error <= 1e-4 and bool(np.all(same_items | near_ties))
    return {"users": int(len(top_items)), "max_score_error": score_error, "item_agreement": float(same_items.mean()), "ok": ok}


def interleaved_timings(
    loops: dict[str, Callable[[np.ndarray], Any]], users: np.ndarray, *, chunk_size: int, repeats: int
) -> dict[str, tuple[float, list[Any]]]:
    """Total seconds of each loop over all users and its per-chunk results, run chunk by chunk in rotating order.

    The machine is shared and its load drifts: timing one whole loop after the other measured
    ratios from 0.6 to 1.1 for the same code, so every loop sees each chunk under about the same
    load. Each chunk's time is the best of `repeats` tries.
    """
    totals: dict[str, tuple[float, list[Any]]] = {name: (0.0, []) for name in loops}
    names = list(loops)
    for index, start in enumerate(range(0, len(users), chunk_size)):
        chunk = users[start : start + chunk_size]
        for name in names[index % len(names) :] + names[: index % len(names)]:
            seconds, result = timed(lambda name=name, chunk=chunk: loops[name](chunk), repeats)
            total, results = totals[name]
            totals[name] = (total + seconds, results + [result])
    return totals


def concatenate(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Per-chunk (top_items, top_scores) joined over all users."""
    return np.concatenate([items for items, _ in parts]), np.concatenate([scores for _, scores in parts])


def matmul_peak(dim: int, *, size: int = 4096, repeats: int = 5) -> float:
    """GFLOP/s of the best of `repeats` plain `(size, dim) @ (dim, size)` matmuls: the machine's reachable peak for this shape family."""
    left = tf.random.stateless_normal((size, dim), seed=(1, 2))
    right = tf.random.stateless_normal((size, dim), seed=(3, 4))
    tf.matmul(left, right, transpose_b=True).numpy()
    seconds, _ = timed(lambda: tf.matmul(left, right, transpose_b=True).numpy(), repeats)
    return 2.0 * size * size * dim / seconds / 1e9


def timed(function: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Best wall time over `repeats` calls, and the last result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - started)
    return best, result


def main() -> None:
    """Run the benchmark and write its JSON."""
    arguments = parse_arguments()
    tf.config.threading.set_intra_op_parallelism_threads(arguments.intra_op_threads)
    tf.config.threading.set_inter_op_parallelism_threads(arguments.inter_op_threads)
    rng = np.random.default_rng(arguments.seed)
    user_vectors = rng.normal(scale=0.1, size=(arguments.users, arguments.dim)).astype(np.float32)
    item_vectors = rng.normal(scale=0.1, size=(arguments.items, arguments.dim)).astype(np.float32)
    user_embeddings = tf.constant(user_vectors)
    item_embeddings = tf.constant(item_vectors)
    seen = random_seen(arguments.users, arguments.items, arguments.seen_per_user, rng)
    users = np.arange(arguments.users, dtype=np.int64)
    k, batch_size = arguments.k, arguments.batch_size

    def score_all(batch: tf.Tensor) -> tf.Tensor:
        """What a model's `score_all` does for an MF model: `(batch, items)` dot products."""
        return tf.matmul(tf.gather(user_embeddings, batch), item_embeddings, transpose_b=True)

    # Warm-up: first-call kernel selection and allocation, outside the timings.
    warm = users[: min(len(users), 2 * batch_size)]
    bare_loop(tf.gather(user_embeddings, warm), item_embeddings, k=k, batch_size=batch_size)
    rank_items(score_all, warm, seen=seen, relevant=None, k=k, batch_size=batch_size)

    def ranked(chunk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ranking = rank_items(score_all, chunk, seen=seen, relevant=None, k=k, batch_size=batch_size)
        return ranking.top_items, ranking.top_scores

    loops: dict[str, Callable[[np.ndarray], Any]] = {
        "bare": lambda chunk: bare_loop(tf.gather(user_embeddings, chunk), item_embeddings, k=k, batch_size=batch_size),
        "rank_items": ranked,
    }
    if arguments.variant == "graph":
        step = graph_step(user_embeddings, item_embeddings, k=k)
        graph_rank_items(step, warm, seen=seen, k=k, batch_size=batch_size)
        loops["graph_step"] = lambda chunk: graph_rank_items(step, chunk, seen=seen, k=k, batch_size=batch_size)
    if arguments.with_relevant:
        relevant = random_seen(arguments.users, arguments.items, 2, rng)
        loops["rank_items_relevant"] = lambda chunk: rank_items(
            score_all, chunk, seen=seen, relevant=relevant, k=k, batch_size=batch_size
        ).best_relevant_rank
    timings = interleaved_timings(loops, users, chunk_size=arguments.chunk_batches * batch_size, repeats=arguments.repeats)
    bare_seconds = timings["bare"][0]
    rank_seconds = timings["rank_items"][0]
    top_items, top_scores = concatenate(timings["rank_items"][1])
    checked = rng.choice(arguments.users, size=min(arguments.check_users, arguments.users), replace=False)
    reference = numpy_reference(user_vectors, item_vectors, checked, seen, k)
    correctness = check_against_reference(top_items[checked], top_scores[checked], reference)

    peak = matmul_peak(arguments.dim)
    bare_gflops = 2.0 * arguments.users * arguments.items * arguments.dim / bare_seconds / 1e9
    rank_gflops = 2.0 * arguments.users * arguments.items * arguments.dim / rank_seconds / 1e9
    result: dict[str, Any] = {
        "users": arguments.users,
        "items": arguments.items,
        "dim": arguments.dim,
        "k": k,
        "batch_size": batch_size,
        "seen_per_user": float(seen.nnz / arguments.users),
        "repeats": arguments.repeats,
        "chunk_batches": arguments.chunk_batches,
        "timing": "loops timed chunk by chunk in rotating order (shared, noisy machine); each chunk best of repeats",
        "bare_matmul_top_k": {"seconds": bare_seconds, "users_per_second": arguments.users / bare_seconds},
        "rank_items": {"seconds": rank_seconds, "users_per_second": arguments.users / rank_seconds},
        "ratio": bare_seconds / rank_seconds,
        "target_ratio": 0.9,
        "matmul_peak_gflops": peak,
        "bare_matmul_gflops": bare_gflops,
        "bare_share_of_peak": bare_gflops / peak,
        "rank_items_matmul_gflops": rank_gflops,
        "rank_items_share_of_peak": rank_gflops / peak,
        "correctness": correctness,
        "tensorflow": tf.__version__,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "ld_preload": os.environ.get("LD_PRELOAD", ""),
        "tf_enable_onednn_opts": os.environ.get("TF_ENABLE_ONEDNN_OPTS", ""),
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
    }
    print(f"{arguments.users:,} users × {arguments.items:,} items, dim {arguments.dim}, k {k}, batch {batch_size}")
    print(f"  bare matmul + top_k : {result['bare_matmul_top_k']['users_per_second']:>10,.0f} users/s")
    print(f"  xdt rank_items      : {result['rank_items']['users_per_second']:>10,.0f} users/s   ratio {result['ratio']:.2f} (target ≥ 0.90)")
    print(f"  bare loop's matmul  : {bare_gflops:>10,.1f} GFLOP/s = {bare_gflops / peak:.2f} of a plain 4096×{arguments.dim} matmul's {peak:,.1f} GFLOP/s")
    print(f"  rank_items' matmul  : {rank_gflops:>10,.1f} GFLOP/s = {rank_gflops / peak:.2f} of that peak")
    if arguments.variant == "graph":
        graph_seconds = timings["graph_step"][0]
        graph_items, graph_scores = concatenate(timings["graph_step"][1])
        result["graph_step"] = {
            "seconds": graph_seconds,
            "users_per_second": arguments.users / graph_seconds,
            "ratio": bare_seconds / graph_seconds,
            "correctness": check_against_reference(graph_items[checked], graph_scores[checked], reference),
        }
        print(f"  tf.function step    : {result['graph_step']['users_per_second']:>10,.0f} users/s   ratio {result['graph_step']['ratio']:.2f}")
    if arguments.with_relevant:
        seconds = timings["rank_items_relevant"][0]
        result["rank_items_relevant"] = {"seconds": seconds, "users_per_second": arguments.users / seconds, "ratio": bare_seconds / seconds}
        print(f"  rank_items + relevant: {result['rank_items_relevant']['users_per_second']:>9,.0f} users/s   ratio {result['rank_items_relevant']['ratio']:.2f}")
    print(f"  correctness on {correctness['users']} users: {'ok' if correctness['ok'] else 'FAILED'} "
          f"(max score error {correctness['max_score_error']:.2e}, item agreement {correctness['item_agreement']:.4f})")
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    arguments.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"  → {arguments.output}")
    if not correctness["ok"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
