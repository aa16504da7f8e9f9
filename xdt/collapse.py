"""After training: did a learned model collapse? Pure numpy over its validation metrics and loss curve.

Two symptoms, each a warning that names the settings to try rather than an error (a model at
popularity level can be the honest answer on some data):

- **No better than popularity.** The model's per-user validation metric minus popularity's on
  the same users has a mean within `NOISE_SE` standard errors of zero (or below it).
- **Memorised the training rows.** The final training loss fell below its objective's floor
  (BPR / sampled softmax 0.05, BCE 0.1 per row) while the validation metric fell from its best
  epoch, or with no validation split to notice it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

NOISE_SE = 2.0
LOSS_FLOORS = {"bpr": 0.05, "softmax": 0.05, "bce": 0.1}
NO_VALIDATION_KNOB = "a validation split to stop on (dataset.given_valid: leave_one_out for data without one)"


@dataclass(frozen=True)
class Knobs:
    """The training settings a collapse warning suggests changing, with their current values."""

    l2: float = 0.0
    epochs: int = 20
    learning_rate: float = 0.005
    embedding_dim: int = 32

    def advice(self) -> str:
        """The settings to try, each with the value the run used."""
        l2 = f"a larger transfer.l2 (now {self.l2:g})" if self.l2 else "transfer.l2 (now 0; the shipped CDRIB configs use 0.01)"
        return (
            f"Try {l2}; fewer transfer.epochs (now {self.epochs}) or a lower transfer.optimizer.learning_rate "
            f"(now {self.learning_rate:g}); a smaller transfer.embedding_dim (now {self.embedding_dim})"
        )


@dataclass(frozen=True)
class PairedValidation:
    """One metric of the model and of popularity on the same validation users."""

    metric: str
    model: np.ndarray
    popularity: np.ndarray

    def difference(self) -> tuple[float, float]:
        """Mean per-user difference (model − popularity) and its standard error."""
        gaps = np.asarray(self.model, dtype=np.float64) - np.asarray(self.popularity, dtype=np.float64)
        error = float(gaps.std(ddof=1) / np.sqrt(len(gaps))) if len(gaps) > 1 else float("inf")
        return float(gaps.mean()), error


def within_noise_of_popularity(method: str, paired: PairedValidation, knobs: Knobs = Knobs()) -> str | None:
    """A warning when the model's validation metric does not beat popularity's by NOISE_SE standard errors."""
    if len(paired.model) == 0:
        return None
    mean, error = paired.difference()
    if mean > NOISE_SE * error:
        return None
    return (
        f"{method} may have collapsed: validation {paired.metric} {float(np.mean(paired.model)):.4f} is within noise of popularity's "
        f"{float(np.mean(paired.popularity)):.4f} on the same {len(paired.model):,} users (difference {mean:+.4f} ± {error:.4f} s.e.; "
        f"more validation users would narrow it). {knobs.advice()}."
    )


def memorised_training_rows(method: str, history: Sequence[dict[str, Any]], loss: str, knobs: Knobs = Knobs()) -> str | None:
    """A warning when the last epoch's loss is under the objective's floor and validation fell or was absent."""
    epochs = [record for record in history if "epoch" in record and "loss" in record]
    if not epochs:
        return None
    last = epochs[-1]
    floor = LOSS_FLOORS[loss]
    if last["loss"] >= floor:
        return None
    scores = [record["valid_score"] for record in epochs if record.get("stage") == last.get("stage") and "valid_score" in record]
    stage = last.get("stage", method)
    if not scores:
        return (
            f"{method} may have collapsed: the {stage} training loss fell to {last['loss']:.4f} ({loss} floor {floor}) "
            f"with no validation split to stop on. {knobs.advice()}; {NO_VALIDATION_KNOB}."
        )
    best = max(scores)
    if scores[-1] >= best:
        return None
    return (
        f"{method} may have collapsed: the {stage} training loss fell to {last['loss']:.4f} ({loss} floor {floor}) while validation "
        f"fell from {best:.5f} to {scores[-1]:.5f}. {knobs.advice()}."
    )


def collapse_warnings(
    method: str, *, history: Sequence[dict[str, Any]], loss: str, paired: PairedValidation | None, knobs: Knobs = Knobs()
) -> list[str]:
    """Every collapse warning for one trained method (empty when it looks healthy)."""
    found = [memorised_training_rows(method, history, loss, knobs)]
    if paired is not None:
        found.append(within_noise_of_popularity(method, paired, knobs))
    return [warning for warning in found if warning is not None]
