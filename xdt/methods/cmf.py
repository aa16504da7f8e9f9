"""CMF-style union baseline: one user embedding per user, shared by both domains, learned on the union of their rows.

Collective matrix factorisation (Singh & Gordon, KDD 2008) with the configured ranking loss: a
`JointModel` without private parts (items of both domains in one table) trained from scratch,
every epoch on all source and target training rows shuffled together (`TwoDomainTriples`),
early-stopped on the target validation split. A cold-start user's target scores come from the
shared embedding learned on their source rows. Unlike `joint`, nothing starts from the
pretrained source model.
"""

from __future__ import annotations

import keras

from xdt.data.protocols import SOURCE, TARGET
from xdt.methods.context import MethodContext
from xdt.methods.joint import TwoDomainTriples, embedding_dim
from xdt.models.joint import JointModel


def train(context: MethodContext) -> JointModel:
    """Fit shared user and item embeddings on both domains' training rows."""
    dataset = context.dataset
    keras.utils.set_random_seed(context.config.seed)
    with context.strategy.scope():
        model = JointModel(
            dataset.n_users, dataset.n_items(SOURCE), dataset.n_items(TARGET), embedding_dim(context), l2=context.config.transfer.l2, private=False, name="cmf"
        )
        model.build()
    context.fit(model, stage="cmf", dataset=TwoDomainTriples(dataset))
    return model
