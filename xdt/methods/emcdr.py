"""EMCDR: target MF for warm users plus a source→target embedding mapping for cold-start users.

Stage 1 trains target MF (`transfer.loss`). Stage 2 fits the mapping on overlapping users that have target
training rows (pairs of source and target user embeddings, MSE), holding out 10% of those
pairs to stop early. Stage 2 is short and restarts from scratch on resume.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from xdt.data.protocols import SOURCE, TARGET
from xdt.errors import DataError
from xdt.methods.context import MethodContext
from xdt.methods.target_mf import build_target_mf, fit_target
from xdt.models.emcdr import EmcdrModel
from xdt.train import make_optimizer


def mapping_users(context: MethodContext) -> np.ndarray:
    """Overlapping users with rows in the source and the target training data."""
    dataset = context.dataset
    source_users = np.unique(dataset.rows(SOURCE, "train")["user"].to_numpy())
    target_users = np.unique(dataset.rows(TARGET, "train")["user"].to_numpy())
    return np.intersect1d(source_users, target_users)


def train(context: MethodContext) -> EmcdrModel:
    """Train target MF, then the mapping; assemble one servable model."""
    source_model = context.require_source_model("emcdr")
    users = mapping_users(context)
    if len(users) < 2:
        raise DataError(f"emcdr needs overlapping users with target training rows to learn its mapping; found {len(users)}")
    target = fit_target(context, build_target_mf(context), stage="target")
    settings = context.config.transfer
    dataset = context.dataset
    keras.utils.set_random_seed(context.config.seed)
    with context.strategy.scope():
        model = EmcdrModel(dataset.n_users, dataset.n_items(TARGET), target.embedding_dim, settings.mapping, settings.mapping_hidden, name="emcdr")
        model.build()
        model.target.set_weights(target.get_weights())
        model.source_user_embedding.embeddings.assign(source_model.user_embedding.embeddings)
        known = (dataset.target_train_counts > 0).astype("float32")[:, None]
        model.has_target.embeddings.assign(known)
        model.target.trainable = False
        model.compile(optimizer=make_optimizer(settings.optimizer), loss="mse", jit_compile=context.config.runtime.jit_compile)
    rng = np.random.default_rng([context.config.seed, 3])
    users = users[rng.permutation(len(users))]
    targets = target.user_embedding.embeddings.numpy()[users]
    held_out = max(1, len(users) // 10)
    stopper = keras.callbacks.EarlyStopping(monitor="val_loss", patience=20, restore_best_weights=True)
    # tf.data rather than numpy input: Keras' numpy adapter logs a spurious NodeDef error on TF 2.21.
    history = model.fit(
        tf.data.Dataset.from_tensor_slices((users[held_out:].astype("int32"), targets[held_out:])).batch(256),
        validation_data=tf.data.Dataset.from_tensor_slices((users[:held_out].astype("int32"), targets[:held_out])).batch(256),
        epochs=settings.mapping_epochs,
        shuffle=False,
        verbose=0,
        callbacks=[stopper],
    )
    context.run.append_metrics(
        {
            "stage": "mapping",
            "epochs": len(history.history["loss"]),
            "loss": float(history.history["loss"][-1]),
            "valid_mse": float(min(history.history["val_loss"])),
            "pairs": int(len(users)),
        }
    )
    context.reporter.status(f"emcdr mapping: {len(users)} overlapping users, best held-out MSE {min(history.history['val_loss']):.4f}")
    return model
