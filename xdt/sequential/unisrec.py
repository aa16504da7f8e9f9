"""UniSRec (Hou et al., KDD 2022): universal sequence representations pretrained from item text.

Items are frozen sentence embeddings of their titles through the MoE whitening adaptor
(`TextAdaptor`); a causal transformer reads the sequence; every score is a cosine over a
temperature τ (the paper's 0.07). Pretraining (on one or several domains' sequences) minimises

    L = L_seq-item + λ · L_seq-seq        (λ = 1e-3 in the official code)

- sequence–item contrastive: each labelled position's state against the next items of the
  batch (in-batch negatives, several domains when the pretraining sequences mix them);
- sequence–sequence contrastive: each sequence's last state against the last states of an
  augmented view of every sequence of the batch. Per batch one augmentation of
  `augmentations` makes the view (`augmentation_weights`): the official pair is *item drop*
  (each item kept with probability 1 − rate, the oldest always, the rest re-packed) in
  `item_drop_share` (0.9) of the batches, otherwise *word drop* (each position's text embedding
  replaced, with probability rate, by the embedding of the title with words dropped). CL4SRec's
  three (Xie et al., ICDE 2022) are the alternative: *crop* (a random contiguous ⌊η·n⌋ of the
  n items), *mask* (⌊γ·n⌋ random items replaced by the mask: a zero text embedding, which the
  adaptor maps to one learned vector) and *reorder* (a random contiguous ⌊β·n⌋ shuffled).

Pairs whose next items are the same item are removed from both denominators (the official code
sets their logit to 0, i.e. keeps them with weight e⁰; removing them is the intent of its
comment "Remove sequences with the same next item").

Fine-tuning is parameter-efficient as in the official `finetune.py` (`fix_enc`): the transformer
blocks and position embeddings stay as pretrained, the adaptor (plus, transductive, a
zero-initialised id embedding), the domain embedding and the output norm learn, with the
next-item softmax over the target items.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from xdt.sequential.data import PAD, ItemVocabulary, TrainingExamples
from xdt.sequential.training import TrainingHistory, TrainingSettings, apply_gradients, run_epochs
from xdt.sequential.transformer import SequenceTransformer, unit_length

# The official code's values (props/UniSRec.yaml).
TEMPERATURE = 0.07
SEQ_SEQ_WEIGHT = 1e-3
ITEM_DROP = 0.2
ITEM_DROP_SHARE = 0.9
# CL4SRec's crop η, mask γ and reorder β (the values its common implementations default to).
CROP = 0.6
MASK = 0.3
REORDER = 0.6
AUGMENTATIONS = ("item_drop", "word_drop", "crop", "mask", "reorder")
OFFICIAL_AUGMENTATIONS = ("item_drop", "word_drop")
# Fine-tuning leaves these groups as pretrained (the official fix_enc: position embedding and transformer encoder).
FROZEN_IN_FINETUNING = ("blocks", "positions")


@dataclass(frozen=True)
class PretrainingObjective:
    """UniSRec's pretraining knobs: λ of the sequence–sequence term, the views' augmentations and their rates.

    `item_drop_share` is item drop's share of the batches when other augmentations are listed too.
    """

    seq_seq_weight: float = SEQ_SEQ_WEIGHT
    drop_rate: float = ITEM_DROP
    item_drop_share: float = ITEM_DROP_SHARE
    augmentations: tuple[str, ...] = OFFICIAL_AUGMENTATIONS
    crop: float = CROP
    mask: float = MASK
    reorder: float = REORDER

    def __post_init__(self) -> None:
        if self.seq_seq_weight < 0:
            raise ValueError(f"Expected seq_seq_weight >= 0. Received: seq_seq_weight={self.seq_seq_weight}")
        for name in ("drop_rate", "item_drop_share", "crop", "mask", "reorder"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"Expected {name} in [0, 1]. Received: {name}={value}")
        unknown = [name for name in self.augmentations if name not in AUGMENTATIONS]
        if not self.augmentations or unknown or len(set(self.augmentations)) != len(self.augmentations):
            raise ValueError(f"Expected distinct augmentations among {', '.join(AUGMENTATIONS)}. Received: augmentations={list(self.augmentations)}")

    def augmentation_weights(self) -> dict[str, float]:
        """Each listed augmentation's probability per batch: item drop `item_drop_share` (1 when alone), the others equal shares of the rest.

        Example: (item_drop, word_drop) → 0.9 / 0.1 (the official code); (crop, mask, reorder) → ⅓ each (CL4SRec).
        """
        others = [name for name in self.augmentations if name != "item_drop"]
        if "item_drop" not in self.augmentations:
            return {name: 1.0 / len(others) for name in others}
        if not others:
            return {"item_drop": 1.0}
        return {"item_drop": self.item_drop_share, **{name: (1.0 - self.item_drop_share) / len(others) for name in others}}


def word_dropped_texts(texts: Sequence[str], rate: float, seed: int) -> list[str]:
    """Each title with each word dropped with probability `rate` (at least one word kept); "" stays "".

    Seeded: the same texts, rate and seed give the same result. Example: rate 0 → the texts unchanged.
    """
    rng = np.random.default_rng([seed, 2022])
    dropped = []
    for text in texts:
        words = text.split()
        if not words:
            dropped.append(text)
            continue
        keep = rng.random(len(words)) >= rate
        if not keep.any():
            keep[rng.integers(len(words))] = True
        dropped.append(" ".join(word for word, kept in zip(words, keep) if kept))
    return dropped


def item_drop(items: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Left-padded `(batch, length)` token windows with each item dropped with probability `rate`.

    The oldest item of every window is kept (a view is never empty); the kept items keep their
    order and are left-padded again. Example: [0, 3, 9, 4] with 9 dropped → [0, 0, 3, 4].
    """
    real = items != PAD
    keep = real & (rng.random(items.shape) >= rate)
    oldest = np.argmax(real, axis=1)
    has_items = real.any(axis=1)
    keep[np.flatnonzero(has_items), oldest[has_items]] = True
    return repack(items, keep)


def repack(items: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """The `keep` cells of left-padded `(batch, length)` windows, in their order, left-padded again.

    A stable sort moving the other cells first does it. Example: [0, 3, 9, 4] keeping 3 and 4 → [0, 0, 3, 4].
    """
    order = np.argsort(keep, axis=1, kind="stable")
    return np.where(np.take_along_axis(keep, order, axis=1), np.take_along_axis(items, order, axis=1), PAD).astype(items.dtype)


def _counts(real: np.ndarray, share: float) -> np.ndarray:
    """⌊share · n⌋ of each row's n real items."""
    return np.floor(share * real.sum(axis=1)).astype(np.int64)


def crop(items: np.ndarray, eta: float, rng: np.random.Generator) -> np.ndarray:
    """Left-padded `(batch, length)` windows cut to a random contiguous ⌊η·n⌋ of their n items (at least one), left-padded again.

    Example: [0, 3, 9, 4, 7] (n = 4) at η 0.5, start 1 → [0, 0, 0, 9, 4].
    """
    real = items != PAD
    lengths = real.sum(axis=1)
    keep = np.maximum(_counts(real, eta), np.minimum(lengths, 1))
    starts = np.floor(rng.random(len(items)) * (lengths - keep + 1)).astype(np.int64)
    first = items.shape[1] - lengths  # the index of the oldest item of each left-padded row
    columns = np.arange(items.shape[1])[None, :]
    return repack(items, (columns >= (first + starts)[:, None]) & (columns < (first + starts + keep)[:, None]))


def mask_positions(items: np.ndarray, gamma: float, rng: np.random.Generator) -> np.ndarray:
    """`(batch, length)` booleans: ⌊γ·n⌋ of each row's n real items, drawn without replacement.

    Example: a row of 4 items at γ 0.3 → one position masked.
    """
    real = items != PAD
    keys = np.where(real, rng.random(items.shape), np.inf)
    ranks = np.argsort(np.argsort(keys, axis=1, kind="stable"), axis=1, kind="stable")
    return real & (ranks < _counts(real, gamma)[:, None])


def reorder(items: np.ndarray, beta: float, rng: np.random.Generator) -> np.ndarray:
    """Left-padded `(batch, length)` windows with a random contiguous ⌊β·n⌋ of their n items shuffled in place."""
    real = items != PAD
    lengths = real.sum(axis=1)
    spans = _counts(real, beta)
    starts = np.floor(rng.random(len(items)) * (lengths - spans + 1)).astype(np.int64)
    shuffled = items.copy()
    for row in np.flatnonzero(spans > 1):
        begin = items.shape[1] - lengths[row] + starts[row]
        shuffled[row, begin : begin + spans[row]] = rng.permutation(items[row, begin : begin + spans[row]])
    return shuffled


def word_drop_view(items: np.ndarray, texts: np.ndarray, dropped_texts: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Text embeddings `(batch, length, dim)` of `items`: each position's from `dropped_texts` with probability `rate`."""
    replace = rng.random(items.shape) < rate
    return np.where(replace[..., None], dropped_texts[items], texts[items]).astype(np.float32)


def masked_contrastive_loss(logits: tf.Tensor, positives: tf.Tensor, removed: tf.Tensor) -> tf.Tensor:
    """Mean cross-entropy of row i's logit `positives[i]` against its row, `removed` `(rows, columns)` cells left out."""
    logits = tf.where(removed, tf.constant(-1e9, logits.dtype), logits)
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=positives, logits=logits))


def seq_item_loss(states: tf.Tensor, labels: tf.Tensor, model: SequenceTransformer, training: bool) -> tf.Tensor:
    """Sequence–item contrastive: labelled positions' states `(batch, length, width)` (unit / τ) vs the batch's next items.

    Candidates are the distinct labels of the batch, so a position is scored against its own next
    item once and never against a copy of it (the same-item pairs the official code removes).
    """
    labelled = labels > PAD
    hidden = tf.boolean_mask(states, labelled)
    targets = tf.boolean_mask(labels, labelled)
    candidates, index = tf.unique(targets)
    logits = tf.matmul(hidden, model.candidate_vectors(candidates, training=training), transpose_b=True)
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=index, logits=logits))


def seq_seq_loss(states: tf.Tensor, augmented_states: tf.Tensor, last_labels: tf.Tensor) -> tf.Tensor:
    """Sequence–sequence contrastive between each sequence's last state (unit / τ) and its augmented view's.

    `augmented_states` `(batch, width)` any length (normalised here); pairs of different sequences
    with the same next item (`last_labels`, 0 = none) are left out.
    """
    logits = tf.matmul(states, unit_length(augmented_states), transpose_b=True)
    rows = tf.shape(states)[0]
    same_next = tf.logical_and(tf.equal(last_labels[:, None], last_labels[None, :]), last_labels[:, None] > PAD)
    removed = tf.logical_and(same_next, tf.logical_not(tf.eye(rows, dtype=tf.bool)))
    return masked_contrastive_loss(logits, tf.range(rows), removed)


def pretraining_loss(
    model: SequenceTransformer,
    items: tf.Tensor,
    domains: tf.Tensor,
    labels: tf.Tensor,
    view: dict[str, tf.Tensor],
    seq_seq_weight: float,
    training: bool = True,
) -> tf.Tensor:
    """L_seq-item + λ · L_seq-seq for one batch; `view` is the augmented batch (`items`, `domains`, optional `item_texts`)."""
    states = model({"items": items, "domains": domains}, training=training)
    loss = seq_item_loss(states, labels, model, training)
    if seq_seq_weight:
        augmented = model(view, training=training)[:, -1]
        loss += seq_seq_weight * seq_seq_loss(states[:, -1], augmented, labels[:, -1])
    return loss


def augmented_view(
    items: np.ndarray,
    vocabulary: ItemVocabulary,
    texts: np.ndarray,
    dropped_texts: np.ndarray,
    objective: PretrainingObjective,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """One batch's augmented view by one augmentation drawn with `objective.augmentation_weights()`.

    The draw walks the weights in the order of `objective.augmentations` with one uniform number.
    Every augmentation returns the same keys, so the compiled step traces once.
    """
    weights = objective.augmentation_weights()
    names = list(objective.augmentations)
    bounds = np.cumsum([weights[name] for name in names])
    name = names[min(int(np.searchsorted(bounds, rng.random(), side="right")), len(names) - 1)]
    view_items = items
    if name == "item_drop":
        view_items = item_drop(items, objective.drop_rate, rng)
    elif name == "crop":
        view_items = crop(items, objective.crop, rng)
    elif name == "reorder":
        view_items = reorder(items, objective.reorder, rng)
    if name == "word_drop":
        view_texts = word_drop_view(items, texts, dropped_texts, objective.drop_rate, rng)
    elif name == "mask":
        view_texts = np.where(mask_positions(items, objective.mask, rng)[..., None], 0.0, texts[items])
    else:
        view_texts = texts[view_items]
    return {"items": view_items, "domains": vocabulary.domain_ids(view_items), "item_texts": view_texts.astype(np.float32)}


def pretrain_unisrec(
    model: SequenceTransformer,
    examples: TrainingExamples,
    vocabulary: ItemVocabulary,
    *,
    dropped_text_embeddings: np.ndarray,
    settings: TrainingSettings,
    objective: PretrainingObjective = PretrainingObjective(),
    checkpoint_dir: Path | None = None,
    on_epoch: Callable[[dict], None] = lambda record: None,
) -> TrainingHistory:
    """Pretrain a cosine-scored text bridge with UniSRec's two contrastive losses (no validation: the last epoch is kept).

    `dropped_text_embeddings` `(vocabulary_size, text_dim)`: the word-dropped titles' embeddings
    (`word_dropped_texts` through the same encoder). Resumable from `checkpoint_dir` like
    `train_next_item`; the augmentations are drawn from the epoch's `(seed, epoch)` generator.
    """
    if model.text_dim is None or model.score_temperature is None:
        raise ValueError(
            "Expected a text bridge scored by cosine (text_dim and score_temperature set). "
            f"Received: text_dim={model.text_dim}, score_temperature={model.score_temperature}"
        )
    if len(examples) == 0:
        raise ValueError("Expected at least one training example. Received: 0 examples")
    if not model.built:
        model.build()
    texts = keras.ops.convert_to_numpy(model.item_text_embeddings)
    if dropped_text_embeddings.shape != texts.shape:
        raise ValueError(f"Expected dropped_text_embeddings of shape {texts.shape}. Received: shape={dropped_text_embeddings.shape}")
    optimizer = keras.optimizers.Adam(learning_rate=settings.learning_rate)
    variables = list(model.trainable_variables)

    @tf.function(reduce_retracing=True)
    def step(items: tf.Tensor, domains: tf.Tensor, labels: tf.Tensor, view: dict[str, tf.Tensor]) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = pretraining_loss(model, items, domains, labels, view, objective.seq_seq_weight)
        apply_gradients(optimizer, tape.gradient(loss, variables), variables, settings.clip_norm)
        return loss

    def run_batch(batch: np.ndarray, epoch: int, rng: np.random.Generator) -> float:
        items = examples.items[batch]
        view = augmented_view(items, vocabulary, texts, dropped_text_embeddings, objective, rng)
        return float(step(items, examples.domains[batch], examples.labels[batch], view))

    return run_epochs(model, optimizer, len(examples), settings, run_batch, checkpoint_dir=checkpoint_dir, on_epoch=on_epoch)


def copy_pretrained(pretrained: SequenceTransformer, model: SequenceTransformer) -> None:
    """Copy a pretrained text bridge into `model` (the same shape; `model` may add an id embedding, left as initialised)."""
    for name in ("width", "max_length", "layer_count", "heads", "text_dim", "vocabulary_size"):
        if getattr(pretrained, name) != getattr(model, name):
            raise ValueError(f"Expected models of the same {name}. Received: {getattr(pretrained, name)} and {getattr(model, name)}")
    for model_ in (pretrained, model):
        if not model_.built:
            model_.build()
    pairs = [(pretrained.adaptor, model.adaptor), (pretrained.position_embedding, model.position_embedding),
             (pretrained.domain_embedding, model.domain_embedding), (pretrained.output_norm, model.output_norm),
             *zip(pretrained.blocks, model.blocks)]
    for source, target in pairs:
        target.set_weights(source.get_weights())
    model.item_text_embeddings.assign(pretrained.item_text_embeddings)


def parameter_share(model: SequenceTransformer, frozen: Sequence[str] = FROZEN_IN_FINETUNING) -> tuple[int, int]:
    """(trainable scalars in fine-tuning, all trainable scalars) of `model` with `frozen` groups fixed."""
    groups = model.variable_groups()
    frozen_ids = {id(variable) for name in frozen for variable in groups[name]}
    sizes = [(int(np.prod(variable.shape)), id(variable) in frozen_ids) for variable in model.trainable_variables]
    return sum(size for size, is_frozen in sizes if not is_frozen), sum(size for size, _ in sizes)
