"""Where and how the computation runs: the `tf.distribute` strategy and the Keras precision policy.

`runtime.strategy`:
- `auto`: MirroredStrategy over all GPUs when more than one is visible, else the default strategy;
- `default`: one device; `mirrored`: MirroredStrategy over every local GPU (or the CPU);
- `multi_worker`: MultiWorkerMirroredStrategy over the cluster in the `TF_CONFIG` environment
  variable (every worker runs the same command with its own `task.index`; without TF_CONFIG, one
  worker with its local devices). Keras 3's `fit` fails under this strategy (keras-team/keras#20585),
  so ranking training runs its own distributed step there (`xdt.train.train_epoch`); rating and
  sequential refuse it. Each worker writes its own run directory: give each its own
  `runtime.runs_dir` and `runtime.data_dir` (the test does), or a node-local disk;
- `tpu`: TPUStrategy through a TPUClusterResolver for `runtime.tpu` (a name or grpc:// address;
  empty: the resolver's own discovery, as on a Cloud TPU VM). This path is tested here only with
  the resolver mocked at its boundary: it has not been run on TPU hardware.

`runtime.precision` is a Keras dtype policy set while a stage builds and trains its models, and
restored afterwards (`precision_policy`): `mixed_float16` and `mixed_bfloat16` compute in half
precision with float32 variables, and under `mixed_float16` Keras' `compile` wraps the optimiser
in a LossScaleOptimizer. Losses and evaluation scores are computed in float32.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import keras
import tensorflow as tf

from xdt.errors import XdtError

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


def select_strategy(name: str, *, tpu: str = "") -> tf.distribute.Strategy:
    """The strategy `runtime.strategy` names (see the module docstring)."""
    if name == "tpu":
        return tpu_strategy(tpu)
    if name == "multi_worker":
        return multi_worker_strategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored" or (name == "auto" and len(gpus) > 1):
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


_MULTI_WORKER: dict[str, tf.distribute.Strategy] = {}


def multi_worker_strategy() -> tf.distribute.Strategy:
    """MultiWorkerMirroredStrategy from TF_CONFIG, after checking that TF_CONFIG names this worker in its cluster.

    Created once per process and reused by every later stage: TensorFlow's collective ops are
    configured once, and a second instance in the same process breaks the workers' rendezvous.
    """
    text = os.environ.get("TF_CONFIG", "")
    if text in _MULTI_WORKER:
        return _MULTI_WORKER[text]
    if text:
        try:
            cluster = json.loads(text)
            workers, task = cluster["cluster"]["worker"], cluster["task"]
            if task["type"] != "worker" or not 0 <= int(task["index"]) < len(workers):
                raise ValueError(f"task {task} is not one of the {len(workers)} workers")
        except (ValueError, KeyError, TypeError) as error:
            raise XdtError(
                "runtime.strategy: multi_worker: the TF_CONFIG environment variable must be JSON "
                '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": i}}; '
                f"{type(error).__name__}: {error}. Received: {text!r}"
            ) from None
    return _MULTI_WORKER.setdefault(text, tf.distribute.MultiWorkerMirroredStrategy())


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    """True for MultiWorkerMirroredStrategy, under which Keras' fit cannot run (see the module docstring)."""
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def tpu_strategy(address: str) -> tf.distribute.Strategy:
    """Connect to the TPU system at `address`, initialise it and return a TPUStrategy over its cores."""
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=address or None)
    except (ValueError, RuntimeError) as error:
        where = f"runtime.tpu={address!r}" if address else "the environment (runtime.tpu is empty)"
        raise XdtError(f"runtime.strategy: tpu found no TPU through {where}: {error}") from error
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def describe_strategy(strategy: tf.distribute.Strategy) -> dict[str, Any]:
    """Strategy class, replica count and devices, for env.json."""
    if isinstance(strategy, (tf.distribute.MirroredStrategy, tf.distribute.TPUStrategy, tf.distribute.MultiWorkerMirroredStrategy)):
        devices = list(strategy.extended.worker_devices)
    else:
        devices = [device.name for device in tf.config.list_logical_devices()]
    return {"strategy": type(strategy).__name__, "replicas": strategy.num_replicas_in_sync, "devices": devices}


@contextmanager
def precision_policy(name: str) -> Iterator[None]:
    """Build and train under the Keras dtype policy `name`; the previous global policy is restored on exit."""
    if name not in PRECISIONS:
        raise XdtError(f"runtime.precision must be one of {', '.join(PRECISIONS)}; found {name!r}")
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
