"""The evaluation report: `metrics.json`, `report.md` and its plots, from one metrics dict.

The metrics dict is what `EvaluationResult.to_dict()` returns (and what `metrics.json` holds):
``dataset``, ``engine``, ``class_names`` and ``paths`` (``'lma'`` and, when compared,
``'single_frame'``), each path with its scored frame sets (``annotated``, ``dense``, ``clean``,
``degraded``: ``miou``, ``pixel_accuracy``, ``iou`` per class, ``category_miou`` and
``category_iou``, ``iiou`` / ``iiou_per_class`` and ``category_iiou`` / ``iiou_per_category``
(None without instance ground truth) and the ``confusion`` counts, or ``None`` when the data has
no such frames), ``temporal_consistency`` and ``latency_ms``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from lma_perception.eval.plots import (
    PATH_TITLES,
    StripRow,
    class_iou_figure,
    confusion_figure,
    latency_figure,
    save_figure,
    strip_figure,
)
from lma_perception.runtime.stream import STAGES

# Frame sets in the order the summary lists them, with the words the tables use.
FRAME_SETS = {
    'annotated': 'mIoU, annotated frames',
    'dense': 'mIoU, all frames (dense GT)',
    'clean': 'mIoU, clean frames',
    'degraded': 'mIoU, degraded frames',
}
# Further scores of the annotated frames, where the data has what they need.
ANNOTATED_SCORES = {
    'category_miou': 'category mIoU, annotated frames',
    'iiou': 'iIoU (classes), annotated frames',
    'category_iiou': 'iIoU (categories), annotated frames',
}
DEFINITION = (
    'mIoU: as cityscapesScripts (evalPixelLevelSemanticLabeling) scores it: one confusion '
    'matrix over all frames of a set, 19 classes, ground truth 255 ignored, a void prediction '
    'a miss; IoU = TP / (TP + FP + FN), the mean over every class whose union is not empty '
    '(a class predicted but absent from the ground truth counts as 0; classes neither present '
    'nor predicted are n/a). Category mIoU: the same over the 7 categories. iIoU: TP and FN '
    'weighted per ground-truth instance by (average instance size of its class) / (its size), '
    'for the 8 classes and 2 categories with instances, where instance ids exist.'
)


@dataclass(frozen=True)
class ReportSample:
    """A frame kept for the overlay strip, with its ground truth and every path's labels."""

    title: str
    image: np.ndarray
    ground_truth: np.ndarray | None
    predictions: Mapping[str, np.ndarray]
    degraded: bool | None = None


def _percent(value: float | None) -> str:
    return 'n/a' if value is None or math.isnan(value) else f'{100.0 * value:.2f}'


def _latency(summary: Mapping) -> str:
    values = [summary[key] for key in ('p50', 'p95', 'max')]
    if any(value is None or math.isnan(value) for value in values):
        return 'n/a'
    return ' / '.join(f'{value:.1f}' for value in values)


def _delta(lma: float | None, single: float | None) -> str:
    if lma is None or single is None or math.isnan(lma) or math.isnan(single):
        return ''
    return f'{100.0 * (lma - single):+.2f}'


def describe_dataset(dataset: Mapping) -> str:
    """One line on what was evaluated: path, kind, cameras, sequences and frame counts."""
    sequences = dataset['sequences']
    reading = dataset.get('reading')
    return (
        f"{dataset['path']} ({dataset['kind']}; cameras {', '.join(dataset['cameras'])}): "
        f"{sequences} sequence{'' if sequences == 1 else 's'}, {dataset['frames']} frames, "
        f"{dataset['annotated_frames']} annotated, {dataset['dense_frames']} with dense "
        f"ground truth, {dataset['degraded_frames']} degraded" + (f'\n{reading}' if reading
                                                                  else '')
    )


def summary_rows(metrics: Mapping) -> list[tuple[str, ...]]:
    """Rows of the summary table: a header, then one row per metric and one column per path."""
    paths = list(metrics['paths'])
    compare = paths == ['lma', 'single_frame']
    header = ('metric', *(PATH_TITLES.get(path, path) for path in paths))
    rows = [(*header, 'Δ') if compare else header]

    def add(name: str, values: list[float | None], fmt=_percent, delta: bool = True) -> None:
        row = (name, *(fmt(value) for value in values))
        rows.append((*row, _delta(*values) if delta else '') if compare else row)

    for key, name in FRAME_SETS.items():
        scored = [metrics['paths'][path][key] for path in paths]
        if any(scored):
            frames = max(entry['frames'] for entry in scored if entry)
            add(f'{name} ({frames})', [entry and entry['miou'] for entry in scored])
    annotated = [metrics['paths'][path]['annotated'] for path in paths]
    for key, name in ANNOTATED_SCORES.items():
        values = [entry and entry.get(key) for entry in annotated]
        if any(value is not None for value in values):
            add(name, values)
    if any(annotated):
        add('pixel accuracy, annotated frames', [e and e['pixel_accuracy'] for e in annotated])
    temporal = [metrics['paths'][path]['temporal_consistency'] for path in paths]
    if any(temporal):
        add('label flips where GT is static (%)', [t and t['flip_rate'] for t in temporal])
    if 'lma' in paths:
        entry = metrics['paths']['lma']
        add('memory writes', [f"{entry['memory_writes']} of {entry['frames']}" if path == 'lma'
                              else None for path in paths], fmt=lambda text: text or '',
            delta=False)
    for stage in STAGES:
        latency = [metrics['paths'][path]['latency_ms'][stage] for path in paths]
        add(
            f'{stage} latency p50 / p95 / max (ms)',
            latency,
            fmt=_latency,
            delta=False,
        )
    return rows


def format_table(rows: Sequence[Sequence[str]], markdown: bool = False) -> str:
    """Render rows (the first is the header) as aligned text or as a markdown table."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]

    def line(row: Sequence[str]) -> str:
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        return f"| {' | '.join(cells)} |" if markdown else '  '.join(cells).rstrip()

    rule = (
        f"|{'|'.join('-' * (w + 1) + (':' if i else '-') for i, w in enumerate(widths))}|"
        if markdown
        else '  '.join('-' * w for w in widths)
    )
    return '\n'.join([line(rows[0]), rule, *(line(row) for row in rows[1:])])


def _class_rows(metrics: Mapping, key: str, names: str = 'class_names', scores: str = 'iou',
                what: str = 'class') -> list[tuple[str, ...]]:
    """Per class (or category) IoU of frame set `key`, one column per path; n/a: not counted."""
    paths = [path for path in metrics['paths'] if metrics['paths'][path][key]]
    compare = paths == ['lma', 'single_frame']
    header = (what, *(PATH_TITLES.get(path, path) for path in paths))
    rows = [(*header, 'Δ') if compare else header]
    for index, name in enumerate(metrics[names]):
        values = [metrics['paths'][path][key][scores][index] for path in paths]
        row = (name, *(_percent(value) for value in values))
        rows.append((*row, _delta(*values)) if compare else row)
    return rows


def _strip_rows(samples: Sequence[ReportSample], paths: Sequence[str]) -> list[StripRow]:
    from lma_perception.runtime.visualize import overlay

    # Degraded frames first: they show what the memory is for.
    ordered = sorted(samples, key=lambda sample: not sample.degraded)
    return [
        StripRow(
            title=sample.title + ('\n(degraded)' if sample.degraded else ''),
            image=sample.image,
            ground_truth=None
            if sample.ground_truth is None
            else overlay(sample.image, sample.ground_truth),
            predictions={path: overlay(sample.image, sample.predictions[path]) for path in paths},
        )
        for sample in ordered
    ]


def _json_ready(value):
    """Replace NaN by None (JSON has no NaN) and numpy scalars/arrays by plain Python."""
    if isinstance(value, Mapping):
        return {key: _json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_json_ready(item) for item in value]
    if isinstance(value, float | np.floating):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def write_report(
    metrics: Mapping, directory: str | Path, samples: Sequence[ReportSample] = ()
) -> list[Path]:
    """Write metrics.json, the plots and report.md into `directory`; return the files written."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    metrics = _json_ready(metrics)
    paths = list(metrics['paths'])
    written = [directory / 'metrics.json']
    written[0].write_text(json.dumps(metrics, indent=2) + '\n')

    plots: dict[str, tuple[str, Figure]] = {}
    scored = [key for key in FRAME_SETS if metrics['paths']['lma'][key]]
    if scored:
        main_set = scored[0]
        plots['class_iou.png'] = (
            f'Per-class IoU ({main_set} frames)',
            class_iou_figure(
                metrics['class_names'],
                {
                    path: [math.nan if v is None else v for v in entry[main_set]['iou']]
                    for path, entry in metrics['paths'].items()
                    if entry[main_set]
                },
            ),
        )
        for path in paths:
            plots[f'confusion_{path}.png'] = (
                f'Confusion matrix, {PATH_TITLES.get(path, path)} ({main_set} frames)',
                confusion_figure(
                    metrics['paths'][path][main_set]['confusion'],
                    metrics['class_names'],
                    f'{PATH_TITLES.get(path, path)}, {main_set} frames',
                ),
            )
    plots['latency.png'] = (
        'Latency per frame',
        latency_figure({path: metrics['paths'][path]['latency_samples_ms'] for path in paths}),
    )
    if samples:
        plots['overlays.png'] = (
            'Frame, ground truth and predictions',
            strip_figure(_strip_rows(samples, paths), paths),
        )
    for name, (_, figure) in plots.items():
        save_figure(figure, directory / name)
        written.append(directory / name)

    written.append(directory / 'report.md')
    written[-1].write_text(_markdown(metrics, {name: title for name, (title, _) in plots.items()}))
    return written


def _markdown(metrics: Mapping, plots: Mapping[str, str]) -> str:
    dataset, engine = metrics['dataset'], metrics['engine']
    lines = [
        '# Evaluation report',
        '',
        f'Data: {describe_dataset(dataset)}.',
        '',
        'Engine: ' + ', '.join(f'{key} `{value}`' for key, value in engine.items()) + '.',
        '',
        '## Summary',
        '',
        format_table(summary_rows(metrics), markdown=True),
        '',
        f'{DEFINITION} Label flips: fraction of pixels whose predicted class changes between '
        'consecutive frames while the ground truth stays the same. Latency: per frame and '
        'stage, batch of one, on the device above.',
    ]
    for key in FRAME_SETS:
        if metrics['paths']['lma'][key]:
            lines += ['', f'## Per-class IoU ({key} frames)', '',
                      format_table(_class_rows(metrics, key), markdown=True),
                      '', f'## Per-category IoU ({key} frames)', '',
                      format_table(_class_rows(metrics, key, 'category_names', 'category_iou',
                                               'category'), markdown=True)]
            break
    lines += ['', '## Plots', '']
    lines += [f'### {title}\n\n![{title}]({name})\n' for name, title in plots.items()]
    return '\n'.join(lines).rstrip() + '\n'
