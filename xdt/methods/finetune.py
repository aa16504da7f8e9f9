"""Fine-tuning: the target MF starts from the source model's user embeddings.

Users are indexed globally, so an overlapping user's source embedding becomes their initial
target embedding. With `transfer.freeze_user_epochs` (default: all epochs) the user table stays
frozen while target item embeddings are learned against it, so the embeddings of cold-start
users (who have no target rows and get no target gradient) stay aligned with the item space.
"""

from __future__ import annotations

from xdt.methods.context import MethodContext
from xdt.methods.target_mf import build_target_mf, fit_target
from xdt.models.matrix_factorization import MatrixFactorization


def train(context: MethodContext) -> MatrixFactorization:
    """Initialise the target user table from the source model, then train on target rows."""
    source_model = context.require_source_model("finetune")
    model = build_target_mf(context)
    model.user_embedding.embeddings.assign(source_model.user_embedding.embeddings)
    return fit_target(
        context, model, stage="finetune", freeze_user_epochs=context.config.transfer.freeze_user_epochs, cohort="all"
    )
