"""Target-only baseline: rank items by their number of target training rows."""

from __future__ import annotations

import numpy as np

from xdt.data.protocols import TARGET
from xdt.methods.context import MethodContext
from xdt.models.popularity import Popularity


def train(context: MethodContext) -> Popularity:
    """Count target training rows per item."""
    dataset = context.dataset
    counts = np.bincount(dataset.rows(TARGET, "train")["item"].to_numpy(), minlength=dataset.n_items(TARGET))
    with context.strategy.scope():
        model = Popularity(dataset.n_items(TARGET))
        model.set_counts(counts)
    return model
