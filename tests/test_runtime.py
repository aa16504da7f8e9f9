"""runtime.strategy / precision / jit_compile: the TPU path with its resolver mocked, dtype policies, XLA, and refusals."""

import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import TINY_CONFIG, write_config
from xdt import runtime
from xdt.config import TrainingConfig, load_config
from xdt.errors import ConfigError, XdtError
from xdt.experiment import run_experiment
from xdt.models.matrix_factorization import MatrixFactorization
from xdt.train import compile_model, seed_everything


class FakeResolver:
    def __init__(self, tpu: str | None = None) -> None:
        self.tpu = tpu


def test_tpu_strategy_connects_initialises_and_builds_on_the_resolver(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, object]] = []
    sentinel = object()
    monkeypatch.setattr(tf.distribute.cluster_resolver, "TPUClusterResolver", FakeResolver)
    monkeypatch.setattr(tf.config, "experimental_connect_to_cluster", lambda resolver: calls.append(("connect", resolver.tpu)))
    monkeypatch.setattr(tf.tpu.experimental, "initialize_tpu_system", lambda resolver: calls.append(("initialise", resolver.tpu)))

    def strategy(resolver: FakeResolver) -> object:
        calls.append(("strategy", resolver.tpu))
        return sentinel

    monkeypatch.setattr(tf.distribute, "TPUStrategy", strategy)
    assert runtime.select_strategy("tpu", tpu="grpc://10.0.0.2:8470") is sentinel
    assert calls == [("connect", "grpc://10.0.0.2:8470"), ("initialise", "grpc://10.0.0.2:8470"), ("strategy", "grpc://10.0.0.2:8470")]
    calls.clear()
    runtime.select_strategy("tpu")
    assert calls[0] == ("connect", None)  # empty runtime.tpu: the resolver's own discovery


def test_tpu_strategy_without_a_tpu_names_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(tpu: str | None = None) -> None:
        raise ValueError("Please provide a TPU Name to connect to.")

    monkeypatch.setattr(tf.distribute.cluster_resolver, "TPUClusterResolver", missing)
    with pytest.raises(XdtError, match=r"runtime.strategy: tpu found no TPU through runtime.tpu='my-tpu': Please provide a TPU Name"):
        runtime.select_strategy("tpu", tpu="my-tpu")
    with pytest.raises(XdtError, match=r"through the environment \(runtime.tpu is empty\)"):
        runtime.select_strategy("tpu")


def test_precision_policy_sets_and_restores_the_global_policy() -> None:
    assert keras.config.dtype_policy().name == "float32"
    with runtime.precision_policy("mixed_bfloat16"):
        layer = keras.layers.Dense(2)
        assert keras.config.dtype_policy().name == "mixed_bfloat16"
    assert keras.config.dtype_policy().name == "float32"
    assert layer.compute_dtype == "bfloat16" and layer.variable_dtype == "float32"
    with pytest.raises(RuntimeError), runtime.precision_policy("mixed_float16"):
        raise RuntimeError("a stage failed")
    assert keras.config.dtype_policy().name == "float32"
    with pytest.raises(XdtError, match=r"runtime.precision must be one of float32, mixed_float16, mixed_bfloat16; found 'float8'"):
        with runtime.precision_policy("float8"):
            pass


@pytest.fixture
def op_determinism_off() -> object:
    """Keras refuses XLA while TF op determinism is on, and an earlier test may have switched it on."""
    seed_everything(0, deterministic=False)
    yield
    seed_everything(0)


def test_mixed_float16_compiles_with_loss_scaling_and_float32_variables(op_determinism_off: object) -> None:
    with runtime.precision_policy("mixed_float16"):
        model = MatrixFactorization(10, 8, 4, name="mf")
        model.build()
        compile_model(model, TrainingConfig(), freeze_users=False, jit_compile=True)
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert model.jit_compile is True
    assert {variable.dtype for variable in model.trainable_variables} == {"float32"}
    candidates = model((tf.constant([0, 1]), tf.constant([2, 3]), tf.constant([4, 5])))
    assert candidates.dtype == tf.float16 and candidates.shape == (2, 2)
    # score_all multiplies by the float32 item table: evaluation ranks float32 scores.
    assert model.score_all(tf.constant([0, 1], dtype=tf.int32)).dtype == tf.float32


def test_float32_default_compiles_without_xla() -> None:
    model = MatrixFactorization(10, 8, 4, name="mf")
    model.build()
    compile_model(model, TrainingConfig(), freeze_users=False)
    assert model.jit_compile is False and not isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)


def test_a_ranking_experiment_trains_and_evaluates_in_bfloat16_with_xla(tmp_path: Path) -> None:
    overrides = ["transfer.methods=[target_mf, finetune]", "runtime.precision=mixed_bfloat16", "runtime.jit_compile=true"]
    loaded = load_config(write_config(tmp_path, TINY_CONFIG), overrides)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        (outcome,) = run_experiment(loaded.config, config_text=loaded.text)
    assert not [warning for warning in caught if "jit_compile" in str(warning.message)]  # XLA was not refused
    for run in outcome.transfer_runs.values():
        losses = [line["loss"] for line in run.metrics_history() if "loss" in line]
        assert losses and np.all(np.isfinite(losses))
        results = run.read_json("results.json")
        assert 0.0 <= results["test"]["all"]["ndcg@10"] <= 1.0
    assert keras.config.dtype_policy().name == "float32"  # restored after the stages


@pytest.mark.parametrize("setting", ["runtime.strategy=mirrored", "runtime.precision=mixed_float16", "runtime.jit_compile=true"])
def test_rating_and_sequential_refuse_runtime_settings_they_would_ignore(tmp_path: Path, setting: str) -> None:
    config = dict(TINY_CONFIG, task="sequential", sequence={"methods": ["seq_target_only"]})
    key = setting.split("=")[0]
    with pytest.raises(ConfigError, match=rf"{key}: task sequential trains on one device in float32 without XLA .*Received: "):
        load_config(write_config(tmp_path, config), [setting])
