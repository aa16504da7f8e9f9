"""Tests for xdt.sequential.unisrec: augmentations, both contrastive losses, pretraining resume, adaptor-only fine-tuning."""

from __future__ import annotations

import json
import math
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import Killed, kill_after_first_epoch, write_config
from test_sequential_experiment import sequential_config
from typer.testing import CliRunner

from xdt.cli import app
from xdt.sequential.data import ItemVocabulary, TrainingExamples
from xdt.sequential.text_bridge import build_text_bridge
from xdt.sequential.training import TrainingSettings, seed_everything
from xdt.sequential.unisrec import (
    PretrainingObjective,
    augmented_view,
    copy_pretrained,
    crop,
    item_drop,
    mask_positions,
    parameter_share,
    pretrain_unisrec,
    reorder,
    seq_item_loss,
    seq_seq_loss,
    word_drop_view,
    word_dropped_texts,
)

runner = CliRunner()
# Source tokens 1-3, target tokens 4-6.
VOCABULARY = ItemVocabulary(3, 3)
TEMPERATURE = 0.5


class FixedDraws:
    """Stands in for a numpy Generator: `random(shape)` returns the given values."""

    def __init__(self, *values: np.ndarray | float) -> None:
        self.values = list(values)

    def random(self, shape: tuple[int, ...] | None = None) -> np.ndarray | float:
        value = self.values.pop(0)
        return value if shape is None else np.asarray(value, dtype=np.float64).reshape(shape)


def texts_table(dim: int = 6, seed: int = 0) -> np.ndarray:
    table = np.random.default_rng(seed).normal(size=(VOCABULARY.size, dim)).astype(np.float32)
    table[0] = 0.0
    return table


def tiny_bridge(table: np.ndarray | None = None, **overrides) -> keras.Model:
    shape = {"width": 8, "layers": 1, "heads": 2, "dropout": 0.0, "adaptor_experts": 2, "score_temperature": TEMPERATURE, **overrides}
    return build_text_bridge(texts_table() if table is None else table, max_length=4, **shape)


def test_word_drop_is_seeded_keeps_a_word_and_leaves_empty_texts() -> None:
    texts = ["organic green tea leaves", "", "salt"]
    assert word_dropped_texts(texts, 0.0, seed=1) == texts
    dropped = word_dropped_texts(texts, 0.5, seed=1)
    assert dropped == word_dropped_texts(texts, 0.5, seed=1)
    assert dropped[1] == "" and dropped[2] == "salt"
    assert set(dropped[0].split()) <= set(texts[0].split())
    # Everything dropped: one word survives, so no title becomes empty.
    assert all(len(text.split()) == 1 for text in word_dropped_texts(texts[:1] * 20, 1.0, seed=2))


def test_item_drop_repacks_the_kept_items_and_always_keeps_the_oldest() -> None:
    items = np.array([[0, 3, 5, 4], [2, 6, 1, 5]], dtype=np.int32)
    # 5 of the first window dropped (draw 0.1 < 0.2); in the second, everything but the oldest.
    draws = FixedDraws(np.array([[0.9, 0.9, 0.1, 0.9], [0.1, 0.1, 0.1, 0.1]]))
    np.testing.assert_array_equal(item_drop(items, 0.2, draws), [[0, 0, 3, 4], [0, 0, 0, 2]])
    np.testing.assert_array_equal(item_drop(items, 0.0, np.random.default_rng(0)), items)
    rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
    np.testing.assert_array_equal(item_drop(items, 0.5, rng_a), item_drop(items, 0.5, rng_b))


def test_word_drop_view_swaps_the_drawn_positions_to_the_dropped_texts() -> None:
    table, dropped = texts_table(), texts_table(seed=1)
    items = np.array([[0, 2, 4]], dtype=np.int32)
    view = word_drop_view(items, table, dropped, 0.2, FixedDraws(np.array([[0.9, 0.1, 0.9]])))
    np.testing.assert_array_equal(view[0], np.stack([table[0], dropped[2], table[4]]))


def test_augmented_view_chooses_item_drop_or_word_drop_by_the_share() -> None:
    table, dropped = texts_table(), texts_table(seed=1)
    items = np.array([[0, 3, 5, 4]], dtype=np.int32)
    objective = PretrainingObjective(drop_rate=0.2, item_drop_share=0.9)
    item_view = augmented_view(items, VOCABULARY, table, dropped, objective, FixedDraws(0.5, np.array([[0.9, 0.9, 0.1, 0.9]])))
    np.testing.assert_array_equal(item_view["items"], [[0, 0, 3, 4]])
    np.testing.assert_array_equal(item_view["item_texts"][0], table[[0, 0, 3, 4]])
    word_view = augmented_view(items, VOCABULARY, table, dropped, objective, FixedDraws(0.95, np.array([[0.9, 0.1, 0.9, 0.9]])))
    np.testing.assert_array_equal(word_view["items"], items)
    np.testing.assert_array_equal(word_view["item_texts"][0], np.stack([table[0], dropped[3], table[5], table[4]]))
    np.testing.assert_array_equal(word_view["domains"], VOCABULARY.domain_ids(items))


class ReversingDraws(FixedDraws):
    """FixedDraws whose `permutation` reverses its argument."""

    def permutation(self, values: np.ndarray) -> np.ndarray:
        return np.asarray(values)[::-1]


def test_crop_keeps_a_contiguous_share_at_the_drawn_start_left_padded() -> None:
    items = np.array([[0, 3, 5, 4, 6], [0, 0, 0, 0, 2], [0, 0, 0, 0, 0]], dtype=np.int32)
    # Row 0: n 4, ⌊0.5·4⌋ = 2 kept, start ⌊0.6·3⌋ = 1 → items 5, 4. Row 1: n 1, ⌊0.5⌋ = 0 → one kept. Row 2 stays empty.
    cropped = crop(items, 0.5, FixedDraws(np.array([0.6, 0.99, 0.3])))
    np.testing.assert_array_equal(cropped, [[0, 0, 0, 5, 4], [0, 0, 0, 0, 2], [0, 0, 0, 0, 0]])
    # η 1 keeps every window whole.
    np.testing.assert_array_equal(crop(items, 1.0, np.random.default_rng(0)), items)


def test_mask_positions_masks_the_floor_share_of_real_items_with_the_lowest_draws() -> None:
    items = np.array([[0, 3, 5, 4, 6], [0, 0, 0, 1, 2]], dtype=np.int32)
    draws = FixedDraws(np.array([[0.0, 0.7, 0.2, 0.9, 0.4], [0.0, 0.0, 0.0, 0.5, 0.1]]))
    # γ 0.5: ⌊0.5·4⌋ = 2 of row 0 (its two lowest draws among real items: 5, then 6), ⌊0.5·2⌋ = 1 of row 1 (item 2).
    masked = mask_positions(items, 0.5, draws)
    np.testing.assert_array_equal(masked, [[False, False, True, False, True], [False, False, False, False, True]])


def test_reorder_shuffles_only_the_drawn_span() -> None:
    items = np.array([[0, 3, 5, 4, 6], [0, 0, 0, 1, 2]], dtype=np.int32)
    # Row 0: ⌊0.75·4⌋ = 3 items from start ⌊0.5·2⌋ = 1 (5, 4, 6), reversed. Row 1: ⌊0.75·2⌋ = 1, nothing to shuffle.
    shuffled = reorder(items, 0.75, ReversingDraws(np.array([0.5, 0.5])))
    np.testing.assert_array_equal(shuffled, [[0, 3, 6, 4, 5], [0, 0, 0, 1, 2]])
    np.testing.assert_array_equal(items[0], [0, 3, 5, 4, 6])  # the input is left as it was


def test_augmentation_weights_keep_the_official_share_or_split_equally() -> None:
    assert PretrainingObjective().augmentation_weights() == {"item_drop": 0.9, "word_drop": pytest.approx(0.1)}
    cl4srec = PretrainingObjective(augmentations=("crop", "mask", "reorder")).augmentation_weights()
    assert cl4srec == {name: pytest.approx(1 / 3) for name in ("crop", "mask", "reorder")}
    mixed = PretrainingObjective(augmentations=("item_drop", "crop", "mask"), item_drop_share=0.6).augmentation_weights()
    assert mixed == {"item_drop": 0.6, "crop": pytest.approx(0.2), "mask": pytest.approx(0.2)}
    assert PretrainingObjective(augmentations=("item_drop",)).augmentation_weights() == {"item_drop": 1.0}
    with pytest.raises(ValueError, match="Expected distinct augmentations among item_drop, word_drop, crop, mask, reorder"):
        PretrainingObjective(augmentations=("crop", "shuffle"))


def test_augmented_view_mask_zeroes_the_masked_text_and_keeps_the_tokens() -> None:
    table = texts_table()
    items = np.array([[0, 3, 5, 4]], dtype=np.int32)
    objective = PretrainingObjective(augmentations=("crop", "mask", "reorder"), mask=0.4, reorder=0.7)
    # 0.5 falls in mask's third (⅓–⅔); ⌊0.4·3⌋ = 1 masked: item 4, the lowest draw.
    view = augmented_view(items, VOCABULARY, table, table, objective, FixedDraws(0.5, np.array([[0.0, 0.8, 0.6, 0.1]])))
    np.testing.assert_array_equal(view["items"], items)
    np.testing.assert_array_equal(view["item_texts"][0], np.stack([table[0], table[3], table[5], np.zeros(table.shape[1])]))
    # 0.9 falls in reorder's third: ⌊0.7·3⌋ = 2 items from start 0 (3, 5) reversed; the texts follow the items.
    reordered = augmented_view(items, VOCABULARY, table, table, objective, ReversingDraws(0.9, np.array([0.0])))
    np.testing.assert_array_equal(reordered["items"], [[0, 5, 3, 4]])
    np.testing.assert_array_equal(reordered["item_texts"][0], table[[0, 5, 3, 4]])


def test_item_texts_input_replaces_the_table_rows() -> None:
    model = tiny_bridge()
    items = np.array([[0, 1, 4, 5]], dtype=np.int32)
    inputs = {"items": items, "domains": VOCABULARY.domain_ids(items)}
    table = keras.ops.convert_to_numpy(model.item_text_embeddings)
    np.testing.assert_allclose(model({**inputs, "item_texts": table[items]}).numpy(), model(inputs).numpy(), atol=1e-6)
    other = model({**inputs, "item_texts": texts_table(seed=3)[items]}).numpy()
    assert not np.allclose(other, model(inputs).numpy())


def cross_entropy(logits: np.ndarray, positives: np.ndarray) -> float:
    logits = logits - logits.max(axis=1, keepdims=True)
    log_softmax = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return float(-log_softmax[np.arange(len(positives)), positives].mean())


def test_seq_item_loss_scores_each_position_against_the_batch_distinct_next_items() -> None:
    model = tiny_bridge()
    items = np.array([[0, 1, 4, 5], [0, 0, 2, 6]], dtype=np.int32)
    labels = np.array([[0, 4, 5, 4], [0, 0, 6, 0]], dtype=np.int32)
    states = model({"items": items, "domains": VOCABULARY.domain_ids(items)})
    loss = float(seq_item_loss(states, tf.constant(labels), model, training=False))
    # Labelled positions (1,4) (2,5) (3,4) (2,6) of rows 0, 0, 0, 1; the candidates are 4, 5, 6, once each.
    hidden = states.numpy()[[0, 0, 0, 1], [1, 2, 3, 2]]
    candidates = model.candidate_vectors(np.array([4, 5, 6])).numpy()
    assert loss == pytest.approx(cross_entropy(hidden @ candidates.T, np.array([0, 1, 0, 2])), rel=1e-5)
    # Cosine over τ: a logit is at most 1/τ.
    assert np.abs(hidden @ candidates.T).max() <= 1 / TEMPERATURE + 1e-5


def test_seq_seq_loss_by_hand_and_same_next_item_pairs_left_out() -> None:
    states = np.array([[1.0, 0.0], [0.6, 0.8]], dtype=np.float32) / TEMPERATURE
    augmented = np.array([[2.0, 0.0], [0.0, 3.0]], dtype=np.float32)  # normalised inside: [1, 0], [0, 1]
    logits = states @ np.array([[1.0, 0.0], [0.0, 1.0]]).T
    expected = cross_entropy(logits, np.array([0, 1]))
    assert float(seq_seq_loss(tf.constant(states), tf.constant(augmented), tf.constant([5, 6]))) == pytest.approx(expected, rel=1e-6)
    # Row 1 by hand: logits 0.6/τ = 1.2 and 0.8/τ = 1.6, the positive the second.
    assert expected == pytest.approx((math.log(math.exp(2) + 1) - 2 + math.log(math.exp(1.2) + math.exp(1.6)) - 1.6) / 2, rel=1e-6)
    # The same next item: each sequence has only its own view left, the loss is 0; no next item (0) is never "the same".
    assert float(seq_seq_loss(tf.constant(states), tf.constant(augmented), tf.constant([5, 5]))) == pytest.approx(0.0, abs=1e-6)
    assert float(seq_seq_loss(tf.constant(states), tf.constant(augmented), tf.constant([0, 0]))) == pytest.approx(expected, rel=1e-6)


def rule_examples(users: int = 48, seed: int = 0) -> TrainingExamples:
    """Windows of target items following 4 → 5 → 6 → 4, labelled with the next one."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(users):
        start, length = int(rng.integers(3)), int(rng.integers(2, 6))
        tokens = [4 + (start + step) % 3 for step in range(length)]
        rows.append([0] * (5 - length) + tokens)
    windows = np.array(rows, dtype=np.int32)
    items, labels = windows[:, :-1], windows[:, 1:].copy()
    labels[items == 0] = 0
    return TrainingExamples(items=items, domains=VOCABULARY.domain_ids(items), labels=labels)


@pytest.mark.slow
def test_pretraining_learns_the_rule_and_resumes_exactly_after_a_kill(tmp_path: Path) -> None:
    examples = rule_examples()
    dropped = texts_table(seed=1)
    settings = TrainingSettings(epochs=4, batch_size=16, learning_rate=1e-2, seed=2)

    def fresh() -> keras.Model:
        seed_everything(2)
        return tiny_bridge(width=16)

    uninterrupted = fresh()
    history = pretrain_unisrec(uninterrupted, examples, VOCABULARY, dropped_text_embeddings=dropped, settings=settings)
    assert history.epochs[-1]["loss"] < history.epochs[0]["loss"]
    probe = np.array([[0, 0, 0, 4], [0, 0, 4, 5]], dtype=np.int32)
    scores = uninterrupted.score_tokens({"items": probe, "domains": VOCABULARY.domain_ids(probe)}, np.arange(4, 7))
    np.testing.assert_array_equal(scores.numpy().argmax(axis=1), [1, 2])

    with pytest.raises(Killed):
        pretrain_unisrec(fresh(), examples, VOCABULARY, dropped_text_embeddings=dropped, settings=settings,
                         checkpoint_dir=tmp_path / "run", on_epoch=kill_after_first_epoch)
    assert json.loads((tmp_path / "run" / "state.json").read_text())["epoch"] == 1
    resumed = fresh()
    pretrain_unisrec(resumed, examples, VOCABULARY, dropped_text_embeddings=dropped, settings=settings, checkpoint_dir=tmp_path / "run")
    for expected, actual in zip(uninterrupted.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)


def test_pretraining_with_cl4srec_views_learns_the_rule() -> None:
    seed_everything(2)
    model = tiny_bridge(width=16)
    objective = PretrainingObjective(seq_seq_weight=0.1, augmentations=("crop", "mask", "reorder"))
    settings = TrainingSettings(epochs=4, batch_size=16, learning_rate=1e-2, seed=2)
    table = keras.ops.convert_to_numpy(model.item_text_embeddings)
    history = pretrain_unisrec(model, rule_examples(), VOCABULARY, dropped_text_embeddings=table, settings=settings, objective=objective)
    assert history.epochs[-1]["loss"] < history.epochs[0]["loss"]
    probe = np.array([[0, 0, 0, 4], [0, 0, 4, 5]], dtype=np.int32)
    scores = model.score_tokens({"items": probe, "domains": VOCABULARY.domain_ids(probe)}, np.arange(4, 7))
    np.testing.assert_array_equal(scores.numpy().argmax(axis=1), [1, 2])


def test_config_refuses_an_unknown_augmentation_by_its_key(tmp_path: Path) -> None:
    from xdt.config import load_config
    from xdt.errors import ConfigError

    raw = sequential_config(tmp_path, methods=["unisrec"])
    raw["sequence"]["unisrec_augmentations"] = ["crop", "shuffle"]
    with pytest.raises(ConfigError, match=r"sequence\.unisrec_augmentations\[1\].*shuffle"):
        load_config(write_config(tmp_path, raw))


def test_xdt_run_passes_the_configured_augmentations_to_pretraining(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import xdt.sequential.unisrec as unisrec

    seen = {}

    def record(model, examples, vocabulary, *, dropped_text_embeddings, objective, **rest):  # noqa: ANN001, ANN202
        seen["objective"] = objective
        seen["dropped_is_titles"] = np.array_equal(dropped_text_embeddings, keras.ops.convert_to_numpy(model.item_text_embeddings))
        raise Killed

    monkeypatch.setattr(unisrec, "pretrain_unisrec", record)
    raw = sequential_config(tmp_path, methods=["unisrec"])
    raw["sequence"].update(unisrec_augmentations=["crop", "mask", "reorder"], unisrec_crop=0.5, unisrec_mask=0.2, unisrec_reorder=0.4)
    with pytest.raises(Killed):
        runner.invoke(app, ["run", str(write_config(tmp_path, raw))], catch_exceptions=False)
    objective = seen["objective"]
    assert (objective.augmentations, objective.crop, objective.mask, objective.reorder) == (("crop", "mask", "reorder"), 0.5, 0.2, 0.4)
    # No word drop among the views: the word-dropped titles are not encoded; the titles stand in.
    assert seen["dropped_is_titles"]


def test_pretraining_refuses_a_dot_product_or_id_model() -> None:
    settings = TrainingSettings(epochs=1)
    with pytest.raises(ValueError, match="scored by cosine"):
        pretrain_unisrec(tiny_bridge(score_temperature=None), rule_examples(), VOCABULARY,
                         dropped_text_embeddings=texts_table(), settings=settings)
    with pytest.raises(ValueError, match="dropped_text_embeddings of shape"):
        pretrain_unisrec(tiny_bridge(), rule_examples(), VOCABULARY, dropped_text_embeddings=texts_table()[:3], settings=settings)


def test_copy_pretrained_into_a_transductive_model_and_the_fine_tuned_share() -> None:
    seed_everything(0)
    pretrained, transductive = tiny_bridge(), tiny_bridge(text_with_ids=True)
    copy_pretrained(pretrained, transductive)
    items = np.array([[0, 1, 4, 5]], dtype=np.int32)
    inputs = {"items": items, "domains": VOCABULARY.domain_ids(items)}
    # The id embedding starts at zero, so the copy scores exactly as the pretrained model.
    np.testing.assert_allclose(transductive(inputs).numpy(), pretrained(inputs).numpy(), atol=1e-6)
    trainable, total = parameter_share(transductive)
    frozen = sum(int(np.prod(variable.shape)) for name in ("blocks", "positions") for variable in transductive.variable_groups()[name])
    assert total - trainable == frozen and 0 < trainable < total
    with pytest.raises(ValueError, match="same width"):
        copy_pretrained(pretrained, tiny_bridge(width=16))


@pytest.mark.slow
def test_xdt_run_unisrec_fine_tunes_only_the_adaptor_side(tmp_path: Path) -> None:
    raw = sequential_config(tmp_path, methods=["unisrec", "unisrec_ids"])
    raw["sequence"].update(pretrain_on="mixed", unisrec_temperature=0.2)
    result = runner.invoke(app, ["run", str(write_config(tmp_path, raw))], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    runs = [path for path in (tmp_path / "runs" / "tiny-sequential").iterdir() if path.is_dir()]
    infos = {path: json.loads((path / "run.json").read_text()) for path in runs}
    (pretrain,) = [path for path, info in infos.items() if info["kind"] == "pretrain"]
    assert (pretrain / "unisrec_model.keras").is_file()
    stages = [json.loads(line)["stage"] for line in (pretrain / "metrics.jsonl").read_text().splitlines()]
    assert stages == ["pretrain_unisrec"]
    pretrained = keras.saving.load_model(pretrain / "unisrec_model.keras")
    assert pretrained.score_temperature == 0.2 and pretrained.item_embedding is None
    transfers = {info["method"]: path for path, info in infos.items() if info["kind"] == "transfer"}
    assert sorted(transfers) == ["unisrec", "unisrec_ids"]
    for method, path in transfers.items():
        results = json.loads((path / "results.json").read_text())
        assert results["history"] == ["target"] and results["test"]["all"]["users"] >= 50
        model = keras.saving.load_model(path / "model.keras")
        assert (model.item_embedding is not None) == (method == "unisrec_ids")
        # Blocks and positions stayed as pretrained through every fine-tuning epoch; the adaptor learned.
        for name in ("blocks", "positions"):
            for before, after in zip(pretrained.variable_groups()[name], model.variable_groups()[name]):
                np.testing.assert_array_equal(after.numpy(), before.numpy())
        assert not np.array_equal(model.adaptor.get_weights()[1], pretrained.adaptor.get_weights()[1])
        epochs = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]
        assert all(row["frozen"] == ["blocks", "positions"] for row in epochs)
