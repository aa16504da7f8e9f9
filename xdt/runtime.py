"""Where and how the computation runs: the `tf.distribute` strategy and the Keras precision policy.

`runtime.strategy`:
- `auto`: MirroredStrategy over all GPUs when more than one is visible, else the default strategy;
- `default`: one device; `mirrored`: MirroredStrategy over every local GPU (or the CPU);
- `tpu`: TPUStrategy through a TPUClusterResolver for `runtime.tpu` (a name or grpc:// address;
  empty: the resolver's own discovery, as on a Cloud TPU VM). This path is tested here only with
  the resolver mocked at its boundary: it has not been run on TPU hardware.

`runtime.precision` is a Keras dtype policy set while a stage builds and trains its models, and
restored afterwards (`precision_policy`): `mixed_float16` and `mixed_bfloat16` compute in half
precision with float32 variables, and under `mixed_float16` Keras' `compile` wraps the optimiser
in a LossScaleOptimizer. Losses and evaluation scores are computed in float32.
"""

from __future__ import annotations

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
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored" or (name == "auto" and len(gpus) > 1):
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


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
    if isinstance(strategy, (tf.distribute.MirroredStrategy, tf.distribute.TPUStrategy)):
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
