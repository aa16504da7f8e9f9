"""`xdt update` of a sequential run: the sequence transformer grown to new target items, warm-started, fine-tuned on feedback.

xdt.update reads the feedback, appends new users and items to the id maps and publishes the grown
data; here the model follows. Target items are the last tokens of the vocabulary
(xdt.sequential.data), so new items are new tokens at its end and every old token keeps its
rows byte for byte. A new item's rows start:

- in the frozen title table of a text bridge (text_bridge, unisrec, unisrec_ids): its title's
  embedding by the run's sentence encoder (`sequence.text_encoder_dir`, or the hashed encoder),
  so a new item is ranked from its text before anyone has clicked it; an item without a title
  gets the mean of the old target items' rows;
- in an id embedding: the mean of the old target items' rows (id transformers), or zero when
  the id part adds to a text bridge's (as it was initialised: the item starts at its text alone).

Users are not parameters of a sequence model: a new user is represented by its history. c2dsr
is not updatable (its item graphs are built from the training sequences, so growing it is a
retrain).

Training is the fine-tuning loop (`train_next_item`, stage `update`, `update.epochs` epochs, no
early stopping, target labels, the run method's history domains): one window per feedback user
(its newest `max_length + 1` tokens, which end in the feedback), plus `update.replay_ratio`
windows per feedback window replayed from the other users (a seeded draw), so that the model does
not forget. unisrec and unisrec_ids keep blocks and positions fixed, as in their fine-tuning. The
optimiser starts from the parent's last fine-tuning checkpoint (Adam moments and step count),
padded with zero rows for the new tokens; the warm start is the stage's epoch-0 checkpoint, so a
killed update resumes exactly.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from xdt.data.protocols import SOURCE, TARGET
from xdt.errors import XdtError

if TYPE_CHECKING:
    from xdt.config import ExperimentConfig
    from xdt.data.dataset import PreparedDataset
    from xdt.progress import Reporter
    from xdt.runs import RunDirectory
    from xdt.sequential.data import ItemVocabulary, TrainingExamples
    from xdt.sequential.transformer import SequenceTransformer

STAGE = "update"
VOCABULARY_TABLES = ("item_embedding", "item_text_embeddings")


def sequence_strategy(config: ExperimentConfig) -> Any:
    """One device: the sequential loop is not distributed."""
    from xdt.runtime import select_strategy

    return select_strategy("default")


def resized(model: SequenceTransformer, vocabulary_size: int) -> SequenceTransformer:
    """A built, freshly initialised transformer shaped like `model` with `vocabulary_size` tokens."""
    from xdt.sequential.transformer import SequenceTransformer

    grown = SequenceTransformer.from_config({**model.get_config(), "vocabulary_size": vocabulary_size})
    grown.build()
    return grown


def grow_sequence_model(model: SequenceTransformer, n_target_old: int, new_texts: np.ndarray | None, new_tokens: int) -> tuple[SequenceTransformer, dict[str, str]]:
    """A copy of `model` with `new_tokens` more target tokens at the end; how the new rows started.

    `new_texts` `(new_tokens, text_dim)`: their title embeddings, a zero row where an item has no
    title (such rows take the mean of the old target rows); None for an id transformer.
    """
    grown = resized(model, model.vocabulary_size + new_tokens)
    tables = {}
    if model.item_embedding is not None:
        tables[id(model.item_embedding.embeddings)] = "item_embedding"
    if model.text_dim is not None:
        tables[id(model.item_text_embeddings)] = "item_text_embeddings"
    target_rows = slice(model.vocabulary_size - n_target_old, model.vocabulary_size)
    started: dict[str, str] = {}
    for old, new in zip(model.weights, grown.weights):
        values = np.asarray(old.numpy())
        if tuple(old.shape) == tuple(new.shape):
            new.assign(values)
            continue
        name = tables.get(id(old))
        if name is None or tuple(new.shape) != (values.shape[0] + new_tokens, *values.shape[1:]):
            raise XdtError(f"Cannot grow {old.path} from {tuple(old.shape)} to {tuple(new.shape)}: only item tables grow")
        mean = values[target_rows].mean(axis=0, keepdims=True) if n_target_old else np.zeros((1, *values.shape[1:]), values.dtype)
        if name == "item_text_embeddings":
            texts = np.asarray(new_texts, dtype=values.dtype)
            titled = np.abs(texts).sum(axis=1) > 0
            rows = np.where(titled[:, None], texts, mean)
            started[name] = f"{int(titled.sum())} from their titles' embeddings, {int((~titled).sum())} (no title) at the old target mean"
        elif model.text_dim is not None:
            rows = np.zeros((new_tokens, *values.shape[1:]), values.dtype)
            started[name] = "zero (the id part of a text bridge starts at zero: the new item is its text)"
        else:
            rows = np.repeat(mean, new_tokens, axis=0)
            started[name] = "at the old target items' mean"
        new.assign(np.concatenate([values, rows]))
    return grown, started


def new_item_texts(config: ExperimentConfig, grown: PreparedDataset, vocabulary: ItemVocabulary, old_size: int) -> np.ndarray:
    """Title embeddings `(vocabulary.size - old_size, text_dim)` of the new tokens, encoded as the run's titles were."""
    from xdt.sequential.experiment import encode_item_texts
    from xdt.sequential.text_bridge import item_texts

    texts = item_texts(vocabulary, grown.items(SOURCE), grown.items(TARGET))[old_size:]
    return encode_item_texts(config, texts, cache_dir=grown.path / "text_cache")


def parent_checkpoint(parent: RunDirectory) -> tuple[Any, str]:
    """The folder of the parent's last fine-tuning checkpoint (None when missing) and where it is."""
    method = parent.info().get("method")
    for stage in (STAGE, method):  # an updated run's own update stage first: a chain of updates warms from the latest
        state_file = parent.checkpoints / stage / "state.json"
        if state_file.is_file():
            folder = parent.checkpoints / stage / json.loads(state_file.read_text())["checkpoint"]
            return folder, f"{parent.path.name}/checkpoints/{stage}/{folder.name}"
    return None, f"fresh ({parent.checkpoints}/{method}/state.json is missing)"


def warm_optimizer_state(optimizer: Any, folder: Any) -> str:
    """Assign the optimiser variables saved in `folder` to `optimizer` (built over the grown model), new rows zero."""
    saved_file = folder / "optimizer.npz" if folder is not None else None
    if saved_file is None or not saved_file.is_file():
        return "fresh"
    with np.load(saved_file) as saved:
        arrays = [saved[f"arr_{index}"] for index in range(len(saved.files))]
    variables = optimizer.variables
    if len(arrays) != len(variables):
        return f"fresh (the parent's optimiser has {len(arrays)} variables, expected {len(variables)})"
    for array, variable in zip(arrays, variables):
        shape = tuple(variable.shape)
        if array.shape != shape and (array.ndim == 0 or array.shape[1:] != shape[1:] or array.shape[0] > shape[0]):
            return f"fresh (the parent's optimiser variable of shape {array.shape} does not fit {shape})"
    for array, variable in zip(arrays, variables):
        rows = variable.shape[0] - array.shape[0] if array.ndim else 0
        variable.assign(np.concatenate([array, np.zeros((rows, *array.shape[1:]), array.dtype)]) if rows else array)
    return "parent"


def sequence_warm_start(parent: RunDirectory, run: RunDirectory, config: ExperimentConfig, grown: PreparedDataset, strategy: Any) -> dict[str, Any]:
    """The parent's transformer grown to the new target items, its optimiser state padded, as the update's epoch-0 checkpoint."""
    import keras

    from xdt.sequential.experiment import load_sequence_model, sequence_view
    from xdt.sequential.training import TrainingHistory, save_training, seed_everything

    seed_everything(config.seed)
    model = load_sequence_model(parent)
    _, vocabulary = sequence_view(grown)
    old_size = model.vocabulary_size
    new_tokens = vocabulary.size - old_size
    n_target_old = old_size - 1 - vocabulary.n_source
    if new_tokens < 0 or n_target_old < 0:
        raise XdtError(f"The grown data has {vocabulary.size} item tokens, the parent's model {old_size}: it is not this run's data")
    texts = new_item_texts(config, grown, vocabulary, old_size) if model.text_dim is not None and new_tokens else None
    if texts is not None and texts.shape[1] != model.text_dim:
        raise XdtError(f"The new titles' embeddings have {texts.shape[1]} dimensions, the run's text table {model.text_dim}: another encoder?")
    grown_model, started = grow_sequence_model(model, n_target_old, texts, new_tokens)
    optimizer = keras.optimizers.Adam(learning_rate=config.sequence.learning_rate)
    optimizer.build(grown_model.trainable_variables)
    folder, origin = parent_checkpoint(parent)
    warm = warm_optimizer_state(optimizer, folder)
    save_training(grown_model, optimizer, TrainingHistory(), None, run.checkpoints / STAGE)
    return {"weights": f"{parent.path.name}/model.keras", "optimizer": warm, "optimizer_from": origin, "new_tokens": new_tokens, "new_rows": started}


def update_examples(
    config: ExperimentConfig, grown: PreparedDataset, rows: pd.DataFrame, method: str
) -> tuple[TrainingExamples, ItemVocabulary, dict[str, int]]:
    """The feedback users' windows plus round(replay_ratio × their count) replayed windows of other users; counts."""
    from xdt.sequential.data import TrainingExamples, keep_sequences, training_examples, user_sequences
    from xdt.sequential.experiment import HISTORY, sequence_view, training_rows

    interactions, vocabulary = sequence_view(grown)
    sequences = user_sequences(training_rows(interactions), vocabulary, domains=HISTORY[method], splits=("train", "valid", "test"))
    fed = np.isin(sequences.users, rows["user"].unique())
    max_length = config.sequence.max_length
    feedback = training_examples(keep_sequences(sequences, fed), vocabulary, max_length=max_length, label_domains=(TARGET,))
    if len(feedback) == 0:
        raise XdtError("The feedback gives no user a target next item to learn (each feedback user needs at least two items)")
    old = training_examples(keep_sequences(sequences, ~fed), vocabulary, max_length=max_length, label_domains=(TARGET,))
    count = min(len(old), int(round(config.update.replay_ratio * len(feedback))))
    drawn = np.sort(np.random.default_rng([config.seed, 20]).choice(len(old), size=count, replace=False))
    examples = TrainingExamples(
        items=np.concatenate([feedback.items, old.items[drawn]]),
        domains=np.concatenate([feedback.domains, old.domains[drawn]]),
        labels=np.concatenate([feedback.labels, old.labels[drawn]]),
    )
    return examples, vocabulary, {"feedback_sequences": len(feedback), "replayed_sequences": count}


def sequence_train(
    parent: RunDirectory, run: RunDirectory, config: ExperimentConfig, grown: PreparedDataset, rows: pd.DataFrame, strategy: Any, reporter: Reporter
) -> dict[str, Any]:
    """`update.epochs` epochs of next-item fine-tuning on the feedback and replayed windows, from the run's last checkpoint."""
    from xdt.sequential.experiment import PRETRAINED, epoch_logger, load_sequence_model
    from xdt.sequential.training import TrainingSettings, seed_everything, train_next_item
    from xdt.session import save_model

    method = parent.info()["method"]
    seed_everything(config.seed)
    examples, vocabulary, counts = update_examples(config, grown, rows, method)
    model = resized(load_sequence_model(parent), vocabulary.size)  # weights: the run's last checkpoint
    sequence, epochs = config.sequence, config.update.epochs
    frozen = PRETRAINED.get(method) == "unisrec"
    settings = TrainingSettings(
        epochs=epochs, batch_size=sequence.batch_size, learning_rate=sequence.learning_rate, loss=sequence.loss,
        negatives=sequence.negatives, negative_sampler=sequence.negative_sampler,
        freeze=("blocks", "positions") if frozen else (), freeze_epochs=epochs if frozen else 0, seed=config.seed,
    )  # fmt: skip
    reporter.status(f"update {method}: {counts['feedback_sequences']:,} feedback + {counts['replayed_sequences']:,} replayed sequences")
    train_next_item(model, examples, vocabulary, candidate_domain=TARGET, settings=settings, checkpoint_dir=run.checkpoints / STAGE,
                    on_epoch=epoch_logger(run, STAGE, epochs, reporter))  # fmt: skip
    save_model(run, model)
    return counts

