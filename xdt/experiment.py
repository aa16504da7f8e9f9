"""`xdt run`: prepare → pretrain-source → transfer (every method) → evaluate → report, per seed."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xdt.config import ExperimentConfig
from xdt.data.prepare import is_up_to_date, prepare_dataset
from xdt.progress import Reporter, SilentReporter
from xdt.runs import RunDirectory
from xdt.significance import summarise_over_seeds
from xdt.tasks import get_task

if TYPE_CHECKING:
    from xdt.rating.experiment import RatingOutcome


@dataclass(frozen=True)
class ExperimentOutcome:
    """The runs one seed of an experiment produced, their results and the experiment report."""

    seed: int
    pretrain_run: RunDirectory
    transfer_runs: dict[str, RunDirectory]
    results: dict[str, dict[str, Any]]
    report: Path


def seed_configs(config: ExperimentConfig) -> list[ExperimentConfig]:
    """One config per seed of `seeds` and per cross-validation fold, each with its own prepared dataset."""
    variants = [config]
    if config.seeds:
        variants = [
            replace(config, seed=seed, seeds=[], dataset=replace(config.dataset, name=f"{config.dataset.name}-seed{seed}"))
            for seed in config.seeds
        ]
    folds = config.evaluate.folds
    if folds > 1:
        variants = [
            replace(variant, dataset=replace(variant.dataset, fold=fold, folds=folds, name=f"{variant.dataset.name}-fold{fold}"))
            for variant in variants
            for fold in range(folds)
        ]
    return variants


def run_experiment(
    config: ExperimentConfig, *, config_text: str, reporter: Reporter = SilentReporter()
) -> list[ExperimentOutcome] | list[RatingOutcome]:
    """Run every stage for every seed; a dataset is re-prepared only when its config changed."""
    return [run_seed(seeded, config_text=config_text, reporter=reporter) for seeded in seed_configs(config)]


def run_seed(config: ExperimentConfig, *, config_text: str, reporter: Reporter) -> ExperimentOutcome | RatingOutcome:
    """All stages for one seed, by the config's task (xdt.tasks)."""
    return get_task(config.task).run_seed(config, config_text=config_text, reporter=reporter)


def prepare_if_needed(config: ExperimentConfig, reporter: Reporter) -> None:
    """Prepare the dataset unless `data/<name>/` is up to date with the config."""
    if is_up_to_date(config):
        reporter.status(f"dataset {config.dataset.name}: up to date")
        return
    manifest = prepare_dataset(config, progress=lambda stage: reporter.status(f"prepare {config.dataset.name}: {stage}"))
    reporter.status(f"dataset {manifest['name']}: {manifest['users']:,} users prepared")


def aggregate_over_seeds(outcomes: list[ExperimentOutcome], metrics: list[str]) -> dict[str, dict[str, dict[str, tuple[float, float]]]]:
    """method → cohort (all, cold, warm) → metric → (mean, std over seeds)."""
    aggregated: dict[str, dict[str, dict[str, tuple[float, float]]]] = {}
    for method in outcomes[0].results:
        tests = [outcome.results[method]["test"] for outcome in outcomes]
        cohorts = ["all", *sorted(set.intersection(*(set(test["cohorts"]) for test in tests)))]
        aggregated[method] = {
            cohort: {
                metric: summarise_over_seeds([(test["all"] if cohort == "all" else test["cohorts"][cohort])[metric] for test in tests])
                for metric in metrics
            }
            for cohort in cohorts
        }
    return aggregated
