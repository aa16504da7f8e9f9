"""Target-only baseline: item-item cosine collaborative filtering (ItemKNN).

similarity = D^-1/2 RᵀR D^-1/2 with the diagonal zeroed, R the binary users × target items
training matrix and D its item degrees; a user's score for item j = Σ over their target
training items i of similarity[i, j], plus 1e-6 × popularity_j / max popularity to break ties
(PEERS.md's DisenCDR baseline). Users without target training rows get the popularity order.
"""

from __future__ import annotations

import numpy as np

from xdt.data.protocols import TARGET
from xdt.methods.context import MethodContext
from xdt.models.neighbourhood import Channel, NeighbourhoodModel, item_cosine, popularity_prior


def train(context: MethodContext) -> NeighbourhoodModel:
    """Compute the target item-item cosine similarity and the popularity tie-break."""
    dataset = context.dataset
    interactions = dataset.interaction_matrix(TARGET, "train")
    popularity = np.bincount(dataset.rows(TARGET, "train")["item"].to_numpy(), minlength=dataset.n_items(TARGET))
    similarity = item_cosine(interactions)
    context.run.append_metrics({"stage": "itemknn", "similarity_nnz": int(similarity.nnz), "items": int(dataset.n_items(TARGET))})
    with context.strategy.scope():
        model = NeighbourhoodModel.from_channels([Channel(interactions, similarity)], popularity_prior(popularity), name="itemknn")
    return model
