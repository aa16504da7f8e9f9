"""`xdt update`: a new run warm-started from a trained run's model, trained on feedback rows.

What every task shares lives here (reading and cleaning the feedback, growing the id maps,
publishing the grown data, the run); the model's part is the task's `Updater` (`Task.updater`):
the MF family's below, the sequence transformers' in xdt.sequential.update.

The feedback file is read by the existing readers and cleaned like a target domain (missing
values, rating range, duplicates, rating threshold; no k-core, which would drop a new user's
first rows), every dropped row counted. Feedback users and items the run's data does not know
grow the id maps at their ends, so every old id keeps its index and its embedding row byte for
byte. A user already known (say, from the source domain only) keeps the row the method gave it
(finetune: the transferred source vector); a user new to both domains starts at the mean user
row, a new item at the mean item row and bias (MF has no text bridge to start one from its title).

The grown data (old rows as they were, feedback rows as target training rows) is published inside
the new run, `RUN/data/<dataset>/`, and the run's resolved config points there, so `xdt
recommend`, `xdt export` and `xdt evaluate` serve and score the updated run like any other.

MF training goes through `xdt.train.fit_pairwise` (stage `update`, `update.epochs` epochs, no early
stopping): the feedback rows plus `update.replay_ratio` replayed old target training rows per
feedback row (a seeded draw), so that the model does not forget. The optimiser starts from the
parent's last checkpoint (Adam moments, step count), padded with zero rows for the new ids; the
warm start is written as the checkpoint of epoch 0, so a killed update resumes exactly
(`xdt update --resume`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from xdt.config import DomainConfig, ExperimentConfig
from xdt.data.dataset import PreparedDataset, load_dataset
from xdt.data.prepare import DATA_FILES, MANIFEST, DomainFrames, order_rows, publish, read_real_domain, write_interactions
from xdt.data.protocols import TARGET
from xdt.errors import XdtError
from xdt.progress import Reporter, SilentReporter
from xdt.runs import STATUS_COMPLETE, RunDirectory, create_run, file_sha256, mark_resumed, write_json_atomic

STAGE = "update"
READER_BY_SUFFIX = {".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".jsonl": "jsonl", ".json": "jsonl", ".inter": "recbole"}
TABLES = ("user_embedding", "item_embedding", "item_bias")
FEEDBACK_ROWS = "feedback.parquet"  # the update's feedback rows as indices of the grown data (user, item, rating, timestamp)


def feedback_reader(path: Path, reader: str | None) -> str:
    """The reader for a feedback file: the one named, else the one its suffix implies (.gz aside)."""
    if reader is not None:
        return reader
    suffix = Path(path.name.removesuffix(".gz")).suffix.lower()
    if suffix not in READER_BY_SUFFIX:
        raise XdtError(
            f"--feedback {path}: cannot tell the format from the suffix {suffix or '(none)'!r}. Expected one of "
            f"{', '.join(READER_BY_SUFFIX)} (optionally .gz), or name it with --reader."
        )
    return READER_BY_SUFFIX[suffix]


def read_feedback(config: ExperimentConfig, path: Path, reader: str | None, options: dict[str, Any]) -> DomainFrames:
    """The feedback rows, read and cleaned as the target domain would be (without k-core), drops counted."""
    target_name = config.dataset.target.name if config.dataset.target is not None else TARGET
    domain = DomainConfig(
        name=target_name,
        reader=feedback_reader(path, reader),
        path=str(path),
        options=options,
        rating_range=config.dataset.target.rating_range if config.dataset.target is not None else None,
    )
    dataset = replace(config.dataset, cleaning=replace(config.dataset.cleaning, user_core=0, item_core=0))
    return read_real_domain(domain, dataset)


def check_parent(parent: RunDirectory, config: ExperimentConfig) -> None:
    """Only finished runs of a task's updatable methods (ranking: the MF family) can be updated; say which are."""
    from xdt.tasks import TASK_NAMES, get_task

    info = parent.info()
    task = get_task(config.task)
    supported = "; ".join(
        f"task: {name} runs of {', '.join(get_task(name).updatable_methods)}" for name in TASK_NAMES if get_task(name).updatable_methods
    )
    if info.get("kind") != task.model_run_kind or info.get("method") not in task.updatable_methods:
        found = f"a {info.get('method')} run" if info.get("kind") == task.model_run_kind else f"a {info.get('kind')} run"
        raise XdtError(f"xdt update supports {supported}; {parent.path} is {found} of task: {config.task}")
    if info.get("status") != STATUS_COMPLETE:
        raise XdtError(f"Run {parent.path} is {info.get('status')}, not complete; only a finished run can be updated")


def grow(dataset: PreparedDataset, feedback: DomainFrames) -> tuple[PreparedDataset, pd.DataFrame, dict[str, Any]]:
    """The dataset with the feedback as target training rows and the id maps grown; the new rows; counts.

    The prepared data keeps one row per (user, item) pair: a feedback pair it already trains on
    is dropped and counted; one it holds out (a valid or test row, as when a replay feeds back
    the test split's time windows) becomes a training row, counted as from_holdout.
    """
    frame = feedback.interactions
    raw_users = feedback.raw_users[frame["user"].to_numpy(np.int64)].astype(str)
    raw_items = feedback.raw_items[frame["item"].to_numpy(np.int64)].astype(str)
    users, new_users = _extend(dataset.raw_users.astype(str), raw_users)
    items_map = dataset.items(TARGET)
    items, new_items = _extend(items_map["raw_item"].to_numpy(dtype=object).astype(str), raw_items)
    timestamps = frame["timestamp"].astype("Int64").fillna(-1).to_numpy(np.int64)
    rows = pd.DataFrame(
        {
            "domain": TARGET,
            "user": users.astype(np.int32),
            "item": items.astype(np.int32),
            "rating": frame["rating"].to_numpy(np.float32),
            "timestamp": timestamps,
            "split": "train",
        }
    )
    n_items = len(items_map) + len(new_items)
    keys = rows["user"].to_numpy(np.int64) * n_items + rows["item"].to_numpy(np.int64)
    interactions = dataset.interactions
    is_target = (interactions["domain"] == TARGET).to_numpy()
    old_keys = np.where(is_target, interactions["user"].to_numpy(np.int64) * n_items + interactions["item"].to_numpy(np.int64), -1)
    trained = np.isin(keys, old_keys[(interactions["split"] == "train").to_numpy()])
    held_out = is_target & (interactions["split"] != "train").to_numpy() & np.isin(old_keys, keys[~trained])
    rows = rows[~trained].reset_index(drop=True)
    interactions = interactions[~held_out]
    raw_user_map = np.concatenate([dataset.raw_users, np.asarray(new_users, dtype=object)])
    new_item_rows = pd.DataFrame({"item": np.arange(len(items_map), len(items_map) + len(new_items), dtype=np.int32), "raw_item": new_items})
    if "title" in items_map.columns:
        titles = _titles(feedback.items)
        new_item_rows["title"] = [titles.get(item, "") for item in new_items]
    grown = PreparedDataset(
        path=dataset.path,
        manifest=dataset.manifest,
        interactions=pd.concat([interactions, rows], ignore_index=True),
        raw_users=raw_user_map,
        source_items=dataset.source_items,
        target_items=pd.concat([items_map, new_item_rows], ignore_index=True),
    )
    drops = list(feedback.drops)
    if trained.any():
        drops.append({"domain": TARGET, "step": "already_in_data", "reason": "(user, item) pairs the run already trained on", "rows": int(trained.sum())})
    counts = {
        "rows_read": int(feedback.rows_read),
        "rows_added": len(rows),
        "from_holdout": int(held_out.sum()),
        "new_users": len(new_users),
        "new_items": len(new_items),
        "drops": drops,
        "input_lines": feedback.input_lines,
    }
    return grown, rows, counts


def _extend(known: np.ndarray, raw: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Indices of raw ids in `known`, ids not in it appended in first-seen order; the appended ids."""
    index = pd.Index(known)
    positions = index.get_indexer(raw)
    unknown = list(dict.fromkeys(raw[positions < 0].tolist()))
    if unknown:
        extra = pd.Index(unknown).get_indexer(raw[positions < 0])
        positions[positions < 0] = len(known) + extra
    return positions, unknown


def _titles(items: pd.DataFrame | None) -> dict[str, str]:
    """Raw item id → title from a reader's items frame (empty without one)."""
    if items is None or "title" not in items.columns:
        return {}
    return dict(zip(items["item"].astype(str), items["title"].astype(str)))


def publish_grown(grown: PreparedDataset, folder: Path, feedback: dict[str, Any]) -> PreparedDataset:
    """Write the grown dataset (manifest with a new content hash and the feedback facts) and load it back."""
    interactions = order_rows(grown.interactions)
    manifest = {**grown.manifest, "users": int(grown.n_users), "feedback": feedback, "content_hash": _content_hash(interactions)}

    def write(staging: Path) -> None:
        write_interactions(interactions, staging / "interactions.parquet")
        pd.DataFrame({"user": np.arange(grown.n_users, dtype=np.int32), "raw_user": grown.raw_users.astype(str)}).to_parquet(
            staging / "users.parquet", index=False
        )
        grown.source_items.to_parquet(staging / "items_source.parquet", index=False)
        grown.target_items.to_parquet(staging / "items_target.parquet", index=False)
        manifest["files"] = {name: file_sha256(staging / name) for name in DATA_FILES}
        write_json_atomic(staging / MANIFEST, manifest)

    folder.parent.mkdir(parents=True, exist_ok=True)
    publish(folder, write)
    return load_dataset(folder)


def _content_hash(interactions: pd.DataFrame) -> str:
    """The prepared data's content hash, computed as `xdt prepare` computes it."""
    content = hashlib.sha256()
    for column in ("user", "item", "rating", "timestamp"):
        content.update(np.ascontiguousarray(interactions[column].to_numpy()).tobytes())
    content.update(interactions["is_target"].to_numpy().tobytes())
    content.update(interactions["split"].to_numpy().astype(np.int8).tobytes())
    return content.hexdigest()[:16]


def replay_mix(dataset: PreparedDataset, feedback_rows: pd.DataFrame, ratio: float, seed: int) -> PreparedDataset:
    """The training view of an update: the feedback rows plus round(ratio × their count) old target training rows.

    The old rows are a seeded draw without replacement (all of them when fewer are available).
    """
    old = dataset.rows(TARGET, "train")
    keys = feedback_rows["user"].to_numpy(np.int64) * dataset.n_items(TARGET) + feedback_rows["item"].to_numpy(np.int64)
    old_keys = old["user"].to_numpy(np.int64) * dataset.n_items(TARGET) + old["item"].to_numpy(np.int64)
    old = old[~np.isin(old_keys, keys)]
    count = min(len(old), int(round(ratio * len(feedback_rows))))
    drawn = np.sort(np.random.default_rng([seed, 20]).choice(len(old), size=count, replace=False))
    mixed = pd.concat([feedback_rows.assign(split="train", domain=TARGET), old.iloc[drawn]], ignore_index=True)
    return replace(dataset, interactions=mixed[dataset.interactions.columns])


def grow_model(model: Any, n_users: int, n_items: int) -> Any:
    """A MatrixFactorization with the old rows of every table copied exactly and new rows at the mean."""
    from xdt.models.matrix_factorization import MatrixFactorization

    grown = MatrixFactorization(n_users, n_items, model.embedding_dim, l2=model.l2, name=model.name)
    grown.build()
    for table, size in zip(TABLES, (n_users, n_items, n_items)):
        old = getattr(model, table).embeddings.numpy()
        mean = old.mean(axis=0, keepdims=True)
        getattr(grown, table).embeddings.assign(np.concatenate([old, np.repeat(mean, size - len(old), axis=0)]))
    return grown


def parent_optimizer_state(parent: RunDirectory) -> tuple[dict[str, np.ndarray] | None, str]:
    """The optimiser variables of the parent's last trained epoch (its last stage), and where they came from."""
    stages = [record["stage"] for record in parent.metrics_history() if "epoch" in record and "stage" in record]
    if not stages:
        return None, "fresh (the parent run has no trained epochs)"
    state_file = parent.checkpoints / f"{stages[-1]}-state.json"
    if not state_file.is_file():
        return None, f"fresh ({state_file} is missing)"
    checkpoint = json.loads(state_file.read_text())["checkpoint"]
    saved = parent.checkpoints / checkpoint / "optimizer.npz"
    if not saved.is_file():
        return None, f"fresh ({saved} is missing)"
    with np.load(saved) as arrays:
        return {name: arrays[name] for name in arrays.files}, f"{parent.path.name}/checkpoints/{checkpoint}"


def warm_optimizer(model: Any, saved: dict[str, np.ndarray] | None) -> str:
    """Assign the parent's optimiser variables to `model.optimizer` (built), new rows zero; what was done.

    The parent's optimiser covered either every table or (finetune with frozen users) the item
    tables only; which one is told by the count of its variables. The user table then starts
    with zero moments, as it is trained in the update.
    """
    variables = model.optimizer.variables
    slots = (len(variables) - 2) // len(TABLES)
    if saved is None:
        return "fresh"
    arrays = [saved[f"v{index}"] for index in range(len(saved))]
    covered = {len(TABLES) * slots + 2: TABLES, (len(TABLES) - 1) * slots + 2: TABLES[1:]}.get(len(arrays))
    if covered is None:
        return f"fresh (the parent's optimiser has {len(arrays)} variables, expected {len(TABLES) * slots + 2})"
    for index in (0, 1):
        variables[index].assign(arrays[index])
    for table_index, table in enumerate(TABLES):
        for slot in range(slots):
            target = variables[2 + table_index * slots + slot]
            if table not in covered:
                target.assign(np.zeros(target.shape, dtype=target.dtype))
                continue
            old = arrays[2 + covered.index(table) * slots + slot]
            padding = np.zeros((target.shape[0] - old.shape[0], *old.shape[1:]), dtype=old.dtype)
            target.assign(np.concatenate([old, padding]))
    return "parent" if covered == TABLES else "parent (item tables; user table fresh: it was frozen)"


def update_run(
    parent: RunDirectory,
    feedback_path: Path | None,
    *,
    reader: str | None = None,
    options: dict[str, Any] | None = None,
    reporter: Reporter = SilentReporter(),
    resume: RunDirectory | None = None,
    settings: dict[str, Any] | None = None,
) -> RunDirectory:
    """Create (or, with `resume`, continue) the updated run of `parent` trained on `feedback_path`.

    `settings` override the parent's `update` section (epochs, replay_ratio) for this run. The
    parent's task grows, warm-starts and trains the model (`Task.updater`); the rest is shared.
    """
    from xdt.session import load_run_config, open_dataset
    from xdt.tasks import get_task

    config = load_run_config(parent)
    check_parent(parent, config)
    updater = get_task(config.task).updater
    strategy = updater.strategy(config)
    if resume is None:
        if feedback_path is None:
            raise XdtError("update needs --feedback FILE (or --resume UPDATE_RUN)")
        config = replace(config, update=replace(config.update, **(settings or {})))
        run = start_update(parent, config, feedback_path, reader, dict(options or {}), strategy, reporter)
    else:
        run = resume
        mark_resumed(run)
    config = load_run_config(run)
    grown = open_dataset(config)
    rows = pd.read_parquet(run.path / FEEDBACK_ROWS)
    facts = updater.train(parent, run, config, grown, rows, strategy, reporter)
    run.update_info(status=STATUS_COMPLETE, uses_source=parent.info().get("uses_source"), **facts)
    return run


def start_update(
    parent: RunDirectory,
    config: ExperimentConfig,
    feedback_path: Path,
    reader: str | None,
    options: dict[str, Any],
    strategy: Any,
    reporter: Reporter,
) -> RunDirectory:
    """Read and fold in the feedback, create the run with its grown data, and write the warm-start checkpoint (epoch 0)."""
    from xdt.session import open_dataset, record_environment
    from xdt.tasks import get_task

    feedback = read_feedback(config, feedback_path, reader, options)
    grown, rows, counts = grow(open_dataset(config), feedback)
    if not len(rows):
        raise XdtError(f"--feedback {feedback_path}: no feedback rows left to train on ({counts['rows_read']:,} read; drops: {counts['drops']})")
    run = create_run(
        Path(config.runtime.runs_dir), config.experiment, kind="transfer", config_text=(parent.path / "config.yaml").read_text(),
        resolved=config.to_dict(), seed=config.seed, method=parent.info().get("method"), parent=parent,
    )  # fmt: skip
    config = replace(config, runtime=replace(config.runtime, data_dir=str(run.path / "data")))
    run.write_json("resolved.json", config.to_dict())
    facts = {"file": str(feedback_path), "sha256": file_sha256(feedback_path), "parent": str(parent.path), **counts}
    grown = publish_grown(grown, Path(config.runtime.data_dir) / config.dataset.name, facts)
    rows.to_parquet(run.path / FEEDBACK_ROWS, index=False)
    record_environment(run, config, grown, strategy)
    with run.guard("writing the warm-start checkpoint"):
        warm = get_task(config.task).updater.warm_start(parent, run, config, grown, strategy)
    run.update_info(feedback=facts, warm_start=warm)
    reporter.status(
        f"update of {parent.path.name}: {counts['rows_added']:,} feedback rows, {counts['new_users']:,} new users, "
        f"{counts['new_items']:,} new items → {run.path}"
    )
    return run


def mf_strategy(config: ExperimentConfig) -> Any:
    """The configured strategy (`runtime.strategy`): the MF update trains like transfer does."""
    from xdt.runtime import select_strategy

    return select_strategy(config.runtime.strategy, tpu=config.runtime.tpu)


def mf_warm_start(parent: RunDirectory, run: RunDirectory, config: ExperimentConfig, grown: PreparedDataset, strategy: Any) -> dict[str, Any]:
    """The parent's MatrixFactorization grown to the new ids, with its optimiser state, as the update's epoch-0 checkpoint."""
    from xdt.session import load_model
    from xdt.train import compile_model, save_checkpoint, seed_everything

    seed_everything(config.seed)
    with strategy.scope():
        model = grow_model(load_model(parent), grown.n_users, grown.n_items(TARGET))
        compile_model(model, config.transfer, freeze_users=False)
        model.optimizer.build(model.trainable_variables)
        saved, origin = parent_optimizer_state(parent)
        warm = warm_optimizer(model, saved)
    save_checkpoint(model, run.checkpoints / f"{STAGE}-epoch-0")
    write_json_atomic(run.checkpoints / f"{STAGE}-state.json", {"epoch": 0, "checkpoint": f"{STAGE}-epoch-0"})
    return {"weights": f"{parent.path.name}/model.keras", "optimizer": warm, "optimizer_from": origin}


def mf_train(
    parent: RunDirectory, run: RunDirectory, config: ExperimentConfig, grown: PreparedDataset, rows: pd.DataFrame, strategy: Any, reporter: Reporter
) -> dict[str, Any]:
    """`update.epochs` epochs of `fit_pairwise` on the feedback rows and the replayed old rows, from the run's last checkpoint."""
    from xdt.session import load_model, save_model
    from xdt.train import fit_pairwise, seed_everything

    seed_everything(config.seed)
    with strategy.scope():
        model = grow_model(load_model(parent), grown.n_users, grown.n_items(TARGET))  # weights: from the checkpoint
    view = replay_mix(grown, rows, config.update.replay_ratio, config.seed)
    fit_pairwise(
        model, dataset=view, domain=TARGET, training=replace(config.transfer, epochs=config.update.epochs), seed=config.seed,
        stage=STAGE, run=run, strategy=strategy, validate=None, on_epoch=reporter.epoch,
    )  # fmt: skip
    save_model(run, model)
    return {"replayed_rows": len(view.interactions) - len(rows)}
