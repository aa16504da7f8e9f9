"""task: ranking — implicit-feedback transfer: pretrain a source model, train each transfer method, full-ranking evaluation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from xdt.errors import ConfigError
from xdt.tasks.base import Task, Updater, no_reporter

if TYPE_CHECKING:
    from xdt.config import ExperimentConfig
    from xdt.data.dataset import PreparedDataset
    from xdt.experiment import ExperimentOutcome
    from xdt.progress import Reporter
    from xdt.runs import RunDirectory


def check_config(config: ExperimentConfig, source: str) -> None:
    """Every method and the fusion base are registered ranking methods."""
    from xdt.models.registry import FUSION_BASE_NAMES, METHOD_NAMES
    from xdt.typed_yaml import check_name

    for index, method in enumerate(config.transfer.methods):
        check_name(method, METHOD_NAMES, key=f"transfer.methods[{index}]", source=source)
    check_name(config.transfer.fusion_base, FUSION_BASE_NAMES, key="transfer.fusion_base", source=source)
    transfer = config.transfer
    disencdr_epochs = transfer.disencdr_epochs or transfer.epochs
    if "disencdr" in transfer.methods and transfer.disencdr_warmup_epochs >= disencdr_epochs:
        raise ConfigError(
            f"{source}: transfer.disencdr_warmup_epochs: the warm-up must end before the last epoch, or disencdr's shared "
            f"part never trains; expected fewer than {disencdr_epochs} (transfer.disencdr_epochs, else transfer.epochs). "
            f"Received: {transfer.disencdr_warmup_epochs}"
        )
    if config.runtime.strategy == "multi_worker":
        # emcdr's mapping trains through Keras' fit, which fails under MultiWorkerMirroredStrategy.
        uses = [f"transfer.methods[{index}]" for index, method in enumerate(config.transfer.methods) if method == "emcdr"]
        if config.transfer.fusion_base == "emcdr" and "fusion" in config.transfer.methods:
            uses.append("transfer.fusion_base")
        if uses:
            raise ConfigError(
                f"{source}: {', '.join(uses)}: emcdr cannot train under runtime.strategy: multi_worker "
                "(its mapping uses Keras' fit, which fails under MultiWorkerMirroredStrategy); drop it or use another strategy"
            )


def run_seed(config: ExperimentConfig, *, config_text: str, reporter: Reporter | None = None) -> ExperimentOutcome:
    """prepare → pretrain-source (skipped when no method loads the source model) → transfer and evaluate each method → reports."""
    from xdt.evaluate import evaluate_run
    from xdt.experiment import ExperimentOutcome, prepare_if_needed
    from xdt.models.registry import get_method
    from xdt.pretrain import pretrain_source
    from xdt.report import write_experiment_report, write_report
    from xdt.tracking import require_mlflow, track_run
    from xdt.transfer import transfer_method

    reporter = reporter or no_reporter()
    if config.tracking.mlflow:
        require_mlflow()  # a missing extra fails before training, not after it
    prepare_if_needed(config, reporter)
    if config.evaluate.sampled_negatives:
        from xdt.sampled_ranking import check_sampled_evaluation
        from xdt.session import open_dataset

        check_sampled_evaluation(open_dataset(config), config.evaluate.sampled_negatives)
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


def evaluate_run(run: RunDirectory, config: ExperimentConfig, *, reporter: Reporter | None = None) -> dict[str, Any]:
    """Full ranking by cohort, sampled ranking where configured, the source domain for dual-target models."""
    from xdt.evaluate import evaluate_ranking_run

    return evaluate_ranking_run(run, config, reporter=reporter or no_reporter())


def scorer(run: RunDirectory, config: ExperimentConfig, dataset: PreparedDataset) -> Any:
    """The trained model's `score_all`."""
    from xdt.session import load_model

    return load_model(run).score_all


def _update() -> Any:
    """xdt.update, imported lazily (it imports pandas and the data layer)."""
    import xdt.update

    return xdt.update


def results_tables(results: dict[str, Any]) -> list[Any]:
    """The full-ranking table, and the sampled one where the run has sampled metrics."""
    from xdt.tables import results_table, sampled_table

    tables = [results_table({results["method"]: results}, ks=results["ks"])]
    if "sampled" in results:
        tables.append(sampled_table({results["method"]: results}, ks=results["ks"]))
    return tables


def outcome_tables(outcomes: Sequence[Any], config: ExperimentConfig) -> list[Any]:
    """Per seed: every method's table (and sampled table); over several seeds, mean ± std."""
    from xdt.experiment import aggregate_over_seeds
    from xdt.tables import headline_k, results_table, sampled_table, seeds_table

    ks = config.evaluate.ks
    tables: list[Any] = []
    for outcome in outcomes:
        dataset = next(iter(outcome.results.values()))["dataset"]
        tables.append(results_table(outcome.results, ks=ks, title_suffix=f"{dataset}, seed {outcome.seed}"))
        if any("sampled" in results for results in outcome.results.values()):
            tables.append(sampled_table(outcome.results, ks=ks, title_suffix=f"{dataset}, seed {outcome.seed}"))
    if len(outcomes) > 1:
        k = headline_k(ks)
        metrics = [f"ndcg@{k}", f"recall@{k}", f"hr@{k}", "mrr"]
        runs = [next(iter(outcome.results.values()))["dataset"] for outcome in outcomes]
        tables.append(seeds_table(aggregate_over_seeds(outcomes, metrics), metrics, runs=runs))
    return tables


TASK = Task(
    name="ranking",
    description="implicit-feedback transfer: source pretraining, transfer methods, full-ranking evaluation",
    model_run_kind="transfer",
    staged=True,
    check_config=check_config,
    run_seed=run_seed,
    evaluate_run=evaluate_run,
    scorer=scorer,
    results_tables=results_tables,
    outcome_tables=outcome_tables,
    example_recommendations=True,
    explainable=True,
    updatable_methods=("target_mf", "finetune", "cmf"),  # the methods whose model is a MatrixFactorization
    updater=Updater(
        strategy=lambda config: _update().mf_strategy(config),
        warm_start=lambda *arguments: _update().mf_warm_start(*arguments),
        train=lambda *arguments: _update().mf_train(*arguments),
    ),
    replayable=True,
)
