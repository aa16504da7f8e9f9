"""LightGCN: the normalised adjacency by hand, propagation against dense numpy, training and serving through xdt run."""

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import TINY_CONFIG, write_config
from xdt.config import load_config
from xdt.experiment import run_experiment
from xdt.models.lightgcn import LightGCN, graph_edges, normalised_adjacency


def test_normalised_adjacency_by_hand() -> None:
    # Rows (u0, i0), (u0, i1), (u1, i1) and a duplicate (u1, i1): degrees u0 2, u1 1, i0 1, i1 2.
    indices, values = normalised_adjacency(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), num_users=2, num_items=2)
    entries = {tuple(index): value for index, value in zip(indices.tolist(), values.tolist())}
    # Nodes: users 0, 1 then items 2 (i0), 3 (i1); each edge appears in both directions.
    expected = {(0, 2): 1 / np.sqrt(2), (0, 3): 0.5, (1, 3): 1 / np.sqrt(2)}
    expected.update({(column, row): value for (row, column), value in expected.items()})
    assert entries.keys() == expected.keys()
    for key, value in expected.items():
        assert entries[key] == pytest.approx(value)
    assert indices.tolist() == sorted(indices.tolist())  # row-major, as a SparseTensor expects
    assert graph_edges(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1])) == 6


def test_propagation_is_the_layer_mean_of_powers_of_the_adjacency() -> None:
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 7, size=30), rng.integers(0, 5, size=30)
    model = LightGCN(7, 5, 3, graph_edges(users, items), layers=2)
    model.build()
    model.set_graph(users, items)
    indices, values = normalised_adjacency(users, items, 7, 5)
    dense = np.zeros((12, 12))
    dense[indices[:, 0], indices[:, 1]] = values
    ego = np.concatenate([model.user_embedding.embeddings.numpy(), model.item_embedding.embeddings.numpy()])
    expected = (ego + dense @ ego + dense @ dense @ ego) / 3
    user_table, item_table = model.propagate()
    np.testing.assert_allclose(user_table.numpy(), expected[:7], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(item_table.numpy(), expected[7:], rtol=1e-5, atol=1e-6)
    scores = model.score_all(np.array([0, 3]))
    np.testing.assert_allclose(np.asarray(scores), expected[[0, 3]] @ expected[7:].T, rtol=1e-5, atol=1e-6)
    mf = model.to_matrix_factorization(name="converted")
    np.testing.assert_allclose(np.asarray(mf.score_all(np.array([0, 3]))), np.asarray(scores), rtol=1e-6, atol=1e-7)


@pytest.mark.slow
def test_lightgcn_trains_serves_and_starts_transfer_methods_from_a_lightgcn_source(tmp_path: Path) -> None:
    from xdt.evaluate import evaluate_run
    from xdt.session import load_model

    loaded = load_config(
        write_config(tmp_path, TINY_CONFIG),
        ["transfer.methods=[popularity, lightgcn, finetune]", "pretrain.model=lightgcn", "transfer.graph_layers=2"],
    )
    (outcome,) = run_experiment(loaded.config, config_text=loaded.text)
    run = outcome.transfer_runs["lightgcn"]
    losses = [record["loss"] for record in run.metrics_history() if record.get("stage") == "lightgcn"]
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert type(load_model(run)).__name__ == "LightGCN"
    results = outcome.results["lightgcn"]
    assert evaluate_run(run)["test"]["all"] == results["test"]["all"]  # the saved model scores alone, the same
    warm = results["test"]["cohorts"]["warm"]["ndcg@10"]
    assert warm > outcome.results["popularity"]["test"]["cohorts"]["warm"]["ndcg@10"]
    source = load_model(outcome.pretrain_run)
    assert type(source).__name__ == "MatrixFactorization" and outcome.pretrain_run.read_json("resolved.json")["pretrain"]["model"] == "lightgcn"
    assert outcome.results["finetune"]["test"]["all"]["users"] > 0
