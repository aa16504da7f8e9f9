"""Tests for the PNG figures: files are written and figures hold one series per input."""

from pathlib import Path

import pytest
from matplotlib.container import BarContainer

from xdt.plots import (
    _build_activity_buckets_figure,
    _build_cohort_bars_figure,
    _build_metric_at_k_figure,
    _build_training_curves_figure,
    plot_activity_buckets,
    plot_cohort_bars,
    plot_metric_at_k,
    plot_training_curves,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CURVES = {
    "source-only": {5: 0.10, 10: 0.14, 20: 0.18},
    "transfer": {20: 0.22, 5: 0.12, 10: 0.17},
}
HISTORY = [
    {"stage": "pretrain", "epoch": 1, "loss": 0.70, "valid_ndcg@10": 0.10},
    {"stage": "pretrain", "epoch": 2, "loss": 0.60, "valid_ndcg@10": 0.12},
    {"stage": "finetune", "epoch": 1, "loss": 0.50, "valid_ndcg@10": 0.15, "valid_recall@10": 0.2},
    {"stage": "finetune", "epoch": 2, "loss": 0.45, "valid_ndcg@10": 0.16, "valid_recall@10": 0.3},
]
COHORT_VALUES = {
    "source-only": {"cold": 0.05, "warm": 0.20},
    "transfer": {"cold": 0.09, "warm": 0.21},
    "popularity": {"cold": 0.03, "warm": 0.08},
}
BUCKET_VALUES = {
    "source-only": {"1-2": 0.05, "3-5": 0.10, "6-10": 0.15, "11+": 0.18},
    "transfer": {"1-2": 0.08, "3-5": 0.12, "6-10": 0.16, "11+": 0.19},
}


def _assert_png(path: Path) -> None:
    assert path.is_file()
    assert path.read_bytes()[:8] == PNG_SIGNATURE


def test_every_plot_writes_a_png(tmp_path: Path) -> None:
    paths = [
        plot_metric_at_k(CURVES, metric="ndcg", path=tmp_path / "a" / "k.png", title="NDCG@k"),
        plot_training_curves(HISTORY, path=tmp_path / "training.png", title="Training"),
        plot_cohort_bars(COHORT_VALUES, metric="ndcg@10", path=tmp_path / "c.png", title="Cohorts"),
        plot_activity_buckets(BUCKET_VALUES, metric="ndcg@10", path=tmp_path / "b.png", title="B"),
    ]
    assert paths == [
        tmp_path / "a" / "k.png",
        tmp_path / "training.png",
        tmp_path / "c.png",
        tmp_path / "b.png",
    ]
    for path in paths:
        _assert_png(path)


def test_metric_at_k_figure() -> None:
    figure = _build_metric_at_k_figure(CURVES, metric="ndcg", title="NDCG@k")
    (axes,) = figure.axes
    assert axes.get_xlabel() == "k"
    assert axes.get_ylabel() == "ndcg"
    assert axes.get_title() == "NDCG@k"
    assert [line.get_label() for line in axes.get_lines()] == ["source-only", "transfer"]
    # Points are sorted by k whatever the input order.
    transfer = axes.get_lines()[1]
    assert list(transfer.get_xdata()) == [5, 10, 20]
    assert list(transfer.get_ydata()) == [0.12, 0.17, 0.22]


def test_training_curves_figure() -> None:
    figure = _build_training_curves_figure(HISTORY, title="Training")
    assert figure.get_suptitle() == "Training"
    assert [axes.get_ylabel() for axes in figure.axes] == [
        "loss", "valid_ndcg@10", "valid_recall@10"
    ]
    assert all(axes.get_xlabel() == "epoch" for axes in figure.axes)
    loss_axes, ndcg_axes, recall_axes = figure.axes
    assert [line.get_label() for line in loss_axes.get_lines()] == ["pretrain", "finetune"]
    assert [line.get_label() for line in ndcg_axes.get_lines()] == ["pretrain", "finetune"]
    # Only the finetune stage reports recall.
    assert [line.get_label() for line in recall_axes.get_lines()] == ["finetune"]
    assert list(loss_axes.get_lines()[0].get_ydata()) == [0.70, 0.60]


def test_cohort_bars_figure() -> None:
    figure = _build_cohort_bars_figure(COHORT_VALUES, metric="ndcg@10", title="Cohorts")
    (axes,) = figure.axes
    assert axes.get_ylabel() == "ndcg@10"
    assert axes.get_title() == "Cohorts"
    containers = [c for c in axes.containers if isinstance(c, BarContainer)]
    assert [c.get_label() for c in containers] == ["source-only", "transfer", "popularity"]
    assert all(len(container) == 2 for container in containers)
    assert [patch.get_height() for patch in containers[1]] == [0.09, 0.21]
    assert [label.get_text() for label in axes.get_xticklabels()] == ["cold", "warm"]


def test_activity_buckets_figure_keeps_bucket_order() -> None:
    figure = _build_activity_buckets_figure(BUCKET_VALUES, metric="recall@10", title="Buckets")
    (axes,) = figure.axes
    assert axes.get_ylabel() == "recall@10"
    assert axes.get_title() == "Buckets"
    assert [line.get_label() for line in axes.get_lines()] == ["source-only", "transfer"]
    assert [label.get_text() for label in axes.get_xticklabels()] == ["1-2", "3-5", "6-10", "11+"]
    assert list(axes.get_lines()[1].get_ydata()) == [0.08, 0.12, 0.16, 0.19]


def test_plots_reject_empty_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="Expected at least one method in curves"):
        plot_metric_at_k({}, metric="ndcg", path=tmp_path / "x.png", title="t")
    with pytest.raises(ValueError, match="Expected every history row to have 'stage' and 'epoch'"):
        plot_training_curves([{"loss": 1.0}], path=tmp_path / "x.png", title="t")
    assert not (tmp_path / "x.png").exists()
