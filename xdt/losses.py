"""Implicit-feedback ranking losses over candidate scores: the positive item in column 0, then k sampled negatives.

Each loss maps scores `(batch, 1 + k)` to per-example losses `(batch, 1)`; the trailing
dimension of 1 keeps per-replica loss scaling correct under `tf.distribute` (see
ARCHITECTURE.md §8). With k = 1, softmax equals BPR: −log softmax(s₀, s₁)₀ = −log σ(s₀ − s₁).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from keras import ops


def bpr_loss(scores: Any) -> Any:
    """Bayesian personalised ranking averaged over the negatives: mean_j −log σ(s₀ − s_j)."""
    margins = scores[:, :1] - scores[:, 1:]
    return ops.mean(-ops.log_sigmoid(margins), axis=-1, keepdims=True)


def binary_cross_entropy_loss(scores: Any) -> Any:
    """Pointwise binary cross-entropy: −log σ(s₀) − Σ_j log σ(−s_j)."""
    return -ops.log_sigmoid(scores[:, :1]) - ops.sum(ops.log_sigmoid(-scores[:, 1:]), axis=-1, keepdims=True)


def sampled_softmax_loss(scores: Any) -> Any:
    """Sampled softmax of the positive against its negatives: −log softmax(s)₀ = logsumexp(s) − s₀ (with k = 1, BPR)."""
    return ops.logsumexp(scores, axis=-1, keepdims=True) - scores[:, :1]


RANKING_LOSSES: dict[str, Callable[[Any], Any]] = {
    "bpr": bpr_loss,
    "bce": binary_cross_entropy_loss,
    "softmax": sampled_softmax_loss,
}


def ranking_loss(name: str) -> Callable[[Any, Any], Any]:
    """The named loss as a Keras loss `(y_true, y_pred)`; `y_true` is unused (zeros `(batch, 1)`)."""
    if name not in RANKING_LOSSES:
        raise ValueError(f"Expected loss in {sorted(RANKING_LOSSES)}. Received: loss={name!r}")
    loss = RANKING_LOSSES[name]

    def keras_loss(y_true: Any, y_pred: Any) -> Any:
        # float32 whatever the compute dtype: a half-precision log-sigmoid/softmax underflows.
        return loss(ops.cast(y_pred, "float32"))

    keras_loss.__name__ = f"{name}_loss"
    return keras_loss
