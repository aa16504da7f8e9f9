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


def no_reporter() -> Reporter:
    """The silent reporter, imported lazily."""
    from xdt.progress import SilentReporter

    return SilentReporter()
