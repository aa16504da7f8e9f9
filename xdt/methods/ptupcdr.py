"""PTUPCDR for implicit ranking: target MF for warm users, a meta-learned personal bridge for cold-start users.

Stage 1 trains target MF (as emcdr does). Stage 2 trains only the meta-network,
task-oriented: the bridged source embedding of each overlapping user with target training
rows is scored against the frozen target item embeddings with the target ranking loss
(`transfer.loss`; Zhu et al., WSDM 2022, with a ranking loss in place of their rating MSE).
Stage 2 runs through `fit_pairwise` on the target rows of those users, so it has per-epoch
checkpoints, exact resume and early stopping on the target validation split (whose cold-start
users are served by the bridge).
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from xdt.data.dataset import PreparedDataset
from xdt.data.protocols import SOURCE, TARGET
from xdt.errors import DataError
from xdt.methods.context import MethodContext
from xdt.methods.emcdr import mapping_users
from xdt.methods.target_mf import build_target_mf, fit_target
from xdt.models.ptupcdr import PtupcdrModel


def padded_histories(dataset: PreparedDataset, domain: str, length: int, *, pad: int | None = None) -> np.ndarray:
    """Each user's most recent `length` training items of `domain`, `(n_users, length)`, padded with `pad`.

    `pad` defaults to the domain's item count (one past the last item). Rows are ordered by
    timestamp where the data has one (ties and untimed data keep file order).
    """
    if length < 1:
        raise ValueError(f"Expected length >= 1. Received: length={length}")
    pad = dataset.n_items(domain) if pad is None else pad
    rows = dataset.rows(domain, "train")
    order = np.lexsort((np.arange(len(rows)), rows["timestamp"].to_numpy(), rows["user"].to_numpy()))
    users = rows["user"].to_numpy()[order]
    items = rows["item"].to_numpy()[order]
    histories = np.full((dataset.n_users, length), pad, dtype=np.int32)
    if len(users) == 0:
        return histories
    starts = np.searchsorted(users, users, side="left")
    ends = np.searchsorted(users, users, side="right")
    # Position counted back from each user's newest row: 0 for the newest, 1 for the one before …
    from_newest = ends - 1 - np.arange(len(users))
    keep = from_newest < length
    # Oldest kept item first; worked value: 3 kept of 5 rows → columns 0, 1, 2 for rows 3, 4, 5.
    column = np.minimum(ends - starts, length) - 1 - from_newest
    histories[users[keep], column[keep]] = items[keep]
    return histories


def restrict_target_training(dataset: PreparedDataset, users: np.ndarray) -> PreparedDataset:
    """The same dataset with target training rows kept only for `users` (what stage 2 trains on)."""
    frame = dataset.interactions
    is_target_train = (frame["domain"] == TARGET).to_numpy() & (frame["split"] == "train").to_numpy()
    keep = ~is_target_train | np.isin(frame["user"].to_numpy(), users)
    return dataclasses.replace(dataset, interactions=frame.loc[keep])


def train(context: MethodContext) -> PtupcdrModel:
    """Train target MF, then the meta-network on overlapping users; assemble one servable model."""
    source_model = context.require_source_model("ptupcdr")
    users = mapping_users(context)
    if len(users) < 2:
        raise DataError(f"ptupcdr needs overlapping users with target training rows to train its meta-network; found {len(users)}")
    target = fit_target(context, build_target_mf(context), stage="target")
    settings = context.config.transfer
    dataset = context.dataset
    keras.utils.set_random_seed(context.config.seed)
    with context.strategy.scope():
        model = PtupcdrModel(
            dataset.n_users,
            dataset.n_items(SOURCE),
            dataset.n_items(TARGET),
            target.embedding_dim,
            history_length=settings.history_length,
            meta_dim=settings.meta_dim,
            name="ptupcdr",
        )
        model.build()
        model.set_tables(
            source_model,
            target,
            padded_histories(dataset, SOURCE, settings.history_length),
            dataset.target_train_counts > 0,
        )
        model.target.trainable = False
    context.reporter.status(f"ptupcdr meta-network: {len(users)} overlapping users with target training rows")
    context.fit(model, stage="meta", dataset=restrict_target_training(dataset, users), cohort="cold")
    return model
