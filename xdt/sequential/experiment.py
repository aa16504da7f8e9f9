"""`xdt run` with `task: sequential`: next-item transformers pretrained on source sequences, one run per method.

One pretrain run (kind "pretrain") trains the source-domain next-item models the methods need
(`model.keras`: the id transformer for seq_finetune; `text_model.keras`: the text bridge) on
every source row with source labels (`sequence.pretrain_on: source`), or on the mixed sequences
of every user — source rows plus target training rows — with the labels of both domains
(`pretrain_on: mixed`; target valid/test rows never enter). Then one transfer run (kind "transfer") per method of
`sequence.methods`:

- seq_target_only: a fresh id transformer on target sequences only (target history in);
- seq_finetune: the pretrained id transformer fine-tuned on mixed sequences (source rows of
  any split + target training rows, target labels; mixed history in), blocks and positions
  frozen for `freeze_epochs`;
- text_bridge: the same with the pretrained text-bridge model (items = title embeddings
  through a learned adaptor);
- c2dsr: C2DSR (xdt.sequential.c2dsr) trained from scratch on the mixed sequences of every user
  (source rows of any split + target training rows) with the labels of both domains, its item
  graphs built from the same sequences; ranked by its target head after the mixed history.
- unisrec / unisrec_ids: UniSRec (xdt.sequential.unisrec): a cosine-scored text bridge pretrained
  with the sequence–item and sequence–sequence contrastive losses (`pretrain_on` sequences), then
  fine-tuned on target sequences with blocks and positions fixed throughout; unisrec_ids adds a
  zero-initialised id embedding (transductive). Target history in.

Each run holds config.yaml, resolved.json, env.json, data.json, model.keras, metrics.jsonl (one
line per epoch), checkpoints/ (resumable epochs), and for transfer runs results.json in the
layout of ranking runs ({"method", "dataset", "ks", "valid", "test": {"all", "cohorts",
"activity"}}) and per_user.parquet. The next target item of each valid/test user is ranked
against every target item, the user's earlier target items excluded (xdt.sequential.evaluation).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from xdt.config import ExperimentConfig
from xdt.data.protocols import SOURCE, TARGET
from xdt.errors import DataError
from xdt.progress import EpochReport, Reporter, SilentReporter
from xdt.runs import STATUS_COMPLETE, RunDirectory, create_run
from xdt.sequential.data import ALL_DOMAINS

if TYPE_CHECKING:
    from xdt.data.dataset import PreparedDataset
    from xdt.sequential.c2dsr import C2DSR, C2DSRExamples
    from xdt.sequential.data import EvaluationExamples, ItemVocabulary, TrainingExamples
    from xdt.sequential.transformer import SequenceTransformer

TEXT_MODEL_FILE = "text_model.keras"
UNISREC_MODEL_FILE = "unisrec_model.keras"
PRETRAINED = {"seq_finetune": "ids", "text_bridge": "text", "unisrec": "unisrec", "unisrec_ids": "unisrec"}
PRETRAINED_FILE = {"ids": "model.keras", "text": TEXT_MODEL_FILE, "unisrec": UNISREC_MODEL_FILE}
HISTORY = {
    "seq_target_only": (TARGET,), "seq_finetune": (SOURCE, TARGET), "text_bridge": (SOURCE, TARGET), "c2dsr": (SOURCE, TARGET),
    "unisrec": (TARGET,), "unisrec_ids": (TARGET,),
}
TEXT_KINDS = ("text", "unisrec")
# sequence.pretrain_on → the domains whose rows form the pretraining sequences and labels.
PRETRAIN_DOMAINS = {"source": (SOURCE,), "mixed": (SOURCE, TARGET)}


@dataclass(frozen=True)
class SequentialOutcome:
    """The runs one seed of a sequential experiment produced, their results and the experiment report."""

    seed: int
    pretrain_run: RunDirectory
    transfer_runs: dict[str, RunDirectory]
    results: dict[str, dict[str, Any]]
    report: Path


def run_sequential_experiment(
    config: ExperimentConfig, *, config_text: str, reporter: Reporter = SilentReporter()
) -> SequentialOutcome:
    """Prepare the data if needed, pretrain on source sequences, train and evaluate every method of `sequence.methods`."""
    from xdt.experiment import prepare_if_needed
    from xdt.report import write_experiment_report, write_report
    from xdt.runtime import select_strategy
    from xdt.sequential.training import seed_everything
    from xdt.session import open_dataset, record_environment, save_model

    prepare_if_needed(config, reporter)
    dataset = open_dataset(config)
    interactions, vocabulary = sequence_view(dataset)
    methods = list(config.sequence.methods)
    strategy = select_strategy("default")  # the custom loop runs on one device

    def new_run(kind: str, method: str | None, parent: RunDirectory | None = None) -> RunDirectory:
        run = create_run(
            Path(config.runtime.runs_dir), config.experiment, kind=kind, config_text=config_text,
            resolved=config.to_dict(), seed=config.seed, method=method, parent=parent,
        )
        record_environment(run, config, dataset, strategy)
        return run

    uses_text = any(PRETRAINED.get(method) in TEXT_KINDS for method in methods)
    text_embeddings = item_text_embeddings(config, dataset, vocabulary) if uses_text else None
    pretrain_run = new_run("pretrain", "sequence_source")
    pretrained: dict[str, SequenceTransformer] = {}
    source_examples = None
    pretrain_on = config.sequence.pretrain_on
    for kind in dict.fromkeys(PRETRAINED[method] for method in methods if method in PRETRAINED):
        seed_everything(config.seed)
        model = new_model(config, vocabulary, text_embeddings if kind in TEXT_KINDS else None, unisrec=kind == "unisrec")
        if source_examples is None:
            source_examples = sequence_examples(
                config, interactions, vocabulary, domains=PRETRAIN_DOMAINS[pretrain_on], label_domains=PRETRAIN_DOMAINS[pretrain_on]
            )
        reporter.status(f"pretrain {kind} transformer on {len(source_examples):,} {pretrain_on} sequences → {pretrain_run.path}")
        if kind == "unisrec":
            # The word-dropped titles are encoded only when word drop is one of the views' augmentations.
            word_drop = "word_drop" in config.sequence.unisrec_augmentations
            dropped = item_text_embeddings(config, dataset, vocabulary, word_drop=config.sequence.unisrec_drop) if word_drop else text_embeddings
            pretrain_unisrec_stage(config, model, source_examples, vocabulary, dropped, run=pretrain_run, reporter=reporter)
        else:
            train(config, model, source_examples, vocabulary, run=pretrain_run, stage=f"pretrain_{kind}",
                  candidate_domain=SOURCE if pretrain_on == "source" else ALL_DOMAINS,
                  epochs=config.sequence.pretrain_epochs, validation=None, freeze_epochs=0, reporter=reporter)
        model.save(pretrain_run.path / PRETRAINED_FILE[kind])
        pretrained[kind] = model
    pretrain_run.update_info(status=STATUS_COMPLETE)

    transfer_runs: dict[str, RunDirectory] = {}
    results: dict[str, dict[str, Any]] = {}
    for method in methods:
        run = new_run("transfer", method, parent=pretrain_run)
        history = HISTORY[method]
        valid, test = held_out_examples(config, dataset, interactions, vocabulary, method)
        seed_everything(config.seed)
        kind = PRETRAINED.get(method)
        if method == "c2dsr":
            model, examples = c2dsr_model_and_examples(config, interactions, vocabulary)
        else:
            model = new_model(
                config, vocabulary, text_embeddings if kind in TEXT_KINDS else None,
                unisrec=kind == "unisrec", with_ids=method == "unisrec_ids",
            )
            if kind == "unisrec":
                from xdt.sequential.unisrec import copy_pretrained

                copy_pretrained(pretrained[kind], model)
            elif kind is not None:
                if not model.built:
                    model.build()
                model.set_weights(pretrained[kind].get_weights())
            examples = sequence_examples(config, interactions, vocabulary, domains=history, label_domains=(TARGET,))
        reporter.status(f"{method}: {len(examples):,} training sequences ({' + '.join(history)} history) → {run.path}")
        # unisrec: parameter-efficient fine-tuning, blocks and positions fixed for every epoch.
        freeze_epochs = {None: 0, "unisrec": config.sequence.epochs}.get(kind, config.sequence.freeze_epochs)
        train(config, model, examples, vocabulary, run=run, stage=method, candidate_domain=TARGET, epochs=config.sequence.epochs,
              validation=valid, freeze_epochs=freeze_epochs, reporter=reporter)
        save_model(run, model)
        results[method] = method_results(config, dataset, vocabulary, model, method, run, valid=valid, test=test)
        run.write_json("results.json", results[method])
        run.update_info(status=STATUS_COMPLETE, evaluated=True)
        write_report(run)
        transfer_runs[method] = run
    report = write_experiment_report(transfer_runs, pretrain_run.path / "experiment")
    return SequentialOutcome(config.seed, pretrain_run, transfer_runs, results, report)


def evaluate_sequential_run(run: RunDirectory, config: ExperimentConfig, *, reporter: Reporter = SilentReporter()) -> dict[str, Any]:
    """`xdt evaluate RUN` of a sequential transfer run: its saved model ranks each valid/test user's next target item again.

    Rewrites results.json and per_user.parquet; they equal what `xdt run` wrote for the run.
    """
    from xdt.session import check_same_data, open_dataset

    dataset = open_dataset(config)
    check_same_data(run, dataset)
    interactions, vocabulary = sequence_view(dataset)
    method = run.info()["method"]
    valid, test = held_out_examples(config, dataset, interactions, vocabulary, method)
    model = load_sequence_model(run)
    reporter.status(f"evaluate {method} on the next target item of {len(test):,} test users → {run.path}")
    results = method_results(config, dataset, vocabulary, model, method, run, valid=valid, test=test)
    run.write_json("results.json", results)
    run.update_info(evaluated=True)
    return results


def load_sequence_model(run: RunDirectory) -> SequenceTransformer:
    """The saved `model.keras` of a sequential transfer run."""
    import xdt.sequential.c2dsr  # noqa: F401  (registers the models' classes with Keras, so they load)
    import xdt.sequential.transformer  # noqa: F401
    from xdt.session import load_model

    return load_model(run)


def sequence_view(dataset: PreparedDataset) -> tuple[pd.DataFrame, ItemVocabulary]:
    """The interaction columns sequences are built from, and the token vocabulary of the dataset's items."""
    from xdt.sequential.data import ItemVocabulary

    interactions = dataset.interactions[["domain", "user", "item", "timestamp", "split"]]
    return interactions, ItemVocabulary(dataset.n_items(SOURCE), dataset.n_items(TARGET))


def held_out_examples(
    config: ExperimentConfig, dataset: PreparedDataset, interactions: pd.DataFrame, vocabulary: ItemVocabulary, method: str
) -> tuple[EvaluationExamples | None, EvaluationExamples]:
    """The valid (None without valid rows) and test next-item examples of `method`, with its history domains."""
    history = HISTORY[method]
    valid = evaluation_examples_or_none(interactions, vocabulary, config, split="valid", history=history)
    test = evaluation_examples_or_none(interactions, vocabulary, config, split="test", history=history)
    if test is None:
        raise DataError(f"task: sequential needs target test rows; dataset {dataset.manifest['name']!r} has none")
    return valid, test


def item_text_embeddings(
    config: ExperimentConfig, dataset: PreparedDataset, vocabulary: ItemVocabulary, *, word_drop: float = 0.0
) -> np.ndarray:
    """Title embeddings of every vocabulary token, cached next to the prepared dataset.

    `word_drop` > 0: of the titles with that share of their words dropped (seeded by `seed`; UniSRec's word-drop view).
    """
    from xdt.sequential.text_bridge import item_texts
    from xdt.sequential.unisrec import word_dropped_texts

    texts = item_texts(vocabulary, dataset.items(SOURCE), dataset.items(TARGET))
    if word_drop:
        texts = word_dropped_texts(texts, word_drop, config.seed)
    return encode_item_texts(config, texts, cache_dir=dataset.path / "text_cache")


def encode_item_texts(config: ExperimentConfig, texts: list[str], *, cache_dir: Path) -> np.ndarray:
    """Sentence embeddings of item texts with the encoder of `sequence:` (its folder, pooling, normalisation), cached; "" → zeros."""
    from xdt.sequential.text_bridge import encode_texts

    encoder_dir = Path(config.sequence.text_encoder_dir) if config.sequence.text_encoder_dir else None
    if encoder_dir is not None and not (encoder_dir / "config.json").is_file():
        raise DataError(f"sequence.text_encoder_dir: {encoder_dir} is not a Hugging Face model folder (no config.json)")
    settings = config.sequence
    return encode_texts(
        texts, cache_dir=cache_dir, encoder_dir=encoder_dir, pooling=settings.text_pooling, normalize=settings.text_normalize
    ).embeddings


def new_model(
    config: ExperimentConfig,
    vocabulary: ItemVocabulary,
    text_embeddings: np.ndarray | None,
    *,
    unisrec: bool = False,
    with_ids: bool = False,
) -> SequenceTransformer:
    """An id transformer, or a text bridge when `text_embeddings` is given, shaped by `sequence:`.

    `unisrec`: the text bridge scored by cosine over `unisrec_temperature`, with an id embedding
    only when `with_ids` (sequence.text_with_ids and score_temperature are the text_bridge's).
    """
    from xdt.sequential.text_bridge import build_text_bridge
    from xdt.sequential.transformer import SequenceTransformer

    sequence = config.sequence
    shape = {
        "width": sequence.width,
        "layers": sequence.layers,
        "heads": sequence.heads,
        "dropout": sequence.dropout,
        "score_temperature": sequence.score_temperature,
    }
    if unisrec:
        shape["score_temperature"] = sequence.unisrec_temperature
        return build_text_bridge(text_embeddings, max_length=sequence.max_length, text_with_ids=with_ids, **shape)
    if text_embeddings is not None:
        return build_text_bridge(text_embeddings, max_length=sequence.max_length, text_with_ids=sequence.text_with_ids, **shape)
    return SequenceTransformer(vocabulary.size, sequence.max_length, **shape)


def training_rows(interactions: pd.DataFrame) -> pd.DataFrame:
    """Source rows of any split and target training rows: what sequence models may train on."""
    return interactions.loc[(interactions["domain"] == SOURCE) | (interactions["split"] == "train")]


def c2dsr_model_and_examples(
    config: ExperimentConfig, interactions: pd.DataFrame, vocabulary: ItemVocabulary
) -> tuple[C2DSR, C2DSRExamples]:
    """A C2DSR model shaped by `sequence:`, its graphs and training windows from every user's mixed training sequence."""
    from xdt.sequential.c2dsr import build_c2dsr, c2dsr_examples
    from xdt.sequential.data import user_sequences

    sequence = config.sequence
    sequences = user_sequences(training_rows(interactions), vocabulary, domains=(SOURCE, TARGET), splits=("train", "valid", "test"))
    examples = c2dsr_examples(sequences, vocabulary, max_length=sequence.max_length)
    if len(examples) == 0:
        raise DataError("task: sequential: c2dsr: no mixed sequence has a next item to learn")
    model = build_c2dsr(
        sequences, vocabulary, max_length=sequence.max_length, width=sequence.width, layers=sequence.layers,
        heads=sequence.heads, dropout=sequence.dropout, graph_layers=sequence.c2dsr_graph_layers,
    )
    return model, examples


def sequence_examples(
    config: ExperimentConfig,
    interactions: pd.DataFrame,
    vocabulary: ItemVocabulary,
    *,
    domains: tuple[str, ...],
    label_domains: tuple[str, ...],
) -> TrainingExamples:
    """Training windows over source rows of any split and target training rows, labels of `label_domains`.

    The source domain is never evaluated, so its held-out rows are training material; target
    valid/test rows never enter training.
    """
    from xdt.sequential.data import training_examples, user_sequences

    sequences = user_sequences(training_rows(interactions), vocabulary, domains=domains, splits=("train", "valid", "test"))
    examples = training_examples(sequences, vocabulary, max_length=config.sequence.max_length, label_domains=label_domains)
    if len(examples) == 0:
        raise DataError(
            f"task: sequential: no {' or '.join(label_domains)} sequence has a next item to learn (sequences of {', '.join(domains)})"
        )
    return examples


def evaluation_examples_or_none(
    interactions: pd.DataFrame, vocabulary: ItemVocabulary, config: ExperimentConfig, *, split: str, history: tuple[str, ...]
) -> EvaluationExamples | None:
    """The next target item of each user with a target row in `split`, or None when there is none."""
    from xdt.sequential.data import evaluation_examples

    examples = evaluation_examples(
        interactions, vocabulary, split=split, max_length=config.sequence.max_length, domain=TARGET, history_domains=history
    )
    return examples if len(examples) else None


def evaluation_ks(config: ExperimentConfig) -> list[int]:
    """evaluate.ks plus the k of the validation metric."""
    _, _, k_text = config.evaluate.validation_metric.partition("@")
    return sorted(set(config.evaluate.ks) | {int(k_text)})


def train(
    config: ExperimentConfig,
    model: SequenceTransformer | C2DSR,
    examples: TrainingExamples | C2DSRExamples,
    vocabulary: ItemVocabulary,
    *,
    run: RunDirectory,
    stage: str,
    candidate_domain: str,
    epochs: int,
    validation: EvaluationExamples | None,
    freeze_epochs: int,
    reporter: Reporter,
) -> None:
    """Train with `sequence:` settings, one metrics.jsonl line per epoch, resumable checkpoints under `checkpoints/<stage>`."""
    from xdt.sequential.c2dsr import C2DSRExamples, train_c2dsr
    from xdt.sequential.evaluation import evaluate_next_item
    from xdt.sequential.training import TrainingSettings, train_next_item

    sequence = config.sequence
    settings = TrainingSettings(
        epochs=epochs,
        batch_size=sequence.batch_size,
        learning_rate=sequence.learning_rate,
        loss=sequence.loss,
        negatives=sequence.negatives,
        negative_sampler=sequence.negative_sampler,
        freeze=("blocks", "positions") if freeze_epochs else (),
        freeze_epochs=freeze_epochs,
        patience=sequence.patience,
        seed=config.seed,
    )
    metric = config.evaluate.validation_metric
    column = "mrr" if metric.startswith("mrr") else metric

    def validate(candidate: SequenceTransformer) -> float:
        per_user = evaluate_next_item(candidate, validation, vocabulary, ks=evaluation_ks(config), batch_size=config.evaluate.batch_size)
        return float(per_user[column].mean())

    common = {
        "validate": validate if validation is not None else None,
        "checkpoint_dir": run.checkpoints / stage,
        "on_epoch": epoch_logger(run, stage, epochs, reporter),
    }
    if isinstance(examples, C2DSRExamples):
        history = train_c2dsr(model, examples, vocabulary, settings=settings, weight=sequence.c2dsr_lambda, **common)
    else:
        history = train_next_item(model, examples, vocabulary, candidate_domain=candidate_domain, settings=settings, **common)
    if validation is not None:
        reporter.status(f"{stage}: kept epoch {history.best_epoch} (valid {metric} {history.best_score:.4f})")


def pretrain_unisrec_stage(
    config: ExperimentConfig,
    model: SequenceTransformer,
    examples: TrainingExamples,
    vocabulary: ItemVocabulary,
    dropped_text_embeddings: np.ndarray,
    *,
    run: RunDirectory,
    reporter: Reporter,
) -> None:
    """UniSRec pretraining with `sequence:` settings, one metrics.jsonl line per epoch, resumable under `checkpoints/pretrain_unisrec`."""
    from xdt.sequential.training import TrainingSettings
    from xdt.sequential.unisrec import PretrainingObjective, pretrain_unisrec

    sequence = config.sequence
    stage, epochs = "pretrain_unisrec", sequence.pretrain_epochs
    settings = TrainingSettings(epochs=epochs, batch_size=sequence.batch_size, learning_rate=sequence.learning_rate, seed=config.seed)
    objective = PretrainingObjective(
        seq_seq_weight=sequence.unisrec_lambda, drop_rate=sequence.unisrec_drop, item_drop_share=sequence.unisrec_item_drop_share,
        augmentations=tuple(sequence.unisrec_augmentations), crop=sequence.unisrec_crop, mask=sequence.unisrec_mask,
        reorder=sequence.unisrec_reorder,
    )

    pretrain_unisrec(model, examples, vocabulary, dropped_text_embeddings=dropped_text_embeddings, settings=settings,
                     objective=objective, checkpoint_dir=run.checkpoints / stage, on_epoch=epoch_logger(run, stage, epochs, reporter))


def epoch_logger(run: RunDirectory, stage: str, epochs: int, reporter: Reporter) -> Callable[[dict], None]:
    """The `on_epoch` of the sequential loops: one metrics.jsonl line and one progress report per epoch record of `run_epochs`."""

    def on_epoch(record: dict) -> None:
        row = {"stage": stage, "epoch": record["epoch"], "loss": record["loss"], "seconds": record["train_seconds"],
               "sequences": record["sequences"], "frozen": record["frozen"]}
        if record["valid_score"] is not None:  # pretraining has no validation; the report plots only numbers
            row["valid_score"] = record["valid_score"]
        run.append_metrics(row)
        reporter.epoch(EpochReport(stage, record["epoch"], epochs, record["loss"], record["valid_score"], record["train_seconds"]))

    return on_epoch


def method_results(
    config: ExperimentConfig,
    dataset: PreparedDataset,
    vocabulary: ItemVocabulary,
    model: SequenceTransformer,
    method: str,
    run: RunDirectory,
    *,
    valid: EvaluationExamples | None,
    test: EvaluationExamples,
) -> dict[str, Any]:
    """results.json of one method (ranking-run layout) and per_user.parquet of its test users."""
    from xdt.evaluate import summarise

    results: dict[str, Any] = {
        "method": method,
        "dataset": dataset.manifest["name"],
        "ks": list(config.evaluate.ks),
        "task": "sequential",
        "history": list(HISTORY[method]),
        # Rank = 1 + items scoring strictly higher (ties in the user's favour), one held-out item per user.
        "ties": "optimistic",
    }
    for split, examples in (("valid", valid), ("test", test)):
        if examples is None:
            continue
        per_user = per_user_frame(config, dataset, vocabulary, model, examples)
        results[split] = summarise(per_user)
        if split == "test":
            per_user.to_parquet(run.path / "per_user.parquet", index=False)
    return results


def per_user_frame(
    config: ExperimentConfig, dataset: PreparedDataset, vocabulary: ItemVocabulary, model: SequenceTransformer, examples: EvaluationExamples
) -> pd.DataFrame:
    """One row per evaluated user: raw user, user_index, cohort and activity bucket (as ranking runs), rank and metrics."""
    from xdt.sequential.evaluation import evaluate_next_item

    per_user = evaluate_next_item(model, examples, vocabulary, ks=config.evaluate.ks, batch_size=config.evaluate.batch_size)
    users = examples.users.astype(np.int64)
    metrics = per_user.drop(columns=["user", "cohort"])
    return pd.concat(
        [
            pd.DataFrame(
                {
                    "user": dataset.raw_users[users].astype(str),
                    "user_index": users,
                    "cohort": dataset.cohort(users),
                    "activity_bucket": dataset.activity_bucket(users),
                    "relevant": np.ones(len(users), dtype=np.int64),
                }
            ),
            metrics.reset_index(drop=True),
        ],
        axis=1,
    )
