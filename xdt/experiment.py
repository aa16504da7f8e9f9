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
from xdt.tracking import require_mlflow, track_run

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
    """All stages for one seed (task: rating trains and scores every rating method into one run)."""
    if config.task == "rating":
        from xdt.rating.experiment import run_rating_experiment

        return run_rating_experiment(config, config_text=config_text, reporter=reporter)
    if config.task == "sequential":
        from xdt.sequential.experiment import run_sequential_experiment

        return run_sequential_experiment(config, config_text=config_text, reporter=reporter)
    if config.tracking.mlflow:
        require_mlflow()  # a missing extra fails before training, not after it
    if is_up_to_date(config):
        reporter.status(f"dataset {config.dataset.name}: up to date")
    else:
        manifest = prepare_dataset(config, progress=lambda stage: reporter.status(f"prepare {config.dataset.name}: {stage}"))
        reporter.status(f"dataset {manifest['name']}: {manifest['users']:,} users prepared")
    from xdt.evaluate import evaluate_run
    from xdt.pretrain import pretrain_source
    from xdt.report import write_experiment_report, write_report
    from xdt.transfer import transfer_method

    if config.evaluate.sampled_negatives:
        from xdt.sampled_ranking import check_sampled_evaluation
        from xdt.session import open_dataset

        check_sampled_evaluation(open_dataset(config), config.evaluate.sampled_negatives)
    from xdt.models.registry import get_method

    needs_source_model = any(get_method(method).needs_source_model for method in config.transfer.methods)
    pretrain_run = pretrain_source(config, config_text=config_text, reporter=reporter, train_model=needs_source_model)
    track_run(pretrain_run, config.tracking)
    transfer_runs: dict[str, RunDirectory] = {}
    results: dict[str, dict[str, Any]] = {}
    for method in config.transfer.methods:
        run = transfer_method(config, method, parent=pretrain_run, config_text=config_text, reporter=reporter)
        transfer_runs[method] = run
        results[method] = evaluate_run(run, reporter=reporter)
        write_report(run)
        track_run(run, config.tracking)
    report = write_experiment_report(transfer_runs, pretrain_run.path / "experiment")
    return ExperimentOutcome(config.seed, pretrain_run, transfer_runs, results, report)


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
