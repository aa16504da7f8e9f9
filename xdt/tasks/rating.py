"""task: rating — explicit ratings (MAE / RMSE): xdt.rating's methods trained and scored in one run per seed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from xdt.tasks.base import Task, no_reporter

if TYPE_CHECKING:
    from xdt.config import ExperimentConfig
    from xdt.data.dataset import PreparedDataset
    from xdt.progress import Reporter
    from xdt.runs import RunDirectory


def check_config(config: ExperimentConfig, source: str) -> None:
    """The rating methods, protocol and settings (xdt.config.check_rating_task)."""
    from xdt.config import check_rating_task, check_single_device_runtime

    check_rating_task(config, source=source)
    check_single_device_runtime(config, source=source)


def run_seed(config: ExperimentConfig, *, config_text: str, reporter: Reporter | None = None) -> Any:
    """Every rating method for one seed, in one run."""
    from xdt.rating.experiment import run_rating_experiment

    return run_rating_experiment(config, config_text=config_text, reporter=reporter or no_reporter())


def evaluate_run(run: RunDirectory, config: ExperimentConfig, *, reporter: Reporter | None = None) -> dict[str, Any]:
    """MAE / RMSE by cohort, recomputed from the saved models."""
    from xdt.rating.experiment import evaluate_rating_run

    return evaluate_rating_run(run, config, reporter=reporter or no_reporter())


def scorer(run: RunDirectory, config: ExperimentConfig, dataset: PreparedDataset) -> Any:
    """The best-validation method's predicted rating."""
    from xdt.rating.recommendation import rating_scorer

    return rating_scorer(run, config, dataset)


def results_tables(results: dict[str, Any]) -> list[Any]:
    """The rating table of one run."""
    from xdt.rating.experiment import rating_table

    return [rating_table(results, title_suffix=f"seed {results['seed']}")]


def outcome_tables(outcomes: Sequence[Any], config: ExperimentConfig) -> list[Any]:
    """Per seed: the rating table and where the run and report are; over several seeds, mean ± std."""
    from xdt.rating.experiment import rating_seeds_table, rating_table

    tables: list[Any] = []
    for outcome in outcomes:
        tables.append(rating_table(outcome.results, title_suffix=f"seed {outcome.seed}"))
        tables.append(f"seed {outcome.seed} rating run: {outcome.run.path}\nreport: {outcome.report}")
    if len(outcomes) > 1:
        tables.append(rating_seeds_table(outcomes))
    return tables


TASK = Task(
    name="rating",
    description="explicit ratings: biased MF, EMCDR, PTUPCDR and mean baselines, MAE / RMSE",
    model_run_kind="rating",
    staged=False,
    check_config=check_config,
    run_seed=run_seed,
    evaluate_run=evaluate_run,
    scorer=scorer,
    results_tables=results_tables,
    outcome_tables=outcome_tables,
    example_recommendations=False,
    explainable=False,
)
