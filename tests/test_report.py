"""Reports: report.md with readable tables and the PNG plots it links, per run and per experiment."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from xdt.errors import XdtError
from xdt.report import write_experiment_report, write_report
from xdt.runs import RunDirectory, open_run

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def linked_images(report: Path) -> list[Path]:
    """Every image a markdown report links, resolved next to the report."""
    return [report.parent / name for name in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report.read_text())]


def assert_tables_are_aligned(markdown: str) -> None:
    """Every table row has as many cells as its header and the same width (padded columns)."""
    for block in re.findall(r"(?:^\|.*\|\n)+", markdown, flags=re.MULTILINE):
        lines = block.strip("\n").split("\n")
        assert len(lines) >= 3, block  # header, rule, at least one row
        assert len({line.count("|") for line in lines}) == 1, block
        assert len({len(line) for line in lines}) == 1, block


def test_run_report_has_tables_and_plots(experiment: dict[str, RunDirectory]) -> None:
    run = experiment["emcdr"]
    report = write_report(run)
    assert report == run.path / "report.md"
    text = report.read_text()
    for heading in ("## Test metrics @10", "## Test metrics by k", "## By training activity", "## Beyond accuracy", "## Training", "## Plots"):
        assert heading in text
    assert "| cold" in text and "| warm" in text and "coverage" in text and "mapping" in text
    assert_tables_are_aligned(text)
    images = linked_images(report)
    assert {image.name for image in images} == {"ndcg_at_k.png", "metrics_at_k.png", "training.png", "cohorts.png", "activity.png"}
    for image in images:
        assert image.read_bytes()[:8] == PNG_SIGNATURE and image.stat().st_size > 5_000
    buckets = re.findall(r"^\| (\d+)[-+]", text.split("## By training activity")[1].split("##")[0], flags=re.MULTILINE)
    assert [int(bucket) for bucket in buckets] == sorted(int(bucket) for bucket in buckets)


def test_run_report_of_a_run_without_training_curves(experiment: dict[str, RunDirectory]) -> None:
    report = write_report(experiment["popularity"])
    images = {image.name for image in linked_images(report)}
    assert "ndcg_at_k.png" in images
    assert all(image.is_file() for image in linked_images(report))


def test_experiment_report_shows_every_method(experiment: dict[str, RunDirectory], tmp_path: Path) -> None:
    report = write_experiment_report(experiment, tmp_path / "experiment")
    assert report == tmp_path / "experiment" / "report.md"
    text = report.read_text()
    assert "| popularity" in text and "| emcdr" in text
    assert "## Paired against the best method" in text
    assert text.count("**") >= 2  # the best value of each column is bold
    assert_tables_are_aligned(text)
    images = linked_images(report)
    assert {"ndcg_at_k.png", "recall_at_k.png", "cohorts.png", "activity.png", "training.png"} <= {image.name for image in images}
    assert all(image.read_bytes()[:8] == PNG_SIGNATURE for image in images)

    as_file = write_experiment_report(list(experiment.values()), tmp_path / "summary.md")
    assert as_file == tmp_path / "summary.md"
    assert all(image.name.startswith("summary_") and image.is_file() for image in linked_images(as_file))


def test_report_needs_an_evaluated_run(experiment: dict[str, RunDirectory], tmp_path: Path) -> None:
    copy = tmp_path / "unevaluated"
    shutil.copytree(experiment["emcdr"].path, copy)
    (copy / "results.json").unlink()
    with pytest.raises(XdtError, match="evaluate it first"):
        write_report(open_run(copy))
    with pytest.raises(XdtError, match="at least one"):
        write_experiment_report([], tmp_path / "empty")
