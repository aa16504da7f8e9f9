"""Training throughput of xdt's sequence transformer against a plain PyTorch implementation of the same model, same run.

    .venv/bin/python -m pip install 'torch==2.13.0'        # bench only (the CPU wheel); not an xdt dependency
    .venv/bin/python bench/sequence_train_speed.py         # LLMCDSR Food → Kitchen, the Kitchen windows of training users

Both train `xdt.sequential.transformer.SequenceTransformer` with id items: item + domain +
position embeddings, pre-norm causal blocks (multi-head attention, GELU feed-forward), an output
layer norm, next items scored against the tied item table, the sampled softmax over the batch's
shared uniform negatives with accidental hits masked (`xdt.sequential.training.next_item_loss`),
global-norm clipping at 1.0 and Adam with Keras' defaults. Dropout is 0 in both, so the check is
exact. The PyTorch side is the module a user would otherwise write (nn.Parameter tensors, a Python
batch loop), initialised with xdt's weights. Every batch of both uses the same rows and negatives:
the epoch order and the negatives come from the generator `run_epochs` seeds with (seed, epoch)
and `draw_negatives`, in the same order.

Before timing, both compute the loss of the first batch from the same weights; they must agree
within 1e-5. xdt's epoch is its compiled train step (`make_train_step`) over the batches, as
`train_next_item` runs it (without the checkpoint and validation). Epochs are timed alternately
(xdt, torch, xdt, …). Writes bench/results/sequence_train_speed.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DATA = ROOT.parent / "shared" / "data" / "llmcdsr" / "food-kitchen"


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--max-length", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--negatives", type=int, default=1024)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per implementation (after one untimed warm-up epoch)")
    parser.add_argument("--limit", type=int, default=0, help="use the first N training windows only (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=RESULTS / "sequence_train_speed.json")
    return parser.parse_args()


def kitchen_windows(data: Path, max_length: int) -> tuple[Any, Any]:
    """Training windows of every non-held-out user's Kitchen sequence (Kitchen labels) and the vocabulary."""
    from xdt.data.readers import read_domain
    from xdt.sequential.data import interactions_from_domains, training_examples, user_sequences

    source = read_domain("llmcdsr", data, domain="food", options={"side": "A"})
    target = read_domain("llmcdsr", data, domain="kitchen", options={"side": "B"})
    n_source, n_target = (int(line) for line in (data / "num.txt").read_text().split())
    interactions, vocabulary = interactions_from_domains(source.interactions, target.interactions, n_source=n_source, n_target=n_target)
    users = interactions["user"].astype(str)
    held_out = users[users.str.startswith(("valid:", "test:"))].unique()
    sequences = user_sequences(interactions, vocabulary, domains=("target",), exclude_users=held_out)
    return training_examples(sequences, vocabulary, max_length=max_length, label_domains=("target",)), vocabulary


class TorchSequenceTransformer:
    """The same transformer in PyTorch, its tensors copied from a built xdt `SequenceTransformer`."""

    def __init__(self, model: Any, learning_rate: float, clip_norm: float) -> None:
        import torch

        def tensor(value: Any) -> Any:
            return torch.nn.Parameter(torch.tensor(np.asarray(value), dtype=torch.float32))

        self.torch = torch
        self.heads, self.width = model.heads, model.width
        self.items = tensor(model.item_embedding.embeddings.numpy())
        self.positions = tensor(model.position_embedding.embeddings.numpy())
        self.domains = tensor(model.domain_embedding.embeddings.numpy())
        self.blocks = []
        for block in model.blocks:
            query, query_bias, key, key_bias, value, value_bias, output, output_bias = block.attention.get_weights()
            width = self.width
            self.blocks.append({
                "attention_gamma": tensor(block.attention_norm.gamma.numpy()), "attention_beta": tensor(block.attention_norm.beta.numpy()),
                "query": tensor(query.reshape(width, width)), "query_bias": tensor(query_bias.reshape(width)),
                "key": tensor(key.reshape(width, width)), "key_bias": tensor(key_bias.reshape(width)),
                "value": tensor(value.reshape(width, width)), "value_bias": tensor(value_bias.reshape(width)),
                "output": tensor(output.reshape(width, width)), "output_bias": tensor(output_bias),
                "feed_gamma": tensor(block.feed_forward_norm.gamma.numpy()), "feed_beta": tensor(block.feed_forward_norm.beta.numpy()),
                "feed_in": tensor(block.feed_forward_in.kernel.numpy()), "feed_in_bias": tensor(block.feed_forward_in.bias.numpy()),
                "feed_out": tensor(block.feed_forward_out.kernel.numpy()), "feed_out_bias": tensor(block.feed_forward_out.bias.numpy()),
            })
        self.output_gamma = tensor(model.output_norm.gamma.numpy())
        self.output_beta = tensor(model.output_norm.beta.numpy())
        self.parameters = [self.items, self.positions, self.domains, self.output_gamma, self.output_beta,
                           *[value for block in self.blocks for value in block.values()]]
        # Keras' Adam defaults: β 0.9 / 0.999, ε 1e-7.
        self.optimizer = torch.optim.Adam(self.parameters, lr=learning_rate, betas=(0.9, 0.999), eps=1e-7)
        self.clip_norm = clip_norm

    def hidden(self, items: Any, domains: Any) -> Any:
        torch, functional = self.torch, self.torch.nn.functional
        batch, length = items.shape
        valid = items != 0
        hidden = self.items[items] + self.domains[domains] + self.positions[self.positions.shape[0] - length:][None]
        hidden = hidden * valid[..., None]
        causal = torch.tril(torch.ones(length, length, dtype=torch.bool))
        visible = causal[None] & (valid[:, None, :] | torch.eye(length, dtype=torch.bool)[None])
        head_width = self.width // self.heads
        for block in self.blocks:
            normed = functional.layer_norm(hidden, (self.width,), block["attention_gamma"], block["attention_beta"], eps=1e-6)

            def split(x: Any) -> Any:
                return x.view(batch, length, self.heads, head_width).transpose(1, 2)

            query = split(normed @ block["query"] + block["query_bias"]) / math.sqrt(head_width)
            key = split(normed @ block["key"] + block["key_bias"])
            value = split(normed @ block["value"] + block["value_bias"])
            scores = (query @ key.transpose(-1, -2)).masked_fill(~visible[:, None], -1e9)
            attended = (scores.softmax(dim=-1) @ value).transpose(1, 2).reshape(batch, length, self.width)
            hidden = hidden + attended @ block["output"] + block["output_bias"]
            normed = functional.layer_norm(hidden, (self.width,), block["feed_gamma"], block["feed_beta"], eps=1e-6)
            inner = functional.gelu(normed @ block["feed_in"] + block["feed_in_bias"])
            hidden = hidden + inner @ block["feed_out"] + block["feed_out_bias"]
        return functional.layer_norm(hidden, (self.width,), self.output_gamma, self.output_beta, eps=1e-6)

    def loss(self, items: Any, domains: Any, labels: Any, negatives: Any) -> Any:
        torch = self.torch
        hidden = self.hidden(items, domains)
        labelled = labels > 0
        hidden, targets = hidden[labelled], labels[labelled]
        positive = (hidden * self.items[targets]).sum(-1, keepdim=True)
        negative = (hidden @ self.items[negatives].T).masked_fill(targets[:, None] == negatives[None, :], -1e9)
        logits = torch.cat([positive, negative], dim=1)
        return torch.nn.functional.cross_entropy(logits, torch.zeros(len(targets), dtype=torch.long))

    def step(self, items: np.ndarray, domains: np.ndarray, labels: np.ndarray, negatives: np.ndarray) -> float:
        torch = self.torch
        self.optimizer.zero_grad()
        loss = self.loss(*(torch.from_numpy(np.asarray(array, dtype=np.int64)) for array in (items, domains, labels, negatives)))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.parameters, self.clip_norm)
        self.optimizer.step()
        return float(loss.detach())


def epoch_batches(examples: Any, settings: Any, token_range: tuple[int, int], epoch: int) -> list[tuple[np.ndarray, ...]]:
    """The epoch's batches as `run_epochs` / `train_next_item` draw them: order and negatives from one (seed, epoch) generator."""
    from xdt.sequential.training import draw_negatives

    rng = np.random.default_rng([settings.seed, epoch, 7919])
    order = rng.permutation(len(examples))
    batches = []
    for start in range(0, len(examples), settings.batch_size):
        index = order[start : start + settings.batch_size]
        negatives, _, _ = draw_negatives(examples.labels[index], settings, token_range, rng)
        batches.append((examples.items[index], examples.domains[index], examples.labels[index], negatives))
    return batches


def main() -> None:
    """Check the first-batch loss, time alternately, write the JSON."""
    arguments = parse_arguments()
    if not (arguments.data / "num.txt").is_file():
        print(f"SKIP: LLMCDSR food-kitchen data not found at {arguments.data}")
        return
    import keras
    import tensorflow as tf

    from xdt.sequential.data import TrainingExamples
    from xdt.sequential.training import TrainingSettings, make_train_step, next_item_loss, seed_everything
    from xdt.sequential.transformer import SequenceTransformer, parameter_count

    has_torch = importlib.util.find_spec("torch") is not None
    if not has_torch:
        print("PyTorch is not installed: timing xdt only (install the bench extra: pip install 'torch==2.13.0').")
    examples, vocabulary = kitchen_windows(arguments.data, arguments.max_length)
    if arguments.limit:
        examples = TrainingExamples(examples.items[: arguments.limit], examples.domains[: arguments.limit], examples.labels[: arguments.limit])
    token_range = vocabulary.token_range("target")
    settings = TrainingSettings(
        epochs=1, batch_size=arguments.batch_size, learning_rate=arguments.learning_rate, loss="sampled",
        negatives=arguments.negatives, negative_sampler="uniform", seed=arguments.seed,
    )
    seed_everything(arguments.seed)
    model = SequenceTransformer(vocabulary.size, arguments.max_length, width=arguments.width, layers=arguments.layers,
                                heads=arguments.heads, dropout=0.0)
    model.build()
    optimizer = keras.optimizers.Adam(learning_rate=settings.learning_rate)
    optimizer.build(model.trainable_variables)
    first = epoch_batches(examples, settings, token_range, 1)[0]
    losses = {"xdt": float(next_item_loss(model, *first, token_range[0], token_range[1], full=False, training=False))}
    reference = None
    if has_torch:
        import torch

        reference = TorchSequenceTransformer(model, settings.learning_rate, settings.clip_norm)
        with torch.no_grad():
            losses["torch"] = float(reference.loss(*(torch.from_numpy(np.asarray(a, dtype=np.int64)) for a in first)))
    same_loss = max(losses.values()) - min(losses.values()) <= 1e-5
    print("first-batch loss: " + "  ".join(f"{name} {value:.7f}" for name, value in losses.items())
          + f"  ({'equal' if same_loss else 'DIFFERENT'} within 1e-5)")
    if not same_loss:
        raise SystemExit(1)

    step = make_train_step(model, optimizer, list(model.trainable_variables), token_range, settings)
    zeros_labels = np.zeros((settings.batch_size, arguments.max_length), np.float32)
    zeros_negatives = np.zeros(settings.negatives, np.float32)

    def xdt_epoch(epoch: int) -> float:
        batch_losses = [float(step(items, domains, labels, negatives, zeros_labels[: len(items)], zeros_negatives))
                        for items, domains, labels, negatives in epoch_batches(examples, settings, token_range, epoch)]
        return float(np.mean(batch_losses))

    epochs: dict[str, Any] = {"xdt": xdt_epoch}
    if reference is not None:
        epochs["torch"] = lambda epoch: float(np.mean([reference.step(*batch) for batch in epoch_batches(examples, settings, token_range, epoch)]))
    warm = {name: run(1) for name, run in epochs.items()}
    print("warm-up epoch mean loss: " + "  ".join(f"{name} {value:.5f}" for name, value in warm.items()))
    timings: dict[str, list[float]] = {name: [] for name in epochs}
    names = list(epochs)
    for epoch in range(2, 2 + arguments.epochs):
        for name in names if epoch % 2 == 0 else names[::-1]:
            started = time.perf_counter()
            epochs[name](epoch)
            timings[name].append(time.perf_counter() - started)
    seconds = {name: float(np.median(values)) for name, values in timings.items()}
    result = {
        "data": str(arguments.data),
        "sequences_per_epoch": len(examples),
        "settings": {key: str(value) if isinstance(value, Path) else value for key, value in vars(arguments).items()},
        "parameters": parameter_count(model),
        "first_batch_loss": losses,
        "warm_up_epoch_mean_loss": warm,
        "seconds_per_epoch": seconds,
        "sequences_per_second": {name: len(examples) / value for name, value in seconds.items()},
        "all_seconds": timings,
        "ratio_xdt_to_torch": seconds["xdt"] / seconds["torch"] if "torch" in seconds else None,
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__, "torch": torch.__version__ if has_torch else None},
        "torch_threads": torch.get_num_threads() if has_torch else None,
        "load_average": os.getloadavg(),
        "platform": platform.platform(),
    }
    for name, value in seconds.items():
        print(f"  {name:<5} {value:7.2f} s/epoch  {len(examples) / value:>9,.0f} sequences/s")
    if result["ratio_xdt_to_torch"] is not None:
        print(f"  xdt / torch time per epoch: {result['ratio_xdt_to_torch']:.2f} (goal ≤ 1.0)")
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    arguments.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"  → {arguments.output}")


if __name__ == "__main__":
    main()
