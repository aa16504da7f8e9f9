"""`xdt explain` and `recommend --explain`: exact kNN terms and occlusion drops against hand computation,
recovery of planted source items, the honest "not explainable" answer, the exported `explain`
endpoint, and the CLI's user errors (exit code 2).
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.conftest import TINY_CONFIG, write_config
from xdt.cli import app
from xdt.config import SyntheticConfig
from xdt.data.protocols import SOURCE, TARGET
from xdt.data.synthetic import generate, planted_sets
from xdt.errors import XdtError
from xdt.explain import EXACT_KNN, NOT_EXPLAINABLE, OCCLUSION, explain, planted_precision
from xdt.runs import RunDirectory, open_run

runner = CliRunner()
PLANTED = {"users": 300, "source_items": 80, "target_items": 60, "latent_dim": 4, "source_interactions": 15, "target_interactions": 8, "planted_sources": 3}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, RunDirectory]:
    """A tiny planted experiment: xknn, itemknn, two_tower, emcdr and content runs (2 epochs)."""
    from xdt.config import load_config
    from xdt.experiment import run_experiment

    config = copy.deepcopy(TINY_CONFIG)
    config["dataset"]["synthetic"] = {**config["dataset"]["synthetic"], **PLANTED}
    config["pretrain"]["epochs"] = 2
    config["transfer"].update({"methods": ["xknn", "itemknn", "two_tower", "emcdr", "content"], "epochs": 2, "mapping_epochs": 5})
    path = write_config(tmp_path_factory.mktemp("explain"), config)
    outcome = run_experiment(load_config(path).config, config_text=path.read_text())[0]
    return {**outcome.transfer_runs, "pretrain": outcome.pretrain_run}


@pytest.fixture(scope="module")
def dataset(runs: dict[str, RunDirectory]):
    from xdt.session import load_run_config, open_dataset

    return open_dataset(load_run_config(runs["xknn"]))


def users_of(run: RunDirectory, cohort: str) -> list[str]:
    per_user = pd.read_parquet(run.path / "per_user.parquet")
    return per_user.loc[per_user["cohort"] == cohort, "user"].tolist()


def hand_cosine(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Dense cosine of binary columns: co-occurrence / sqrt(degree × degree)."""
    co = left.T @ right
    degrees = np.sqrt(np.outer(left.sum(axis=0), right.sum(axis=0)))
    return np.divide(co, degrees, out=np.zeros_like(co), where=degrees > 0)


def test_xknn_terms_are_the_hand_computed_cosines_and_add_up_to_the_score(runs, dataset) -> None:
    source = dataset.interaction_matrix(SOURCE, "train").toarray().astype(np.float64)
    target = dataset.interaction_matrix(TARGET, "train").toarray().astype(np.float64)
    frame = dataset.interactions
    overlap = np.isin(np.arange(dataset.n_users), frame.loc[frame["domain"] == SOURCE, "user"]) & np.isin(
        np.arange(dataset.n_users), frame.loc[frame["domain"] == TARGET, "user"]
    )
    cross = hand_cosine(source[overlap], target[overlap])
    within = hand_cosine(target, target)
    np.fill_diagonal(within, 0.0)
    raw_source = dataset.items(SOURCE)["raw_item"].astype(str).tolist()
    raw_target = dataset.items(TARGET)["raw_item"].astype(str).tolist()
    for raw_user in (users_of(runs["xknn"], "cold")[0], users_of(runs["xknn"], "warm")[0]):
        user = dataset.user_index(raw_user)
        for explanation in explain(runs["xknn"], raw_user, k=3, top=1000):
            item = raw_target.index(explanation.item)
            expected = {("source", raw_source[j]): cross[j, item] for j in np.flatnonzero(source[user])}
            expected |= {("target", raw_target[j]): within[j, item] for j in np.flatnonzero(target[user])}
            got = {(part.domain, part.item): part.contribution for part in explanation.contributions}
            assert explanation.method == EXACT_KNN and set(got) == set(expected)
            for key, value in expected.items():
                assert got[key] == pytest.approx(value, abs=1e-12)
            assert sum(got.values()) + explanation.unattributed == pytest.approx(explanation.score, rel=1e-6)
            assert sum(part.share for part in explanation.contributions) == pytest.approx(1.0)


def test_itemknn_explains_from_target_history_only(runs) -> None:
    warm = users_of(runs["itemknn"], "warm")[0]
    explanations = explain(runs["itemknn"], warm, k=2, top=3)
    assert {part.domain for row in explanations for part in row.contributions} == {"target"}
    values = [part.contribution for part in explanations[0].contributions]
    assert values == sorted(values, reverse=True)


def test_two_tower_occlusion_equals_rescoring_with_the_item_removed(runs, dataset) -> None:
    from xdt.session import load_model

    warm = users_of(runs["two_tower"], "warm")[0]
    user = dataset.user_index(warm)
    explanation = explain(runs["two_tower"], warm, k=1, top=2)[0]
    assert explanation.method == OCCLUSION and explanation.unattributed is None
    model = load_model(runs["two_tower"])
    raw_target = dataset.items(TARGET)["raw_item"].astype(str).tolist()
    item = raw_target.index(explanation.item)
    history = model.target_history.numpy()
    full = float(model.score_all(np.array([user]))[0, item])
    assert full == pytest.approx(explanation.score, abs=1e-5)
    for part in explanation.contributions:
        removed = history.copy()
        removed[user, removed[user] == raw_target.index(part.item)] = model.num_items
        model.target_history.assign(removed)
        assert full - float(model.score_all(np.array([user]))[0, item]) == pytest.approx(part.contribution, abs=1e-5)
        model.target_history.assign(history)


def test_removing_history_items_rescored_matches_the_terms(runs, dataset) -> None:
    """`without` recomputes scores from a shortened history; for kNN the drop is exactly the removed terms."""
    from xdt.explain import open_explained_run

    cold = users_of(runs["xknn"], "cold")[0]
    opened = open_explained_run(runs["xknn"])
    explanation = explain(opened, cold, k=1, top=3)[0]
    raw_source = dataset.items(SOURCE)["raw_item"].astype(str).tolist()
    item = dataset.items(TARGET)["raw_item"].astype(str).tolist().index(explanation.item)
    removal = [("source", raw_source.index(part.item)) for part in explanation.contributions]
    full, reduced = opened.explainer.without(dataset.user_index(cold), [[], removal])[:, item]
    assert full - reduced == pytest.approx(sum(part.contribution for part in explanation.contributions), abs=1e-12)
    warm = users_of(runs["two_tower"], "warm")[0]
    tower = open_explained_run(runs["two_tower"])
    first = explain(tower, warm, k=1, top=1)[0]
    single = [("target", dataset.items(TARGET)["raw_item"].astype(str).tolist().index(first.contributions[0].item))]
    item = dataset.items(TARGET)["raw_item"].astype(str).tolist().index(first.item)
    full, reduced = tower.explainer.without(dataset.user_index(warm), [[], single])[:, item]
    assert full - reduced == pytest.approx(first.contributions[0].contribution, abs=1e-5)


def test_content_occlusion_rebuilds_the_models_profile(runs) -> None:
    cold = users_of(runs["content"], "cold")[0]
    explanation = explain(runs["content"], cold, k=1, top=2)[0]
    assert explanation.method == OCCLUSION and explanation.contributions
    from xdt.explain import open_explained_run

    opened = open_explained_run(runs["content"])
    user = opened.dataset.user_index(cold)
    item = opened.dataset.items(TARGET)["raw_item"].astype(str).tolist().index(explanation.item)
    assert opened.explainer.without(user, [[]])[0, item] == pytest.approx(explanation.score, abs=1e-6)


def test_pure_id_models_say_they_are_not_explainable(runs) -> None:
    cold = users_of(runs["emcdr"], "cold")[0]
    explanations = explain(runs["emcdr"], cold, k=2)
    assert all(row.method == NOT_EXPLAINABLE and not row.contributions for row in explanations)
    assert "learned user vector" in explanations[0].note


def test_xknn_recovers_the_planted_source_items(runs, dataset) -> None:
    from xdt.session import load_run_config

    config = load_run_config(runs["xknn"])
    planted = planted_sets(config.dataset.synthetic, config.seed)
    source = dataset.interaction_matrix(SOURCE, "train")
    raw_source = dataset.items(SOURCE)["raw_item"].astype(str).to_numpy()
    scores = []
    for raw_user in users_of(runs["xknn"], "cold")[:30]:
        history = set(raw_source[source[dataset.user_index(raw_user)].indices])
        for explanation in explain(runs["xknn"], raw_user, k=5, top=3):
            score = planted_precision(explanation, set(planted[explanation.item]), history)
            if score is not None:
                scores.append(score)
    assert len(scores) >= 50
    assert np.mean(scores) >= 0.8, f"planted precision@3 {np.mean(scores):.3f} over {len(scores)} explanations"


def test_planted_knob_leaves_the_source_domain_alone_and_is_off_by_default() -> None:
    plain = generate(SyntheticConfig(users=200, source_items=40, target_items=30), 3)
    planted = generate(SyntheticConfig(users=200, source_items=40, target_items=30, planted_sources=2), 3)
    assert plain.planted is None and SyntheticConfig().planted_sources == 0
    pd.testing.assert_frame_equal(plain.source, planted.source)
    assert all(len(sources) == 2 for sources in planted.planted.values()) and len(planted.planted) == 30
    with pytest.raises(ValueError, match="planted_sources >= 1"):
        planted_sets(SyntheticConfig(users=200, source_items=40, target_items=30), 3)


def test_explain_item_rank_and_seen_item(runs, dataset) -> None:
    top = explain(runs["xknn"], users_of(runs["xknn"], "warm")[0], k=3)
    again = explain(runs["xknn"], top[0].user, items=[top[2].item])
    assert again[0].rank == 3 and again[0].score == top[2].score
    seen = dataset.items(TARGET)["raw_item"].iat[dataset.interaction_matrix(TARGET, "train")[dataset.user_index(top[0].user)].indices[0]]
    assert explain(runs["xknn"], top[0].user, items=[seen])[0].rank is None


def invoke(*arguments: str):
    return runner.invoke(app, list(arguments), catch_exceptions=False)


def test_cli_explain_table_and_json(runs) -> None:
    cold = users_of(runs["xknn"], "cold")[0]
    table = invoke("explain", str(runs["xknn"].path), "--user", cold, "--k", "2", "--top", "2")
    assert table.exit_code == 0, table.output
    assert "exact kNN terms" in table.output and "#2" in table.output
    result = invoke("explain", str(runs["xknn"].path), "--user", cold, "--k", "2", "--format", "json")
    rows = json.loads(result.output)
    assert [row["rank"] for row in rows] == [1, 2] and rows[0]["contributions"][0]["domain"] == "source"


def test_cli_recommend_explain(runs, tmp_path: Path) -> None:
    cold = users_of(runs["xknn"], "cold")[0]
    shown = invoke("recommend", str(runs["xknn"].path), "--user", cold, "--k", "2", "--explain")
    assert shown.exit_code == 0, shown.output
    assert "Recommendations, explained" in shown.output and "exact kNN terms" in shown.output
    output = tmp_path / "recs.csv"
    assert invoke("recommend", str(runs["emcdr"].path), "--user", cold, "--k", "2", "--explain", "--output", str(output)).exit_code == 0
    frame = pd.read_csv(output)
    assert frame["explanation_method"].tolist() == ["none", "none"] and frame["explanation"].str.contains("not explainable").all()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--user", "nobody"], "--user: expected a raw user id of dataset 'tiny'"),
        (["--item", "no-such-item"], "--item: expected a target item id of dataset 'tiny'"),
        (["--format", "xml"], "--format: expected 'table' or 'json'. Received: 'xml'"),
        (["--k", "0"], "Expected --k >= 1"),
    ],
)
def test_cli_user_errors_exit_2(runs, arguments: list[str], message: str) -> None:
    cold = users_of(runs["xknn"], "cold")[0]
    base = ["explain", str(runs["xknn"].path)] + ([] if "--user" in arguments else ["--user", cold])
    result = runner.invoke(app, base + arguments)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_cli_refuses_a_pretrain_run(runs) -> None:
    result = runner.invoke(app, ["explain", str(runs["pretrain"].path), "--user", users_of(runs["xknn"], "cold")[0]])
    assert result.exit_code == 2 and "explain expects a transfer run" in result.output and "is a pretrain run" in result.output


def test_library_refuses_unknown_user(runs) -> None:
    with pytest.raises(XdtError, match="Received: 'ghost'"):
        explain(runs["xknn"], "ghost")


SERVE_EXPLAIN_WITHOUT_XDT = textwrap.dedent(
    """
    import importlib.util, json, sys
    sys.path.append(sys.argv[1])
    if importlib.util.find_spec("xdt") is not None:
        raise SystemExit("xdt is importable in the isolated process")
    import tensorflow as tf
    served = tf.saved_model.load(sys.argv[2])
    out = served.signatures["explain"](user=tf.constant(sys.argv[3]), item=tf.constant(sys.argv[4]))
    print(json.dumps({"items": [i.decode() for i in out["history_items"].numpy()], "contributions": out["contributions"].numpy().tolist(),
                      "score": float(out["score"].numpy())}))
    """
)


@pytest.mark.slow
def test_exported_explain_endpoint_matches_explain_without_xdt(runs, tmp_path: Path) -> None:
    import tensorflow as tf

    from xdt.export import export_run

    cold = users_of(runs["xknn"], "cold")[0]
    reference = explain(runs["xknn"], cold, k=1, top=1000)[0]
    folder = export_run(runs["xknn"], tmp_path / "xknn")
    assert json.loads((folder / "xdt_export.json").read_text())["explain"]["method"] == "exact kNN terms"
    served = tf.saved_model.load(str(folder))
    with pytest.raises(tf.errors.InvalidArgumentError, match="Unknown target item id"):
        served.explain(tf.constant(cold), tf.constant("no-such-item"))
    script = tmp_path / "serve.py"
    script.write_text(SERVE_EXPLAIN_WITHOUT_XDT)
    environment = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME")}
    environment["TF_CPP_MIN_LOG_LEVEL"] = "3"
    result = subprocess.run(
        [sys.executable, "-I", "-S", str(script), sysconfig.get_paths()["purelib"], str(folder), cold, reference.item],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    served_out = json.loads(result.stdout.strip().splitlines()[-1])
    expected = [part.item for part in reference.contributions]
    assert sorted(served_out["items"]) == sorted(expected)
    np.testing.assert_allclose(sorted(served_out["contributions"]), sorted(part.contribution for part in reference.contributions), atol=1e-12)
    assert served_out["score"] == pytest.approx(sum(part.contribution for part in reference.contributions) + reference.unattributed)


def test_export_of_a_model_without_exact_terms_has_no_explain_endpoint(runs, tmp_path: Path) -> None:
    from xdt.export import export_run

    folder = export_run(runs["emcdr"], tmp_path / "emcdr")
    assert json.loads((folder / "xdt_export.json").read_text())["explain"] is None
    assert open_run(runs["emcdr"].path).info()["method"] == "emcdr"
