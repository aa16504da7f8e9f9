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
    with pytest.raises(ConfigError, match=r"runtime.strategy: expected one of auto, default, mirrored, multi_worker, tpu, received 'mirror' \(string\). Did you mean 'mirrored'\?"):
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


def invoke_prepare(path: Path, *overrides: str):  # noqa: ANN201
    """`xdt prepare` on a config through the CLI (the config is validated before any data is read)."""
    arguments = ["prepare", str(path)] + [item for override in overrides for item in ("--set", override)]
    return CliRunner().invoke(app, arguments)


def test_a_key_written_twice_names_its_path_and_both_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "experiment: e\nseed: 42\ndataset:\n  name: d\n  synthetic: {users: 100}\nseed: 43\n")
    result = invoke_prepare(path)
    assert result.exit_code == 2
    assert f"{path}:6: duplicate key 'seed': first at line 2, again at line 6." in result.output
    assert "Traceback" not in result.output


def test_duplicate_keys_are_found_at_every_depth(tmp_path: Path) -> None:
    nested = write(tmp_path, BASE + "transfer:\n  epochs: 3\n  optimizer:\n    name: adam\n    learning_rate: 0.1\n    name: sgd\n")
    result = invoke_prepare(nested)
    assert result.exit_code == 2
    assert f"{nested}:10: duplicate key 'transfer.optimizer.name': first at line 8, again at line 10." in result.output
    flow = write(tmp_path, BASE.replace("{users: 100}", "{users: 100, users: 200}"))
    result = invoke_prepare(flow)
    assert result.exit_code == 2
    assert "duplicate key 'dataset.synthetic.users': first at line 4 column 15, again at line 4 column 27." in result.output
    in_list = write(tmp_path, BASE + "seeds: [1, 2]\nextra:\n  - {a: 1, a: 2}\n")
    with pytest.raises(ConfigError, match=r"duplicate key 'extra\[0\]\.a'"):
        load_config(in_list)


def test_merge_keys_may_repeat_a_key_and_values_may_repeat(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + "pretrain: &training {epochs: 2, batch_size: 64}\ntransfer:\n  <<: *training\n  epochs: 4\nseeds: [1, 1]\n")
    config = load_config(path).config
    assert (config.transfer.epochs, config.transfer.batch_size, config.pretrain.epochs) == (4, 64, 2)


def test_a_config_that_is_not_utf8_names_the_file_and_byte_offset(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(BASE.encode() + "# café\n".encode("latin-1"))
    result = invoke_prepare(path)
    assert result.exit_code == 2
    offset = len(BASE.encode()) + len("# caf")
    assert f"{path}: expected UTF-8 text, but byte 0xe9 at offset {offset} (line 5) is not valid UTF-8" in result.output
    assert "Traceback" not in result.output and "UnicodeDecodeError" not in result.output


@pytest.mark.parametrize("key", ["experiment", "dataset.name"])
@pytest.mark.parametrize(
    ("value", "problem"),
    [("..", "refers to a folder, not a name"), ("a/b", "contains a path separator"), ("/tmp/x", "an absolute path"),
     ("a\\b", "contains a path separator"), ("''", "empty"), (".", "refers to a folder, not a name")],
)
def test_names_that_become_a_folder_cannot_escape_it(tmp_path: Path, key: str, value: str, problem: str) -> None:
    path = write(tmp_path, BASE)
    result = invoke_prepare(path, f"{key}={value}")
    assert result.exit_code == 2, result.output
    assert f"{path}: {key}: expected a name usable as a single folder name" in result.output
    assert f"({problem})" in result.output


def test_names_in_the_file_itself_are_checked_too_but_input_paths_may_be_anywhere(tmp_path: Path) -> None:
    escaping = write(tmp_path, BASE.replace("experiment: e", "experiment: ../../elsewhere"))
    result = invoke_prepare(escaping)
    assert result.exit_code == 2
    assert "experiment: expected a name usable as a single folder name" in result.output and "'../../elsewhere'" in result.output
    domains = (
        "experiment: e\ndataset:\n  name: d\n"
        "  source: {name: books, reader: csv, path: /abs/../books.csv}\n  target: {name: movies, reader: csv, path: ../movies.csv}\n"
        "  link_file: ../../links.csv\n"
    )
    config = load_config(write(tmp_path, domains)).config
    assert config.dataset.source.path == "/abs/../books.csv" and config.dataset.link_file == "../../links.csv"


CONFIG_COMMANDS = [["prepare"], ["pretrain-source"], ["transfer", "--from", "runs/none"], ["run"]]


@pytest.mark.parametrize("command", CONFIG_COMMANDS, ids=lambda command: command[0])
def test_config_errors_come_before_tensorflow_is_imported(tmp_path: Path, command: list[str]) -> None:
    path = write(tmp_path, BASE)
    arguments = [command[0], str(path), *command[1:], "--set", "bad.key=1"]
    code = (
        "import sys; from typer.testing import CliRunner; from xdt.cli import app; "
        f"result = CliRunner().invoke(app, {arguments!r}); "
        "print(result.exit_code, 'tensorflow' in sys.modules, 'keras' in sys.modules); print(result.output)"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path)
    first, _, output = completed.stdout.partition("\n")
    assert first == "2 False False", completed.stdout + completed.stderr
    assert f"{path}: unknown key 'bad'." in output


def test_a_set_value_with_a_duplicate_key_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, BASE)
    result = invoke_prepare(path, "transfer.optimizer={name: adam, name: sgd}")
    assert result.exit_code == 2
    assert f"{path}: --set transfer.optimizer:1: duplicate key 'transfer.optimizer.name': first at line 1 column 2, again at line 1 column 14." in result.output
