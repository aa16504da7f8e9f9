"""Tests that need no keras-hub: folder checks, pooling rules and arithmetic, the hashed fallback."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.text_folders import write_sentence_transformers_config, write_tiny_bert
from xdt.errors import DataError, XdtError
from xdt.text.folder import read_encoder_folder
from xdt.text.hashed import HashedTextEncoder
from xdt.text.pooling import Pooling, folder_pooling, pool_tokens
from xdt.text.sentence_encoder import load_sentence_encoder


@pytest.fixture
def bert_folder(tmp_path: Path) -> Path:
    return write_tiny_bert(tmp_path / "model")


def test_missing_folder_names_it(tmp_path):
    with pytest.raises(DataError, match="does not exist") as error:
        load_sentence_encoder(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(error.value)


@pytest.mark.parametrize(
    ("missing", "expected"),
    [
        ("config.json", "config.json"),
        ("model.safetensors", "model.safetensors"),
        ("vocab.txt", "expected vocab.txt + tokenizer_config.json"),
        ("tokenizer_config.json", "expected vocab.txt + tokenizer_config.json"),
    ],
)
def test_missing_file_names_folder_and_file(bert_folder, missing, expected):
    (bert_folder / missing).unlink()
    with pytest.raises(DataError, match=re.escape(expected)) as error:
        load_sentence_encoder(bert_folder)
    assert str(bert_folder) in str(error.value)


def test_unknown_model_type_names_key_and_value(bert_folder):
    (bert_folder / "config.json").write_text(json.dumps({"model_type": "vit"}))
    with pytest.raises(DataError, match=r"expected model_type in .*'bert'.*Received: model_type='vit'") as error:
        read_encoder_folder(bert_folder)
    assert str(bert_folder / "config.json") in str(error.value)


def test_malformed_json_and_missing_casing_name_the_file(bert_folder):
    (bert_folder / "tokenizer_config.json").write_text("{}")
    with pytest.raises(DataError, match="has no 'do_lower_case'"):
        read_encoder_folder(bert_folder)
    (bert_folder / "config.json").write_text("{not json")
    with pytest.raises(DataError, match="is not valid JSON") as error:
        read_encoder_folder(bert_folder)
    assert str(bert_folder / "config.json") in str(error.value)


def test_sharded_weights_need_every_shard(bert_folder):
    (bert_folder / "model.safetensors").rename(bert_folder / "model-00001-of-00002.safetensors")
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (bert_folder / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(DataError, match="model-00002-of-00002.safetensors; .*names it as a weight shard"):
        read_encoder_folder(bert_folder)


def test_missing_keras_hub_says_how_to_install(bert_folder, monkeypatch):
    monkeypatch.setitem(sys.modules, "keras_hub", None)
    with pytest.raises(XdtError, match=r"pip install 'xdt\[hub\]'") as error:
        load_sentence_encoder(bert_folder)
    assert str(bert_folder) in str(error.value)


@pytest.mark.parametrize(
    ("pooling_key", "normalize", "expected"),
    [
        ("pooling_mode_mean_tokens", True, Pooling("mean", True)),
        ("pooling_mode_cls_token", False, Pooling("cls", False)),
        ("pooling_mode_max_tokens", True, Pooling("max", True)),
        ("pooling_mode_lasttoken", True, Pooling("last", True)),
        (None, False, Pooling("mean", False)),
    ],
)
def test_pooling_follows_sentence_transformers_config(bert_folder, pooling_key, normalize, expected):
    write_sentence_transformers_config(bert_folder, pooling_key, normalize)
    assert folder_pooling(read_encoder_folder(bert_folder)) == expected


def test_pooling_defaults_overrides_and_conflicts(bert_folder):
    folder = read_encoder_folder(bert_folder)
    assert folder_pooling(folder) == Pooling("mean", True)
    write_sentence_transformers_config(bert_folder, "pooling_mode_cls_token", normalize=True)
    assert folder_pooling(folder, mode="last", normalize=False) == Pooling("last", False)
    with pytest.raises(DataError, match="Expected pooling in"):
        folder_pooling(folder, mode="median")
    pooling_path = bert_folder / "1_Pooling" / "config.json"
    pooling_path.write_text(json.dumps({"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": True}))
    with pytest.raises(DataError, match="expected exactly one of") as error:
        folder_pooling(folder)
    assert str(pooling_path) in str(error.value)


def test_unapplied_sentence_transformers_module_is_refused(bert_folder):
    write_sentence_transformers_config(bert_folder, "pooling_mode_mean_tokens", normalize=True)
    modules = json.loads((bert_folder / "modules.json").read_text())
    modules.insert(2, {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
    (bert_folder / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(DataError, match=r"modules \['Dense'\]; xdt applies only") as error:
        folder_pooling(read_encoder_folder(bert_folder))
    assert str(bert_folder / "modules.json") in str(error.value)


def test_pool_tokens_matches_hand_computation():
    rng = np.random.default_rng(0)
    states = rng.standard_normal((3, 5, 4)).astype(np.float32)
    lengths = [5, 2, 3]
    mask = np.array([[1] * length + [0] * (5 - length) for length in lengths], dtype=np.int32)
    expected = {
        "mean": [states[row, :length].mean(0) for row, length in enumerate(lengths)],
        "mean_sqrt_len": [states[row, :length].sum(0) / np.sqrt(length) for row, length in enumerate(lengths)],
        "max": [states[row, :length].max(0) for row, length in enumerate(lengths)],
        "cls": [states[row, 0] for row in range(3)],
        "last": [states[row, length - 1] for row, length in enumerate(lengths)],
    }
    for mode, rows in expected.items():
        np.testing.assert_allclose(np.asarray(pool_tokens(states, mask, mode)), np.stack(rows), rtol=1e-6, atol=1e-6)


def test_hashed_encoder_is_deterministic_and_normalised():
    texts = ["Organic Green Tea, 100 bags", "Stainless steel chef knife", ""]
    first = HashedTextEncoder(dim=64, seed=3).encode(texts)
    second = HashedTextEncoder(dim=64, seed=3).encode(texts)
    assert first.shape == (3, 64) and first.dtype == np.float32
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(np.linalg.norm(first[:2], axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(first[2], 0.0)


def test_hashed_encoder_puts_similar_titles_closer():
    tea, teas, knife = HashedTextEncoder().encode(
        [
            "Organic green tea bags, 100 count",
            "organic GREEN TEA bag 50 ct",
            "Stainless steel chef knife 8 inch",
        ]
    )
    assert tea @ teas > 0.5
    assert tea @ teas > tea @ knife + 0.3


def test_hashed_encoder_is_stable_across_processes():
    # Python's built-in hash is salted per process; the encoder must not depend on it.
    script = "from xdt.text.hashed import HashedTextEncoder; print(HashedTextEncoder(dim=8).encode(['green tea']).tolist())"
    outputs = {
        subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PYTHONPATH": str(Path(__file__).parents[1])},
        ).stdout
        for seed in ("1", "2")
    }
    assert len(outputs) == 1


def test_import_text_package_does_not_import_tensorflow():
    script = (
        "import sys, xdt.text, xdt.text.hashed, xdt.text.cache, xdt.text.folder; "
        "print('tensorflow' in sys.modules, 'keras_hub' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(Path(__file__).parents[1])},
    )
    assert result.stdout.strip() == "False False"
