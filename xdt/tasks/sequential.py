"""task: sequential — next-item transformers over each user's time-ordered items, full-ranking evaluation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from xdt.tasks import ranking
from xdt.tasks.base import Task, Updater, no_reporter

if TYPE_CHECKING:
    from xdt.config import ExperimentConfig
    from xdt.data.dataset import PreparedDataset
    from xdt.progress import Reporter
    from xdt.runs import RunDirectory


def check_config(config: ExperimentConfig, source: str) -> None:
    """The sequence methods and settings (xdt.config.check_sequence_task)."""
    from xdt.config import check_sequence_task, check_single_device_runtime

    check_sequence_task(config, source=source)
    check_single_device_runtime(config, source=source)


def run_seed(config: ExperimentConfig, *, config_text: str, reporter: Reporter | None = None) -> Any:
    """Pretrain, fine-tune and evaluate every sequence method for one seed."""
    from xdt.sequential.experiment import run_sequential_experiment

    return run_sequential_experiment(config, config_text=config_text, reporter=reporter or no_reporter())


def evaluate_run(run: RunDirectory, config: ExperimentConfig, *, reporter: Reporter | None = None) -> dict[str, Any]:
    """Next-item full ranking of the held-out items."""
    from xdt.sequential.experiment import evaluate_sequential_run

    return evaluate_sequential_run(run, config, reporter=reporter or no_reporter())


def scorer(run: RunDirectory, config: ExperimentConfig, dataset: PreparedDataset) -> Any:
    """The next-item score after the user's whole history."""
    from xdt.sequential.recommendation import next_item_scorer

    return next_item_scorer(run, config, dataset)


def _update() -> Any:
    """xdt.sequential.update, imported lazily."""
    import xdt.sequential.update

    return xdt.sequential.update


# Sequential results have the ranking layout (methods × cohorts × metrics@k), so they print alike.
TASK = Task(
    name="sequential",
    description="next-item transformers (source pretraining, fine-tuning, a text bridge), full-ranking evaluation",
    model_run_kind="transfer",
    staged=False,
    check_config=check_config,
    run_seed=run_seed,
    evaluate_run=evaluate_run,
    scorer=scorer,
    results_tables=ranking.results_tables,
    outcome_tables=ranking.outcome_tables,
    example_recommendations=True,
    explainable=False,
    # The transformers (c2dsr's item graphs come from the training sequences: growing it is a retrain).
    updatable_methods=("seq_target_only", "seq_finetune", "text_bridge", "unisrec", "unisrec_ids"),
    updater=Updater(
        strategy=lambda config: _update().sequence_strategy(config),
        warm_start=lambda *arguments: _update().sequence_warm_start(*arguments),
        train=lambda *arguments: _update().sequence_train(*arguments),
    ),
)
