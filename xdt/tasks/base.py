"""The Task protocol: what each task (ranking, rating, sequential) gives the task-agnostic stages.

A stage looks its task up once (`xdt.tasks.get_task(config.task)`) and calls these; it never
branches on the task name. Every callable imports TensorFlow lazily, so that looking a task up
and validating a config stay light.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from xdt.config import ExperimentConfig
    from xdt.data.dataset import PreparedDataset
    from xdt.progress import Reporter
    from xdt.runs import RunDirectory


@dataclass(frozen=True)
class Task:
    """One task's plug-in: validation, the whole experiment for one seed, evaluation, scoring, tables.

    - `model_run_kind`: the run kind that holds a trained target model (what evaluate/recommend accept).
    - `staged`: `xdt pretrain-source` and `xdt transfer` run its stages one at a time; otherwise
      `xdt run` trains everything in one go.
    - `check_config(config, source)`: task-specific validation (ConfigError naming the key).
    - `run_seed(config, config_text=, reporter=)`: every stage for one seed; returns an outcome.
    - `evaluate_run(run, config, reporter=)`: re-evaluate a run; returns its results.json payload.
    - `scorer(run, config, dataset)`: scores `(batch, n_target_items)` for user indices, for recommend.
    - `results_tables(results)`: what `xdt evaluate` prints for one run's results.
    - `outcome_tables(outcomes, config)`: what `xdt run` prints for its outcomes.
    - `example_recommendations`: `xdt run` ends with a few users' recommendations.
    - `explainable`: `xdt explain` and `recommend --explain` attribute its scores to history items (xdt.explain).
    - `updatable_methods`: the methods whose runs `xdt update` warm-starts on feedback (xdt.update).
    - `updater`: how those runs' models grow, warm-start and train on feedback (None when none is updatable).
    - `replayable`: `xdt replay` (xdt.replay) measures its updatable runs: it scores windows and retrains MF.
    """

    name: str
    description: str
    model_run_kind: str
    staged: bool
    check_config: Callable[[ExperimentConfig, str], None]
    run_seed: Callable[..., Any]
    evaluate_run: Callable[..., dict[str, Any]]
    scorer: Callable[[RunDirectory, ExperimentConfig, PreparedDataset], Callable[[Any], Any]]
    results_tables: Callable[[dict[str, Any]], Sequence[Any]]
    outcome_tables: Callable[[Sequence[Any], ExperimentConfig], Sequence[Any]]
    example_recommendations: bool
    explainable: bool
    updatable_methods: tuple[str, ...] = ()
    updater: Updater | None = None
    replayable: bool = False


@dataclass(frozen=True)
class Updater:
    """A task's part of `xdt update` (xdt.update does the task-agnostic rest: feedback, id maps, the run).

    - `strategy(config)`: the tf.distribute strategy the update runs under.
    - `warm_start(parent, run, config, grown, strategy)`: grow the parent's model to the grown
      data's ids and write the warm start as the update stage's epoch-0 checkpoint in `run`;
      returns what was done (recorded as run.json's `warm_start`).
    - `train(parent, run, config, grown, feedback_rows, strategy, reporter)`: train from the last
      checkpoint of `run` (the warm start, or a later epoch when resumed) and save `model.keras`;
      returns facts for run.json (what was replayed).
    """

    strategy: Callable[[ExperimentConfig], Any]
    warm_start: Callable[..., dict[str, Any]]
    train: Callable[..., dict[str, Any]]


def no_reporter() -> Reporter:
    """The silent reporter, imported lazily."""
    from xdt.progress import SilentReporter

    return SilentReporter()
