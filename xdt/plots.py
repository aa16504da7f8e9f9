"""PNG figures of results: metric@k curves, training curves, cohort bars and activity buckets.

Figures are built as `matplotlib.figure.Figure` with an Agg canvas attached, so no pyplot or
global backend state is touched.
"""

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

_FIGURE_SIZE = (6.4, 4.2)
_DPI = 120


def plot_metric_at_k(
    curves: Mapping[str, Mapping[int, float]], *, metric: str, path: Path, title: str
) -> Path:
    """Write one line per method of `metric` against k; return the PNG path."""
    return _save(_build_metric_at_k_figure(curves, metric=metric, title=title), path)


def plot_training_curves(
    history: Sequence[Mapping[str, float | int | str]], *, path: Path, title: str
) -> Path:
    """Write loss and each valid_* metric against epoch, one series per stage; return the path."""
    return _save(_build_training_curves_figure(history, title=title), path)


def plot_cohort_bars(
    values: Mapping[str, Mapping[str, float]], *, metric: str, path: Path, title: str
) -> Path:
    """Write grouped bars of `metric`: a group per cohort, a bar per method; return the path."""
    return _save(_build_cohort_bars_figure(values, metric=metric, title=title), path)


def plot_activity_buckets(
    values: Mapping[str, Mapping[str, float]], *, metric: str, path: Path, title: str
) -> Path:
    """Write one line per method of `metric` over activity buckets as ordered; return the path."""
    return _save(_build_activity_buckets_figure(values, metric=metric, title=title), path)


def plot_metric_per_window(
    curves: Mapping[str, Mapping[int, float]], *, metric: str, path: Path, title: str
) -> Path:
    """Write one line per arm of `metric` against the feedback window (xdt.replay); return the PNG path."""
    figure = _build_metric_at_k_figure(curves, metric=metric, title=title)
    figure.axes[0].set_xlabel("feedback window")
    return _save(figure, path)


def _build_metric_at_k_figure(
    curves: Mapping[str, Mapping[int, float]], *, metric: str, title: str
) -> Figure:
    """Figure with one line per method: x = k, y = metric value."""
    _check_not_empty(curves, name="curves")
    figure = _new_figure()
    axes = figure.add_subplot()
    for method, values_at_k in curves.items():
        ks = sorted(values_at_k)
        axes.plot(ks, [values_at_k[k] for k in ks], marker="o", label=method)
    axes.set_xlabel("k")
    axes.set_ylabel(metric)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    return figure


def _build_training_curves_figure(
    history: Sequence[Mapping[str, float | int | str]], *, title: str
) -> Figure:
    """Figure with one subplot for loss and one per valid_* metric, one series per stage."""
    if not history:
        raise ValueError(f"Expected at least one history row. Received: history={list(history)}")
    for index, row in enumerate(history):
        if "stage" not in row or "epoch" not in row:
            raise ValueError(
                f"Expected every history row to have 'stage' and 'epoch'. "
                f"Received: history[{index}]={dict(row)}"
            )
    metrics = _ordered_union(
        [key for key in row if key == "loss" or key.startswith("valid_")] for row in history
    )
    if not metrics:
        raise ValueError(
            f"Expected 'loss' or a 'valid_*' key in history. Received keys: {list(history[0])}"
        )
    stages = _ordered_union([[str(row["stage"])] for row in history])

    figure = Figure(figsize=(4.0 * len(metrics), 3.6), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    figure.suptitle(title)
    for position, metric in enumerate(metrics, start=1):
        axes = figure.add_subplot(1, len(metrics), position)
        for stage in stages:
            rows = [row for row in history if str(row["stage"]) == stage and metric in row]
            if rows:
                axes.plot(
                    [int(row["epoch"]) for row in rows],
                    [float(row[metric]) for row in rows],
                    marker="o",
                    label=stage,
                )
        axes.set_xlabel("epoch")
        axes.set_ylabel(metric)
        axes.set_title(metric)
        axes.grid(alpha=0.3)
        axes.legend()
    return figure


def _build_cohort_bars_figure(
    values: Mapping[str, Mapping[str, float]], *, metric: str, title: str
) -> Figure:
    """Figure with grouped bars: one group per cohort, one bar container per method."""
    _check_not_empty(values, name="values")
    cohorts = _ordered_union(list(per_cohort) for per_cohort in values.values())
    figure = _new_figure()
    axes = figure.add_subplot()
    positions = np.arange(len(cohorts))
    width = 0.8 / len(values)
    for index, (method, per_cohort) in enumerate(values.items()):
        # A method without a value for a cohort leaves a gap (NaN height draws nothing).
        heights = [per_cohort.get(cohort, float("nan")) for cohort in cohorts]
        offsets = positions - 0.4 + width * (index + 0.5)
        axes.bar(offsets, heights, width=width, label=method)
    axes.set_xticks(positions, cohorts)
    axes.set_xlabel("cohort")
    axes.set_ylabel(metric)
    axes.set_title(title)
    axes.grid(axis="y", alpha=0.3)
    axes.legend()
    return figure


def _build_activity_buckets_figure(
    values: Mapping[str, Mapping[str, float]], *, metric: str, title: str
) -> Figure:
    """Figure with one line per method over activity buckets in the order first given."""
    _check_not_empty(values, name="values")
    buckets = _ordered_union(list(per_bucket) for per_bucket in values.values())
    figure = _new_figure()
    axes = figure.add_subplot()
    positions = np.arange(len(buckets))
    for method, per_bucket in values.items():
        heights = [per_bucket.get(bucket, float("nan")) for bucket in buckets]
        axes.plot(positions, heights, marker="o", label=method)
    axes.set_xticks(positions, buckets)
    axes.set_xlabel("activity bucket")
    axes.set_ylabel(metric)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    return figure


def _new_figure() -> Figure:
    """A single-size figure with an Agg canvas attached."""
    figure = Figure(figsize=_FIGURE_SIZE, dpi=_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: Path) -> Path:
    """Write `figure` as PNG to `path` (creating parent folders) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path


def _check_not_empty(mapping: Mapping[str, object], *, name: str) -> None:
    """Raise ValueError when there is no method to plot."""
    if not mapping:
        raise ValueError(
            f"Expected at least one method in {name}. Received: {name}={dict(mapping)}"
        )


def _ordered_union(groups: Iterable[Iterable[str]]) -> list[str]:
    """Distinct keys across `groups` in order of first appearance."""
    seen: dict[str, None] = {}
    for group in groups:
        for key in group:
            seen.setdefault(key, None)
    return list(seen)
