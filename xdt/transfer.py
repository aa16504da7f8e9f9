"""`xdt transfer`: train one target model per configured method, starting from a pretrain run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from xdt.collapse import Knobs, PairedValidation, collapse_warnings
from xdt.config import ExperimentConfig
from xdt.errors import XdtError
from xdt.evaluate import evaluate_model
from xdt.methods.context import MethodContext
from xdt.methods.popularity import train as train_popularity
from xdt.models.registry import get_method
from xdt.pretrain import SKIPPED, require_staged_task
from xdt.progress import Reporter, SilentReporter
from xdt.runs import STATUS_COMPLETE, RunDirectory, create_run, mark_resumed
from xdt.runtime import precision_policy, select_strategy
from xdt.session import check_same_data, load_model, open_dataset, record_environment, save_model
from xdt.train import seed_everything


def check_parent(parent: RunDirectory, method: str, *, needs_source_model: bool) -> None:
    """A transfer starts from a finished pretrain run, one that trained the source model if the method loads it."""
    info = parent.info()
    if info.get("kind") != "pretrain":
        raise XdtError(f"--from expects a pretrain-source run; {parent.path} is a {info.get('kind')} run")
    if info.get("status") != STATUS_COMPLETE:
        raise XdtError(f"Pretrain run {parent.path} is {info.get('status')}, not complete. Resume it first: xdt pretrain-source --resume {parent.path}")
    if needs_source_model and info.get("source_model") == SKIPPED:
        raise XdtError(
            f"{method} needs the pretrained source model, but pretrain run {parent.path} skipped training it "
            "(no method of its transfer.methods needed one). Train one with `xdt pretrain-source CONFIG` and pass it to --from."
        )


def transfer_method(
    config: ExperimentConfig,
    method: str,
    *,
    parent: RunDirectory,
    config_text: str,
    reporter: Reporter = SilentReporter(),
    resume: RunDirectory | None = None,
) -> RunDirectory:
    """Train one method into its own run directory (or continue `resume`)."""
    require_staged_task(config)
    entry = get_method(method)
    check_parent(parent, method, needs_source_model=entry.needs_source_model)
    dataset = open_dataset(config)
    check_same_data(parent, dataset)
    strategy = select_strategy(config.runtime.strategy, tpu=config.runtime.tpu)
    if resume is not None:
        mark_resumed(resume)
    run = resume or create_run(
        Path(config.runtime.runs_dir),
        config.experiment,
        kind="transfer",
        config_text=config_text,
        resolved=config.to_dict(),
        seed=config.seed,
        method=method,
        parent=parent,
    )
    record_environment(run, config, dataset, strategy)
    seed_everything(config.seed, deterministic=not config.runtime.jit_compile)
    with precision_policy(config.runtime.precision):
        with strategy.scope():
            source_model = load_model(parent) if entry.needs_source_model else None
        reporter.status(f"transfer method {method} ({entry.description}) → {run.path}")
        context = MethodContext(config, dataset, run, strategy, source_model, reporter)
        model = entry.trainer()(context)
    save_model(run, model)
    warnings = collapse_check(context, method, model, uses_source=entry.uses_source)
    for warning in warnings:
        reporter.status(f"[yellow]warning:[/yellow] {warning}")
    run.update_info(status=STATUS_COMPLETE, uses_source=entry.uses_source, needs_source_model=entry.needs_source_model, warnings=warnings)
    return run


def collapse_check(context: MethodContext, method: str, model: Any, *, uses_source: bool) -> list[str]:
    """`xdt.collapse` warnings for a trained method (none for methods with no training epochs, the baselines).

    The comparison with popularity uses the validation users the method could serve: all of them
    for a transfer method, the warm ones for a target-only method (a cold-start user is at
    popularity level there by construction).
    """
    history = [record for record in context.run.metrics_history() if "epoch" in record]
    if not history:
        return []
    users = context.validation_users("all" if uses_source else "warm")
    paired = None
    if len(users):
        metric = context.config.evaluate.validation_metric
        popularity = train_popularity(context)
        k = int(metric.split("@")[1])
        scored = [
            evaluate_model(scorer, context.dataset, split="valid", ks=[k], batch_size=context.config.evaluate.batch_size, users=users)[
                metric
            ].to_numpy()
            for scorer in (model.score_all, popularity.score_all)
        ]
        paired = PairedValidation(metric, *scored)
    settings = context.config.transfer
    knobs = Knobs(l2=settings.l2, epochs=settings.epochs, learning_rate=settings.optimizer.learning_rate, embedding_dim=settings.embedding_dim)
    return collapse_warnings(method, history=history, loss=settings.loss, paired=paired, knobs=knobs)


def transfer_all(
    config: ExperimentConfig, *, parent: RunDirectory, config_text: str, reporter: Reporter = SilentReporter()
) -> list[RunDirectory]:
    """Train every method of `transfer.methods`, one run each."""
    return [
        transfer_method(config, method, parent=parent, config_text=config_text, reporter=reporter) for method in config.transfer.methods
    ]
