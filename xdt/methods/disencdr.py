"""DisenCDR (Cao et al., SIGIR 2022): shared and domain-specific variational graph encoders, trained jointly on both domains.

Each epoch sees all source and all target training rows, shuffled together with one sampled
negative each (`TwoDomainTriples`, combined item index), as the official code's batches; every
step propagates both whole training graphs. The loss (reconstruction per domain, the specific
encoders' KLs, the shared/exclusive KL terms) is the model's own (`DisenCDR.compute_loss`).
Training goes through `MethodContext.fit` (checkpoints, exact resume) and stops early on the
target validation users. Both domains are scored (dual target): `score_all` for the target,
`score_all_source` for the source.
"""

from __future__ import annotations

import dataclasses
import math

import keras

from xdt.data.protocols import SOURCE, TARGET
from xdt.methods.context import MethodContext
from xdt.methods.joint import TwoDomainTriples
from xdt.models.disencdr import DisenCDR, disencdr_from_rows


def train(context: MethodContext) -> DisenCDR:
    """Build both graphs from the training rows and fit."""
    dataset = context.dataset
    settings = context.config.transfer
    source, target = dataset.rows(SOURCE, "train"), dataset.rows(TARGET, "train")
    keras.utils.set_random_seed(context.config.seed)
    # TwoDomainTriples: one row per source and per target training row, in batches of the stage's size.
    batch_size = stage_context(context).config.transfer.batch_size
    warmup_steps = settings.disencdr_warmup_epochs * math.ceil((len(source) + len(target)) / batch_size)
    with context.strategy.scope():
        model = disencdr_from_rows(
            source["user"].to_numpy(), source["item"].to_numpy(), target["user"].to_numpy(), target["item"].to_numpy(),
            dataset.n_users, dataset.n_items(SOURCE), dataset.n_items(TARGET), settings.embedding_dim,
            layers=settings.disencdr_layers, dropout=settings.disencdr_dropout, beta=settings.disencdr_beta,
            rate=settings.disencdr_rate, seed=context.config.seed, warmup_steps=warmup_steps, name="disencdr",
        )
    context.reporter.status(
        f"disencdr: {dataset.n_users} users, {model.source_edges} + {model.target_edges} edges, "
        f"warm-up {settings.disencdr_warmup_epochs} epochs ({warmup_steps} steps)"
    )
    stage_context(context).fit(model, stage="disencdr", dataset=TwoDomainTriples(dataset))
    return model


def stage_context(context: MethodContext) -> MethodContext:
    """The context with transfer's batch size, epochs and patience replaced by the disencdr_* ones that are set."""
    settings = context.config.transfer
    overrides = {
        name: value
        for name, value in (
            ("batch_size", settings.disencdr_batch_size), ("epochs", settings.disencdr_epochs), ("patience", settings.disencdr_patience)
        )
        if value is not None
    }
    if not overrides:
        return context
    return dataclasses.replace(context, config=dataclasses.replace(context.config, transfer=dataclasses.replace(settings, **overrides)))
