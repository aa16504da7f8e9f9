"""`xdt run`: prepare → pretrain-source → transfer (every method) → evaluate, in one call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from xdt.config import ExperimentConfig
from xdt.data.prepare import is_up_to_date, prepare_dataset
from xdt.progress import Reporter, SilentReporter
from xdt.runs import RunDirectory


@dataclass(frozen=True)
class ExperimentOutcome:
    """The runs one experiment produced and their results."""

    pretrain_run: RunDirectory
    transfer_runs: dict[str, RunDirectory]
    results: dict[str, dict[str, Any]]


def run_experiment(config: ExperimentConfig, *, config_text: str, reporter: Reporter = SilentReporter()) -> ExperimentOutcome:
    """Run every stage; the dataset is re-prepared only when its config changed."""
    if is_up_to_date(config):
        reporter.status(f"dataset {config.dataset.name}: up to date")
    else:
        manifest = prepare_dataset(config, progress=lambda stage: reporter.status(f"prepare: {stage}"))
        reporter.status(f"dataset {manifest['name']}: {manifest['users']:,} users prepared")
    from xdt.evaluate import evaluate_run
    from xdt.pretrain import pretrain_source
    from xdt.transfer import transfer_method

    pretrain_run = pretrain_source(config, config_text=config_text, reporter=reporter)
    transfer_runs: dict[str, RunDirectory] = {}
    results: dict[str, dict[str, Any]] = {}
    for method in config.transfer.methods:
        run = transfer_method(config, method, parent=pretrain_run, config_text=config_text, reporter=reporter)
        transfer_runs[method] = run
        results[method] = evaluate_run(run, reporter=reporter)
    return ExperimentOutcome(pretrain_run, transfer_runs, results)
