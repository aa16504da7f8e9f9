"""Each CLI stage alone through typer's CliRunner: exit codes, key phrases, outputs."""

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.conftest import TINY_CONFIG, write_config
from xdt.cli import app

runner = CliRunner()


def invoke(*arguments: str):
    return runner.invoke(app, list(arguments), catch_exceptions=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("cli")
    config = {**TINY_CONFIG, "transfer": {**TINY_CONFIG["transfer"], "methods": ["popularity", "finetune"]}}
    path = write_config(folder, config)
    prepared = invoke("prepare", str(path))
    assert prepared.exit_code == 0, prepared.output
    pretrain = invoke("pretrain-source", str(path), "--set", "pretrain.epochs=2")
    assert pretrain.exit_code == 0, pretrain.output
    parent = re.search(r"pretrain run: (\S+)", pretrain.output).group(1)
    transfer = invoke("transfer", str(path), "--from", parent)
    assert transfer.exit_code == 0, transfer.output
    runs = dict(re.findall(r"transfer run \((\w+)\): (\S+)", transfer.output))
    return {"folder": folder, "config": path, "parent": parent, "runs": runs, "prepare_output": prepared.output}


def test_prepare_prints_the_manifest_table(trained: dict) -> None:
    output = trained["prepare_output"]
    assert "Prepared dataset tiny (protocol cold_users)" in output
    assert "overlapping 360" in output and "cold-start test 90" in output


def test_evaluate_writes_results_and_prints_cohorts(trained: dict) -> None:
    result = invoke("evaluate", trained["runs"]["finetune"])
    assert result.exit_code == 0, result.output
    assert "cold" in result.output and "warm" in result.output
    results = json.loads((Path(trained["runs"]["finetune"]) / "results.json").read_text())
    assert results["method"] == "finetune" and results["ks"] == [5, 10]


def test_recommend_serves_a_cold_start_user_and_excludes_seen_items(trained: dict) -> None:
    run = Path(trained["runs"]["finetune"])
    data = pd.read_parquet(trained["folder"] / "data" / "tiny" / "interactions.parquet")
    users = pd.read_parquet(trained["folder"] / "data" / "tiny" / "users.parquet")
    items = pd.read_parquet(trained["folder"] / "data" / "tiny" / "items_target.parquet")
    target = data[data["domain"] == "target"]
    cold_index = target.loc[target["split"] == "test"].groupby("user").size().index
    trained_users = set(target.loc[target["split"] == "train", "user"])
    cold = next(user for user in cold_index if user not in trained_users)
    warm = next(iter(sorted(trained_users)))
    cold_raw, warm_raw = users["raw_user"][cold], users["raw_user"][warm]
    output = trained["folder"] / "recs.csv"
    (trained["folder"] / "users.txt").write_text(f"{cold_raw}\n{warm_raw}\n")
    result = invoke("recommend", str(run), "--users", str(trained["folder"] / "users.txt"), "--k", "7", "--output", str(output))
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(output)
    assert frame.groupby("user").size().to_dict() == {cold_raw: 7, warm_raw: 7}
    assert set(frame.loc[frame["user"] == cold_raw, "cohort"]) == {"cold-start"}
    seen = set(items["raw_item"][target.loc[target["user"] == warm, "item"]])
    assert not seen & set(frame.loc[frame["user"] == warm_raw, "item"])
    assert frame.groupby("user")["score"].apply(lambda scores: scores.is_monotonic_decreasing).all()


def test_user_errors_exit_2_with_one_clear_message(trained: dict) -> None:
    unknown = invoke("recommend", trained["runs"]["finetune"], "--user", "nobody")
    assert unknown.exit_code == 2 and "Unknown user id 'nobody'" in unknown.output
    no_from = invoke("transfer", str(trained["config"]))
    assert no_from.exit_code == 2 and "transfer needs --from PRETRAIN_RUN" in no_from.output
    wrong_kind = invoke("evaluate", trained["parent"])
    assert wrong_kind.exit_code == 2 and "evaluate expects a transfer run" in wrong_kind.output
    not_a_run = invoke("runs", "show", str(trained["folder"]))
    assert not_a_run.exit_code == 2 and "Not a run directory" in not_a_run.output
    bad_k = invoke("recommend", trained["runs"]["finetune"], "--user", "u00001", "--k", "0")
    assert bad_k.exit_code == 2 and "Expected k >= 1. Received: k=0" in bad_k.output
    for result in (unknown, no_from, wrong_kind, not_a_run, bad_k):
        assert "Traceback" not in result.output


def test_runs_list_and_show(trained: dict) -> None:
    listing = invoke("runs", "list", "--runs-dir", str(trained["folder"] / "runs"), "--json")
    rows = json.loads(listing.output)
    assert [row["kind"] for row in rows].count("transfer") == 2
    assert {row["status"] for row in rows} == {"complete"}
    shown = invoke("runs", "show", trained["parent"])
    assert shown.exit_code == 0 and '"kind": "pretrain"' in shown.output


def test_every_command_has_help() -> None:
    for command in (["prepare"], ["pretrain-source"], ["transfer"], ["evaluate"], ["recommend"], ["run"], ["runs", "list"], ["runs", "show"]):
        result = invoke(*command, "--help")
        assert result.exit_code == 0 and "Usage" in result.output


def test_recommend_refuses_an_empty_users_file_by_name(trained: dict) -> None:
    empty = trained["folder"] / "empty.txt"
    empty.write_text("\n  \n")
    result = invoke("recommend", trained["runs"]["finetune"], "--users", str(empty))
    assert result.exit_code == 2
    assert f"--users: {empty} holds no user ids" in result.output and "recommend needs --user" not in result.output


def test_recommend_serves_each_user_once_in_first_seen_order(trained: dict) -> None:
    users = pd.read_parquet(trained["folder"] / "data" / "tiny" / "users.parquet")["raw_user"].astype(str).tolist()
    first, second = users[0], users[1]
    listed = trained["folder"] / "repeated.txt"
    listed.write_text(f"{second}\n{first}\n{second}\n")
    output = trained["folder"] / "once.csv"
    result = invoke("recommend", trained["runs"]["finetune"], "--user", first, "--users", str(listed), "--k", "3", "--output", str(output))
    assert result.exit_code == 0, result.output
    assert "6 recommendations for 2 users" in result.output
    frame = pd.read_csv(output, dtype={"user": str})
    assert frame["user"].tolist() == [first] * 3 + [second] * 3
