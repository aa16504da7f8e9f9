"""Cross-domain ItemKNN (xknn): cosine co-occurrence of source and target items among overlapping users.

X = D_s^-1/2 · SᵀT · D_t^-1/2, where S (T) is the binary overlapping-users × source (target)
training matrix and D_s, D_t the item degrees within S and T. Overlapping users are the users
with rows in both domains (any split: a cold-start user is one by definition, and only their
source training rows enter S; they have no target training rows, so they add nothing to SᵀT but
do count in D_s, as in PEERS.md's reference script).

A user's target scores = Σ of X's rows over the source items in their source training history
+ 1e-6 × popularity / max popularity (target training counts, all users). Warm users (with
target training rows) also get the target ItemKNN score Σ over their target training items of
the target item-item cosine (diagonal zeroed): both parts are cosine sums on the same scale, so
they are simply added. Cold-start users get exactly the cross-domain formula.
"""

from __future__ import annotations

import numpy as np

from xdt.data.protocols import SOURCE, TARGET
from xdt.methods.context import MethodContext
from xdt.models.neighbourhood import Channel, NeighbourhoodModel, cosine_cooccurrence, item_cosine, popularity_prior


def overlapping_user_mask(context: MethodContext) -> np.ndarray:
    """Boolean per user: rows in both domains, any split."""
    dataset = context.dataset
    in_domain = {}
    for domain in (SOURCE, TARGET):
        rows = dataset.interactions.loc[dataset.interactions["domain"] == domain, "user"].to_numpy()
        in_domain[domain] = np.bincount(rows, minlength=dataset.n_users) > 0
    return in_domain[SOURCE] & in_domain[TARGET]


def train(context: MethodContext) -> NeighbourhoodModel:
    """Compute X over overlapping users and the target item cosine for warm users."""
    dataset = context.dataset
    source = dataset.interaction_matrix(SOURCE, "train")
    target = dataset.interaction_matrix(TARGET, "train")
    overlap = overlapping_user_mask(context)
    cross = cosine_cooccurrence(source[overlap], target[overlap])
    within = item_cosine(target)
    popularity = np.bincount(dataset.rows(TARGET, "train")["item"].to_numpy(), minlength=dataset.n_items(TARGET))
    context.run.append_metrics(
        {
            "stage": "xknn",
            "overlapping_users": int(overlap.sum()),
            "cross_similarity_nnz": int(cross.nnz),
            "target_similarity_nnz": int(within.nnz),
        }
    )
    with context.strategy.scope():
        model = NeighbourhoodModel.from_channels(
            [Channel(source, cross), Channel(target, within)], popularity_prior(popularity), name="xknn"
        )
    return model
