"""`xdt run`: prepare → pretrain-source → transfer (every method) → evaluate → report, per seed."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from xdt.config import ExperimentConfig
from xdt.data.prepare import is_up_to_date, prepare_dataset
from xdt.progress import Reporter, SilentReporter
from xdt.runs import RunDirectory
from xdt.significance import summarise_over_seeds


@dataclass(frozen=True)
class ExperimentOutcome:
    """The runs one seed of an experiment produced, their results and the experiment report."""

    seed: int
    pretrain_run: RunDirectory
    transfer_runs: dict[str, RunDirectory]
    results: dict[str, dict[str, Any]]
    report: Path


def seed_configs(config: ExperimentConfig) -> list[ExperimentConfig]:
    """One config per seed of `seeds` (each with its own prepared dataset), or the config itself."""
    if not config.seeds:
        return [config]
    return [
        replace(config, seed=seed, seeds=[], dataset=replace(config.dataset, name=f"{config.dataset.name}-seed{seed}"))
        for seed in config.seeds
    ]


def run_experiment(config: ExperimentConfig, *, config_text: str, reporter: Reporter = SilentReporter()) -> list[ExperimentOutcome]:
    """Run every stage for every seed; a dataset is re-prepared only when its config changed."""
    return [run_seed(seeded, config_text=config_text, reporter=reporter) for seeded in seed_configs(config)]


def run_seed(config: ExperimentConfig, *, config_text: str, reporter: Reporter) -> ExperimentOutcome:
    """All stages for one seed."""
    if is_up_to_date(config):
        reporter.status(f"dataset {config.dataset.name}: up to date")
    else:
        manifest = prepare_dataset(config, progress=lambda stage: reporter.status(f"prepare {config.dataset.name}: {stage}"))
        reporter.status(f"dataset {manifest['name']}: {manifest['users']:,} users prepared")
    from xdt.evaluate import evaluate_run
    from xdt.pretrain import pretrain_source
    from xdt.report import write_experiment_report, write_report
    from xdt.transfer import transfer_method

    pretrain_run = pretrain_source(config, config_text=config_text, reporter=reporter)
    transfer_runs: dict[str, RunDirectory] = {}
    results: dict[str, dict[str, Any]] = {}
    for method in config.transfer.methods:
        run = transfer_method(config, method, parent=pretrain_run, config_text=config_text, reporter=reporter)
        transfer_runs[method] = run
        results[method] = evaluate_run(run, reporter=reporter)
        write_report(run)
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
