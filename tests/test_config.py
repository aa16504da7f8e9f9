"""Config validation: precise messages naming file, key path, expected and received values."""

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from xdt.cli import app
from xdt.config import load_config
from xdt.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "experiment.yaml"
    path.write_text(text)
    return path


BASE = "experiment: e\ndataset:\n  name: d\n  synthetic: {users: 100}\n"


def test_valid_config_gets_defaults_and_overrides(tmp_path: Path) -> None:
    loaded = load_config(write(tmp_path, BASE), ["transfer.epochs=5", "transfer.methods=[emcdr]", "pretrain.optimizer.learning_rate=0.1"])
    config = loaded.config
    assert config.transfer.epochs == 5
    assert config.transfer.methods == ["emcdr"]
    assert config.pretrain.optimizer.learning_rate == 0.1
    assert config.dataset.synthetic.users == 100
    assert config.evaluate.ks == [5, 10, 20]
    assert loaded.text == BASE


def test_unknown_key_suggests_the_closest_one(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + "transfer:\n  epoch: 3\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value).startswith(f"{path}: unknown key 'transfer.epoch'. Did you mean 'transfer.epochs'?")


def test_wrong_type_names_file_key_expected_and_received(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + "pretrain:\n  epochs: ten\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value) == f"{path}: pretrain.epochs: expected an integer, received 'ten' (string)"


def test_out_of_range_and_bad_choice(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"dataset.cold_fraction: expected a value <= 1, received 1.5"):
        load_config(write(tmp_path, BASE.replace("synthetic", "cold_fraction: 1.5\n  synthetic")))
    with pytest.raises(ConfigError, match=r"runtime.strategy: expected one of auto, default, mirrored, received 'mirror' \(string\). Did you mean 'mirrored'\?"):
        load_config(write(tmp_path, BASE + "runtime: {strategy: mirror}\n"))
    with pytest.raises(ConfigError, match=r"transfer.methods\[1\]: unknown name 'emcrd'. Did you mean 'emcdr'\?"):
        load_config(write(tmp_path, BASE + "transfer: {methods: [finetune, emcrd]}\n"))


def test_missing_file_missing_key_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Config file not found: .*nope.yaml"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="missing required key 'dataset'"):
        load_config(write(tmp_path, "experiment: e\n"))
    with pytest.raises(ConfigError, match=r"experiment.yaml:2: not valid YAML"):
        load_config(write(tmp_path, "experiment: e\ndataset: x: y\n"))
    with pytest.raises(ConfigError, match="--set expects key.path=value. Received: 'transfer.epochs'"):
        load_config(write(tmp_path, BASE), ["transfer.epochs"])


def test_dataset_needs_synthetic_or_both_domains(tmp_path: Path) -> None:
    path = write(tmp_path, "experiment: e\ndataset:\n  name: d\n  source: {name: books, reader: csv, path: x.csv}\n")
    with pytest.raises(ConfigError, match="expected either 'synthetic' or both 'source' and 'target'. Received: source=set, target=missing"):
        load_config(path)


def test_cli_reports_config_errors_with_exit_code_2_and_no_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + "pretrain:\n  epochs: ten\n")
    result = CliRunner().invoke(app, ["prepare", str(path)])
    assert result.exit_code == 2
    assert "pretrain.epochs: expected an integer, received 'ten' (string)" in result.output
    assert "Traceback" not in result.output


def test_help_and_config_validation_do_not_import_tensorflow(tmp_path: Path) -> None:
    path = write(tmp_path, BASE)
    code = (
        "import sys; from xdt.config import load_config; from xdt.cli import app; "
        f"load_config({str(path)!r}); "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, sorted(m for m in sys.modules if 'tensorflow' in m)[:3]"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    result = subprocess.run([sys.executable, "-m", "xdt", "--help"], capture_output=True, text=True, check=True)
    assert "pretrain-source" in result.stdout


def test_cross_validation_folds_need_the_cold_users_protocol(tmp_path: Path) -> None:
    path = write(tmp_path, BASE.replace("synthetic", "protocol: leave_one_out\n  synthetic"))
    with pytest.raises(ConfigError, match="evaluate.folds: cross-validation folds need protocol cold_users. Received protocol: leave_one_out"):
        load_config(path, ["evaluate.folds=3"])
    assert load_config(write(tmp_path, BASE), ["evaluate.folds=3"]).config.evaluate.folds == 3
