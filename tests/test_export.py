"""`xdt export`: the SavedModel's `recommend` endpoint returns what `xdt recommend` returns, without xdt.

xdt is installed editable, and its `.pth` finder makes `import xdt` work even under `python -I`.
The xdt-free check therefore runs `python -I -S` (no site processing, so no `.pth` finder) from
an empty temporary folder, puts only site-packages on sys.path, and asserts `xdt` cannot be found
before loading the SavedModel.
"""

from __future__ import annotations

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
import tensorflow as tf

from xdt.errors import XdtError
from xdt.export import export_run
from xdt.recommend import recommend
from xdt.runs import RunDirectory

K = 7


@pytest.fixture(scope="module")
def users(experiment: dict[str, RunDirectory]) -> list[str]:
    """A warm and a cold-start test user."""
    per_user = pd.read_parquet(experiment["emcdr"].path / "per_user.parquet")
    return [per_user.loc[per_user["cohort"] == cohort, "user"].iloc[0] for cohort in ("warm", "cold")]


@pytest.fixture(scope="module")
def exported(experiment: dict[str, RunDirectory], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each method's SavedModel."""
    folder = tmp_path_factory.mktemp("saved")
    return {method: export_run(run, folder / method) for method, run in experiment.items()}


def expected(run: RunDirectory, users: list[str]) -> dict[str, tuple[list[str], list[float]]]:
    """`xdt recommend`'s items and scores per user."""
    frame = recommend(run, users, k=K)
    return {user: (group["item"].tolist(), group["score"].tolist()) for user, group in frame.groupby("user", sort=False)}


@pytest.mark.parametrize("method", ["emcdr", "popularity"])
def test_endpoint_matches_recommend_for_warm_and_cold_users(
    experiment: dict[str, RunDirectory], exported: dict[str, Path], users: list[str], method: str
) -> None:
    served = tf.saved_model.load(str(exported[method]))
    reference = expected(experiment[method], users)
    batch = served.recommend(tf.constant(users), tf.constant(K))
    assert batch["items"].shape == (2, K) and batch["scores"].shape == (2, K)
    for row, user in enumerate(users):
        items, scores = reference[user]
        assert [item.decode() for item in batch["items"][row].numpy()] == items
        np.testing.assert_allclose(batch["scores"][row].numpy(), scores, atol=1e-5)
        single = served.recommend(tf.constant(user), tf.constant(K))
        assert single["items"].shape == (K,)
        assert [item.decode() for item in single["items"].numpy()] == items
    signature = served.signatures["recommend"](user=tf.constant(users), k=tf.constant(K))
    np.testing.assert_array_equal(signature["items"].numpy(), batch["items"].numpy())


def test_seen_items_are_excluded_and_short_lists_are_padded(experiment: dict[str, RunDirectory], exported: dict[str, Path], users: list[str]) -> None:
    from xdt.data.protocols import TARGET
    from xdt.session import load_run_config, open_dataset

    dataset = open_dataset(load_run_config(experiment["emcdr"]))
    warm = users[0]
    seen = dataset.interaction_matrix(TARGET, "train", "valid", "test")[dataset.user_index(warm)].indices
    raw_items = dataset.items(TARGET)["raw_item"].to_numpy().astype(str)
    served = tf.saved_model.load(str(exported["emcdr"]))
    everything = served.recommend(tf.constant(warm), tf.constant(10_000))
    items = [item.decode() for item in everything["items"].numpy()]
    assert len(items) == len(raw_items)  # k is capped at the number of items
    unseen = len(raw_items) - len(seen)
    assert set(items[:unseen]) == set(raw_items) - set(raw_items[seen])
    assert items[unseen:] == [""] * len(seen)
    assert np.all(np.isneginf(everything["scores"].numpy()[unseen:]))


def test_unknown_users_and_bad_k_are_refused(exported: dict[str, Path], users: list[str]) -> None:
    served = tf.saved_model.load(str(exported["emcdr"]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="Unknown user ids"):
        served.recommend(tf.constant([users[0], "no-such-user"]), tf.constant(3))
    with pytest.raises(tf.errors.InvalidArgumentError, match="k >= 1"):
        served.recommend(tf.constant(users[0]), tf.constant(0))


def test_export_refuses_non_transfer_runs_and_foreign_folders(experiment: dict[str, RunDirectory], tmp_path: Path) -> None:
    from xdt.runs import open_run

    parent = open_run(experiment["emcdr"].info()["parent"])
    with pytest.raises(XdtError, match="expects a transfer run"):
        export_run(parent, tmp_path / "pretrain")
    (tmp_path / "occupied").mkdir()
    (tmp_path / "occupied" / "notes.txt").write_text("mine")
    with pytest.raises(XdtError, match="not an earlier export"):
        export_run(experiment["popularity"], tmp_path / "occupied")
    first = export_run(experiment["popularity"], tmp_path / "again")
    assert export_run(experiment["popularity"], tmp_path / "again") == first  # an earlier export is replaced
    assert json.loads((first / "xdt_export.json").read_text())["endpoint"]["name"] == "recommend"


SERVE_WITHOUT_XDT = textwrap.dedent(
    """
    import importlib.util, json, sys
    sys.path.append(sys.argv[1])  # site-packages only: -S skipped the .pth files (and xdt's editable finder)
    if importlib.util.find_spec("xdt") is not None:
        raise SystemExit("xdt is importable in the isolated process")
    import tensorflow as tf
    served = tf.saved_model.load(sys.argv[2])
    out = served.recommend(tf.constant(json.loads(sys.argv[3])), tf.constant(int(sys.argv[4])))
    assert not any(name == "xdt" or name.startswith("xdt.") for name in sys.modules)
    print(json.dumps({"items": [[i.decode() for i in row] for row in out["items"].numpy()], "scores": out["scores"].numpy().tolist()}))
    """
)


def test_saved_model_serves_in_a_process_without_xdt(
    experiment: dict[str, RunDirectory], exported: dict[str, Path], users: list[str], tmp_path: Path
) -> None:
    script = tmp_path / "serve.py"
    script.write_text(SERVE_WITHOUT_XDT)
    environment = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME")}
    environment["TF_CPP_MIN_LOG_LEVEL"] = "3"
    result = subprocess.run(
        [sys.executable, "-I", "-S", str(script), sysconfig.get_paths()["purelib"], str(exported["emcdr"]), json.dumps(users), str(K)],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    reference = expected(experiment["emcdr"], users)
    for row, user in enumerate(users):
        assert served["items"][row] == reference[user][0]
        np.testing.assert_allclose(served["scores"][row], reference[user][1], atol=1e-5)


def test_xdt_is_importable_under_isolated_mode_so_the_check_needs_dash_s(tmp_path: Path) -> None:
    """Documents why the serving check uses -S: with -I alone the editable install still finds xdt."""
    probe = "import importlib.util; print(importlib.util.find_spec('xdt') is not None)"
    isolated = subprocess.run([sys.executable, "-I", "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True)
    without_site = subprocess.run([sys.executable, "-I", "-S", "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert without_site.stdout.strip() == "False"
    assert isolated.stdout.strip() in ("True", "False")  # True for the editable install, False for a wheel
