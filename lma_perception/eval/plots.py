"""Figures of an evaluation report, drawn off-screen with matplotlib's Agg canvas.

Each function returns a `Figure` bound to an Agg canvas (no pyplot, no global backend state), so
they work in headless runs and inside other programs alike; `save_figure` writes one to disk.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter, ScalarFormatter

# Stable colours per inference path, so every plot of a report reads the same way.
PATH_COLOURS = {'single_frame': '#8c8c8c', 'lma': '#1f77b4'}
PATH_TITLES = {'single_frame': 'single frame', 'lma': 'LMA'}


@dataclass(frozen=True)
class StripRow:
    """One frame of the overlay strip, as RGB pictures: frame, ground truth, one per path."""

    title: str
    image: np.ndarray
    ground_truth: np.ndarray | None
    predictions: Mapping[str, np.ndarray]


def _new_figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), layout='constrained')
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Figure, path: Path) -> None:
    """Write a figure as PNG."""
    figure.savefig(path, dpi=100)


def class_iou_figure(class_names: Sequence[str], iou: Mapping[str, Sequence[float]]) -> Figure:
    """Horizontal bars of per-class IoU, one bar per inference path; NaN classes are empty."""
    figure = _new_figure(7.0, 0.35 * len(class_names) + 1.2)
    axes = figure.add_subplot()
    positions = np.arange(len(class_names))
    height = 0.8 / max(len(iou), 1)
    for index, (path, values) in enumerate(iou.items()):
        scores = np.asarray(values, dtype=np.float64) * 100.0
        axes.barh(
            positions + (index - (len(iou) - 1) / 2) * height,
            np.nan_to_num(scores, nan=0.0),
            height=height,
            color=PATH_COLOURS.get(path),
            label=PATH_TITLES.get(path, path),
        )
    axes.set_yticks(positions, labels=class_names)
    axes.invert_yaxis()
    axes.set_xlim(0, 100)
    axes.set_xlabel('IoU (%)')
    axes.grid(axis='x', alpha=0.3)
    axes.legend(loc='lower right')
    return figure


def confusion_figure(counts: np.ndarray, class_names: Sequence[str], title: str) -> Figure:
    """Row-normalised confusion matrix (ground truth rows, predicted columns, last = void)."""
    counts = np.asarray(counts, dtype=np.float64)
    rows = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid='ignore', divide='ignore'):
        normalised = np.where(rows > 0, counts / rows, np.nan)
    figure = _new_figure(9.0, 8.0)
    axes = figure.add_subplot()
    image = axes.imshow(normalised, vmin=0.0, vmax=1.0, cmap='viridis')
    axes.set_xticks(np.arange(counts.shape[1]), labels=[*class_names, 'void'], rotation=90)
    axes.set_yticks(np.arange(counts.shape[0]), labels=class_names)
    axes.set_xlabel('predicted')
    axes.set_ylabel('ground truth')
    axes.set_title(title)
    figure.colorbar(image, ax=axes, shrink=0.8, label='fraction of the ground-truth class')
    return figure


def latency_figure(samples_ms: Mapping[str, Sequence[float]]) -> Figure:
    """Histogram of per-frame latency (preprocess + model + postprocess) for each path.

    Latencies spanning more than a factor of 10 (stalls of a busy machine, say) get logarithmic
    bins and axis, so the typical frame stays readable next to the outliers.
    """
    figure = _new_figure(7.0, 4.0)
    axes = figure.add_subplot()
    everything = np.concatenate([np.asarray(v, dtype=np.float64) for v in samples_ms.values()])
    everything = everything[everything > 0]
    bins: int | np.ndarray = 40
    if everything.size and everything.max() > 10 * everything.min():
        bins = np.geomspace(everything.min(), everything.max(), 41)
        axes.set_xscale('log')
        axes.xaxis.set_major_formatter(ScalarFormatter())
        axes.xaxis.set_minor_formatter(NullFormatter())
    elif everything.size:
        bins = np.histogram_bin_edges(everything, bins=40)
    for path, values in samples_ms.items():
        axes.hist(
            values, bins=bins, alpha=0.6, color=PATH_COLOURS.get(path),
            label=PATH_TITLES.get(path, path),
        )
    axes.set_xlabel('latency per frame (ms)')
    axes.set_ylabel('frames')
    axes.legend()
    return figure


def strip_figure(rows: Sequence[StripRow], paths: Sequence[str]) -> Figure:
    """Grid of images: one row per frame; columns frame, ground truth, then each path."""
    titles = ['frame', 'ground truth', *(PATH_TITLES.get(path, path) for path in paths)]
    height, width = rows[0].image.shape[:2]
    cell = 3.0
    figure = _new_figure(cell * len(titles), cell * height / width * len(rows) + 0.4)
    grid = figure.subplots(len(rows), len(titles), squeeze=False)
    for row, axes_row in zip(rows, grid, strict=True):
        cells = [row.image, row.ground_truth, *(row.predictions[path] for path in paths)]
        for column, (axes, picture) in enumerate(zip(axes_row, cells, strict=True)):
            if picture is not None:
                axes.imshow(picture)
            axes.set_xticks([])
            axes.set_yticks([])
            if row is rows[0]:
                axes.set_title(titles[column])
        axes_row[0].set_ylabel(row.title, fontsize=7)
    return figure
