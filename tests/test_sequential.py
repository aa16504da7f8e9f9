"""Tests for xdt.sequential: sequences, the causal transformer, the text bridge, training and evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

from tests.text_folders import tiny_bert_weights, write_tiny_bert
from xdt.sequential.data import (
    ItemVocabulary,
    drop_tokens,
    evaluation_examples,
    training_examples,
    user_sequences,
    vocabulary_for,
)
from xdt.sequential.evaluation import evaluate_next_item, mean_metrics, rank_next_items
from xdt.sequential.text_bridge import TextAdaptor, build_text_bridge, encode_texts, item_texts
from xdt.sequential.training import TrainingSettings, seed_everything, train_next_item
from xdt.sequential.transformer import SequenceTransformer, parameter_count

MAX_LENGTH = 6
WORDS = "green tea coffee bean knife pan pot cup mug salt oil pasta".split()


def tiny_interactions(users: int = 40, seed: int = 0) -> pd.DataFrame:
    """Mixed two-domain sequences; target item = (previous target item + 1) mod 8, so order is learnable."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(users):
        target_item = int(rng.integers(0, 8))
        for timestamp in range(int(rng.integers(4, 9))):
            if rng.random() < 0.3:
                rows.append(("source", f"u{user}", int(rng.integers(0, 5)), timestamp, "train"))
            else:
                rows.append(("target", f"u{user}", target_item, timestamp, "train"))
                target_item = (target_item + 1) % 8
        if user < 10:
            rows.append(("target", f"u{user}", target_item, 99, "test"))
    return pd.DataFrame(rows, columns=["domain", "user", "item", "timestamp", "split"])


def tiny_model(vocabulary_size: int = 14, **overrides) -> SequenceTransformer:
    arguments = {"width": 8, "layers": 2, "heads": 2, "dropout": 0.0, **overrides}
    return SequenceTransformer(vocabulary_size, MAX_LENGTH, **arguments)


def model_inputs(items: np.ndarray, vocabulary: ItemVocabulary) -> dict[str, np.ndarray]:
    return {"items": items.astype(np.int32), "domains": vocabulary.domain_ids(items)}


def test_vocabulary_layout_and_domains() -> None:
    vocabulary = ItemVocabulary(n_source=3, n_target=4)
    assert vocabulary.size == 8
    assert vocabulary.token_range("source") == (1, 4) and vocabulary.token_range("target") == (4, 8)
    assert vocabulary.tokens("target", np.array([0, 3])).tolist() == [4, 7]
    assert vocabulary.domain_ids(np.array([0, 1, 3, 4, 7])).tolist() == [0, 1, 1, 2, 2]
    with pytest.raises(ValueError, match="domain='video'"):
        vocabulary.token_range("video")


def test_sequences_are_ordered_left_padded_and_labelled_by_domain() -> None:
    frame = pd.DataFrame(
        {
            "domain": ["target", "source", "target", "target", "source"],
            "user": ["a", "a", "a", "b", "b"],
            "item": [2, 1, 0, 3, 0],
            "timestamp": [2, 0, 1, 0, 1],
            "split": ["train"] * 5,
        }
    )
    vocabulary = ItemVocabulary(n_source=2, n_target=4)
    sequences = user_sequences(frame, vocabulary)
    # a: source 1 (t0) → token 2, target 0 (t1) → token 3, target 2 (t2) → token 5
    assert sequences.users.tolist() == ["a", "b"]
    assert sequences.sequence(0).tolist() == [2, 3, 5]
    examples = training_examples(sequences, vocabulary, max_length=4, label_domains=("target",))
    assert examples.items[0].tolist() == [0, 0, 2, 3]
    assert examples.labels[0].tolist() == [0, 0, 3, 5]
    assert examples.domains[0].tolist() == [0, 0, 1, 2]
    # b: target 3 → token 6, then source 0 → token 1; its only next item is a source item: dropped.
    assert len(examples) == 1
    only_target = user_sequences(frame, vocabulary, domains=("target",))
    assert only_target.sequence(0).tolist() == [3, 5]
    assert drop_tokens(sequences, np.array([3])).sequence(0).tolist() == [2, 5]


def test_evaluation_examples_use_history_before_the_target() -> None:
    frame = tiny_interactions()
    vocabulary = vocabulary_for(frame)
    examples = evaluation_examples(frame, vocabulary, split="test", max_length=MAX_LENGTH)
    assert len(examples) == 10
    user_rows = frame[frame["user"] == examples.users[0]].sort_values("timestamp")
    history = user_rows[user_rows["split"] == "train"].tail(MAX_LENGTH)
    expected = [
        vocabulary.tokens(domain, np.array([item]))[0] for domain, item in zip(history["domain"], history["item"])
    ]
    assert examples.items[0][-len(expected) :].tolist() == expected
    assert examples.targets[0] == user_rows.iloc[-1]["item"]
    assert set(examples.seen[0]) == set(history.loc[history["domain"] == "target", "item"]) | set(
        user_rows.loc[(user_rows["domain"] == "target") & (user_rows["split"] == "train"), "item"]
    )
    target_only = evaluation_examples(frame, vocabulary, split="test", max_length=MAX_LENGTH, history_domains=("target",))
    assert set(target_only.domains[target_only.items > 0].tolist()) <= {2}


def test_output_and_score_shapes() -> None:
    model = tiny_model()
    items = np.array([[0, 0, 3, 4, 9, 12], [1, 2, 3, 4, 5, 6]])
    vocabulary = ItemVocabulary(5, 8)
    hidden = model(model_inputs(items, vocabulary))
    assert tuple(hidden.shape) == (2, MAX_LENGTH, 8)
    scores = model.score_tokens(model_inputs(items, vocabulary), np.arange(6, 14))
    assert tuple(scores.shape) == (2, 8)
    # Shorter windows than max_length are accepted (position ids count back from the end).
    assert tuple(model(model_inputs(items[:, -3:], vocabulary)).shape) == (2, 3, 8)


@pytest.mark.parametrize("text", [False, True])
def test_causal_mask_earlier_outputs_ignore_later_items(text: bool) -> None:
    keras.utils.set_random_seed(1)
    vocabulary = ItemVocabulary(5, 8)
    model = (
        build_text_bridge(np.random.default_rng(0).standard_normal((14, 12)).astype("float32"), max_length=MAX_LENGTH, width=8, heads=2, dropout=0.0, adaptor_experts=2)
        if text
        else tiny_model()
    )
    items = np.array([[0, 0, 3, 4, 9, 12]])
    changed = items.copy()
    changed[0, 4] = 7
    before = np.asarray(model(model_inputs(items, vocabulary)))
    after = np.asarray(model(model_inputs(changed, vocabulary)))
    np.testing.assert_allclose(before[:, :4], after[:, :4], atol=1e-6)
    assert np.abs(before[:, 4:] - after[:, 4:]).max() > 1e-4


def test_save_load_round_trip_gives_identical_scores(tmp_path: Path) -> None:
    vocabulary = ItemVocabulary(5, 8)
    items = np.array([[0, 0, 3, 4, 9, 12], [1, 2, 3, 4, 5, 6]])
    text_table = np.random.default_rng(0).standard_normal((14, 12)).astype("float32")
    for name, model in (
        ("ids", tiny_model()),
        ("text", build_text_bridge(text_table, max_length=MAX_LENGTH, width=8, heads=2, adaptor_experts=2, text_with_ids=True)),
        ("cosine", build_text_bridge(text_table, max_length=MAX_LENGTH, width=8, heads=2, adaptor_experts=2, score_temperature=0.1)),
    ):
        expected = np.asarray(model.score_tokens(model_inputs(items, vocabulary), np.arange(1, 14)))
        path = tmp_path / f"{name}.keras"
        model.save(path)
        loaded = keras.saving.load_model(path)
        assert isinstance(loaded, SequenceTransformer)
        assert loaded.get_config() == model.get_config()
        np.testing.assert_array_equal(np.asarray(loaded.score_tokens(model_inputs(items, vocabulary), np.arange(1, 14))), expected)


def test_cosine_scores_are_the_dot_product_of_unit_vectors_over_the_temperature() -> None:
    vocabulary = ItemVocabulary(5, 8)
    items = np.array([[0, 0, 3, 4, 9, 12], [1, 2, 3, 4, 5, 6]])
    text_table = np.random.default_rng(0).standard_normal((14, 12)).astype("float32")
    keras.utils.set_random_seed(3)
    raw = build_text_bridge(text_table, max_length=MAX_LENGTH, width=8, heads=2, adaptor_experts=2)
    cosine = build_text_bridge(text_table, max_length=MAX_LENGTH, width=8, heads=2, adaptor_experts=2, score_temperature=0.25)
    cosine.set_weights(raw.get_weights())
    tokens = np.arange(1, 14)
    hidden = np.asarray(raw.last_hidden(model_inputs(items, vocabulary)))
    vectors = np.asarray(raw.item_vectors(tokens))
    expected = (hidden @ vectors.T) / np.linalg.norm(hidden, axis=1)[:, None] / np.linalg.norm(vectors, axis=1)[None] / 0.25
    np.testing.assert_allclose(np.asarray(cosine.score_tokens(model_inputs(items, vocabulary), tokens)), expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(np.asarray(cosine.candidate_vectors(tokens)), axis=1), 1.0, rtol=1e-5)
    # New items known only by text are scored the same way as the table's items.
    np.testing.assert_allclose(np.asarray(cosine.text_item_vectors(text_table[1:])), np.asarray(cosine.candidate_vectors(tokens)), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="score_temperature > 0"):
        tiny_model(score_temperature=0.0)


def test_text_adaptor_mixes_experts() -> None:
    adaptor = TextAdaptor(4, experts=3, dropout=0.0)
    text = np.random.default_rng(0).standard_normal((5, 6)).astype("float32")
    output = np.asarray(adaptor(text))
    assert output.shape == (5, 4)
    # Zero gates → equal weights; zero biases → output = x · mean_k W_k.
    projection = np.asarray(adaptor.expert_projection).reshape(6, 3, 4).mean(axis=1)
    np.testing.assert_allclose(output, text @ projection, rtol=1e-5, atol=1e-5)


def write_random_bert(folder: Path, seed: int) -> Path:
    """A tiny random BERT saved as a Hugging Face folder (config.json, vocab.txt, model.safetensors)."""
    return write_tiny_bert(folder, tiny_bert_weights(seed))


def test_text_embeddings_are_cached_and_invalidated(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    texts = ["", "green tea", "coffee bean", "knife"]
    first = encode_texts(texts, cache_dir=cache, hashed_dim=16)
    assert first.embeddings.shape == (4, 16) and not first.embeddings[0].any()
    assert len(list(cache.glob("*.npy"))) == 1
    np.testing.assert_array_equal(encode_texts(texts, cache_dir=cache, hashed_dim=16).embeddings, first.embeddings)
    assert len(list(cache.glob("*.npy"))) == 1
    changed = encode_texts(["", "green tea", "coffee bean", "pan"], cache_dir=cache, hashed_dim=16)
    assert len(list(cache.glob("*.npy"))) == 2
    np.testing.assert_array_equal(changed.embeddings[:3], first.embeddings[:3])
    assert not np.allclose(changed.embeddings[3], first.embeddings[3])

    pytest.importorskip("keras_hub")
    bert_cache = tmp_path / "bert-cache"
    folder = write_random_bert(tmp_path / "bert", seed=0)
    encoded = encode_texts(texts, cache_dir=bert_cache, encoder_dir=folder)
    assert encoded.embeddings.shape == (4, 16) and encoded.encoder_id.startswith("bert:")
    np.testing.assert_allclose(np.linalg.norm(encoded.embeddings[1:], axis=1), 1.0, rtol=1e-5)
    assert len(list(bert_cache.glob("*.npy"))) == 1
    # New weights in the same folder → new fingerprint → recomputed, not served from the cache.
    write_random_bert(folder, seed=1)
    reencoded = encode_texts(texts, cache_dir=bert_cache, encoder_dir=folder)
    assert len(list(bert_cache.glob("*.npy"))) == 2
    assert not np.allclose(reencoded.embeddings[1:], encoded.embeddings[1:])


def test_item_texts_follow_the_vocabulary() -> None:
    vocabulary = ItemVocabulary(2, 2)
    source = pd.DataFrame({"item": [0, 1], "title": ["tea", "coffee"]})
    target = pd.DataFrame({"item": [1], "title": ["knife"]})
    assert item_texts(vocabulary, source, target) == ["", "tea", "coffee", "", "knife"]


def test_training_learns_and_fine_tuning_respects_the_freeze_schedule(tmp_path: Path) -> None:
    seed_everything(0)
    frame = tiny_interactions(users=60)
    vocabulary = vocabulary_for(frame)
    sequences = user_sequences(frame, vocabulary, exclude_users=[f"u{user}" for user in range(10)])
    examples = training_examples(sequences, vocabulary, max_length=MAX_LENGTH, label_domains=("target",))
    test = evaluation_examples(frame, vocabulary, split="test", max_length=MAX_LENGTH)
    model = tiny_model(vocabulary.size, width=16)
    before = mean_metrics(evaluate_next_item(model, test, vocabulary, ks=(1,)))
    settings = TrainingSettings(epochs=8, batch_size=16, learning_rate=1e-2, loss="full", seed=0)
    history = train_next_item(model, examples, vocabulary, candidate_domain="target", settings=settings)
    after = mean_metrics(evaluate_next_item(model, test, vocabulary, ks=(1,)))
    assert history.epochs[-1]["loss"] < history.epochs[0]["loss"]
    assert after["mrr"] > before["mrr"] and after["recall@1"] >= 0.5
    assert history.sequences_per_second > 0

    # Fine-tune one epoch with blocks and positions frozen: only the other groups may move.
    pretrained = {name: [variable.numpy() for variable in variables] for name, variables in model.variable_groups().items()}
    fine_tune = TrainingSettings(epochs=1, batch_size=16, loss="sampled", negatives=4, freeze=("blocks", "positions"), freeze_epochs=1)
    train_next_item(model, examples, vocabulary, candidate_domain="target", settings=fine_tune, checkpoint_dir=tmp_path / "ft")
    for name, variables in model.variable_groups().items():
        changed = any(not np.array_equal(old, np.asarray(new)) for old, new in zip(pretrained[name], variables))
        assert changed == (name not in ("blocks", "positions")), name
    state = json.loads((tmp_path / "ft" / "state.json").read_text())
    assert state["epoch"] == 1 and state["epochs"][0]["frozen"] == ["blocks", "positions"]
    # A finished run resumes as finished: nothing more is trained.
    weights = [np.array(weight) for weight in model.get_weights()]
    train_next_item(model, examples, vocabulary, candidate_domain="target", settings=fine_tune, checkpoint_dir=tmp_path / "ft")
    for old, new in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(old, new)


def test_training_builds_an_unbuilt_model_before_making_the_optimiser() -> None:
    frame = tiny_interactions(users=20)
    vocabulary = vocabulary_for(frame)
    examples = training_examples(user_sequences(frame, vocabulary), vocabulary, max_length=MAX_LENGTH)
    keras.utils.set_random_seed(3)
    model = tiny_model(vocabulary.size)
    assert not model.built
    settings = TrainingSettings(epochs=1, batch_size=8, negatives=4)
    train_next_item(model, examples, vocabulary, candidate_domain="target", settings=settings)
    assert model.built and parameter_count(model) > 0
    keras.utils.set_random_seed(3)
    reference = tiny_model(vocabulary.size)
    reference.build()
    assert any(not np.array_equal(a, b) for a, b in zip(model.get_weights(), reference.get_weights()))


def test_evaluation_masks_history_but_not_a_repeated_target() -> None:
    vocabulary = ItemVocabulary(0, 4)
    model = tiny_model(vocabulary.size)
    frame = pd.DataFrame(
        {
            "domain": ["target"] * 4,
            "user": ["a", "a", "a", "a"],
            "item": [0, 1, 2, 1],
            "timestamp": [0, 1, 2, 3],
            "split": ["train", "train", "train", "test"],
        }
    )
    examples = evaluation_examples(frame, vocabulary, split="test", max_length=MAX_LENGTH)
    top_items, ranks = rank_next_items(model, examples, vocabulary, k=4)
    # Items 0 and 2 are masked; the repeated target 1 competes with item 3 only.
    assert ranks[0] in (1, 2)
    assert set(top_items[0, :2].tolist()) == {1, 3}
    per_user = evaluate_next_item(model, examples, vocabulary, ks=(2,))
    assert per_user[["recall@2", "hr@2"]].iloc[0].tolist() == [1.0, 1.0]
    assert list(per_user.columns[:3]) == ["user", "cohort", "rank"]
    # Restricting the candidates to item 3 leaves the target outside: scored but not ranked top.
    cold = rank_next_items(model, examples, vocabulary, k=1, candidates=np.array([3, 1]))
    assert cold[0].shape == (1, 1)


def test_evaluation_ranks_scores_computed_elsewhere_with_the_same_masking() -> None:
    vocabulary = ItemVocabulary(0, 4)
    frame = pd.DataFrame(
        {
            "domain": ["target"] * 6,
            "user": ["a", "a", "a", "b", "b", "b"],
            "item": [0, 2, 1, 3, 3, 0],
            "timestamp": [0, 1, 2, 0, 1, 2],
            "split": ["train", "train", "test", "train", "train", "test"],
        }
    )
    examples = evaluation_examples(frame, vocabulary, split="test", max_length=MAX_LENGTH)
    # User a: history {0, 2} masked, target 1 scores 0.5 under item 3's 0.9 → rank 2.
    # User b: history {3} masked, target 0 scores 0.2 under items 1 (0.7) and 2 (0.4) → rank 3.
    scores = np.array([[5.0, 0.5, 9.0, 0.9], [0.2, 0.7, 0.4, 9.0]])
    seen_batches = []

    def batch_scores(start: int, stop: int) -> np.ndarray:
        seen_batches.append((start, stop))
        return scores[start:stop]

    per_user = evaluate_next_item(None, examples, vocabulary, ks=(1, 3), batch_size=1, batch_scores=batch_scores)
    assert seen_batches == [(0, 1), (1, 2)]
    assert per_user["user"].tolist() == ["a", "b"]
    assert per_user["rank"].tolist() == [2, 3]
    np.testing.assert_allclose(per_user["ndcg@3"], [1 / np.log2(3), 1 / np.log2(4)])
    assert per_user["recall@1"].tolist() == [0.0, 0.0]


def test_parameter_count_scales_with_width() -> None:
    small = tiny_model(1000)
    small.build()
    large = SequenceTransformer(1000, MAX_LENGTH, width=32, layers=4, heads=4)
    large.build()
    # items 1000·w + positions 6·w + domains 3·w + final norm 2w + per block (4w²+4w attention,
    # 2·(2w) norms, w·4w+4w + 4w·w+w feed-forward) = 12w² + 13w.
    assert parameter_count(small) == 1011 * 8 + 2 * (12 * 64 + 13 * 8)
    assert parameter_count(large) == 1011 * 32 + 4 * (12 * 32 * 32 + 13 * 32)


def rule_interactions(users: int, n_items: int, rule: str, seed: int = 0) -> pd.DataFrame:
    """Target-only sequences of 6-10 items and one held-out next item for the first 40 users.

    rule "order": next = (previous + 1) mod n_items; rule "popular": next items drawn i.i.d.
    with 60% of the mass on items 0, 1, 2 (no sequential signal at all).
    """
    rng = np.random.default_rng(seed)
    skew = np.full(n_items, 0.4 / (n_items - 3))
    skew[:3] = 0.2
    rows = [("source", "nobody", 0, 0, "train")]
    for user in range(users):
        item = int(rng.integers(n_items))
        length = int(rng.integers(6, 11))
        for timestamp in range(length + 1):
            rows.append(("target", f"u{user}", item, timestamp, "test" if user < 40 and timestamp == length else "train"))
            item = (item + 1) % n_items if rule == "order" else int(rng.choice(n_items, p=skew))
    return pd.DataFrame(rows, columns=["domain", "user", "item", "timestamp", "split"])


@pytest.mark.parametrize(
    "loss, sampler, temperature", [("full", "uniform", None), ("sampled", "uniform", None), ("sampled", "in_batch", None), ("sampled", "uniform", 0.1)]
)
def test_training_learns_a_simple_rule(loss: str, sampler: str, temperature: float | None) -> None:
    """Regression: the Food→Kitchen bench once left every model at the floor; a tiny order rule must be learned."""
    seed_everything(0)
    frame = rule_interactions(users=400, n_items=30, rule="order")
    vocabulary = vocabulary_for(frame)
    sequences = user_sequences(frame, vocabulary, domains=("target",), exclude_users=[f"u{user}" for user in range(40)])
    examples = training_examples(sequences, vocabulary, max_length=8, label_domains=("target",))
    test = evaluation_examples(frame, vocabulary, split="test", max_length=8, history_domains=("target",))
    model = SequenceTransformer(vocabulary.size, 8, width=16, layers=1, heads=2, dropout=0.0, score_temperature=temperature)
    settings = TrainingSettings(epochs=6, batch_size=32, learning_rate=1e-2, loss=loss, negatives=16, negative_sampler=sampler)
    history = train_next_item(model, examples, vocabulary, candidate_domain="target", settings=settings)
    assert history.epochs[-1]["loss"] < history.epochs[0]["loss"]
    assert mean_metrics(evaluate_next_item(model, test, vocabulary, ks=(1,)))["recall@1"] >= 0.8


def test_in_batch_negatives_still_learn_popularity() -> None:
    """In-batch negatives are drawn in proportion to popularity; without the logQ correction the
    softmax cancels popularity out and the model ranks the three dominant items no higher than the rest."""
    seed_everything(0)
    frame = rule_interactions(users=400, n_items=30, rule="popular")
    vocabulary = vocabulary_for(frame)
    sequences = user_sequences(frame, vocabulary, domains=("target",), exclude_users=[f"u{user}" for user in range(40)])
    examples = training_examples(sequences, vocabulary, max_length=8, label_domains=("target",))
    test = evaluation_examples(frame, vocabulary, split="test", max_length=8, history_domains=("target",))
    test = test.subset(np.array([len(seen) > 0 for seen in test.seen]))
    model = SequenceTransformer(vocabulary.size, 8, width=16, layers=1, heads=2, dropout=0.0)
    settings = TrainingSettings(epochs=4, batch_size=32, learning_rate=1e-2, loss="sampled", negatives=16, negative_sampler="in_batch")
    train_next_item(model, examples, vocabulary, candidate_domain="target", settings=settings)
    scores = model.score_tokens(model_inputs(test.items, vocabulary), np.arange(*vocabulary.token_range("target")))
    top3 = np.argsort(-np.asarray(scores).mean(axis=0))[:3]
    assert sorted(top3.tolist()) == [0, 1, 2]
