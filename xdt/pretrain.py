"""`xdt pretrain-source`: train the source-domain model and save its user/item representations."""

from __future__ import annotations

from pathlib import Path

from xdt.config import ExperimentConfig
from xdt.data.dataset import PreparedDataset
from xdt.data.protocols import SOURCE
from xdt.errors import XdtError
from xdt.models.lightgcn import LightGCN, lightgcn_from_rows
from xdt.models.matrix_factorization import MatrixFactorization
from xdt.progress import Reporter, SilentReporter
from xdt.runs import STATUS_COMPLETE, RunDirectory, create_run, mark_resumed
from xdt.runtime import precision_policy, select_strategy
from xdt.session import open_dataset, record_environment, save_model
from xdt.train import fit_pairwise, seed_everything

SKIPPED = "skipped"


def require_staged_task(config: ExperimentConfig) -> None:
    """pretrain-source and transfer run one stage of a staged task (xdt.tasks); the others train in `xdt run`."""
    from xdt.tasks import get_task, staged_task_names

    if not get_task(config.task).staged:
        raise XdtError(
            f"task: {config.task} runs all its stages in `xdt run`; pretrain-source and transfer are for task: {', '.join(staged_task_names())}"
        )


def pretrain_source(
    config: ExperimentConfig,
    *,
    config_text: str,
    reporter: Reporter = SilentReporter(),
    resume: RunDirectory | None = None,
    train_model: bool = True,
) -> RunDirectory:
    """Train `pretrain.model` on the source domain (`pretrain.loss`, `pretrain.negatives`) for `pretrain.epochs` epochs; `resume` continues a killed run.

    `lightgcn` is saved as an MF whose tables are its propagated embeddings (the same scores), so
    every transfer method starts from a LightGCN source model as it does from an MF one.

    `train_model=False` (what `xdt run` asks when no method of `transfer.methods` loads the source
    model) writes the same run directory, which the transfer runs name as their parent, without
    training: run.json says `source_model: skipped`, and a method that needs the model refuses it.
    """
    require_staged_task(config)
    dataset = open_dataset(config)
    strategy = select_strategy(config.runtime.strategy, tpu=config.runtime.tpu)
    if resume is not None:
        mark_resumed(resume)
    run = resume or create_run(
        Path(config.runtime.runs_dir),
        config.experiment,
        kind="pretrain",
        config_text=config_text,
        resolved=config.to_dict(),
        seed=config.seed,
        method=config.pretrain.model,
    )
    record_environment(run, config, dataset, strategy)
    if not train_model:
        reporter.status(f"no method of transfer.methods uses the source model: pretraining skipped → {run.path}")
        run.write_json("results.json", {"stage": "pretrain", "skipped": "no method of transfer.methods needs the source model"})
        run.update_info(status=STATUS_COMPLETE, source_model=SKIPPED)
        return run
    seed_everything(config.seed, deterministic=not config.runtime.jit_compile)
    with precision_policy(config.runtime.precision):
        with strategy.scope():
            model = source_model(config, dataset)
        reporter.status(f"pretraining {config.pretrain.model} on the source domain → {run.path}")
        state = fit_pairwise(
            model,
            dataset=dataset,
            domain=SOURCE,
            training=config.pretrain,
            seed=config.seed,
            stage="pretrain",
            run=run,
            strategy=strategy,
            validate=None,
            on_epoch=reporter.epoch,
            jit_compile=config.runtime.jit_compile,
            max_in_memory_rows=config.runtime.max_in_memory_rows,
        )
        if isinstance(model, LightGCN):
            with strategy.scope():
                model = model.to_matrix_factorization(name="source_mf")
    save_model(run, model)
    run.write_json("results.json", {"stage": "pretrain", "epochs": state.epoch, "final_loss": run.metrics_history()[-1]["loss"]})
    run.update_info(status=STATUS_COMPLETE)
    return run


def source_model(config: ExperimentConfig, dataset: PreparedDataset) -> MatrixFactorization | LightGCN:
    """The untrained `pretrain.model` over the source domain (LightGCN's graph: the source training rows)."""
    settings = config.pretrain
    if settings.model == "lightgcn":
        rows = dataset.rows(SOURCE, "train")
        users, items = rows["user"].to_numpy(), rows["item"].to_numpy()
        return lightgcn_from_rows(
            users, items, dataset.n_users, dataset.n_items(SOURCE), settings.embedding_dim,
            layers=settings.graph_layers, l2=settings.l2, name="source_lightgcn",
        )
    model = MatrixFactorization(dataset.n_users, dataset.n_items(SOURCE), settings.embedding_dim, l2=settings.l2, name="source_mf")
    model.build()
    return model
