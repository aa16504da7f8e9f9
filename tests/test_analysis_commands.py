"""CLI: `xdt compare`, `xdt export`, `xdt report`, `xdt runs compare` via typer.testing.CliRunner."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from xdt.commands.analysis import register
from xdt.runs import RunDirectory


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    """A fresh app with the analysis commands registered (as xdt.cli does with its own app)."""
    application = typer.Typer(pretty_exceptions_enable=False)
    runs_app = typer.Typer()
    application.add_typer(runs_app, name="runs")
    register(application, runs_app)
    return application


def invoke(app: typer.Typer, *arguments: str):  # noqa: ANN201
    """Run the app with string arguments."""
    return CliRunner().invoke(app, [str(argument) for argument in arguments])


def test_compare_prints_markdown_and_json(app: typer.Typer, experiment: dict[str, RunDirectory]) -> None:
    result = invoke(app, "compare", experiment["emcdr"].path, experiment["popularity"].path)
    assert result.exit_code == 0, result.output
    assert "# emcdr (A) vs popularity (B)" in result.output and "## ndcg@10" in result.output and "Wilcoxon p" in result.output
    result = invoke(app, "compare", experiment["emcdr"].path, experiment["popularity"].path, "--metrics", "mrr,hr@5", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["metrics"] == ["mrr", "hr@5"]
    assert {row["metric"] for row in payload["comparisons"]} == {"mrr", "hr@5"}


def test_user_errors_exit_2_with_one_message(app: typer.Typer, experiment: dict[str, RunDirectory], tmp_path: Path) -> None:
    result = invoke(app, "compare", experiment["emcdr"].path, tmp_path)
    assert result.exit_code == 2
    assert "Not a run directory" in result.output and "Traceback" not in result.output
    result = invoke(app, "compare", experiment["emcdr"].path, experiment["popularity"].path, "--metrics", "nope@3")
    assert result.exit_code == 2 and "Unknown metric 'nope@3'" in result.output
    result = invoke(app, "report", tmp_path)
    assert result.exit_code == 2 and "Not a run directory" in result.output
    result = invoke(app, "export", experiment["emcdr"].info()["parent"])
    assert result.exit_code == 2 and "expects a transfer run" in result.output
    result = invoke(app, "runs", "compare", "--runs-dir", tmp_path)
    assert result.exit_code == 2 and "No evaluated transfer runs" in result.output


def test_report_and_export_write_into_the_run(app: typer.Typer, experiment: dict[str, RunDirectory], tmp_path: Path) -> None:
    run = experiment["emcdr"]
    result = invoke(app, "report", run.path)
    assert result.exit_code == 0, result.output
    assert (run.path / "report.md").is_file() and "report:" in result.output
    result = invoke(app, "export", run.path, "--output", tmp_path / "served")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "served" / "saved_model.pb").is_file() and "recommend" in result.output


def test_runs_compare_in_every_format(app: typer.Typer, experiment: dict[str, RunDirectory]) -> None:
    runs_dir = experiment["emcdr"].path.parent.parent
    result = invoke(app, "runs", "compare", "--runs-dir", runs_dir, "--experiment", "quickstart")
    assert result.exit_code == 0, result.output
    assert "| dataset" in result.output and "| emcdr" in result.output.replace("synthetic-quickstart | ", "")
    result = invoke(app, "runs", "compare", "--runs-dir", runs_dir, "--format", "json", "--group-by", "method", "--metrics", "ndcg@5")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["columns"][0] == "ndcg@5" and {row["method"] for row in payload["rows"]} == {"emcdr", "popularity"}
    result = invoke(app, "runs", "compare", "--runs-dir", runs_dir, "--format", "csv")
    assert result.exit_code == 0 and result.output.startswith("dataset,method,runs,seeds,ndcg@10 mean")
    result = invoke(app, "runs", "compare", "--runs-dir", runs_dir, "--format", "xml")
    assert result.exit_code == 2 and "Expected --format markdown, csv or json" in result.output


def test_analysis_modules_do_not_import_tensorflow() -> None:
    probe = (
        "import sys, xdt.commands.analysis, xdt.comparison, xdt.report; "
        "print(sorted(name for name in sys.modules if name.split('.')[0] in ('tensorflow', 'keras')))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_the_real_app_has_the_analysis_commands() -> None:
    from xdt import cli

    result = CliRunner().invoke(cli.app, ["--help"])
    for command in ("compare", "export", "report"):
        assert command in result.output
    assert "compare" in CliRunner().invoke(cli.app, ["runs", "--help"]).output
