"""Tests for coverage, novelty, popularity percentile and intra-list diversity."""

import itertools
import math

import numpy as np
import pytest

from xdt.beyond_accuracy import (
    beyond_accuracy_metrics,
    catalogue_coverage,
    intra_list_diversity,
    novelty,
    popularity_percentile,
)

# Two users; -1 is padding. Recommended items: 0, 1, 0, 3.
RECOMMENDATIONS = np.array([[0, 1, -1], [0, 3, -1]])
ITEM_POPULARITY = np.array([4.0, 2.0, 2.0, 0.0, 2.0])
ITEM_VECTORS = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 0.0], [0.0, 3.0]])


def test_catalogue_coverage_hand_computed() -> None:
    # Distinct items {0, 1, 3} out of 5 -> 0.6.
    assert catalogue_coverage(RECOMMENDATIONS, 5) == pytest.approx(0.6)


def test_novelty_hand_computed() -> None:
    # Counts with 0 -> 1: [4, 2, 2, 1, 2], total 11. -log2(p) for items 0, 1, 0, 3:
    # log2(11) - 2, log2(11) - 1, log2(11) - 2, log2(11) - 0 -> mean log2(11) - 1.25 = 2.209432.
    assert novelty(RECOMMENDATIONS, ITEM_POPULARITY) == pytest.approx(math.log2(11) - 1.25)
    assert novelty(RECOMMENDATIONS, ITEM_POPULARITY) == pytest.approx(2.209432, abs=1e-6)


def test_popularity_percentile_hand_computed() -> None:
    # rankdata([4, 2, 2, 0, 2]) = [5, 3, 3, 1, 3] (ties at ranks 2, 3, 4 averaged to 3);
    # percentiles 100 * rank / 5 = [100, 60, 60, 20, 60];
    # items 0, 1, 0, 3 -> (100 + 60 + 100 + 20) / 4 = 70.
    assert popularity_percentile(RECOMMENDATIONS, ITEM_POPULARITY) == pytest.approx(70.0)


def test_intra_list_diversity_hand_computed() -> None:
    recommendations = np.array([[0, 1, 2], [0, 3, -1], [4, -1, -1]])
    # User 0: 1 - cos over pairs (0,1) = 1, (0,2) = (1,2) = 1 - 1/sqrt(2)
    #   -> mean (3 - sqrt(2)) / 3 = 0.528595.
    # User 1: items 0 and 3 point the same way -> 0. User 2 has one item and is skipped.
    # Mean over users 0 and 1: 0.528595 / 2 = 0.264298.
    expected = (3.0 - math.sqrt(2.0)) / 6.0
    assert intra_list_diversity(recommendations, ITEM_VECTORS) == pytest.approx(expected)
    assert expected == pytest.approx(0.264298, abs=1e-6)


def _slow_intra_list_diversity(recommendations: np.ndarray, item_vectors: np.ndarray) -> float:
    """Reference: explicit loops over users and item pairs."""
    per_user = []
    for row in recommendations:
        items = [item for item in row if item >= 0]
        if len(items) < 2:
            continue
        distances = []
        for first, second in itertools.combinations(items, 2):
            u, v = item_vectors[first], item_vectors[second]
            distances.append(1.0 - float(u @ v) / (np.linalg.norm(u) * np.linalg.norm(v)))
        per_user.append(sum(distances) / len(distances))
    return sum(per_user) / len(per_user)


def test_intra_list_diversity_matches_slow_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    generator = np.random.default_rng(0)
    item_vectors = generator.normal(size=(40, 8))
    recommendations = generator.integers(0, 40, size=(60, 10))
    # Padding of varying length, including lists left with 0 and 1 items.
    for user, padding in enumerate(generator.integers(0, 11, size=60)):
        recommendations[user, 10 - padding :] = -1
    expected = _slow_intra_list_diversity(recommendations, item_vectors)
    assert intra_list_diversity(recommendations, item_vectors) == pytest.approx(expected, rel=1e-10)
    # Small chunks give the same value: 8 * 10 * 9 elements -> 8 users per chunk.
    monkeypatch.setattr("xdt.beyond_accuracy._DIVERSITY_CHUNK_ELEMENTS", 8 * 10 * 9)
    assert intra_list_diversity(recommendations, item_vectors) == pytest.approx(expected, rel=1e-10)


def test_only_padding_gives_nan() -> None:
    padding = np.full((2, 3), -1)
    assert catalogue_coverage(padding, 5) == 0.0
    assert math.isnan(novelty(padding, ITEM_POPULARITY))
    assert math.isnan(popularity_percentile(padding, ITEM_POPULARITY))
    assert math.isnan(intra_list_diversity(padding, ITEM_VECTORS))


def test_beyond_accuracy_metrics_keys() -> None:
    without_vectors = beyond_accuracy_metrics(
        RECOMMENDATIONS, n_items=5, item_popularity=ITEM_POPULARITY
    )
    assert list(without_vectors) == ["coverage", "novelty", "popularity_percentile"]
    assert without_vectors["popularity_percentile"] == pytest.approx(70.0)
    with_vectors = beyond_accuracy_metrics(
        RECOMMENDATIONS, n_items=5, item_popularity=ITEM_POPULARITY, item_vectors=ITEM_VECTORS
    )
    # Users [0, 1] -> 1 - cos = 1; [0, 3] -> 0; mean 0.5.
    assert with_vectors["intra_list_diversity"] == pytest.approx(0.5)


def test_rejects_bad_inputs() -> None:
    with pytest.raises(ValueError, match="Expected n_items >= 1. Received: n_items=0"):
        catalogue_coverage(RECOMMENDATIONS, 0)
    with pytest.raises(
        ValueError, match=r"Expected item indices in \[-1, 3\). Received: min=-1, max=3"
    ):
        catalogue_coverage(RECOMMENDATIONS, 3)
    with pytest.raises(ValueError, match="Expected recommendations to be an int array"):
        novelty(RECOMMENDATIONS.astype(float), ITEM_POPULARITY)
    with pytest.raises(ValueError, match=r"Received: item_popularity.shape=\(5,\), n_items=6"):
        beyond_accuracy_metrics(RECOMMENDATIONS, n_items=6, item_popularity=ITEM_POPULARITY)
