"""DANN: a domain-adversarial shared user encoder trained on both domains' ranking objectives (`transfer.loss`).

Each training row is scored from its own domain's user view; target rows of users with
source history are also scored from their source view (the view cold-start users are served
by), and a gradient-reversal domain classifier pushes source and target views together
(`transfer.dann_lambda`). The shared user table and source items start from the pretrained
source model. Training runs through `fit_pairwise` on both domains' rows (see
`xdt.methods.joint.TwoDomainTriples`): checkpoints, exact resume, early stopping on the
target validation split.
"""

from __future__ import annotations

import keras

from xdt.data.protocols import SOURCE, TARGET
from xdt.methods.context import MethodContext
from xdt.methods.joint import TwoDomainTriples, copy_source_tables, embedding_dim
from xdt.methods.ptupcdr import padded_histories
from xdt.models.dann import DannModel


def train(context: MethodContext) -> DannModel:
    """Fit the adversarial shared encoder and both domains' item tables."""
    source_model = context.require_source_model("dann")
    dataset = context.dataset
    settings = context.config.transfer
    source_items, target_items = dataset.n_items(SOURCE), dataset.n_items(TARGET)
    keras.utils.set_random_seed(context.config.seed)
    with context.strategy.scope():
        model = DannModel(
            dataset.n_users,
            source_items,
            target_items,
            embedding_dim(context),
            history_length=settings.history_length,
            hidden=settings.encoder_hidden,
            reversal_weight=settings.dann_lambda,
            l2=settings.l2,
            ranking_loss=settings.loss,
            name="dann",
        )
        model.build()
        copy_source_tables(source_model, model.shared_user_embedding, model.item_embedding, model.item_bias)
        padding = model.padding_item
        source_history = padded_histories(dataset, SOURCE, settings.history_length, pad=padding)
        target_history = padded_histories(dataset, TARGET, settings.history_length, pad=padding - source_items)
        # Target items move up by the source item count in the combined index (padding stays padding).
        model.set_histories(source_history, target_history + source_items)
    context.fit(model, stage="dann", dataset=TwoDomainTriples(dataset))
    return model
