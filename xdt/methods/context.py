"""What a transfer method's `train(context)` receives."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from xdt.config import ExperimentConfig
from xdt.data.dataset import PreparedDataset
from xdt.data.protocols import TARGET
from xdt.errors import XdtError
from xdt.evaluate import evaluate_model
from xdt.models.matrix_factorization import MatrixFactorization
from xdt.progress import Reporter
from xdt.runs import RunDirectory
from xdt.train import TrainingState, fit_pairwise


@dataclass(frozen=True)
class MethodContext:
    """Config, data, run folder, strategy and the pretrained source model."""

    config: ExperimentConfig
    dataset: PreparedDataset
    run: RunDirectory
    strategy: tf.distribute.Strategy
    source_model: MatrixFactorization | None
    reporter: Reporter

    def require_source_model(self, method: str) -> MatrixFactorization:
        """The pretrained source model, or a clear error for a method that needs one."""
        if self.source_model is None:
            raise XdtError(f"{method} needs a pretrained source model: run `xdt transfer CONFIG --from PRETRAIN_RUN`")
        return self.source_model

    def fit(
        self,
        model: keras.Model,
        *,
        stage: str,
        cohort: str = "all",
        dataset: object | None = None,
        freeze_user_epochs: int = 0,
    ) -> TrainingState:
        """Train on target-domain triples with the transfer settings, validated on one cohort (see `fit_pairwise`).

        `dataset` replaces the prepared dataset as the source of triples (anything with `bpr_triples`);
        only the prepared dataset's rows stream when above `runtime.max_in_memory_rows`.
        """
        return fit_pairwise(
            model,
            dataset=self.dataset if dataset is None else dataset,
            domain=TARGET,
            training=self.config.transfer,
            seed=self.config.seed,
            stage=stage,
            run=self.run,
            strategy=self.strategy,
            validate=self.validator(cohort),
            freeze_user_epochs=freeze_user_epochs,
            on_epoch=self.reporter.epoch,
            jit_compile=self.config.runtime.jit_compile,
            max_in_memory_rows=self.config.runtime.max_in_memory_rows,
        )

    def validation_users(self, cohort: str = "all") -> np.ndarray:
        """A seeded sample (at most `validation_users`) of the target validation users of a cohort.

        `cohort` is "all", "warm" (users with target training rows) or "cold" (users without).
        """
        users = self.dataset.evaluation_users("valid")
        if cohort != "all":
            users = users[self.dataset.cohort(users) == cohort]
        limit = self.config.transfer.validation_users
        if len(users) > limit:
            rng = np.random.default_rng([self.config.seed, 2])
            users = np.sort(rng.choice(users, size=limit, replace=False))
        return users

    def validator(self, cohort: str = "all") -> Callable[[keras.Model], float] | None:
        """Mean validation metric (evaluate.validation_metric) on the target valid split of a cohort.

        None when that cohort has no validation users: the stage then trains its full epochs.
        """
        users = self.validation_users(cohort)
        if len(users) == 0:
            who = {"all": "validation users", "cold": "cold-start validation users"}.get(cohort, f"{cohort} validation users")
            self.reporter.status(f"no {who}: training the full number of epochs without early stopping")
            return None
        metric = self.config.evaluate.validation_metric
        k = int(metric.split("@")[1])

        def validate(model: keras.Model) -> float:
            per_user = evaluate_model(
                model.score_all, self.dataset, split="valid", ks=[k], batch_size=self.config.evaluate.batch_size, users=users
            )
            return float(per_user[metric].mean())

        return validate
