"""Training rows streamed from interactions.parquet (`runtime.max_in_memory_rows`): equal to the in-memory path, exact on resume."""

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import TINY_CONFIG, write_config
from xdt.config import OptimizerConfig, TrainingConfig, load_config
from xdt.data.dataset import PreparedDataset
from xdt.data.prepare import prepare_dataset
from xdt.data.protocols import SOURCE, TARGET
from xdt.data.streaming import TrainingStream, training_stream
from xdt.errors import ConfigError
from xdt.models.matrix_factorization import MatrixFactorization
from xdt.runs import RunDirectory
from xdt.session import open_dataset
from xdt.train import compile_model, epoch_batches, fit_pairwise, train_epoch

TRAINING = TrainingConfig(epochs=3, batch_size=100, optimizer=OptimizerConfig(learning_rate=0.02))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> PreparedDataset:
    """The tiny two-domain dataset, prepared to disk."""
    config = load_config(write_config(tmp_path_factory.mktemp("streaming"), TINY_CONFIG)).config
    prepare_dataset(config)
    return open_dataset(config)


def stream_of(dataset: PreparedDataset, domain: str, window_rows: int) -> TrainingStream:
    return TrainingStream(dataset.path / "interactions.parquet", domain, dataset.n_items(domain), window_rows)


def fresh_mf(dataset: PreparedDataset, domain: str) -> MatrixFactorization:
    keras.utils.set_random_seed(3)
    model = MatrixFactorization(dataset.n_users, dataset.n_items(domain), 8, l2=0.01, name="mf")
    model.build()
    return model


def fit(model: keras.Model, dataset: PreparedDataset, folder: Path, *, epochs: int, max_in_memory_rows: int | None) -> None:
    run = RunDirectory(folder)
    run.checkpoints.mkdir(parents=True, exist_ok=True)
    fit_pairwise(
        model, dataset=dataset, domain=TARGET, training=TrainingConfig(**{**TRAINING.__dict__, "epochs": epochs}), seed=5,
        stage="mf", run=run, strategy=tf.distribute.get_strategy(), validate=None, max_in_memory_rows=max_in_memory_rows,
    )  # fmt: skip


@pytest.mark.parametrize("negatives", [1, 3])
def test_a_window_of_every_row_draws_the_in_memory_triples(dataset: PreparedDataset, negatives: int) -> None:
    rows = len(dataset.rows(SOURCE, "train"))
    windows = list(stream_of(dataset, SOURCE, window_rows=rows).windows(seed=7, epoch=2, negatives=negatives))
    assert len(windows) == 1
    for streamed, in_memory in zip(windows[0], dataset.bpr_triples(SOURCE, 7, 2, negatives)):
        np.testing.assert_array_equal(streamed, in_memory)


def test_windows_cover_the_training_rows_once_and_avoid_them_as_negatives(dataset: PreparedDataset) -> None:
    rows = dataset.rows(TARGET, "train")
    windows = list(stream_of(dataset, TARGET, window_rows=700).windows(seed=7, epoch=1, negatives=2))
    assert [len(users) for users, _, _ in windows] == [700] * (len(rows) // 700) + [len(rows) % 700]
    n_items = dataset.n_items(TARGET)
    expected = np.sort(rows["user"].to_numpy(np.int64) * n_items + rows["item"].to_numpy())
    streamed = np.concatenate([users.astype(np.int64) * n_items + positives for users, positives, _ in windows])
    np.testing.assert_array_equal(np.sort(streamed), expected)
    negative_keys = np.concatenate([np.repeat(users, 2).astype(np.int64) * n_items + drawn.ravel() for users, _, drawn in windows])
    assert np.isin(negative_keys, expected).mean() < 1e-3  # redrawn up to 10 rounds, as in memory


def test_streamed_training_on_one_window_equals_the_in_memory_epoch(dataset: PreparedDataset) -> None:
    """Tolerance: none; the same batches through the same deterministic ops give bit-identical weights."""
    rows = len(dataset.rows(TARGET, "train"))
    stream = stream_of(dataset, TARGET, window_rows=rows)
    models = []
    for source in ("memory", "stream"):
        model = fresh_mf(dataset, TARGET)
        compile_model(model, TRAINING, freeze_users=False)
        for epoch in (1, 2):
            if source == "memory":
                batches = epoch_batches(*dataset.bpr_triples(TARGET, 5, epoch), batch_size=100)
            else:
                batches = stream.batches(5, epoch, negatives=1, batch_size=100)
            train_epoch(model, batches, tf.distribute.get_strategy())
        models.append(model)
    for in_memory, streamed in zip(models[0].get_weights(), models[1].get_weights()):
        np.testing.assert_array_equal(streamed, in_memory)


def test_fit_streams_only_above_max_in_memory_rows(dataset: PreparedDataset) -> None:
    rows = len(dataset.rows(TARGET, "train"))
    assert training_stream(dataset, TARGET, None) is None
    assert training_stream(dataset, TARGET, rows) is None
    stream = training_stream(dataset, TARGET, rows - 1)
    assert stream is not None and stream.window_rows == rows - 1 and stream.rows == rows


def test_a_copy_with_other_rows_never_streams(dataset: PreparedDataset) -> None:
    """ptupcdr's meta stage trains on a restricted copy: its rows are not those of interactions.parquet."""
    restricted = dataclasses.replace(dataset, interactions=dataset.interactions.iloc[::2])
    assert restricted.interactions_file is None
    assert training_stream(restricted, TARGET, 1) is None


def test_a_resumed_streamed_run_ends_with_the_weights_of_an_uninterrupted_one(dataset: PreparedDataset, tmp_path: Path) -> None:
    through = fresh_mf(dataset, TARGET)
    fit(through, dataset, tmp_path / "through", epochs=3, max_in_memory_rows=700)
    resumed = fresh_mf(dataset, TARGET)
    fit(resumed, dataset, tmp_path / "resumed", epochs=1, max_in_memory_rows=700)
    restarted = fresh_mf(dataset, TARGET)  # a new process: fresh weights, state from the run folder
    fit(restarted, dataset, tmp_path / "resumed", epochs=3, max_in_memory_rows=700)
    for expected, actual in zip(through.get_weights(), restarted.get_weights()):
        np.testing.assert_array_equal(actual, expected)


def test_streamed_windows_rank_as_well_as_the_in_memory_epoch(dataset: PreparedDataset, tmp_path: Path) -> None:
    """Several windows shuffle less globally than one: the held-out ranking stays within 0.03 AUC of in-memory training."""
    aucs = []
    for name, limit in (("memory", None), ("stream", 700)):
        model = fresh_mf(dataset, TARGET)
        fit(model, dataset, tmp_path / name, epochs=8, max_in_memory_rows=limit)
        aucs.append(held_out_auc(model, dataset))
    assert aucs[0] > 0.6 and abs(aucs[1] - aucs[0]) < 0.03, aucs


def held_out_auc(model: MatrixFactorization, dataset: PreparedDataset) -> float:
    """Mean over warm test rows of the fraction of the user's untrained items scored below the test item."""
    test = dataset.rows(TARGET, "test")
    warm = test[dataset.target_train_counts[test["user"].to_numpy()] > 0]
    trained = dataset.interaction_matrix(TARGET, "train").toarray() > 0
    scores = model.score_all(tf.constant(warm["user"].to_numpy(np.int32))).numpy()
    fractions = []
    for row, (user, item) in enumerate(zip(warm["user"], warm["item"])):
        others = ~trained[user]
        others[item] = False
        fractions.append(float((scores[row, others] < scores[row, item]).mean()))
    return float(np.mean(fractions))


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("runtime: {max_in_memory_rows: 0}", r"runtime.max_in_memory_rows: expected a value >= 1, received 0"),
        ("runtime: {max_in_memory_rows: many}", r"runtime.max_in_memory_rows: expected an integer, received 'many' \(string\)"),
        (
            "  warm_holdout: none\ntask: rating\ntransfer: {methods: [target_mf]}\nruntime: {max_in_memory_rows: 1000}",
            r"runtime.max_in_memory_rows: task rating holds its training rows in memory \(only the ranking task streams them\). "
            r"Received: 1000; leave it at its default 50000000",
        ),
    ],
)
def test_config_names_a_bad_max_in_memory_rows(tmp_path: Path, setting: str, message: str) -> None:
    path = tmp_path / "experiment.yaml"
    path.write_text("experiment: e\ndataset:\n  name: d\n  synthetic: {users: 100}\n" + setting + "\n")
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_config_accepts_null_as_never_stream(tmp_path: Path) -> None:
    path = tmp_path / "experiment.yaml"
    path.write_text("experiment: e\ndataset:\n  name: d\n  synthetic: {users: 100}\nruntime: {max_in_memory_rows: null}\n")
    assert load_config(path).config.runtime.max_in_memory_rows is None


def test_pretraining_streams_when_the_config_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import xdt.train as train_module
    from xdt.pretrain import pretrain_source

    config = load_config(write_config(tmp_path, {**TINY_CONFIG, "pretrain": {**TINY_CONFIG["pretrain"], "epochs": 1}}),
                         ["runtime.max_in_memory_rows=3000"]).config  # fmt: skip
    prepare_dataset(config)
    streams = []

    def recording(dataset: object, domain: str, max_in_memory_rows: int | None) -> TrainingStream | None:
        streams.append(training_stream(dataset, domain, max_in_memory_rows))
        return streams[-1]

    monkeypatch.setattr(train_module, "training_stream", recording)
    run = pretrain_source(config, config_text="")
    assert len(streams) == 1 and streams[0].domain == SOURCE and streams[0].window_rows == 3000
    assert [line["epoch"] for line in run.metrics_history()] == [1]


MIRRORED_EPOCHS = """
import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from xdt.config import OptimizerConfig, TrainingConfig
from xdt.data.dataset import load_dataset
from xdt.data.streaming import TrainingStream
from xdt.models.matrix_factorization import MatrixFactorization
from xdt.train import compile_model, epoch_batches, train_epoch

dataset = load_dataset(Path(sys.argv[1]))
rows = len(dataset.rows("target", "train"))
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
stream = TrainingStream(dataset.path / "interactions.parquet", "target", dataset.n_items("target"), rows)
weights = []
for streamed in (False, True):
    keras.utils.set_random_seed(3)
    with strategy.scope():
        model = MatrixFactorization(dataset.n_users, dataset.n_items("target"), 8, l2=0.01, name="mf")
        model.build()
        compile_model(model, TrainingConfig(batch_size=100, optimizer=OptimizerConfig(learning_rate=0.02)), freeze_users=False)
    for epoch in (1, 2):
        batches = stream.batches(5, epoch, 1, 100) if streamed else epoch_batches(*dataset.bpr_triples("target", 5, epoch), 100)
        train_epoch(model, batches, strategy)
    weights.append(model.get_weights())
print(max(float(np.abs(a - b).max()) for a, b in zip(*weights)))
"""


def test_a_streamed_epoch_under_mirrored_equals_the_in_memory_one(dataset: PreparedDataset) -> None:
    """Two logical CPU devices (set before TensorFlow starts, so in a child process): one window of every row, bit-identical weights."""
    completed = subprocess.run(
        [sys.executable, "-c", MIRRORED_EPOCHS, str(dataset.path)], capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert float(completed.stdout.strip().splitlines()[-1]) == 0.0
