"""bench/train_speed.py's loss check, xdt side: xdt's batch loss equals the float64 numpy referee (no PyTorch needed)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest


def load_bench():
    path = Path(__file__).resolve().parents[1] / "bench" / "train_speed.py"
    spec = importlib.util.spec_from_file_location("train_speed", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("l2", [0.0, 0.01])
def test_xdt_batch_loss_equals_the_numpy_loss_on_a_tiny_batch(l2: float) -> None:
    from xdt.models.matrix_factorization import MatrixFactorization

    bench = load_bench()
    model = MatrixFactorization(7, 11, 4, l2=l2)
    model.build()
    rng = np.random.default_rng(3)
    model.item_bias.embeddings.assign(rng.normal(size=(11, 1)).astype(np.float32))
    tables = [model.user_embedding.embeddings.numpy(), model.item_embedding.embeddings.numpy(), model.item_bias.embeddings.numpy()]
    users, positives, negatives = rng.integers(0, 7, 5), rng.integers(0, 11, 5), rng.integers(0, 11, 5)
    xdt_loss = bench.xdt_batch_loss(model, users, positives, negatives)
    numpy_loss = bench.numpy_batch_loss(tables, users, positives, negatives, l2=l2)
    assert xdt_loss == pytest.approx(numpy_loss, abs=1e-5)
    assert numpy_loss != pytest.approx(bench.numpy_batch_loss(tables, users, negatives, positives, l2=l2), abs=1e-3)
