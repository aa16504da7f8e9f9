"""Target-only baseline: a deep two-tower model (user tower over id + recent target history, item tower over id).

Widths: `transfer.encoder_hidden` hidden units, `transfer.embedding_dim` outputs; the user's
most recent `transfer.history_length` target training items feed the user tower. It learns
nothing about cold-start users (no target history, an untrained id embedding), so like
`target_mf` it is early-stopped on the warm validation users.
"""

from __future__ import annotations

import keras

from xdt.data.protocols import TARGET
from xdt.methods.context import MethodContext
from xdt.methods.ptupcdr import padded_histories
from xdt.models.two_tower import TwoTowerModel


def train(context: MethodContext) -> TwoTowerModel:
    """Store the target histories, then train both towers on target rows."""
    dataset = context.dataset
    settings = context.config.transfer
    keras.utils.set_random_seed(context.config.seed)
    with context.strategy.scope():
        model = TwoTowerModel(
            dataset.n_users,
            dataset.n_items(TARGET),
            settings.embedding_dim,
            history_length=settings.history_length,
            hidden=settings.encoder_hidden,
            l2=settings.l2,
            name="two_tower",
        )
        model.build()
        model.set_target_history(padded_histories(dataset, TARGET, settings.history_length))
    context.fit(model, stage="two_tower", cohort="warm")
    return model
