"""Sampled ranking: hand-computed metrics, valid and reproducible negatives, ties, the labelled results and report."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sparse
from typer.testing import CliRunner

from tests.conftest import TINY_CONFIG, write_config
from tests.test_evaluate import SplitDataset, random_split
from tests.test_report import assert_tables_are_aligned
from xdt.cli import app
from xdt.config import load_config
from xdt.errors import XdtError
from xdt.evaluate import evaluate_run
from xdt.experiment import run_experiment
from xdt.runs import RunDirectory, open_run
from xdt.sampled_ranking import check_enough_negatives, evaluate_sampled, rank_against_sampled_negatives, sample_negatives

NEGATIVES = 20


class CohortDataset(SplitDataset):
    """SplitDataset whose users without training rows are the cold cohort."""

    def cohort(self, users: np.ndarray, domain: str = "target") -> np.ndarray:
        trained = {user for user, _ in self.splits["train"]}
        return np.array(["warm" if user in trained else "cold" for user in users])


def hand_dataset() -> tuple[CohortDataset, np.ndarray]:
    """8 items; every user has exactly 5 items without a row, so 5 negatives take all of them whatever the draw."""
    # User 0 (warm): train {0}, valid {1}, test {2} → negatives {3, 4, 5, 6, 7}.
    # User 1 (cold): valid {0}, test {3, 4} → negatives {1, 2, 5, 6, 7} for each test item.
    dataset = CohortDataset({"train": [(0, 0)], "valid": [(0, 1), (1, 0)], "test": [(0, 2), (1, 3), (1, 4)]}, n_users=2, n_items=8)
    scores = np.array(
        [
            [0.9, 0.8, 0.5, 0.7, 0.1, 0.2, 0.6, 0.3],
            [0.0, 0.4, 0.4, 0.4, 0.9, 0.1, 0.1, 0.1],
        ],
        dtype=np.float32,
    )
    return dataset, scores


def test_hand_computed_metrics_with_ties_and_cohorts() -> None:
    dataset, scores = hand_dataset()
    frame = evaluate_sampled(lambda batch: scores[batch.numpy()], dataset, negatives=5, ks=[1, 3], batch_size=1, seed=0)
    assert list(frame.columns[-5:]) == ["hr@1", "ndcg@1", "hr@3", "ndcg@3", "mrr"]
    assert frame["cohort"].tolist() == ["warm", "cold"] and frame["relevant"].tolist() == [1, 2]
    # User 0, item 2 (0.5): the train (0.9) and valid (0.8) items are no candidates; of the negatives
    # 0.7 and 0.6 score higher → 0-based rank 2: HR@1 = 0, HR@3 = 1, NDCG@3 = 1/log2(2 + 2) = 0.5, MRR = 1/3.
    user_0 = frame.iloc[0]
    assert user_0["hr@1"] == 0.0 and user_0["hr@3"] == 1.0
    assert user_0["ndcg@3"] == pytest.approx(0.5) and user_0["mrr"] == pytest.approx(1 / 3)
    # User 1, item 3 (0.4): negatives 0.4, 0.4, 0.1, 0.1, 0.1 (the other test item, 0.9, is no candidate)
    # → none higher, tied with 2: rank uniform over 1, 2, 3 (1-based).
    #   HR@1 = 1/3; HR@3 = 1; NDCG@3 = (1 + 1/log2 3 + 1/log2 4)/3 = (1 + 0.63093 + 0.5)/3 = 0.71031;
    #   MRR = (1 + 1/2 + 1/3)/3 = 11/18.
    # User 1, item 4 (0.9): above every negative → HR@1 = HR@3 = NDCG@3 = MRR = 1.
    # User 1 averages its two items: HR@1 = (1/3 + 1)/2 = 2/3; NDCG@3 = (0.71031 + 1)/2 = 0.85516; MRR = (11/18 + 1)/2 = 29/36.
    user_1 = frame.iloc[1]
    assert user_1["hr@1"] == pytest.approx(2 / 3) and user_1["hr@3"] == 1.0
    assert user_1["ndcg@1"] == pytest.approx(2 / 3)  # one position: NDCG@1 = HR@1
    assert user_1["ndcg@3"] == pytest.approx((1 + 1 / np.log2(3) + 0.5) / 3 / 2 + 0.5)
    assert user_1["mrr"] == pytest.approx(29 / 36)


def test_ranks_count_ties_among_candidates_only() -> None:
    dataset, scores = hand_dataset()
    ranking = rank_against_sampled_negatives(
        lambda batch: scores[batch.numpy()],
        np.array([0, 1]),
        interacted=dataset.interaction_matrix("target", "train", "valid", "test"),
        relevant=dataset.interaction_matrix("target", "test"),
        negatives=5,
        seed=3,
        batch_size=2,
    )
    # Pairs (0, 2), (1, 3), (1, 4): higher 2, 0, 0; tied (itself included) 1, 3, 1 (see the test above).
    assert ranking.pair_users.tolist() == [0, 1, 1] and ranking.items.tolist() == [2, 3, 4]
    assert ranking.higher.tolist() == [2, 0, 0] and ranking.tied.tolist() == [1, 3, 1]


def random_interactions(n_users: int, n_items: int) -> tuple[sparse.csr_matrix, sparse.csr_matrix]:
    """(every item each user has a row with, the test items among them), every user with a test item."""
    earlier, relevant = random_split(n_users, n_items)
    interacted = sparse.csr_matrix(((earlier + relevant) > 0).astype(np.float32))
    interacted.sum_duplicates()
    return interacted, relevant


def test_negatives_are_distinct_items_without_a_row() -> None:
    interacted, relevant = random_interactions(50, 40)
    users = np.arange(50)
    pair_users, items, negative_items = sample_negatives(interacted, users, relevant, negatives=10, seed=1)
    assert len(pair_users) == relevant.nnz and negative_items.shape == (relevant.nnz, 10)
    for position, item, negatives in zip(pair_users, items, negative_items):
        assert item in relevant[users[position]].indices
        assert len(set(negatives)) == 10
        assert not set(negatives) & set(interacted[users[position]].indices)
        assert negatives.min() >= 0 and negatives.max() < 40


def test_negatives_take_every_eligible_item_equally_often() -> None:
    # One user with items 0, 2, 5 of 8 → eligible {1, 3, 4, 6, 7}; 2 of 5 drawn, so each P = 2/5.
    interacted = sparse.csr_matrix(np.array([[1, 0, 1, 0, 0, 1, 0, 0]], dtype=np.float32))
    relevant = sparse.csr_matrix(np.array([[0, 0, 1, 0, 0, 0, 0, 0]], dtype=np.float32))
    draws = np.concatenate([sample_negatives(interacted, np.array([0]), relevant, negatives=2, seed=seed)[2][0] for seed in range(2000)])
    counts = np.bincount(draws, minlength=8)
    assert counts[[0, 2, 5]].tolist() == [0, 0, 0]
    # 2000 draws × P = 0.4 → 800 each; binomial std sqrt(2000 · 0.4 · 0.6) ≈ 22, so ±100 is > 4 std.
    assert np.all(np.abs(counts[[1, 3, 4, 6, 7]] - 800) < 100), counts


def test_draws_depend_on_seed_and_user_only() -> None:
    interacted, relevant = random_interactions(30, 60)
    users = np.arange(30)
    together = sample_negatives(interacted, users, relevant, negatives=15, seed=5)
    alone = [sample_negatives(interacted, np.array([user]), relevant, negatives=15, seed=5)[2] for user in users[::-1]]
    np.testing.assert_array_equal(together[2], np.concatenate(alone[::-1]))
    different_seed = sample_negatives(interacted, users, relevant, negatives=15, seed=6)[2]
    assert not np.array_equal(together[2], different_seed)


def test_ranking_is_independent_of_batch_size_and_matches_a_slow_reference() -> None:
    rng = np.random.default_rng(2)
    interacted, relevant = random_interactions(37, 50)
    scores = rng.integers(0, 5, size=(37, 50)).astype(np.float32)  # many exact ties
    users = np.arange(37)

    def rank(batch_size: int):
        return rank_against_sampled_negatives(
            lambda batch: scores[batch.numpy()], users, interacted=interacted, relevant=relevant, negatives=12, seed=9, batch_size=batch_size
        )

    rankings = [rank(batch_size) for batch_size in (1, 8, 100)]
    for other in rankings[1:]:
        for field in ("pair_users", "items", "higher", "tied"):
            np.testing.assert_array_equal(getattr(rankings[0], field), getattr(other, field))
    pair_users, items, negative_items = sample_negatives(interacted, users, relevant, negatives=12, seed=9)
    for pair, (position, item, negatives) in enumerate(zip(pair_users, items, negative_items)):
        relevant_score = scores[position, item]
        assert rankings[0].higher[pair] == sum(1 for negative in negatives if scores[position, negative] > relevant_score)
        assert rankings[0].tied[pair] == 1 + sum(1 for negative in negatives if scores[position, negative] == relevant_score)


def test_too_few_negatives_names_the_users_and_n() -> None:
    # 8 items: user 0 has 3 rows (5 eligible), user 1 has 5 rows (3 eligible); 4 negatives asked.
    interacted = sparse.csr_matrix(np.array([[1, 1, 1, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 0, 0, 0]], dtype=np.float32))
    with pytest.raises(XdtError, match=r"sampled_negatives=4, but 1 of 2 test users have fewer \(the fewest: 3 of 8 items\)"):
        check_enough_negatives(interacted, np.array([0, 1]), 4)
    check_enough_negatives(interacted, np.array([0, 1]), 3)


@pytest.fixture(scope="module")
def sampled_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, RunDirectory]:
    """A tiny experiment evaluated with 20 sampled negatives: {"popularity": run, "target_mf": run}."""
    folder = tmp_path_factory.mktemp("sampled")
    overrides = ["transfer.methods=[popularity, target_mf]", f"evaluate.sampled_negatives={NEGATIVES}"]
    loaded = load_config(write_config(folder, TINY_CONFIG), overrides)
    (outcome,) = run_experiment(loaded.config, config_text=loaded.text)
    return outcome.transfer_runs


def copy_with_negatives(run: RunDirectory, folder: Path, negatives: int) -> RunDirectory:
    """A copy of `run` whose resolved config asks for `negatives` sampled negatives."""
    copy = folder / run.path.name
    shutil.copytree(run.path, copy)
    resolved = json.loads((copy / "resolved.json").read_text())
    resolved["evaluate"]["sampled_negatives"] = negatives
    (copy / "resolved.json").write_text(json.dumps(resolved))
    return open_run(copy)


def test_results_json_has_a_labelled_sampled_section(sampled_runs: dict[str, RunDirectory]) -> None:
    for run in sampled_runs.values():
        results = run.read_json("results.json")
        sampled = results["sampled"]
        assert sampled["protocol"] == "sampled" and sampled["negatives"] == NEGATIVES and sampled["ties"] == "expected"
        assert sampled["label"] == "Sampled ranking (20 random negatives per test item — not comparable with full ranking)"
        assert "without replacement" in sampled["negatives_from"]
        assert set(sampled["test"]["cohorts"]) == {"cold", "warm"}
        assert sampled["test"]["all"]["users"] == results["test"]["all"]["users"]
        for cohort in ("cold", "warm"):
            assert sampled["test"]["cohorts"][cohort]["users"] == results["test"]["cohorts"][cohort]["users"]
        assert set(sampled["test"]["all"]) == {"users", "hr@5", "ndcg@5", "hr@10", "ndcg@10", "mrr"}
        # 21 candidates: even a random ranker has HR@10 ≈ 10/21, far above full ranking's HR@10 over 120 items.
        assert sampled["test"]["all"]["hr@10"] > results["test"]["all"]["hr@10"]


def test_sampled_ranking_leaves_full_ranking_unchanged(sampled_runs: dict[str, RunDirectory], tmp_path: Path) -> None:
    with_sampled = sampled_runs["target_mf"].read_json("results.json")
    without = evaluate_run(copy_with_negatives(sampled_runs["target_mf"], tmp_path, 0))
    assert "sampled" not in without
    assert {key: value for key, value in with_sampled.items() if key != "sampled"} == without


def test_report_has_the_sampled_table(sampled_runs: dict[str, RunDirectory]) -> None:
    text = (sampled_runs["popularity"].path / "report.md").read_text()
    heading = "## Sampled ranking (20 random negatives per test item — not comparable with full ranking)"
    assert heading in text
    table = text.split(heading)[1].split("##")[0]
    assert "| popularity | cold" in table and "| popularity | warm" in table
    header = table.strip().split("\n")[0]
    assert [cell.strip() for cell in header.strip("|").split("|")][3:] == ["sampled hr@5", "sampled ndcg@5", "sampled hr@10", "sampled ndcg@10", "sampled mrr"]
    assert_tables_are_aligned(text)
    experiment_text = (Path(sampled_runs["popularity"].info()["parent"]) / "experiment" / "report.md").read_text()
    assert heading in experiment_text and "| target_mf" in experiment_text.split(heading)[1]


def test_cli_prints_the_sampled_table_and_rejects_too_many_negatives(sampled_runs: dict[str, RunDirectory], tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["evaluate", str(sampled_runs["popularity"].path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Sampled ranking (20 random negatives per test item — not comparable with full ranking)" in result.output
    assert "sampled hr@10" in result.output
    too_many = copy_with_negatives(sampled_runs["popularity"], tmp_path, 500)
    result = runner.invoke(app, ["evaluate", str(too_many.path)], catch_exceptions=False)
    assert result.exit_code == 2
    assert "sampled_negatives=500" in result.output and "test users have fewer" in result.output and "of 120 items" in result.output


def test_xdt_run_refuses_too_many_sampled_negatives_before_training(tmp_path: Path) -> None:
    config_path = write_config(tmp_path, TINY_CONFIG)
    result = CliRunner().invoke(app, ["run", str(config_path), "--set", "evaluate.sampled_negatives=500"], catch_exceptions=False)
    assert result.exit_code == 2
    assert "sampled_negatives=500" in result.output and "test users have fewer" in result.output
    # Nothing was trained: no pretrain or transfer run directory exists.
    assert not list((tmp_path / "runs").rglob("run.json"))
