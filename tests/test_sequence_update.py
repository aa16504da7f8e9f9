"""`xdt update` of sequential runs: the transformer grows by new target tokens, new items start from their titles, resume is exact."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import write_config
from test_sequential_experiment import sequential_config
from typer.testing import CliRunner

from xdt.cli import app
from xdt.errors import XdtError
from xdt.progress import SilentReporter
from xdt.runs import RunDirectory, create_run, open_run
from xdt.sequential.data import ItemVocabulary, left_pad
from xdt.sequential.experiment import load_sequence_model, sequence_view
from xdt.sequential.text_bridge import build_text_bridge, encode_texts
from xdt.sequential.transformer import SequenceTransformer
from xdt.sequential.update import grow_sequence_model, warm_optimizer_state
from xdt.session import load_run_config, open_dataset
from xdt.update import check_parent, update_run

runner = CliRunner()
TITLES = "knife pan pot whisk ladle grater sieve kettle mug bowl".split()
NEW_TITLE = "spatula kitchen spatula"


@pytest.fixture(scope="module")
def parents(tmp_path_factory: pytest.TempPathFactory) -> dict[str, RunDirectory]:
    """The tiny sequential experiment (kitchen items titled) trained once: its transfer runs by method."""
    folder = tmp_path_factory.mktemp("sequence-update")
    config = sequential_config(folder, ["seq_target_only", "text_bridge", "unisrec_ids"])
    titles = folder / "kitchen_items.csv"
    titles.write_text("item,title\n" + "".join(f"k{index},{word} kitchen {word}\n" for index, word in enumerate(TITLES)))
    config["dataset"]["target"]["options"] = {"items_path": str(titles)}
    result = runner.invoke(app, ["run", str(write_config(folder, config))], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    runs = [open_run(path) for path in (folder / "runs" / "tiny-sequential").iterdir()]
    return {run.info()["method"]: run for run in runs if run.info()["kind"] == "transfer"}


def write_feedback(folder: Path) -> tuple[Path, Path]:
    """u10 takes k7 then a brand-new titled item; a brand-new user takes the new item then k3."""
    feedback = folder / "feedback.csv"
    feedback.write_text("user,item,timestamp\nu10,k7,100\nu10,k_new,101\nu_new,k_new,100\nu_new,k3,101\n")
    items = folder / "feedback_items.csv"
    items.write_text(f"item,title\nk_new,{NEW_TITLE}\n")
    return feedback, items


def test_grow_id_transformer_keeps_every_old_weight_and_starts_new_items_at_the_target_mean() -> None:
    model = SequenceTransformer(6, 4, width=4, layers=1, heads=1, dropout=0.0)  # tokens: pad, 2 source, 3 target
    model.build()
    model.item_embedding.embeddings.assign(np.arange(24, dtype=np.float32).reshape(6, 4))
    grown, started = grow_sequence_model(model, n_target_old=3, new_texts=None, new_tokens=2)
    assert grown.vocabulary_size == 8 and started == {"item_embedding": "at the old target items' mean"}
    table = grown.item_embedding.embeddings.numpy()
    assert table[:6].tobytes() == model.item_embedding.embeddings.numpy().tobytes()
    np.testing.assert_array_equal(table[6:], [[16, 17, 18, 19], [16, 17, 18, 19]])  # rows 3..5: 12..23, mean 16..19
    for old, new in zip(model.weights, grown.weights):
        if "item_embedding" not in old.path:
            assert old.numpy().tobytes() == new.numpy().tobytes(), old.path


def test_grow_text_bridge_starts_a_titled_item_at_its_text_and_an_untitled_one_at_the_mean() -> None:
    texts = np.arange(18, dtype=np.float32).reshape(6, 3)
    model = build_text_bridge(texts, max_length=4, width=4, layers=1, heads=1, dropout=0.0, text_with_ids=True)
    new_texts = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]], dtype=np.float32)
    grown, started = grow_sequence_model(model, n_target_old=3, new_texts=new_texts, new_tokens=2)
    table = keras.ops.convert_to_numpy(grown.item_text_embeddings)
    np.testing.assert_array_equal(table[:6], texts)
    np.testing.assert_array_equal(table[6:], [[1, 2, 3], [12, 13, 14]])  # rows 3..5 are 9..17: mean 12, 13, 14
    np.testing.assert_array_equal(grown.item_embedding.embeddings.numpy()[6:], np.zeros((2, 4)))
    assert started["item_text_embeddings"].startswith("1 from their titles' embeddings, 1 (no title)")
    assert started["item_embedding"].startswith("zero")
    # The new titled item is scored from its text at once: its candidate vector is the adaptor of [1, 2, 3].
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(grown.candidate_vectors(np.array([6]))), keras.ops.convert_to_numpy(model.text_item_vectors(new_texts[:1])), rtol=1e-6
    )


def test_warm_optimizer_state_pads_new_rows_with_zeros(tmp_path: Path) -> None:
    model = SequenceTransformer(6, 4, width=4, layers=0, heads=1, dropout=0.0)
    model.build()
    parent_optimizer = keras.optimizers.Adam(0.01)
    parent_optimizer.build(model.trainable_variables)
    arrays = [np.full(tuple(variable.shape), index + 1.0, dtype=variable.dtype) for index, variable in enumerate(parent_optimizer.variables)]
    np.savez(tmp_path / "optimizer.npz", *arrays)
    grown, _ = grow_sequence_model(model, n_target_old=3, new_texts=None, new_tokens=2)
    optimizer = keras.optimizers.Adam(0.01)
    optimizer.build(grown.trainable_variables)
    assert warm_optimizer_state(optimizer, tmp_path) == "parent"
    for array, variable in zip(arrays, optimizer.variables):
        values = variable.numpy()
        if values.shape == array.shape:
            np.testing.assert_array_equal(values, array)
        else:  # the item table's moments: old rows kept, two new zero rows
            assert values.shape[0] == array.shape[0] + 2
            np.testing.assert_array_equal(values[: array.shape[0]], array)
            np.testing.assert_array_equal(values[array.shape[0] :], 0.0)
    np.savez(tmp_path / "optimizer.npz", *arrays[:-1])
    assert warm_optimizer_state(optimizer, tmp_path).startswith(f"fresh (the parent's optimiser has {len(arrays) - 1} variables")


def rank_after(model: SequenceTransformer, dataset: object, history: list[str], item: str) -> int:
    """Rank (0 = best) of target item `item` after the raw target-item history, among all target items."""
    _, vocabulary = sequence_view(dataset)
    raw = dataset.items("target")["raw_item"].astype(str).tolist()
    window = left_pad(vocabulary.tokens("target", np.array([raw.index(name) for name in history])), model.max_length)[None]
    inputs = {"items": window, "domains": vocabulary.domain_ids(window)}
    scores = keras.ops.convert_to_numpy(model.score_tokens(inputs, np.arange(*vocabulary.token_range("target"))))[0]
    return int(np.argsort(np.argsort(-scores))[raw.index(item)])


def warm_start_model(parent: RunDirectory, updated: RunDirectory) -> SequenceTransformer:
    """The parent grown as the update grew it, before any update step."""
    model = load_sequence_model(parent)
    _, vocabulary = sequence_view(open_dataset(load_run_config(updated)))
    new_texts = keras.ops.convert_to_numpy(load_sequence_model(updated).item_text_embeddings)[model.vocabulary_size :]
    grown, _ = grow_sequence_model(model, model.vocabulary_size - 1 - vocabulary.n_source, new_texts, vocabulary.size - model.vocabulary_size)
    return grown


def test_update_of_a_text_bridge_grows_it_by_the_new_titled_item_and_learns_the_feedback(parents: dict, tmp_path: Path) -> None:
    parent = parents["text_bridge"]
    feedback, items = write_feedback(tmp_path)
    options = json.dumps({"items_path": str(items)})
    result = runner.invoke(app, ["update", str(parent.path), "--feedback", str(feedback), "--options", options, "--epochs", "8"])
    assert result.exit_code == 0, result.output
    assert "4 feedback rows, 1 new users, 1 new items" in result.output
    updated = open_run(result.output.split("updated run: ")[1].split(" (parent")[0])
    info = updated.info()
    assert info["status"] == "complete" and info["parent"] == str(parent.path) and info["method"] == "text_bridge"
    assert info["warm_start"]["optimizer"] == "parent" and info["warm_start"]["optimizer_from"].endswith("checkpoints/text_bridge/epoch-3")
    assert info["warm_start"]["new_tokens"] == 1 and info["feedback_sequences"] == 2 and info["replayed_sequences"] == 2
    old, new = load_sequence_model(parent), load_sequence_model(updated)
    assert new.vocabulary_size == old.vocabulary_size + 1
    old_table, new_table = (keras.ops.convert_to_numpy(model.item_text_embeddings) for model in (old, new))
    assert new_table[:-1].tobytes() == old_table.tobytes()  # the frozen title table: old rows byte for byte
    hashed = encode_texts([NEW_TITLE], cache_dir=tmp_path / "cache").embeddings
    np.testing.assert_allclose(new_table[-1], hashed[0], rtol=1e-6)
    # The feedback's transition (k_new → k3) moved up; the served run knows the new user and item.
    dataset = open_dataset(load_run_config(updated))
    assert rank_after(new, dataset, ["k_new"], "k3") < rank_after(warm_start_model(parent, updated), dataset, ["k_new"], "k3")
    served = runner.invoke(app, ["recommend", str(updated.path), "--user", "u10", "--k", "3"])
    assert served.exit_code == 0, served.output
    evaluated = runner.invoke(app, ["evaluate", str(updated.path)])
    assert evaluated.exit_code == 0, evaluated.output


class StopAfterFirstEpoch(SilentReporter):
    """Interrupts training right after epoch 1's checkpoint is published, as a kill would."""

    def epoch(self, report: object) -> None:
        if report.epoch == 1:
            raise KeyboardInterrupt


def test_an_interrupted_sequence_update_resumes_to_the_uninterrupted_weights(parents: dict, tmp_path: Path) -> None:
    parent = parents["seq_target_only"]
    feedback, items = write_feedback(tmp_path)
    options = {"items_path": str(items)}
    whole = update_run(parent, feedback, options=options, settings={"epochs": 3})
    with pytest.raises(KeyboardInterrupt):
        update_run(parent, feedback, options=options, settings={"epochs": 3}, reporter=StopAfterFirstEpoch())
    (interrupted,) = [run for run in (open_run(path) for path in parent.path.parent.iterdir()) if run.info().get("status") == "running"]
    resumed = update_run(parent, None, resume=interrupted)
    assert resumed.info()["status"] == "complete" and resumed.info()["warm_start"]["new_rows"] == {"item_embedding": "at the old target items' mean"}
    for left, right in zip(load_sequence_model(whole).weights, load_sequence_model(resumed).weights):
        assert left.numpy().tobytes() == right.numpy().tobytes(), left.path


def test_unisrec_update_keeps_blocks_and_positions_fixed(parents: dict, tmp_path: Path) -> None:
    parent = parents["unisrec_ids"]
    feedback, items = write_feedback(tmp_path)
    updated = update_run(parent, feedback, options={"items_path": str(items)}, settings={"epochs": 2})
    old, new = load_sequence_model(parent), load_sequence_model(updated)
    for group in ("blocks", "positions"):
        for left, right in zip(old.variable_groups()[group], new.variable_groups()[group]):
            assert left.numpy().tobytes() == right.numpy().tobytes(), (group, left.path)
    assert not np.array_equal(old.adaptor.get_weights()[1], new.adaptor.get_weights()[1])  # the adaptor did train


def test_c2dsr_runs_and_replays_of_sequence_runs_are_refused_with_what_is_supported(parents: dict, tmp_path: Path) -> None:
    parent = parents["seq_target_only"]
    config = load_run_config(parent)
    c2dsr = create_run(tmp_path / "runs", "x", kind="transfer", config_text="", resolved={}, seed=0, method="c2dsr")
    c2dsr.update_info(status="complete")
    with pytest.raises(XdtError, match=r"task: sequential runs of seq_target_only, seq_finetune, text_bridge, unisrec, unisrec_ids; .* is a c2dsr run"):
        check_parent(c2dsr, config)
    replayed = runner.invoke(app, ["replay", str(parent.path)])
    assert replayed.exit_code != 0 and "xdt replay measures runs of task: ranking" in replayed.output


def test_vocabulary_tokens_of_new_target_items_follow_the_old_ones() -> None:
    old, grown = ItemVocabulary(2, 3), ItemVocabulary(2, 5)
    np.testing.assert_array_equal(grown.tokens("target", np.arange(3)), old.tokens("target", np.arange(3)))
    np.testing.assert_array_equal(grown.tokens("target", np.array([3, 4])), [old.size, old.size + 1])
