"""runtime.strategy / precision / jit_compile: the TPU path with its resolver mocked, dtype policies, XLA, and refusals."""

import json
import os
import socket
import subprocess
import sys
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


@pytest.mark.parametrize(
    ("tf_config", "found"),
    [
        ("{not json", "JSONDecodeError"),
        ('{"cluster": {}}', "KeyError: 'worker'"),
        ('{"cluster": {"worker": ["localhost:1"]}, "task": {"type": "worker", "index": 1}}', "is not one of the 1 workers"),
    ],
)
def test_multi_worker_names_a_malformed_tf_config(monkeypatch: pytest.MonkeyPatch, tf_config: str, found: str) -> None:
    monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(XdtError, match=r"runtime.strategy: multi_worker: the TF_CONFIG environment variable must be JSON") as caught:
        runtime.select_strategy("multi_worker")
    assert found in str(caught.value) and repr(tf_config) in str(caught.value)


def test_multi_worker_refuses_emcdr_whose_mapping_uses_fit(tmp_path: Path) -> None:
    path = write_config(tmp_path, TINY_CONFIG)
    with pytest.raises(ConfigError, match=r"transfer.methods\[3\]: emcdr cannot train under runtime.strategy: multi_worker"):
        load_config(path, ["runtime.strategy=multi_worker"])
    load_config(path, ["runtime.strategy=multi_worker", "transfer.methods=[target_mf, finetune]"])


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("localhost", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def trained_weights(runs_dir: Path) -> dict[str, list[np.ndarray]]:
    from xdt.runs import iter_runs
    from xdt.session import load_model

    return {run.info()["method"]: load_model(run).get_weights() for run in iter_runs(runs_dir)}


@pytest.mark.slow
def test_two_local_workers_train_the_weights_of_one(tmp_path: Path) -> None:
    """`xdt run` as two worker processes under multi_worker (TF_CONFIG on loopback ports) against one default process."""
    config = {**TINY_CONFIG, "transfer": {**TINY_CONFIG["transfer"], "methods": ["target_mf", "finetune"]}}
    path = write_config(tmp_path, config)
    ports = free_ports(2)
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, "-m", "xdt", "run", str(path)]

    def folders(name: str) -> list[str]:
        return ["--set", f"runtime.runs_dir={tmp_path / name / 'runs'}", "--set", f"runtime.data_dir={tmp_path / name / 'data'}"]

    cluster = {"worker": [f"localhost:{port}" for port in ports]}
    workers = [
        subprocess.Popen(
            [*command, "--set", "runtime.strategy=multi_worker", *folders(f"worker{index}")],
            env={**environment, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        for index in range(2)
    ]
    single = subprocess.run([*command, "--set", "runtime.strategy=default", *folders("single")], env=environment, capture_output=True, text=True)
    outputs = [worker.communicate(timeout=600)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], outputs
    assert single.returncode == 0, single.stdout + single.stderr
    first, second, alone = (trained_weights(tmp_path / name / "runs") for name in ("worker0", "worker1", "single"))
    assert sorted(first) == sorted(alone) == ["finetune", "mf", "target_mf"]
    for method in alone:
        assert all(np.array_equal(a, b) for a, b in zip(first[method], second[method]))  # every worker applies the same update
    # Target batches (256 rows) split evenly over the 2 workers, the last one too: one worker's weights.
    target_rows = load_dataset_rows(tmp_path / "single" / "data")
    assert target_rows % 256 % 2 == 0, f"the tiny data changed ({target_rows} target training rows): pick a config whose last batch splits evenly"
    assert max(float(np.abs(a - b).max()) for a, b in zip(first["target_mf"], alone["target_mf"])) < 1e-5
    # The source domain's last batch (an odd row count) splits 32/31: the L2 term, a mean over each
    # worker's own rows, is then weighted per worker (the data loss is reweighted exactly): close, not equal.
    assert max(float(np.abs(a - b).max()) for a, b in zip(first["mf"], alone["mf"])) < 5e-3


def load_dataset_rows(data_dir: Path) -> int:
    (manifest,) = data_dir.glob("*/manifest.json")
    return json.loads(manifest.read_text())["domains"]["target"]["splits"]["train"]["rows"]
