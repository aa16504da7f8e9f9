"""fusion: TF-IDF by hand, z-score blend, weight choice on validation, save → load identical, content skipped without titles."""

from __future__ import annotations

import math
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sparse
import tensorflow as tf

from tests.conftest import TINY_CONFIG, write_config
from xdt.config import load_config
from xdt.data.prepare import dataset_dir, prepare_dataset
from xdt.data.protocols import TARGET
from xdt.methods.fusion import weight_grid
from xdt.models.fusion import ContentModel, FusionModel, blend, standardise, tfidf_matrix
from xdt.pretrain import pretrain_source
from xdt.session import SERIALISABLE_MODELS, load_model, open_dataset
from xdt.transfer import transfer_method


def test_tfidf_by_hand() -> None:
    # Titles "a b", "a": vocabulary (a, b), df (2, 1); idf = log((1 + 2)/(1 + df)) + 1 = (1, 1 + log 1.5).
    # Row 0 = (1, 1.4055) / √(1 + 1.4055²); row 1 = (1, 0).
    matrix = tfidf_matrix(["a b", "A"]).toarray()
    idf_b = 1.0 + math.log(1.5)
    np.testing.assert_allclose(matrix, [[1 / math.hypot(1, idf_b), idf_b / math.hypot(1, idf_b)], [1.0, 0.0]])


def test_content_model_scores_are_profile_dot_items() -> None:
    profiles = sparse.csr_matrix(np.array([[0.6, 0.8, 0.0], [0.0, 0.0, 0.0]]))
    items = sparse.csr_matrix(np.array([[1.0, 0.0, 0.0], [0.0, 0.6, 0.8], [0.0, 0.0, 1.0]]))
    model = ContentModel.from_matrices(profiles, items)
    # User 0: (0.6, 0.8, 0) · items → (0.6, 0.48, 0); user 1 has no profile → zeros.
    np.testing.assert_allclose(model.score_all_float64(tf.constant([0, 1])).numpy(), [[0.6, 0.48, 0.0], [0.0, 0.0, 0.0]])


def test_standardise_and_blend() -> None:
    scores = tf.constant([[1.0, 2.0, 3.0], [5.0, 5.0, 5.0]], dtype=tf.float64)
    # Row 0: mean 2, std √(2/3) → ±1.2247; a constant row becomes 0.
    z = standardise(scores).numpy()
    np.testing.assert_allclose(z, [[-1.224744871, 0.0, 1.224744871], [0.0, 0.0, 0.0]], rtol=1e-9)
    fused = blend([tf.constant(z), None], [0.5, 0.0]).numpy()
    assert fused.dtype == np.float32
    np.testing.assert_allclose(fused, 0.5 * z, rtol=1e-6)


def test_weight_grid_covers_the_simplex() -> None:
    two = weight_grid(2)
    assert len(two) == 21 and two[0] == (0.0, 1.0) and two[-1] == (1.0, 0.0)
    three = weight_grid(3)
    assert len(three) == 66 and all(abs(sum(point) - 1.0) < 1e-9 for point in three)


def prepared(folder: Path, *, titles: bool) -> tuple:
    loaded = load_config(write_config(folder, TINY_CONFIG), ["transfer.methods=[fusion]"])
    prepare_dataset(loaded.config)
    if not titles:
        items = dataset_dir(loaded.config) / "items_target.parquet"
        pd.read_parquet(items).drop(columns=["title"]).to_parquet(items, index=False)
    pretrain = pretrain_source(loaded.config, config_text=loaded.text)
    return loaded, pretrain


@pytest.mark.parametrize("titles", [True, False])
def test_fusion_trains_chooses_weights_on_validation_and_round_trips(tmp_path: Path, titles: bool) -> None:
    loaded, pretrain = prepared(tmp_path, titles=titles)
    run = transfer_method(loaded.config, "fusion", parent=pretrain, config_text=loaded.text)
    record = [line for line in run.metrics_history() if line["stage"] == "fusion"][0]
    expected = ["finetune", "xknn", "content"] if titles else ["finetune", "xknn"]
    assert record["components"] == expected
    assert record["content"].startswith("included" if titles else "skipped")
    assert record["validation_cohort"] == "cold" and record["validation_users"] > 0
    best = max(point["ndcg@10"] for point in record["grid"])
    assert record["chosen_validation"] == best
    assert len(record["grid"]) == (66 if titles else 21)

    dataset = open_dataset(loaded.config)
    model = load_model(run)
    assert isinstance(model, FusionModel)
    assert model.component_names == expected
    assert record["chosen_weights"] == dict(zip(expected, model.blend_weights))
    users = tf.constant(dataset.evaluation_users("test")[:16], dtype=tf.int32)
    scores = model.score_all(users).numpy()
    assert scores.shape == (16, dataset.n_items(TARGET)) and np.isfinite(scores).all()
    path = tmp_path / "again.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, compile=False, custom_objects=SERIALISABLE_MODELS)
    np.testing.assert_array_equal(reloaded.score_all(users).numpy(), scores)


def test_fusion_model_needs_a_non_zero_weight() -> None:
    content = ContentModel.from_matrices(sparse.csr_matrix((2, 1)), sparse.csr_matrix((3, 1)))
    with pytest.raises(ValueError, match="non-zero"):
        FusionModel([content], [0.0], ["content"])


def test_fusion_base_is_validated(tmp_path: Path) -> None:
    from xdt.errors import ConfigError

    with pytest.raises(ConfigError, match="fusion_base"):
        load_config(write_config(tmp_path, TINY_CONFIG), ["transfer.fusion_base=fusion"])
