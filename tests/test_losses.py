"""Ranking losses and the k sampled negatives they train on: hand values, the negative draw, tiny MF training."""

from __future__ import annotations

import math
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from xdt.config import OptimizerConfig, TrainingConfig
from xdt.data.dataset import PreparedDataset
from xdt.losses import RANKING_LOSSES, binary_cross_entropy_loss, bpr_loss, ranking_loss, sampled_softmax_loss
from xdt.methods.joint import TwoDomainTriples
from xdt.models.matrix_factorization import MatrixFactorization
from xdt.runs import RunDirectory
from xdt.train import fit_pairwise

LN3 = math.log(3.0)
# Row 0: the positive scores ln 3, both negatives 0. Row 1: the positive 0, negatives ln 3 and -ln 3.
SCORES = np.array([[LN3, 0.0, 0.0], [0.0, LN3, -LN3]], dtype="float32")


def test_bpr_averages_the_pairwise_loss_over_the_negatives() -> None:
    # Row 0: -log σ(ln 3) = log(1 + 1/3) = log(4/3) for both negatives.
    # Row 1: -log σ(-ln 3) = log(1 + 3) = log 4 and -log σ(ln 3) = log(4/3); mean = log(16/3) / 2.
    expected = [[math.log(4 / 3)], [math.log(16 / 3) / 2]]
    np.testing.assert_allclose(bpr_loss(SCORES).numpy(), expected, rtol=1e-6)


def test_binary_cross_entropy_sums_the_positive_and_every_negative() -> None:
    # Row 0: -log σ(ln 3) - 2 log σ(0) = log(4/3) + 2 log 2 = log(16/3).
    # Row 1: -log σ(0) - log σ(-ln 3) - log σ(ln 3) = log 2 + log 4 + log(4/3) = log(32/3).
    expected = [[math.log(16 / 3)], [math.log(32 / 3)]]
    np.testing.assert_allclose(binary_cross_entropy_loss(SCORES).numpy(), expected, rtol=1e-6)


def test_sampled_softmax_is_the_positive_against_its_negatives() -> None:
    # Row 0: log(e^ln3 + e^0 + e^0) - ln 3 = log 5 - log 3 = log(5/3).
    # Row 1: log(e^0 + e^ln3 + e^-ln3) - 0 = log(1 + 3 + 1/3) = log(13/3).
    expected = [[math.log(5 / 3)], [math.log(13 / 3)]]
    np.testing.assert_allclose(sampled_softmax_loss(SCORES).numpy(), expected, rtol=1e-6)


def test_softmax_with_one_negative_equals_bpr() -> None:
    scores = np.random.default_rng(0).normal(size=(8, 2)).astype("float32")
    np.testing.assert_allclose(sampled_softmax_loss(scores).numpy(), bpr_loss(scores).numpy(), rtol=1e-5)


def test_keras_loss_ignores_labels_and_rejects_unknown_names() -> None:
    labels = np.zeros((2, 1), dtype="float32")
    for name, loss in RANKING_LOSSES.items():
        np.testing.assert_allclose(ranking_loss(name)(labels, SCORES).numpy(), loss(SCORES).numpy())
    with pytest.raises(ValueError, match="Received: loss='hinge'"):
        ranking_loss("hinge")


def frame_dataset(rows: list[tuple[int, int, str]], n_users: int, n_items: int) -> PreparedDataset:
    """An in-memory dataset of target-domain (user, item, split) rows."""
    frame = pd.DataFrame(rows, columns=["user", "item", "split"]).assign(domain="target", rating=1.0, timestamp=-1)
    items = pd.DataFrame({"item": np.arange(n_items), "raw_item": [f"i{i}" for i in range(n_items)]})
    return PreparedDataset(
        path=Path("."),
        manifest={"name": "hand"},
        interactions=frame,
        raw_users=np.array([f"u{u}" for u in range(n_users)], dtype=object),
        source_items=items.iloc[:0],
        target_items=items,
    )


HAND = frame_dataset([(0, 0, "train"), (0, 1, "train"), (1, 2, "train"), (1, 3, "train"), (1, 4, "train"), (2, 5, "train")], 3, 7)


def test_one_negative_draws_exactly_what_it_always_drew() -> None:
    # Computed with the single-negative code before `negatives` existed (commit bff05dd).
    users, positives, negatives = HAND.bpr_triples("target", 3, 2)
    assert users.tolist() == [0, 0, 1, 1, 2, 1]
    assert positives.tolist() == [1, 0, 3, 2, 5, 4]
    assert negatives.tolist() == [2, 3, 0, 1, 2, 6]
    assert HAND.bpr_triples("target", 0, 1)[2].tolist() == [6, 6, 1, 0, 4, 4]
    assert negatives.shape == (6,) and negatives.dtype == np.int32


def test_k_negatives_avoid_training_items_and_depend_only_on_seed_and_epoch() -> None:
    users, positives, negatives = HAND.bpr_triples("target", 5, 3, negatives=4)
    assert negatives.shape == (6, 4) and negatives.dtype == np.int32
    training = {0: {0, 1}, 1: {2, 3, 4}, 2: {5}}
    for user, row in zip(users, negatives):
        assert not training[int(user)] & set(row.tolist())
        assert ((row >= 0) & (row < 7)).all()
    again = HAND.bpr_triples("target", 5, 3, negatives=4)
    for first, second in zip((users, positives, negatives), again):
        np.testing.assert_array_equal(first, second)
    assert not np.array_equal(HAND.bpr_triples("target", 5, 4, negatives=4)[2], negatives)
    with pytest.raises(ValueError, match="Received: negatives=0"):
        HAND.bpr_triples("target", 5, 3, negatives=0)


def test_two_domain_triples_draw_k_negatives_within_the_positive_domain() -> None:
    source_rows = pd.DataFrame({"user": [0, 1, 1], "item": [0, 1, 2], "domain": "source"})
    frame = pd.concat([HAND.interactions, source_rows.assign(split="train", rating=1.0, timestamp=-1)], ignore_index=True)
    source_items = pd.DataFrame({"item": np.arange(4), "raw_item": [f"s{i}" for i in range(4)]})
    dataset = PreparedDataset(HAND.path, HAND.manifest, frame, HAND.raw_users, source_items, HAND.target_items)
    users, positives, negatives = TwoDomainTriples(dataset).bpr_triples("target", 2, 1, negatives=3)
    assert negatives.shape == (9, 3)
    # Source items are 0..3 in the combined index, target items 4..10.
    is_target = positives >= 4
    assert (negatives[is_target] >= 4).all() and (negatives[~is_target] < 4).all()


def grouped_dataset() -> PreparedDataset:
    """40 users in two taste groups (even, odd items of 20); 6 training items each, one held-out test item."""
    rng = np.random.default_rng(0)
    rows = []
    for user in range(40):
        group_items = rng.permutation(np.arange(user % 2, 20, 2))[:7]
        rows += [(user, int(item), "train") for item in group_items[:6]] + [(user, int(group_items[6]), "test")]
    return frame_dataset(rows, 40, 20)


def held_out_auc(model: MatrixFactorization, dataset: PreparedDataset) -> float:
    """Mean over users of the fraction of items the user never trained on that score below their test item."""
    scores = model.score_all(tf.range(dataset.n_users)).numpy()
    trained = dataset.interaction_matrix("target", "train").toarray() > 0
    test = dataset.rows("target", "test")
    fractions = []
    for user, item in zip(test["user"], test["item"]):
        others = ~trained[user]
        others[item] = False
        fractions.append(float((scores[user, others] < scores[user, item]).mean()))
    return float(np.mean(fractions))


class RecordingDataset:
    """Stands in for a dataset in `fit_pairwise` and records the `negatives` it is asked for."""

    def __init__(self, dataset: PreparedDataset) -> None:
        self.dataset = dataset
        self.requested: list[int] = []

    def bpr_triples(self, domain: str, seed: int, epoch: int, negatives: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The wrapped dataset's triples."""
        self.requested.append(negatives)
        return self.dataset.bpr_triples(domain, seed, epoch, negatives)


@pytest.mark.parametrize("loss", ["bpr", "bce", "softmax"])
def test_each_loss_trains_a_tiny_mf_to_rank_held_out_items(loss: str, tmp_path: Path) -> None:
    dataset = grouped_dataset()
    keras.utils.set_random_seed(1)
    model = MatrixFactorization(dataset.n_users, dataset.n_items("target"), 4, name="mf")
    model.build()
    untrained = held_out_auc(model, dataset)
    training = TrainingConfig(epochs=30, batch_size=64, loss=loss, negatives=3, optimizer=OptimizerConfig(learning_rate=0.05))
    recording = RecordingDataset(dataset)
    run = RunDirectory(tmp_path)
    run.checkpoints.mkdir(parents=True)
    fit_pairwise(
        model,
        dataset=recording,
        domain="target",
        training=training,
        seed=0,
        stage=loss,
        run=run,
        strategy=tf.distribute.get_strategy(),
        validate=None,
    )
    assert recording.requested == [3] * 30
    trained = held_out_auc(model, dataset)
    # Random scores put the test item above about half the other items; within-group ones should be near the top.
    assert trained > untrained + 0.2 and trained > 0.8, (loss, untrained, trained)
