"""Tests for xdt.sequential.c2dsr: the transition graphs, the three encoders' masking, the losses, save/load, resume."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import Killed, kill_after_first_epoch

from xdt.sequential.c2dsr import (
    C2DSR,
    build_c2dsr,
    c2dsr_examples,
    c2dsr_loss,
    dense_graph,
    head_loss,
    infomax_loss,
    masked_mean,
    train_c2dsr,
    transition_graph,
)
from xdt.sequential.data import ItemVocabulary, UserSequences, user_sequences
from xdt.sequential.evaluation import evaluate_next_item, mean_metrics
from xdt.sequential.training import TrainingSettings, seed_everything

# Source tokens 1-3, target tokens 4-6.
VOCABULARY = ItemVocabulary(3, 3)
MAX_LENGTH = 5


def sequences_of(*token_lists: list[int]) -> UserSequences:
    lengths = [len(tokens) for tokens in token_lists]
    return UserSequences(
        np.array([f"u{index}" for index in range(len(token_lists))]),
        np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        np.concatenate([np.asarray(tokens, dtype=np.int64) for tokens in token_lists]),
    )


SEQUENCES = sequences_of([1, 4, 2, 4, 1], [2, 4], [2, 5])


def tiny_c2dsr(sequences: UserSequences = SEQUENCES, **overrides) -> C2DSR:
    shape = {"width": 8, "layers": 1, "heads": 2, "dropout": 0.0, "graph_layers": 1, **overrides}
    return build_c2dsr(sequences, VOCABULARY, max_length=MAX_LENGTH, **shape)


def inputs_of(items: np.ndarray) -> dict[str, np.ndarray]:
    items = np.asarray(items, dtype=np.int32)
    return {"items": items, "domains": VOCABULARY.domain_ids(items)}


def test_transition_graphs_are_row_normalised_transition_counts() -> None:
    # Cross-domain pairs: 1→4, 4→2, 2→4, 4→1 | 2→4 | 2→5 — row 2 has 2→4 twice and 2→5 once.
    expected = np.zeros((7, 7), dtype=np.float32)
    expected[1, 4] = 1.0
    expected[4, 2] = expected[4, 1] = 0.5
    expected[2, 4], expected[2, 5] = 2 / 3, 1 / 3
    np.testing.assert_allclose(dense_graph(*transition_graph(SEQUENCES, VOCABULARY, within_domain=False), 7), expected, rtol=1e-6)
    # Within-domain: source 1, 2, 1 of the first user → 1→2, 2→1; its targets 4, 4 → 4→4; the others have one item per domain.
    within = np.zeros((7, 7), dtype=np.float32)
    within[1, 2] = within[2, 1] = within[4, 4] = 1.0
    np.testing.assert_array_equal(dense_graph(*transition_graph(SEQUENCES, VOCABULARY, within_domain=True), 7), within)


def test_graph_smoothing_is_the_table_plus_the_mean_of_its_propagations() -> None:
    model = tiny_c2dsr(graph_layers=2)
    for name, within in (("mixed", False), ("domain", True)):
        table = (model.item_embedding if name == "mixed" else model.domain_item_embedding).embeddings.numpy()
        adjacency = dense_graph(*transition_graph(SEQUENCES, VOCABULARY, within_domain=within), 7)
        expected = table + (table + adjacency @ table + adjacency @ adjacency @ table) / 3
        np.testing.assert_allclose(model.smoothed_items(name).numpy(), expected, rtol=1e-5, atol=1e-6)


def test_examples_label_the_next_item_and_the_next_item_of_each_domain() -> None:
    examples = c2dsr_examples(sequences_of([1, 4, 2, 5], [6]), VOCABULARY, max_length=3)
    assert len(examples) == 1  # a user with one item has nothing to learn
    np.testing.assert_array_equal(examples.items, [[1, 4, 2]])
    np.testing.assert_array_equal(examples.labels, [[4, 2, 5]])
    np.testing.assert_array_equal(examples.source_labels, [[2, 0, 0]])  # no source item after 2
    np.testing.assert_array_equal(examples.target_labels, [[0, 5, 0]])
    # Skips the other domain's items, and reaches the item just past the window's inputs.
    longer = c2dsr_examples(sequences_of([1, 1, 4, 5, 3]), VOCABULARY, max_length=4)
    np.testing.assert_array_equal(longer.source_labels, [[1, 3, 0, 0]])
    np.testing.assert_array_equal(longer.target_labels, [[0, 0, 5, 0]])


def test_shapes_causality_and_domain_views() -> None:
    model = tiny_c2dsr()
    items = np.array([[0, 1, 4, 2, 5], [0, 0, 0, 2, 3]])
    mixed, source, target = (state.numpy() for state in model(inputs_of(items)))
    assert mixed.shape == source.shape == target.shape == (2, MAX_LENGTH, 8)
    assert model.last_hidden(inputs_of(items)).shape == (2, 9)
    assert model.score_tokens(inputs_of(items), np.arange(4, 7)).shape == (2, 3)
    # A later item leaves every earlier output of all three encoders unchanged.
    later = items.copy()
    later[0, 4] = 6
    changed = [state.numpy() for state in model(inputs_of(later))]
    for before, after in zip((mixed, source, target), changed):
        np.testing.assert_allclose(before[0, :4], after[0, :4], rtol=1e-5, atol=1e-6)
    assert not np.allclose(mixed[0, 4], changed[0][0, 4])
    # The source-only encoder never sees target items, the target-only encoder never sees source items.
    other_target = items.copy()
    other_target[0, 2] = 6
    np.testing.assert_allclose(model(inputs_of(other_target))[1].numpy(), source, rtol=1e-5, atol=1e-6)
    other_source = items.copy()
    other_source[0, 1] = 3
    np.testing.assert_allclose(model(inputs_of(other_source))[2].numpy(), target, rtol=1e-5, atol=1e-6)
    assert not np.allclose(model(inputs_of(other_source))[0].numpy()[0, 1:], mixed[0, 1:])
    # A longer window is cut to its newest max_length items.
    longer = np.concatenate([np.array([[2, 5], [4, 4]]), items], axis=1)
    np.testing.assert_allclose(
        model.score_tokens(inputs_of(longer), np.arange(4, 7)).numpy(), model.score_tokens(inputs_of(items), np.arange(4, 7)).numpy(), rtol=1e-6
    )


def test_target_scores_are_the_target_head_after_mixed_plus_target_only_state() -> None:
    model = tiny_c2dsr()
    items = np.array([[0, 1, 4, 2, 5], [0, 4, 6, 2, 3], [0, 0, 1, 2, 3]])
    mixed, _, target = (state.numpy() for state in model(inputs_of(items)))
    kernel, bias = model.target_head.kernel.numpy(), model.target_head.bias.numpy()
    state = mixed[:, -1] + np.stack([target[0, 4], target[1, 2], np.zeros(8)])  # newest target slot; none for the third user
    expected = state @ kernel + bias
    np.testing.assert_allclose(model.score_tokens(inputs_of(items), np.arange(4, 7)).numpy(), expected, rtol=1e-5, atol=1e-5)


def test_infomax_and_head_losses_match_hand_computed_values() -> None:
    def softplus(value: float) -> float:
        return float(np.log1p(np.exp(value)))

    real, false = tf.constant([2.0, -1.0, 5.0]), tf.constant([0.5, 3.0, 5.0])
    present = tf.constant([True, True, False])  # the third user has no labels in one domain: left out
    expected = (softplus(-2.0) + softplus(1.0)) / 2 + (softplus(0.5) + softplus(3.0)) / 2
    assert float(infomax_loss(real, false, present)) == pytest.approx(expected, rel=1e-6)
    assert float(infomax_loss(real, false, tf.zeros(3, bool))) == 0.0

    states = tf.constant([[[1.0, 0.0], [3.0, 2.0], [5.0, 4.0]]])
    mean, present = masked_mean(states, tf.constant([[False, True, True]]))
    np.testing.assert_allclose(mean.numpy(), [[4.0, 3.0]])
    assert bool(present[0])

    head = keras.layers.Dense(3)
    head.build((None, 2))
    head.kernel.assign(np.array([[1.0, 0.0, -1.0], [0.0, 2.0, 0.0]], np.float32))
    head.bias.assign(np.zeros(3, np.float32))
    labels = tf.constant([[0, 5, 6]])  # tokens 4-6 → classes 0-2; position 0 unlabelled
    logits = np.array([[3.0, 4.0, -3.0], [5.0, 8.0, -5.0]])
    picked = logits[[0, 1], [1, 2]]
    expected = np.mean(np.log(np.exp(logits).sum(axis=1)) - picked)
    assert float(head_loss(head, states, labels, 4)) == pytest.approx(expected, rel=1e-5)
    assert float(head_loss(head, states, tf.zeros((1, 3), tf.int32), 4)) == 0.0


def test_discriminator_is_bilinear_and_the_loss_weighs_its_parts_by_lambda() -> None:
    model = tiny_c2dsr(width=2, heads=1)
    model.source_discriminator.assign(np.array([[1.0, 2.0], [0.0, 3.0]], np.float32))
    model.discriminator_bias.assign(np.array([0.5, 0.0], np.float32))
    summary, other = np.array([[1.0, -1.0]], np.float32), np.array([[2.0, 1.0]], np.float32)
    # other · W · summary + b = [2, 1] · [[1, 2], [0, 3]] · [1, -1] + 0.5 = [2, 7] · [1, -1] + 0.5
    assert float(model.discriminate("source", summary, other)[0]) == pytest.approx(-4.5)

    examples = c2dsr_examples(SEQUENCES, VOCABULARY, max_length=MAX_LENGTH)
    arrays = [tf.constant(array) for array in (examples.items, examples.labels, examples.source_labels, examples.target_labels)]
    corrupted = [tf.constant(examples.items)] * 2
    total, parts = c2dsr_loss(model, *arrays, *corrupted, weight=0.3, training=False)
    supervised = sum(float(parts[name]) for name in ("share_source", "share_target", "specific_source", "specific_target"))
    infomax = float(parts["infomax_source"]) + float(parts["infomax_target"])
    assert float(total) == pytest.approx(0.3 * supervised + 0.7 * infomax, rel=1e-5)
    assert all(float(value) > 0 for value in parts.values())


def test_save_load_round_trip_keeps_graphs_and_scores(tmp_path: Path) -> None:
    model = tiny_c2dsr()
    items = np.array([[0, 1, 4, 2, 5], [0, 0, 0, 2, 3]])
    scores = model.score_tokens(inputs_of(items), np.arange(4, 7)).numpy()
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras", compile=False)
    assert isinstance(loaded, C2DSR)
    np.testing.assert_allclose(loaded.score_tokens(inputs_of(items), np.arange(4, 7)).numpy(), scores, rtol=1e-6)
    np.testing.assert_allclose(loaded.smoothed_items("mixed").numpy(), model.smoothed_items("mixed").numpy(), rtol=1e-6)


def rule_sequences(users: int = 60, seed: int = 0) -> UserSequences:
    """Mixed sequences whose next target item follows the previous one (4 → 5 → 6 → 4), source items random."""
    rng = np.random.default_rng(seed)
    token_lists = []
    for _ in range(users):
        target, tokens = int(rng.integers(3)), []
        for _ in range(int(rng.integers(4, 8))):
            if rng.random() < 0.3:
                tokens.append(int(rng.integers(1, 4)))
            else:
                tokens.append(4 + target)
                target = (target + 1) % 3
        token_lists.append(tokens)
    return sequences_of(*token_lists)


@pytest.mark.slow
def test_training_learns_a_target_rule_and_resumes_after_a_kill(tmp_path: Path) -> None:
    sequences = rule_sequences()
    examples = c2dsr_examples(sequences, VOCABULARY, max_length=MAX_LENGTH)
    settings = TrainingSettings(epochs=3, batch_size=16, learning_rate=1e-2, seed=1)

    def fresh() -> C2DSR:
        seed_everything(1)
        return tiny_c2dsr(sequences, width=16)

    uninterrupted = fresh()
    history = train_c2dsr(uninterrupted, examples, VOCABULARY, settings=settings, weight=0.7)
    assert history.epochs[-1]["loss"] < history.epochs[0]["loss"]
    # The next target item after 4 is 5 (and 5 → 6): the target head ranks it first.
    scores = uninterrupted.score_tokens(inputs_of(np.array([[0, 0, 0, 1, 4], [0, 0, 0, 4, 5]])), np.arange(4, 7)).numpy()
    np.testing.assert_array_equal(scores.argmax(axis=1), [1, 2])

    with pytest.raises(Killed):
        train_c2dsr(fresh(), examples, VOCABULARY, settings=settings, checkpoint_dir=tmp_path / "run", on_epoch=kill_after_first_epoch)
    assert json.loads((tmp_path / "run" / "state.json").read_text())["epoch"] == 1
    resumed = fresh()
    history = train_c2dsr(resumed, examples, VOCABULARY, settings=settings, checkpoint_dir=tmp_path / "run")
    assert history.epoch == 3
    for expected, actual in zip(uninterrupted.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)


def test_evaluation_ranks_c2dsr_like_the_transformer() -> None:
    import pandas as pd

    from xdt.sequential.data import evaluation_examples

    frame = pd.DataFrame(
        [("source", "a", 0, 0, "train"), ("target", "a", 0, 1, "train"), ("target", "a", 1, 2, "test"),
         ("target", "b", 2, 0, "train"), ("target", "b", 0, 1, "test")],
        columns=["domain", "user", "item", "timestamp", "split"],
    )
    test = evaluation_examples(frame, VOCABULARY, split="test", max_length=MAX_LENGTH)
    model = tiny_c2dsr(user_sequences(frame, VOCABULARY))
    per_user = evaluate_next_item(model, test, VOCABULARY, ks=(1,))
    scores = model.score_tokens(inputs_of(test.items), np.arange(4, 7)).numpy()
    for row in range(len(test)):
        seen = [item for item in test.seen[row] if item != test.targets[row]]
        scores[row, seen] = -np.inf
    expected = 1 + (scores > scores[np.arange(len(test)), test.targets][:, None]).sum(axis=1)
    np.testing.assert_array_equal(per_user["rank"].to_numpy(), expected)
    assert 0.0 <= mean_metrics(per_user)["mrr"] <= 1.0


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="n_source"):
        C2DSR(7, 6, MAX_LENGTH, mixed_edges=0, domain_edges=0)
    model = tiny_c2dsr()
    with pytest.raises(ValueError, match="mixed edges"):
        model.set_graphs((np.zeros((2, 1), np.int32), np.ones(1, np.float32)), transition_graph(SEQUENCES, VOCABULARY, within_domain=True))
    examples = c2dsr_examples(SEQUENCES, VOCABULARY, max_length=MAX_LENGTH)
    with pytest.raises(ValueError, match="weight"):
        train_c2dsr(model, examples, VOCABULARY, settings=TrainingSettings(epochs=1), weight=1.5)


def test_sampled_heads_score_the_positive_against_shared_negatives_with_hits_masked() -> None:
    head = keras.layers.Dense(3)
    head.build((None, 2))
    head.kernel.assign(np.array([[1.0, 0.0, -1.0], [0.0, 2.0, 0.0]], np.float32))
    head.bias.assign(np.array([0.0, 0.5, 0.0], np.float32))
    states = tf.constant([[[3.0, 2.0], [5.0, 4.0]]])
    labels = tf.constant([[5, 6]])  # classes 1 and 2
    negatives = tf.constant([4, 5])  # classes 0 and 1: the first position's own item is an accidental hit
    # Logits: position 0 ([3, 2]) → [3, 4.5, -3]; position 1 ([5, 4]) → [5, 8.5, -5].
    first = np.log(np.exp(4.5) + np.exp(3.0)) - 4.5  # positive 4.5 against class 0 only
    second = np.log(np.exp(-5.0) + np.exp(5.0) + np.exp(8.5)) + 5.0  # positive -5 against classes 0 and 1
    assert float(head_loss(head, states, labels, 4, negatives)) == pytest.approx((first + second) / 2, rel=1e-5)


def test_sampled_c2dsr_needs_uniform_negatives(tmp_path: Path) -> None:
    from test_sequential_experiment import sequential_config

    from xdt.config import config_from_dict
    from xdt.errors import ConfigError

    raw = sequential_config(tmp_path, methods=["c2dsr"])
    raw["sequence"].update(loss="sampled", negative_sampler="in_batch")
    with pytest.raises(ConfigError, match="c2dsr's sampled heads draw uniform negatives"):
        config_from_dict(raw)
    raw["sequence"]["negative_sampler"] = "uniform"
    assert config_from_dict(raw).sequence.negative_sampler == "uniform"
    examples = c2dsr_examples(SEQUENCES, VOCABULARY, max_length=MAX_LENGTH)
    with pytest.raises(ValueError, match="negative_sampler 'uniform'"):
        train_c2dsr(tiny_c2dsr(), examples, VOCABULARY, settings=TrainingSettings(epochs=1, loss="sampled", negative_sampler="in_batch"))
