"""Experiment configuration: the schema (frozen dataclasses), loading, and cross-field checks.

The generic YAML → dataclass machinery lives in `xdt.typed_yaml`. Nothing below this module sees
raw dictionaries. Validation never imports TensorFlow.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from xdt.errors import ConfigError
from xdt.models.registry import METHOD_NAMES, SOURCE_MODEL_NAMES
from xdt.typed_yaml import apply_override, at_least, between, build_dataclass, check_name, check_path_component, load_yaml

# Config values that become one folder name: runs/<experiment>/ and data/<dataset.name>/.
PATH_COMPONENT_KEYS = ("experiment", "dataset.name")


@dataclass(frozen=True)
class DomainConfig:
    """Where one domain's raw interactions live and how to read them."""

    name: str
    reader: str = "csv"
    path: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    rating_range: list[float] | None = None


@dataclass(frozen=True)
class SyntheticConfig:
    """The embedded default data: a seeded two-domain generator with shared user tastes."""

    users: int = field(default=3000, metadata=at_least(10))
    source_items: int = field(default=1000, metadata=at_least(10))
    target_items: int = field(default=800, metadata=at_least(10))
    overlap_fraction: float = field(default=0.6, metadata=between(0.0, 1.0))
    source_only_fraction: float = field(default=0.25, metadata=between(0.0, 1.0))
    shared_taste: float = field(default=0.9, metadata=between(0.0, 1.0))
    latent_dim: int = field(default=8, metadata=at_least(1))
    popularity_exponent: float = field(default=1.0, metadata=at_least(0.0))
    source_interactions: float = field(default=30.0, metadata=at_least(1.0))
    target_interactions: float = field(default=12.0, metadata=at_least(1.0))
    taste_sharpness: float = field(default=3.0, metadata=at_least(0.0))
    # > 0: each target item's relevance is planted on this many source items (xdt.data.synthetic.planted_target).
    planted_sources: int = field(default=0, metadata=at_least(0))


@dataclass(frozen=True)
class CleaningConfig:
    """How rows that cannot be used are treated; every dropped row is counted."""

    on_bad_rows: Literal["error", "skip"] = "error"
    duplicates: Literal["keep_latest", "keep_first", "mean"] = "keep_latest"
    min_rating: float | None = None
    user_core: int = field(default=0, metadata=at_least(0))
    item_core: int = field(default=0, metadata=at_least(0))


@dataclass(frozen=True)
class DatasetConfig:
    """Which data to use and how to split it."""

    name: str
    source: DomainConfig | None = None
    target: DomainConfig | None = None
    synthetic: SyntheticConfig | None = None
    protocol: Literal["given", "cold_users", "leave_one_out", "temporal", "ratio"] = "cold_users"
    # cold_users: fractions of the overlapping users held out as cold-start test / valid users.
    cold_fraction: float = field(default=0.2, metadata=between(0.0, 1.0))
    valid_cold_fraction: float = field(default=0.1, metadata=between(0.0, 1.0))
    warm_holdout: Literal["none", "leave_one_out"] = "leave_one_out"
    test_users_file: str | None = None  # cold_users: exact raw test user ids, one per line
    # given: carve a validation row out of train for domains whose files have no valid split.
    given_valid: Literal["none", "leave_one_out"] = "none"
    # temporal: rows after the test cut-off are test, rows after the valid cut-off (and not after
    # the test one) are valid. Each cut-off is a timestamp or a quantile of all timestamps.
    test_cutoff: float | None = None
    test_quantile: float | None = field(default=None, metadata=between(0.0, 1.0))
    valid_cutoff: float | None = None
    valid_quantile: float | None = field(default=None, metadata=between(0.0, 1.0))
    # ratio: per user and domain, random fractions of rows for train, valid and test.
    ratio_fractions: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])
    # Users are linked across domains by raw id, or by this file of (source_user, target_user) pairs.
    link_file: str | None = None
    # Which cross-validation fold this prepared dataset is (set per fold by `xdt run` from
    # evaluate.folds; set both by hand to prepare a single fold): fold `fold` of `folds`.
    folds: int = field(default=1, metadata=at_least(1))
    fold: int | None = None
    cleaning: CleaningConfig = field(default_factory=CleaningConfig)


@dataclass(frozen=True)
class OptimizerConfig:
    """Optimiser name and learning rate."""

    name: Literal["adam", "adagrad", "sgd"] = "adam"
    learning_rate: float = field(default=0.005, metadata=at_least(0.0))


@dataclass(frozen=True)
class TrainingConfig:
    """Settings shared by every trained stage."""

    embedding_dim: int = field(default=32, metadata=at_least(1))
    epochs: int = field(default=20, metadata=at_least(1))
    batch_size: int = field(default=1024, metadata=at_least(1))
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    # 0.01: chosen on the validation splits of CDRIB Game → Video and DisenCDR Sport → Phone (leave-one-out
    # carve), where it was at least as good as 0 for every learned method (bench/RESULTS.md, "Defaults").
    l2: float = field(default=0.01, metadata=at_least(0.0))
    patience: int = field(default=3, metadata=at_least(1))
    validation_users: int = field(default=2000, metadata=at_least(1))
    # Implicit-feedback objective over each positive and `negatives` sampled negatives:
    # bpr (pairwise, averaged over the negatives), bce (pointwise binary cross-entropy) or
    # softmax (sampled softmax: the positive against its negatives).
    loss: Literal["bpr", "bce", "softmax"] = "bpr"
    negatives: int = field(default=1, metadata=at_least(1))
    # lightgcn (a transfer method, or pretrain.model): propagation layers K; the embedding is the mean of layers 0..K.
    graph_layers: int = field(default=3, metadata=at_least(0))


@dataclass(frozen=True)
class PretrainConfig(TrainingConfig):
    """The source-domain model."""

    model: str = "mf"


@dataclass(frozen=True)
class TransferConfig(TrainingConfig):
    """Transfer methods and target-only baselines, each trained into its own run."""

    methods: list[str] = field(default_factory=lambda: ["popularity", "target_mf", "finetune", "emcdr"])
    freeze_user_epochs: int = field(default=1000, metadata=at_least(0))
    mapping: Literal["linear", "mlp"] = "mlp"
    mapping_hidden: int = field(default=64, metadata=at_least(1))
    mapping_epochs: int = field(default=300, metadata=at_least(1))
    # ptupcdr / dann: most recent source (and target) training items kept per user.
    history_length: int = field(default=50, metadata=at_least(1))
    # ptupcdr: hidden width of the meta-network (attention and bridge decoder), as in the paper.
    meta_dim: int = field(default=50, metadata=at_least(1))
    # dann: gradient-reversal weight of the domain classifier, and the shared encoder's hidden width.
    dann_lambda: float = field(default=0.1, metadata=at_least(0.0))
    encoder_hidden: int = field(default=64, metadata=at_least(1))
    # fusion: the learned transfer method whose scores are blended with xknn and content scores.
    fusion_base: str = "finetune"
    # joint: probability of zeroing a training row's private user part, so that the shared part
    # alone (all a cold-start user has in the target domain) learns to score each domain.
    private_dropout: float = field(default=0.0, metadata=between(0.0, 0.95))
    # cdrib (Cao et al., ICDE 2022; official defaults unless bench/README.md says otherwise):
    # encoder layers (the last one variational), dropout before each layer, beta on the users' KL
    # (items' KL weight 1), the contrastive hinge margin and its users per step.
    cdrib_layers: int = field(default=3, metadata=at_least(1))
    cdrib_dropout: float = field(default=0.3, metadata=between(0.0, 0.95))
    cdrib_beta: float = field(default=1.5, metadata=at_least(0.0))
    cdrib_margin: float = field(default=0.3, metadata=at_least(0.0))
    cdrib_user_batch: int = field(default=64, metadata=at_least(0))
    # The cdrib stage's own batch size, epochs and early-stopping patience (null: transfer's). Each
    # step propagates both whole graphs, so its batch size decides the cost of an epoch.
    cdrib_batch_size: int | None = field(default=None, metadata=at_least(1))
    cdrib_epochs: int | None = field(default=None, metadata=at_least(1))
    cdrib_patience: int | None = field(default=None, metadata=at_least(1))
    # disencdr (Cao et al., SIGIR 2022): encoder layers (the last one variational), dropout before
    # each layer, beta between the shared posterior's prior KL (1 - beta) and its KLs to the
    # one-domain shared posteriors (beta), and the source's weight when the shared encoder blends
    # the two domains. The stage's own batch size, epochs and patience (null: transfer's).
    disencdr_layers: int = field(default=2, metadata=at_least(1))
    disencdr_dropout: float = field(default=0.3, metadata=between(0.0, 0.95))
    disencdr_beta: float = field(default=0.9, metadata=between(0.0, 1.0))
    disencdr_rate: float = field(default=0.5, metadata=between(0.0, 1.0))
    disencdr_batch_size: int | None = field(default=None, metadata=at_least(1))
    disencdr_epochs: int | None = field(default=None, metadata=at_least(1))
    disencdr_patience: int | None = field(default=None, metadata=at_least(1))
    # The official warm-up: the first epochs train the specific encoders alone (the official code's 9, `epoch < 10`, of
    # its 50). It must end before the stage's last epoch; early stopping counts its epochs too, so keep patience above it.
    disencdr_warmup_epochs: int = field(default=9, metadata=at_least(0))


@dataclass(frozen=True)
class EvaluateConfig:
    """Full-ranking evaluation on the target test split."""

    ks: list[int] = field(default_factory=lambda: [5, 10, 20])
    batch_size: int = field(default=1024, metadata=at_least(1))
    validation_metric: str = "ndcg@10"
    # Target splits whose items are masked from each test user's ranking (validation always masks
    # train only). [train] matches protocols that mask only training items, e.g. CDRIB's.
    test_excludes: list[Literal["train", "valid"]] = field(default_factory=lambda: ["train", "valid"])
    # Cross-validation: > 1 repeats the experiment over this many disjoint folds of cold-start test
    # users (protocol cold_users) and reports mean ± std; each fold is prepared as its own dataset.
    folds: int = field(default=1, metadata=at_least(1))
    # Sampled ranking next to full ranking: > 0 ranks each test item against this many random
    # items the user never interacted with (as many papers' own code does); reported as "sampled".
    sampled_negatives: int = field(default=0, metadata=at_least(0))


@dataclass(frozen=True)
class RecommendConfig:
    """Recommendation defaults."""

    k: int = field(default=10, metadata=at_least(1))
    examples: int = field(default=3, metadata=at_least(0))


@dataclass(frozen=True)
class RuntimeConfig:
    """Where and how computations run."""

    # xdt.runtime: auto (mirrored when several GPUs are visible), default (one device), mirrored,
    # multi_worker (the cluster in TF_CONFIG; ranking only, not emcdr), tpu.
    strategy: Literal["auto", "default", "mirrored", "multi_worker", "tpu"] = "auto"
    # tpu: the TPU name or grpc:// address for TPUClusterResolver; empty: the resolver's own discovery.
    tpu: str = ""
    # Keras dtype policy of the ranking models while they train (mixed_*: half-precision compute, float32 variables).
    precision: Literal["float32", "mixed_float16", "mixed_bfloat16"] = "float32"
    # XLA compilation of the ranking train steps (Keras compile(jit_compile=...)). true switches TF's op
    # determinism off for those stages (Keras refuses XLA while it is on): same-seed runs may then differ.
    jit_compile: bool = False
    # Training rows of one domain above which the ranking task's single-domain training (pretrain and
    # the methods trained on the prepared target rows) streams them from interactions.parquet in
    # shuffle windows of this many rows (xdt.data.streaming) instead of drawing the epoch in memory;
    # null: never stream.
    max_in_memory_rows: int | None = field(default=50_000_000, metadata=at_least(1))
    data_dir: str = "data"
    runs_dir: str = "runs"


@dataclass(frozen=True)
class TrackingConfig:
    """Optional experiment tracking: every run is also logged to MLflow (extra `xdt[mlflow]`)."""

    mlflow: bool = False
    # A folder (a local MLflow file store, relative to the working directory) or any MLflow tracking URI.
    uri: str = "mlruns"


# task: rating — the explicit-rating methods of xdt.rating (same names as xdt.rating.training.METHODS,
# kept here so that config validation never imports TensorFlow).
RATING_METHOD_NAMES: tuple[str, ...] = ("global_mean", "item_mean", "user_mean", "target_mf", "emcdr", "ptupcdr")


@dataclass(frozen=True)
class RatingConfig:
    """task: rating — the settings of xdt.rating's RatingSettings; the defaults are what bench/douban_rating.py runs.

    Three trained stages, each Adam + MSE early-stopped on the cold validation users: `mf` (the
    source and target biased MFs), `mapping` (EMCDR's mapping), `meta` (PTUPCDR's meta bridge).
    """

    embedding_dim: int = field(default=10, metadata=at_least(1))
    l2: float = field(default=0.05, metadata=at_least(0.0))
    # Share of the meta users held out for validation when the prepared data has no valid split.
    valid_fraction: float = field(default=0.15, metadata=between(0.0, 1.0))
    # Share of the source ratings held out to early-stop the source MF.
    source_valid_fraction: float = field(default=0.05, metadata=between(0.0, 1.0))
    select_on: Literal["mae", "rmse", "loss"] = "mae"
    mf_epochs: int = field(default=40, metadata=at_least(1))
    mf_batch_size: int = field(default=1024, metadata=at_least(1))
    mf_learning_rate: float = field(default=0.03, metadata=at_least(0.0))
    mf_patience: int = field(default=3, metadata=at_least(1))
    mapping: Literal["linear", "mlp"] = "mlp"
    mapping_hidden: int = field(default=64, metadata=at_least(1))
    mapping_epochs: int = field(default=200, metadata=at_least(1))
    mapping_batch_size: int = field(default=64, metadata=at_least(1))
    mapping_learning_rate: float = field(default=0.005, metadata=at_least(0.0))
    mapping_patience: int = field(default=5, metadata=at_least(1))
    # ptupcdr: batch 256, meta dim 50, history 20 are the official PTUPCDR meta-stage dimensions.
    meta_epochs: int = field(default=20, metadata=at_least(1))
    meta_batch_size: int = field(default=256, metadata=at_least(1))
    meta_learning_rate: float = field(default=0.001, metadata=at_least(0.0))
    meta_patience: int = field(default=2, metadata=at_least(1))
    meta_dim: int = field(default=50, metadata=at_least(1))
    history_length: int = field(default=20, metadata=at_least(1))
    meta_l2: float = field(default=0.0, metadata=at_least(0.0))
    history_dropout: float = field(default=0.5, metadata=between(0.0, 1.0))
    # Start the bridge from the ridge solution p^t ≈ p^s W over the meta users (epoch 0 counts).
    warm_start: bool = True
    ridge: float = field(default=1.0, metadata=at_least(0.0))


# task: sequential — the methods of xdt.sequential.experiment (kept here so that config validation
# never imports TensorFlow).
SEQUENCE_METHOD_NAMES: tuple[str, ...] = ("seq_target_only", "seq_finetune", "text_bridge", "c2dsr", "unisrec", "unisrec_ids")


@dataclass(frozen=True)
class SequenceConfig:
    """task: sequential — next-item transformers (xdt.sequential) over each user's time-ordered items.

    seq_target_only: trained on target sequences alone; seq_finetune: pretrained on source
    sequences, fine-tuned on mixed (source + target) sequences with target labels; text_bridge:
    the same with items represented by their titles (a Hugging Face sentence encoder folder in
    `text_encoder_dir`, else hashed n-grams) through a learned adaptor; c2dsr: C2DSR's three
    encoders (mixed, source-only, target-only) with graph-smoothed items and a contrastive term;
    unisrec / unisrec_ids: UniSRec's text bridge pretrained with its two contrastive losses, then
    fine-tuned on target sequences with the blocks and positions fixed (inductive: text only;
    transductive: text + an id embedding).
    """

    methods: list[str] = field(default_factory=lambda: ["seq_target_only", "seq_finetune"])
    max_length: int = field(default=30, metadata=at_least(1))
    width: int = field(default=64, metadata=at_least(1))
    layers: int = field(default=2, metadata=at_least(0))
    heads: int = field(default=2, metadata=at_least(1))
    dropout: float = field(default=0.2, metadata=between(0.0, 1.0))
    epochs: int = field(default=10, metadata=at_least(1))
    pretrain_epochs: int = field(default=5, metadata=at_least(1))
    batch_size: int = field(default=256, metadata=at_least(1))
    learning_rate: float = field(default=1e-3, metadata=at_least(0.0))
    # full: softmax over every item of the domain (exact); sampled: `negatives` shared negatives.
    loss: Literal["full", "sampled"] = "full"
    negatives: int = field(default=512, metadata=at_least(1))
    negative_sampler: Literal["uniform", "in_batch"] = "in_batch"
    # What the pretrained transformer learns from: source sequences with source labels, or mixed
    # sequences (source rows + target training rows of every user) with the labels of both domains.
    pretrain_on: Literal["source", "mixed"] = "source"
    # Fine-tuning epochs with the pretrained transformer blocks and positions frozen.
    freeze_epochs: int = field(default=1, metadata=at_least(0))
    patience: int = field(default=3, metadata=at_least(1))
    text_encoder_dir: str | None = None
    # The text encoder's pooling and L2 normalisation; null: the folder's sentence-transformers config
    # (1_Pooling/config.json, modules.json), else mean pooling, normalised (xdt.text.pooling).
    text_pooling: Literal["mean", "cls", "max", "mean_sqrt_len", "last"] | None = None
    text_normalize: bool | None = None
    # text_bridge items: adaptor(text) only (any item with a title can be scored, brand-new ones
    # included), or plus a zero-initialised id embedding learned for the items seen in training.
    text_with_ids: bool = False
    # null: score next items by the dot product; τ: by cosine similarity / τ (UniSRec: 0.07).
    score_temperature: float | None = field(default=None, metadata=at_least(0.001))
    # c2dsr (xdt.sequential.c2dsr): λ weighs the next-item losses against the contrastive infomax
    # terms (λ·next-item + (1 − λ)·infomax; the paper's 0.7), and the GCN depth over the item
    # transition graphs (the paper's 1). width/layers/heads/dropout/learning_rate are shared.
    c2dsr_lambda: float = field(default=0.7, metadata=between(0.0, 1.0))
    c2dsr_graph_layers: int = field(default=1, metadata=at_least(0))
    # unisrec (xdt.sequential.unisrec): cosine temperature τ, λ of the sequence–sequence term, the item /
    # word drop rate of its augmented views and the share of batches using item drop (the official 0.07, 1e-3, 0.2, 0.9).
    unisrec_temperature: float = field(default=0.07, metadata=at_least(0.001))
    unisrec_lambda: float = field(default=1e-3, metadata=at_least(0.0))
    unisrec_drop: float = field(default=0.2, metadata=between(0.0, 1.0))
    unisrec_item_drop_share: float = field(default=0.9, metadata=between(0.0, 1.0))
    # The augmentations of its sequence–sequence views, one drawn per batch: the official item_drop +
    # word_drop (item drop in unisrec_item_drop_share of the batches), or CL4SRec's crop / mask / reorder
    # (equal shares; item drop keeps its share when listed with them), with CL4SRec's η, γ, β.
    unisrec_augmentations: list[Literal["item_drop", "word_drop", "crop", "mask", "reorder"]] = field(
        default_factory=lambda: ["item_drop", "word_drop"]
    )
    unisrec_crop: float = field(default=0.6, metadata=between(0.0, 1.0))
    unisrec_mask: float = field(default=0.3, metadata=between(0.0, 1.0))
    unisrec_reorder: float = field(default=0.6, metadata=between(0.0, 1.0))


# --- Feedback loop: `xdt update` (xdt.update) ---
@dataclass(frozen=True)
class UpdateConfig:
    """How `xdt update` trains a run on feedback: warm-started, a few epochs, old rows replayed."""

    epochs: int = field(default=3, metadata=at_least(1))
    # Old target training rows replayed per feedback row (a seeded draw), so that the update does not forget;
    # task: sequential replays other users' windows per feedback user's window.
    replay_ratio: float = field(default=1.0, metadata=at_least(0.0))
    # The replay protocol (xdt.replay, bench/replay_quality.py) on a dataset.protocol: temporal dataset:
    # the target test rows (after the test cut-off T0) cut into this many windows of equal row count.
    feedback_windows: int = field(default=4, metadata=at_least(1))


@dataclass(frozen=True)
class ExperimentConfig:
    """One experiment: data, source model, transfer methods, evaluation."""

    experiment: str
    dataset: DatasetConfig
    # ranking: pretrain → transfer → full-ranking evaluation; rating: xdt.rating's explicit-rating methods.
    task: Literal["ranking", "rating", "sequential"] = "ranking"
    seed: int = 42
    seeds: list[int] = field(default_factory=list)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    transfer: TransferConfig = field(default_factory=TransferConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    recommend: RecommendConfig = field(default_factory=RecommendConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    rating: RatingConfig = field(default_factory=RatingConfig)
    sequence: SequenceConfig = field(default_factory=SequenceConfig)
    update: UpdateConfig = field(default_factory=UpdateConfig)

    def to_dict(self) -> dict[str, Any]:
        """Every value actually used, as plain data."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config with the text it came from."""

    config: ExperimentConfig
    text: str
    path: Path
    overrides: tuple[str, ...]


def load_config(path: Path | str, overrides: Sequence[str] = ()) -> LoadedConfig:
    """Read, override and validate an experiment config file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Config file not found: {path}")
    text = read_config_text(path)
    try:
        raw = load_yaml(text, source=str(path))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{where}: not valid YAML: {getattr(error, 'problem', error)}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, received {type(raw).__name__}")
    for override in overrides:
        apply_override(raw, override, source=str(path))
    config = build_dataclass(ExperimentConfig, raw, key_path="", source=str(path))
    check_consistency(config, source=str(path))
    return LoadedConfig(config=config, text=text, path=path, overrides=tuple(overrides))


def read_config_text(path: Path) -> str:
    """The config's text, decoded as UTF-8 whatever the locale; a file in another encoding names the first bad byte."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise ConfigError(
            f"{path}: expected UTF-8 text, but byte 0x{data[error.start]:02x} at offset {error.start} (line {line}) "
            "is not valid UTF-8. Save the file as UTF-8"
        ) from None


def config_from_dict(raw: dict[str, Any], source: str = "<dict>") -> ExperimentConfig:
    """Validate a config given as a dictionary (tests, resolved.json)."""
    config = build_dataclass(ExperimentConfig, raw, key_path="", source=source)
    check_consistency(config, source=source)
    return config


def check_consistency(config: ExperimentConfig, *, source: str) -> None:
    """Cross-field checks that single-field types cannot express."""
    for key in PATH_COMPONENT_KEYS:
        check_path_component(config_value(config, key), key=key, source=source)
    dataset = config.dataset
    if dataset.synthetic is None and (dataset.source is None or dataset.target is None):
        raise ConfigError(
            f"{source}: dataset: expected either 'synthetic' or both 'source' and 'target'. "
            f"Received: source={'set' if dataset.source else 'missing'}, "
            f"target={'set' if dataset.target else 'missing'}"
        )
    if dataset.synthetic is not None and (dataset.source is not None or dataset.target is not None):
        raise ConfigError(f"{source}: dataset: 'synthetic' cannot be combined with 'source'/'target'")
    if dataset.synthetic is not None:
        fractions = dataset.synthetic.overlap_fraction + dataset.synthetic.source_only_fraction
        if fractions > 1.0:
            raise ConfigError(
                f"{source}: dataset.synthetic: expected overlap_fraction + source_only_fraction <= 1. "
                f"Received: {fractions:g}"
            )
    if dataset.cold_fraction + dataset.valid_cold_fraction > 1.0:
        raise ConfigError(f"{source}: dataset: expected cold_fraction + valid_cold_fraction <= 1")
    check_dataset_protocol(dataset, source=source)
    folds = max(dataset.folds, config.evaluate.folds)
    if folds > 1 and dataset.protocol != "cold_users":
        raise ConfigError(f"{source}: evaluate.folds: cross-validation folds need protocol cold_users. Received protocol: {dataset.protocol}")
    if folds > 1 and dataset.test_users_file:
        raise ConfigError(f"{source}: evaluate.folds cannot be combined with dataset.test_users_file (the file fixes the test users)")
    if dataset.fold is not None and not 0 <= dataset.fold < dataset.folds:
        raise ConfigError(f"{source}: dataset.fold: expected 0 <= fold < folds ({dataset.folds}). Received: {dataset.fold}")
    check_name(config.pretrain.model, SOURCE_MODEL_NAMES, key="pretrain.model", source=source)
    if not config.transfer.methods:
        raise ConfigError(f"{source}: transfer.methods: expected at least one method. Received: []")
    from xdt.tasks import get_task  # the task plug-ins import this module

    get_task(config.task).check_config(config, source)
    if not config.evaluate.ks or min(config.evaluate.ks) < 1:
        raise ConfigError(f"{source}: evaluate.ks: expected a list of k >= 1. Received: {config.evaluate.ks}")
    metric, _, k_text = config.evaluate.validation_metric.partition("@")
    if metric not in ("ndcg", "recall", "hr", "mrr", "precision") or not k_text.isdigit():
        raise ConfigError(
            f"{source}: evaluate.validation_metric: expected METRIC@K with METRIC one of "
            f"ndcg, recall, hr, mrr, precision. Received: {config.evaluate.validation_metric!r}"
        )


def config_value(config: ExperimentConfig, key: str) -> Any:
    """The value at a dotted key path of a validated config."""
    value: Any = config
    for part in key.split("."):
        value = getattr(value, part)
    return value


def check_sequence_task(config: ExperimentConfig, *, source: str) -> None:
    """task: sequential — known, distinct sequence methods; width divisible by heads."""
    methods = config.sequence.methods
    if not methods:
        raise ConfigError(f"{source}: sequence.methods: expected at least one of {', '.join(SEQUENCE_METHOD_NAMES)}. Received: []")
    for index, method in enumerate(methods):
        check_name(method, SEQUENCE_METHOD_NAMES, key=f"sequence.methods[{index}]", source=source)
    if len(set(methods)) != len(methods):
        raise ConfigError(f"{source}: sequence.methods: expected distinct methods. Received: {methods}")
    if "c2dsr" in methods and config.sequence.loss == "sampled" and config.sequence.negative_sampler != "uniform":
        raise ConfigError(
            f"{source}: sequence.negative_sampler: c2dsr's sampled heads draw uniform negatives; set negative_sampler: uniform "
            f"or loss: full. Received: negative_sampler={config.sequence.negative_sampler!r}"
        )
    if config.sequence.width % config.sequence.heads:
        raise ConfigError(
            f"{source}: sequence.width: expected a multiple of sequence.heads. "
            f"Received: width={config.sequence.width}, heads={config.sequence.heads}"
        )


def check_single_device_runtime(config: ExperimentConfig, *, source: str) -> None:
    """Rating and sequential train in their own loops on one device in float32: refuse runtime settings they would ignore."""
    runtime = config.runtime
    ignored = {
        "runtime.strategy": (runtime.strategy, runtime.strategy in ("mirrored", "multi_worker", "tpu")),
        "runtime.precision": (runtime.precision, runtime.precision != "float32"),
        "runtime.jit_compile": (runtime.jit_compile, runtime.jit_compile),
    }
    for key, (value, unsupported) in ignored.items():
        if unsupported:
            raise ConfigError(
                f"{source}: {key}: task {config.task} trains on one device in float32 without XLA "
                f"(only the ranking task honours it). Received: {value!r}; use auto/default, float32, false"
            )
    if runtime.max_in_memory_rows != RuntimeConfig.max_in_memory_rows:
        raise ConfigError(
            f"{source}: runtime.max_in_memory_rows: task {config.task} holds its training rows in memory "
            f"(only the ranking task streams them). Received: {runtime.max_in_memory_rows!r}; "
            f"leave it at its default {RuntimeConfig.max_in_memory_rows}"
        )


def check_rating_task(config: ExperimentConfig, *, source: str) -> None:
    """task: rating — rating methods only, on cold-start users (protocol cold_users without warm holdout)."""
    for index, method in enumerate(config.transfer.methods):
        if method in RATING_METHOD_NAMES:
            continue
        close = difflib.get_close_matches(method, RATING_METHOD_NAMES, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        kind = "a ranking method, not a rating method" if method in METHOD_NAMES else "not a rating method"
        raise ConfigError(
            f"{source}: transfer.methods[{index}]: {method!r} is {kind} (task: rating).{hint} "
            f"Available rating methods: {', '.join(RATING_METHOD_NAMES)}"
        )
    dataset = config.dataset
    if dataset.protocol != "cold_users" or dataset.warm_holdout != "none":
        raise ConfigError(
            f"{source}: dataset: task: rating predicts the target ratings of cold-start users and needs "
            f"protocol cold_users with warm_holdout none. "
            f"Received: protocol={dataset.protocol!r}, warm_holdout={dataset.warm_holdout!r}"
        )


def check_dataset_protocol(dataset: DatasetConfig, *, source: str) -> None:
    """Protocol-specific keys: each only where its protocol reads it, with consistent values."""
    protocol_keys = {
        "test_users_file": ("cold_users", dataset.test_users_file is not None),
        "given_valid": ("given", dataset.given_valid != "none"),
        "test_cutoff": ("temporal", dataset.test_cutoff is not None),
        "test_quantile": ("temporal", dataset.test_quantile is not None),
        "valid_cutoff": ("temporal", dataset.valid_cutoff is not None),
        "valid_quantile": ("temporal", dataset.valid_quantile is not None),
    }
    for key, (protocol, is_set) in protocol_keys.items():
        if is_set and dataset.protocol != protocol:
            raise ConfigError(
                f"{source}: dataset.{key}: only used by protocol {protocol!r}. Received: protocol={dataset.protocol!r}"
            )
    if dataset.protocol == "temporal":
        for split in ("test", "valid"):
            cutoff, quantile = getattr(dataset, f"{split}_cutoff"), getattr(dataset, f"{split}_quantile")
            if cutoff is not None and quantile is not None:
                raise ConfigError(
                    f"{source}: dataset: give either {split}_cutoff or {split}_quantile, not both. "
                    f"Received: {split}_cutoff={cutoff:g}, {split}_quantile={quantile:g}"
                )
        if dataset.test_cutoff is None and dataset.test_quantile is None:
            raise ConfigError(
                f"{source}: dataset: protocol 'temporal' needs test_cutoff (a timestamp) or test_quantile "
                "(a fraction of all timestamps, e.g. 0.9)"
            )
        if dataset.valid_cutoff is not None and dataset.test_cutoff is not None and dataset.valid_cutoff > dataset.test_cutoff:
            raise ConfigError(
                f"{source}: dataset: expected valid_cutoff <= test_cutoff. "
                f"Received: valid_cutoff={dataset.valid_cutoff:g}, test_cutoff={dataset.test_cutoff:g}"
            )
        if (
            dataset.valid_quantile is not None
            and dataset.test_quantile is not None
            and dataset.valid_quantile > dataset.test_quantile
        ):
            raise ConfigError(
                f"{source}: dataset: expected valid_quantile <= test_quantile. "
                f"Received: valid_quantile={dataset.valid_quantile:g}, test_quantile={dataset.test_quantile:g}"
            )
    fractions = dataset.ratio_fractions
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6 or fractions[0] <= 0:
        raise ConfigError(
            f"{source}: dataset.ratio_fractions: expected [train, valid, test], each >= 0, train > 0, "
            f"summing to 1. Received: {fractions}"
        )
    for role, domain in (("source", dataset.source), ("target", dataset.target)):
        if domain is None or domain.rating_range is None:
            continue
        if len(domain.rating_range) != 2 or domain.rating_range[0] > domain.rating_range[1]:
            raise ConfigError(
                f"{source}: dataset.{role}.rating_range: expected [low, high] with low <= high. "
                f"Received: {domain.rating_range}"
            )
