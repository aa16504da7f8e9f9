"""The task registry: every task is a plug-in looked up by name, and no stage branches on the task's name."""

import re
import sys
import typing
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import TINY_CONFIG, write_config
from xdt.cli import app
from xdt.config import ExperimentConfig
from xdt.errors import ConfigError
from xdt.tasks import TASK_NAMES, get_task, staged_task_names

XDT = Path(__file__).resolve().parents[1] / "xdt"


def test_every_task_name_of_the_config_has_a_plug_in_of_that_name() -> None:
    assert typing.get_args(typing.get_type_hints(ExperimentConfig)["task"]) == TASK_NAMES
    for name in TASK_NAMES:
        task = get_task(name)
        assert task.name == name and task.model_run_kind in ("transfer", "rating")
    assert staged_task_names() == ["ranking"]


def test_an_unknown_task_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"Unknown task 'rankng'\. Did you mean 'ranking'\? Known tasks: ranking, rating, sequential"):
        get_task("rankng")


def test_no_module_outside_the_task_plug_ins_branches_on_the_task_name() -> None:
    pattern = re.compile(r"\btask\s*[!=]=\s*['\"]|['\"]\s*[!=]=\s*\S*\btask\b")
    offenders = [
        f"{path.relative_to(XDT)}:{number}"
        for path in sorted(XDT.rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []


def test_looking_up_a_task_and_validating_its_config_import_no_tensorflow() -> None:
    import subprocess

    code = (
        "import sys\n"
        "from xdt.tasks import TASK_NAMES, get_task\n"
        "[get_task(name) for name in TASK_NAMES]\n"
        "from xdt.config import load_config\n"
        "load_config('configs/quickstart.yaml'); load_config('configs/douban-book-music.yaml'); load_config('configs/llmcdsr-food-kitchen.yaml')\n"
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=XDT.parent, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False False"


def test_a_task_that_trains_in_one_go_refuses_pretrain_source(tmp_path: Path) -> None:
    config = write_config(tmp_path, {**TINY_CONFIG, "task": "sequential", "sequence": {"methods": ["seq_target_only"]}})
    result = CliRunner().invoke(app, ["pretrain-source", str(config)])
    assert result.exit_code == 2
    assert "task: sequential runs all its stages in `xdt run`; pretrain-source and transfer are for task: ranking" in result.output
