"""Training throughput: xdt's BPR-MF epoch against a plain PyTorch implementation of the same model, same run.

    .venv/bin/python -m pip install 'torch==2.13.0'        # bench only (the CPU wheel); not an xdt dependency
    .venv/bin/python bench/train_speed.py                  # CDRIB Game → Video, the source (game) domain
    .venv/bin/python bench/train_speed.py --config configs/disencdr-sport-phone.yaml --domain target

Both train `score(u, i) = user_u · item_i + bias_i` with the BPR loss and xdt's L2 term
(l2 · mean over the batch of ‖user‖² + Σ‖candidate item‖²), Adam with Keras' defaults (β 0.9/0.999,
ε 1e-7), on exactly the triples `PreparedDataset.bpr_triples` draws for each epoch, starting from
the same initial tables. Before timing, both compute the loss of the first batch from those tables;
they must agree within 1e-5 with each other and with a float64 numpy computation of the same loss
(the same model and objective; without PyTorch installed the bench says so, checks xdt against
numpy and times xdt alone). After one epoch on the same batches
the tables drift apart, and the JSON reports by how much: Keras' Adam adds ε to √v before the
bias correction (update α·m/(√v + ε)), PyTorch's to √v̂ (an effective ε/√(1−β₂ᵗ), 30× larger at
step 1), and BPR's per-row gradients (order 1e-6 here) are small enough for the two to differ. Then the epochs are timed alternately (xdt, torch, xdt, …)
so both see the same machine load; xdt's epoch is what `xdt.train.fit_pairwise` runs (`model.fit`
over `epoch_batches`, one epoch). Writes bench/results/train_speed.json.

The reference a user would otherwise write: a PyTorch module with nn.Embedding tables and a
Python loop over batches. It is the PyTorch *CPU* build with its default intra-op threads.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def parse_arguments() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "cdrib-game-video.yaml")
    parser.add_argument("--domain", choices=["source", "target"], default="source")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per implementation (after one untimed warm-up epoch)")
    parser.add_argument("--work", type=Path, default=RESULTS / "work")
    parser.add_argument("--output", type=Path, default=RESULTS / "train_speed.json")
    return parser.parse_args()


def prepared(config_path: Path, work: Path) -> tuple[Any, Any]:
    """The config (its data under `work`) and its prepared dataset."""
    from xdt.config import load_config
    from xdt.data.prepare import is_up_to_date, prepare_dataset
    from xdt.session import open_dataset

    config = load_config(config_path, [f"runtime.data_dir={work / 'data'}", f"runtime.runs_dir={work / 'runs'}"]).config
    if not is_up_to_date(config):
        prepare_dataset(config)
    return config, open_dataset(config)


def xdt_batch_loss(model: Any, users: np.ndarray, positives: np.ndarray, negatives: np.ndarray) -> float:
    """The loss xdt's train step minimises on one batch: mean BPR over the triples plus the model's L2 term."""
    import keras

    scores = model((users, positives, negatives))
    return float(keras.ops.mean(-keras.ops.log_sigmoid(scores[:, 0] - scores[:, 1]))) + float(sum(model.losses))


def numpy_batch_loss(
    tables: list[np.ndarray], users: np.ndarray, positives: np.ndarray, negatives: np.ndarray, *, l2: float
) -> float:
    """The same loss from the (user, item, item-bias) tables in float64 numpy: the referee between xdt and PyTorch."""
    user_table, item_table, bias_table = (table.astype(np.float64) for table in tables)
    candidates = np.stack([positives, negatives], axis=1)
    user_vectors, item_vectors = user_table[users], item_table[candidates]
    scores = np.einsum("bd,bcd->bc", user_vectors, item_vectors) + bias_table[candidates, 0]
    loss = np.logaddexp(0.0, -(scores[:, 0] - scores[:, 1])).mean()
    return float(loss + l2 * (np.square(user_vectors).sum(-1) + np.square(item_vectors).sum((1, 2))).mean())


class TorchMF:
    """MF with item biases, BPR and xdt's L2 term, in plain PyTorch."""

    def __init__(self, users: np.ndarray, items: np.ndarray, bias: np.ndarray, *, l2: float, learning_rate: float) -> None:
        import torch

        self.torch = torch
        self.user = torch.nn.Embedding.from_pretrained(torch.tensor(users), freeze=False)
        self.item = torch.nn.Embedding.from_pretrained(torch.tensor(items), freeze=False)
        self.bias = torch.nn.Embedding.from_pretrained(torch.tensor(bias), freeze=False)
        self.l2 = l2
        parameters = [*self.user.parameters(), *self.item.parameters(), *self.bias.parameters()]
        self.optimizer = torch.optim.Adam(parameters, lr=learning_rate, betas=(0.9, 0.999), eps=1e-7)

    def loss(self, users: Any, positives: Any, negatives: Any) -> Any:
        """Mean BPR loss of one batch plus the L2 term."""
        torch = self.torch
        candidates = torch.stack([positives, negatives], dim=1)
        user_vectors = self.user(users)
        item_vectors = self.item(candidates)
        scores = (user_vectors.unsqueeze(1) * item_vectors).sum(-1) + self.bias(candidates).squeeze(-1)
        loss = torch.nn.functional.softplus(-(scores[:, 0] - scores[:, 1])).mean()
        if self.l2:
            loss = loss + self.l2 * (user_vectors.square().sum(-1) + item_vectors.square().sum((1, 2))).mean()
        return loss

    def epoch(self, users: np.ndarray, positives: np.ndarray, negatives: np.ndarray, batch_size: int) -> float:
        """One pass over the triples in order; the last batch's loss."""
        torch = self.torch
        users_t, positives_t, negatives_t = (torch.from_numpy(array.astype(np.int64)) for array in (users, positives, negatives))
        loss = None
        for start in range(0, len(users), batch_size):
            end = start + batch_size
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.loss(users_t[start:end], positives_t[start:end], negatives_t[start:end])
            loss.backward()
            self.optimizer.step()
        return float(loss.item())


def main() -> None:
    """Check equality, time alternately, write the JSON."""
    arguments = parse_arguments()
    import keras
    import tensorflow as tf

    from xdt.models.matrix_factorization import MatrixFactorization
    from xdt.train import compile_model, epoch_batches, seed_everything

    has_torch = importlib.util.find_spec("torch") is not None
    if not has_torch:
        print("PyTorch is not installed: timing xdt only, no PyTorch rows (install the bench extra: pip install 'torch==2.13.0').")
    config, dataset = prepared(arguments.config, arguments.work)
    settings = config.pretrain if arguments.domain == "source" else config.transfer
    seed_everything(config.seed)
    model = MatrixFactorization(dataset.n_users, dataset.n_items(arguments.domain), settings.embedding_dim, l2=settings.l2)
    model.build()
    compile_model(model, settings, freeze_users=False)
    tables = [model.user_embedding.embeddings.numpy(), model.item_embedding.embeddings.numpy(), model.item_bias.embeddings.numpy()]

    users, positives, negatives = dataset.bpr_triples(arguments.domain, config.seed, 1)
    first = slice(0, settings.batch_size)
    batch = (users[first], positives[first], negatives[first])
    losses = {"xdt": xdt_batch_loss(model, *batch), "numpy": numpy_batch_loss(tables, *batch, l2=settings.l2)}

    def xdt_epoch(epoch: int) -> float:
        triples = dataset.bpr_triples(arguments.domain, config.seed, epoch)
        history = model.fit(epoch_batches(*triples, settings.batch_size), epochs=1, shuffle=False, verbose=0)
        return float(history.history["loss"][-1])

    epochs: dict[str, Any] = {"xdt": xdt_epoch}
    if has_torch:
        import torch

        reference = TorchMF(*tables, l2=settings.l2, learning_rate=settings.optimizer.learning_rate)
        with torch.no_grad():
            losses["torch"] = float(reference.loss(*(torch.from_numpy(array.astype(np.int64)) for array in batch)))
        epochs["torch"] = lambda epoch: reference.epoch(*dataset.bpr_triples(arguments.domain, config.seed, epoch), settings.batch_size)
    same_loss = max(losses.values()) - min(losses.values()) <= 1e-5
    print("first-batch loss: " + "  ".join(f"{name} {value:.7f}" for name, value in losses.items())
          + f"  ({'equal' if same_loss else 'DIFFERENT'} within 1e-5)")
    if not same_loss:
        raise SystemExit(1)

    for run in epochs.values():
        run(1)
    drift = None
    if has_torch:
        drift = float(np.max(np.abs(model.item_embedding.embeddings.numpy() - reference.item.weight.detach().numpy())))
        print(f"after one identical epoch: max |item table difference| {drift:.2e}")
    timings: dict[str, list[float]] = {name: [] for name in epochs}
    names = list(epochs)
    for epoch in range(2, 2 + arguments.epochs):
        for name in names if epoch % 2 == 0 else names[::-1]:
            started = time.perf_counter()
            epochs[name](epoch)
            timings[name].append(time.perf_counter() - started)
    rows = len(users)
    seconds_per_epoch = {name: float(np.median(values)) for name, values in timings.items()}
    result = {
        "config": str(arguments.config),
        "domain": arguments.domain,
        "rows_per_epoch": rows,
        "batch_size": settings.batch_size,
        "embedding_dim": settings.embedding_dim,
        "first_batch_loss": losses,
        "table_drift_after_one_epoch": drift,
        "seconds_per_epoch": seconds_per_epoch,
        "all_seconds": timings,
        "ratio_xdt_to_torch": seconds_per_epoch["xdt"] / seconds_per_epoch["torch"] if has_torch else None,
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__, "torch": torch.__version__ if has_torch else None},
        "torch_threads": torch.get_num_threads() if has_torch else None,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "load_average": os.getloadavg(),
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip(),
    }
    for name, seconds in seconds_per_epoch.items():
        print(f"  {name:<5} {seconds:7.2f} s/epoch  {rows / seconds:>10,.0f} rows/s")
    if has_torch:
        print(f"  xdt / torch time per epoch: {result['ratio_xdt_to_torch']:.2f} (goal ≤ 1.0)")
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    arguments.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"  → {arguments.output}")


if __name__ == "__main__":
    main()
