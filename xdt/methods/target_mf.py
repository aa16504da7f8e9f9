"""Target-only baseline: matrix factorisation trained on the target domain alone (`transfer.loss`)."""

from __future__ import annotations

from xdt.data.protocols import TARGET
from xdt.methods.context import MethodContext
from xdt.models.matrix_factorization import MatrixFactorization


def build_target_mf(context: MethodContext) -> MatrixFactorization:
    """A randomly initialised target MF of the source model's width."""
    dataset = context.dataset
    dim = context.source_model.embedding_dim if context.source_model is not None else context.config.pretrain.embedding_dim
    with context.strategy.scope():
        model = MatrixFactorization(dataset.n_users, dataset.n_items(TARGET), dim, l2=context.config.transfer.l2, name="target_mf")
        model.build()
    return model


def fit_target(
    context: MethodContext, model: MatrixFactorization, *, stage: str, freeze_user_epochs: int = 0, cohort: str = "warm"
) -> MatrixFactorization:
    """Train a target MF with early stopping on one validation cohort, and checkpoints.

    A target-only MF learns nothing for cold-start users (their rows are random), so by
    default it is validated on warm users only; fine-tuning validates on all users.
    """
    context.fit(model, stage=stage, cohort=cohort, freeze_user_epochs=freeze_user_epochs)
    return model


def train(context: MethodContext) -> MatrixFactorization:
    """Train MF on target training rows only."""
    return fit_target(context, build_target_mf(context), stage="target")
