"""Target-only baseline: LightGCN over the target training graph (He et al., SIGIR 2020)."""

from __future__ import annotations

from xdt.data.protocols import TARGET
from xdt.methods.context import MethodContext
from xdt.models.lightgcn import LightGCN, lightgcn_from_rows


def train(context: MethodContext) -> LightGCN:
    """Propagate over the target training rows; validated on warm users (a cold-start user has no edges)."""
    dataset = context.dataset
    rows = dataset.rows(TARGET, "train")
    users, items = rows["user"].to_numpy(), rows["item"].to_numpy()
    settings = context.config.transfer
    with context.strategy.scope():
        model = lightgcn_from_rows(
            users, items, dataset.n_users, dataset.n_items(TARGET), settings.embedding_dim,
            layers=settings.graph_layers, l2=settings.l2, name="target_lightgcn",
        )
    context.fit(model, stage="lightgcn", cohort="warm")
    return model
