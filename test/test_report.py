import json

import cv2
import numpy as np
import pytest

from lma_perception.eval.evaluator import (
    LMA,
    SINGLE_FRAME,
    DatasetCounts,
    EvalFrame,
    EvaluationResult,
    PathMetrics,
)
from lma_perception.eval.report import ReportSample, format_table, summary_rows, write_report

TIMINGS = {'preprocess': 1.0, 'model': 10.0, 'postprocess': 2.0, 'total': 13.0}


def _frame(index: int, gt: np.ndarray, degraded: bool) -> EvalFrame:
    image = np.full((*gt.shape, 3), 40 * index, np.uint8)
    return EvalFrame(
        camera='front', sequence='s0', image=image, labels=gt if index == 1 else None,
        dense_labels=gt, degraded=degraded, city='synth', name=f'synth_000000_{index:06d}',
    )


@pytest.fixture
def result() -> EvaluationResult:
    """Two frames scored by hand-made predictions: LMA is right where single frame is not."""
    gt = np.array([[0, 0, 1, 1], [2, 2, 255, 1]], dtype=np.uint8)
    frames = [_frame(0, gt, degraded=False), _frame(1, gt, degraded=True)]
    wrong = gt.copy()
    wrong[0, 0] = 1
    predictions = {
        LMA: [gt, gt],
        SINGLE_FRAME: [gt, wrong],  # flips one static pixel between the frames
    }
    dataset = DatasetCounts(path='tree', kind='cityscapes tree')
    paths = {LMA: PathMetrics(), SINGLE_FRAME: PathMetrics()}
    for name, metrics in paths.items():
        metrics.start_sequence('front')
        for frame, labels in zip(frames, predictions[name], strict=True):
            metrics.update(frame, labels, TIMINGS, memory_written=name == LMA)
    for frame in frames:
        dataset.add(frame)
    samples = [
        ReportSample(f.name, f.image, f.dense_labels,
                     {name: predictions[name][i] for name in paths}, f.degraded)
        for i, f in enumerate(frames)
    ]
    engine = {'device': 'cpu', 'input_size': [8, 8], 'memory_length': 4}
    return EvaluationResult(dataset, engine, paths, samples)


def test_metrics_dict_holds_hand_computed_scores(result):
    metrics = result.to_dict()
    lma, single = metrics['paths'][LMA], metrics['paths'][SINGLE_FRAME]
    assert lma['annotated']['frames'] == 1 and lma['dense']['frames'] == 2
    assert lma['annotated']['miou'] == 1.0
    # Single frame, annotated frame: class 0 IoU 1/2, class 1 IoU 3/4, class 2 IoU 1.
    assert single['annotated']['miou'] == pytest.approx((1 / 2 + 3 / 4 + 1) / 3)
    assert single['clean']['miou'] == 1.0
    assert single['degraded']['miou'] == single['annotated']['miou']
    assert lma['temporal_consistency']['flip_rate'] == 0.0
    assert single['temporal_consistency']['flip_rate'] == pytest.approx(1 / 7)
    assert lma['memory_writes'] == 2 and single['memory_writes'] == 0
    assert lma['latency_ms']['total'] == {
        'count': 2, 'p50': 13.0, 'p95': 13.0, 'max': 13.0, 'mean': 13.0
    }
    assert metrics['dataset']['degraded_frames'] == 1


def test_summary_table_compares_paths(result):
    rows = summary_rows(result.to_dict())
    assert rows[0] == ('metric', 'LMA', 'single frame', 'Δ')
    by_name = {row[0]: row[1:] for row in rows}
    assert by_name['mIoU, annotated frames (1)'] == ('100.00', '75.00', '+25.00')
    assert by_name['label flips where GT is static (%)'] == ('0.00', '14.29', '-14.29')
    assert by_name['total latency p50 / p95 / max (ms)'] == ('13.0 / 13.0 / 13.0',) * 2 + ('',)
    text = format_table(rows)
    assert text.splitlines()[0].split() == ['metric', 'LMA', 'single', 'frame', 'Δ']
    markdown = format_table(rows, markdown=True).splitlines()
    assert markdown[1].startswith('|---') and all(line.startswith('| ') for line in markdown[2:])


def test_write_report_files(result, tmp_path):
    written = write_report(result.to_dict(), tmp_path / 'report', result.samples)
    names = {path.name for path in written}
    assert names == {
        'metrics.json', 'report.md', 'class_iou.png', 'confusion_lma.png',
        'confusion_single_frame.png', 'latency.png', 'overlays.png',
    }
    for path in written:
        assert path.is_file() and path.stat().st_size > 0
        if path.suffix == '.png':
            assert cv2.imread(str(path)) is not None
    metrics = json.loads((tmp_path / 'report' / 'metrics.json').read_text())
    # Classes neither present nor predicted have no IoU: JSON null, not NaN.
    assert metrics['paths'][LMA]['annotated']['iou'][5] is None
    assert metrics['paths'][SINGLE_FRAME]['annotated']['miou'] == pytest.approx(0.75)
    report = (tmp_path / 'report' / 'report.md').read_text()
    assert '| mIoU, annotated frames (1)' in report
    assert '![Frame, ground truth and predictions](overlays.png)' in report
    assert '| road ' in report


def test_report_without_single_frame_or_ground_truth(tmp_path):
    metrics = PathMetrics()
    image = np.zeros((4, 4, 3), np.uint8)
    frame = EvalFrame('cam', 's', image, None, None, None, 'bag', 'cam_000000_000000')
    metrics.update(frame, np.zeros((4, 4), np.uint8), TIMINGS, memory_written=True)
    result = EvaluationResult(DatasetCounts('bag', 'rosbag2'), {'device': 'cpu'},
                              {LMA: metrics}, [])
    written = write_report(result.to_dict(), tmp_path)
    assert {path.name for path in written} == {'metrics.json', 'report.md', 'latency.png'}
    rows = summary_rows(result.to_dict())
    assert rows[0] == ('metric', 'LMA')
    assert not any(row[0].startswith('mIoU') for row in rows)
