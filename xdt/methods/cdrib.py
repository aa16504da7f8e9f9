"""CDRIB (Cao et al., ICDE 2022): variational bipartite graph encoders per domain, trained jointly on both domains.

Each epoch sees all source and all target training rows, shuffled together with one sampled
negative each (`TwoDomainTriples`, combined item index), as the official code's batches; every
step propagates both whole training graphs. The loss (reconstruction per domain, with shared
users' rows scored from their other domain; the KL compression terms; the contrastive user–user
term) is the model's own (`CDRIB.compute_loss`). Training goes through `fit_pairwise`
(checkpoints, exact resume) and stops early on the cold-start validation users, who, like the
test users, are scored from their source-side representation.
"""

from __future__ import annotations

import dataclasses

import keras

from xdt.data.protocols import SOURCE, TARGET
from xdt.methods.context import MethodContext
from xdt.methods.joint import TwoDomainTriples
from xdt.models.cdrib import CDRIB, cdrib_from_rows


def train(context: MethodContext) -> CDRIB:
    """Build both graphs from the training rows and fit."""
    dataset = context.dataset
    settings = context.config.transfer
    source, target = dataset.rows(SOURCE, "train"), dataset.rows(TARGET, "train")
    keras.utils.set_random_seed(context.config.seed)
    with context.strategy.scope():
        model = cdrib_from_rows(
            source["user"].to_numpy(), source["item"].to_numpy(), target["user"].to_numpy(), target["item"].to_numpy(),
            dataset.n_users, dataset.n_items(SOURCE), dataset.n_items(TARGET), settings.embedding_dim,
            layers=settings.cdrib_layers, dropout=settings.cdrib_dropout, beta=settings.cdrib_beta,
            margin=settings.cdrib_margin, user_batch=settings.cdrib_user_batch, seed=context.config.seed, name="cdrib",
        )
    context.reporter.status(
        f"cdrib: {model.source_users} source users, {model.target_users} target users, {model.shared_users} shared, "
        f"{model.source_edges} + {model.target_edges} edges"
    )
    stage_context(context).fit(model, stage="cdrib", cohort="cold", dataset=TwoDomainTriples(dataset))
    return model


def stage_context(context: MethodContext) -> MethodContext:
    """The context with transfer's batch size, epochs and patience replaced by the cdrib_* ones that are set."""
    settings = context.config.transfer
    overrides = {
        name: value
        for name, value in (("batch_size", settings.cdrib_batch_size), ("epochs", settings.cdrib_epochs), ("patience", settings.cdrib_patience))
        if value is not None
    }
    if not overrides:
        return context
    return dataclasses.replace(context, config=dataclasses.replace(context.config, transfer=dataclasses.replace(settings, **overrides)))
