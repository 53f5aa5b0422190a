"""Offline evaluation: stream recorded video through the engine and score every inference path.

Frames are fed in time order exactly as the ROS node sees them: every camera of every path is a
`lma_perception.runtime.stream.CameraStream`, which decides from each frame's stamp, frame_id
and size when its memory carries over (frames without stamps, from trees, reset where a new
sequence starts), and times the same stages. The *LMA* path reads and writes each camera's
memory; the *single-frame* path (``--compare-single-frame``) segments the same frames with no
memory at all.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from lma_perception.continuity import FrameKey
from lma_perception.eval.instances import InstanceStats
from lma_perception.eval.metrics import ConfusionMatrix, TemporalConsistency
from lma_perception.eval.report import ReportSample
from lma_perception.labels import CATEGORY_NAMES, CLASS_NAMES, TRAIN_ID_TO_ID
from lma_perception.runtime.latency import LatencyStats
from lma_perception.runtime.stream import STAGES, CameraStream, StreamFrame, segment_frames

if TYPE_CHECKING:
    from lma_perception.runtime.engine import SegmentationEngine

LMA, SINGLE_FRAME = 'lma', 'single_frame'


@dataclass(frozen=True)
class EvalFrame:
    """One camera frame of a recorded sequence, with whatever ground truth the data has.

    `labels` is the ground truth of annotated frames (what the Cityscapes protocol scores),
    `instances` their Cityscapes instance ids where the data has them (for iIoU);
    `dense_labels` the per-frame ground truth that synthetic data has for every frame.
    `degraded` is None when the data does not say. `name` is the Cityscapes-style
    ``<city>_<sequence>_<frame>`` stem that dumped predictions are named after. `key` is the
    frame's stamp, frame_id and size where the data has stamps (bags); without it, a new
    `sequence` is what resets the camera's memory.
    """

    camera: str
    sequence: str
    image: np.ndarray
    labels: np.ndarray | None
    dense_labels: np.ndarray | None
    degraded: bool | None
    city: str
    name: str
    key: FrameKey | None = None
    instances: np.ndarray | None = None

    @property
    def ground_truth(self) -> np.ndarray | None:
        """The densest ground truth the frame has (dense, else annotated, else None)."""
        return self.dense_labels if self.dense_labels is not None else self.labels


def _scores(matrix: ConfusionMatrix, instances: InstanceStats | None = None) -> dict | None:
    """Return the scores of one frame set; iIoU only when every frame has instance ids."""
    if matrix.frames == 0:
        return None
    scores = {
        'frames': matrix.frames,
        'pixels': matrix.total,
        'miou': matrix.miou(),
        'pixel_accuracy': matrix.pixel_accuracy(),
        'iou': matrix.iou().tolist(),
        'category_miou': matrix.category_miou(),
        'category_iou': matrix.category_iou().tolist(),
        'iiou': None, 'iiou_per_class': None,
        'category_iiou': None, 'iiou_per_category': None,
        'present': matrix.present.tolist(),
        'confusion': matrix.counts.tolist(),
    }
    if instances is not None and instances.frames == matrix.frames:
        scores |= {
            'iiou': instances.mean_iiou(matrix),
            'iiou_per_class': instances.iiou(matrix).tolist(),
            'category_iiou': instances.mean_category_iiou(matrix),
            'iiou_per_category': instances.category_iiou(matrix).tolist(),
        }
    return scores


class PathMetrics:
    """Every metric of one inference path, accumulated frame by frame over a whole run."""

    def __init__(self) -> None:
        self.annotated = ConfusionMatrix()
        self.annotated_instances = InstanceStats()
        self.dense = ConfusionMatrix()
        self.clean = ConfusionMatrix()
        self.degraded = ConfusionMatrix()
        self.latency = {stage: LatencyStats() for stage in STAGES}
        self.frames = 0
        self.memory_writes = 0
        self.resets: dict[str, dict[str, int]] = {}  # camera → reason → count
        self._temporal: dict[str, TemporalConsistency] = {}

    def start_sequence(self, camera: str) -> None:
        """Start a new sequence on `camera`: its next frame is compared with nothing."""
        self._temporal.setdefault(camera, TemporalConsistency()).reset()

    def update(self, frame: EvalFrame, labels: np.ndarray, timings_ms: dict[str, float],
               memory_written: bool) -> None:
        """Score one segmented frame."""
        self.frames += 1
        self.memory_writes += int(memory_written)
        for stage in STAGES:
            self.latency[stage].add(timings_ms[stage])
        if frame.labels is not None:
            self.annotated.update(labels, frame.labels)
            if frame.instances is not None:
                self.annotated_instances.update(labels, frame.instances)
        if frame.dense_labels is not None:
            self.dense.update(labels, frame.dense_labels)
        ground_truth = frame.ground_truth
        if ground_truth is None:
            # A frame without ground truth breaks the chain of consecutive frames.
            self.start_sequence(frame.camera)
            return
        self._temporal.setdefault(frame.camera, TemporalConsistency()).update(
            labels, ground_truth
        )
        if frame.degraded is not None:
            (self.degraded if frame.degraded else self.clean).update(labels, ground_truth)

    @property
    def temporal(self) -> TemporalConsistency:
        """Temporal consistency over every camera and sequence."""
        total = TemporalConsistency()
        for tracker in self._temporal.values():
            total = total.merge(tracker)
        return total

    def to_dict(self) -> dict:
        """Return the path's entry of the metrics dict (see `lma_perception.eval.report`)."""
        temporal = self.temporal
        return {
            'frames': self.frames,
            'memory_writes': self.memory_writes,
            'memory_resets': self.resets,
            'annotated': _scores(self.annotated, self.annotated_instances),
            'dense': _scores(self.dense),
            'clean': _scores(self.clean),
            'degraded': _scores(self.degraded),
            'temporal_consistency': None
            if temporal.stable_pixels == 0
            else {
                'flip_rate': temporal.flip_rate(),
                'consistency': temporal.consistency(),
                'stable_pixels': temporal.stable_pixels,
                'flipped_pixels': temporal.flipped_pixels,
            },
            'latency_ms': {stage: stats.summary().as_dict() for stage, stats in
                           self.latency.items()},
            'latency_samples_ms': [round(value, 3) for value in self.latency['total'].values],
        }


@dataclass
class DatasetCounts:
    """What the evaluated data held."""

    path: str
    kind: str
    reading: str = ''  # how a tree's annotated frames are read (snippets, single frames)
    cameras: list[str] = field(default_factory=list)
    sequences: int = 0
    frames: int = 0
    annotated_frames: int = 0
    dense_frames: int = 0
    degraded_frames: int = 0
    _sequence_ids: set[str] = field(default_factory=set, init=False, repr=False)

    def add(self, frame: EvalFrame) -> None:
        """Count one frame."""
        if frame.camera not in self.cameras:
            self.cameras.append(frame.camera)
        if frame.sequence not in self._sequence_ids:
            self._sequence_ids.add(frame.sequence)
            self.sequences += 1
        self.frames += 1
        self.annotated_frames += frame.labels is not None
        self.dense_frames += frame.dense_labels is not None
        self.degraded_frames += bool(frame.degraded)

    def to_dict(self) -> dict:
        """Return the counts as a plain dict."""
        return {key: value for key, value in vars(self).items() if not key.startswith('_')}


@dataclass
class EvaluationResult:
    """Metrics of every evaluated path, what the data held, and frames kept for the report."""

    dataset: DatasetCounts
    engine: dict
    paths: dict[str, PathMetrics]
    samples: list[ReportSample]

    def to_dict(self) -> dict:
        """Return the metrics dict that `metrics.json` holds and `write_report` reads."""
        return {
            'dataset': self.dataset.to_dict(),
            'engine': dict(self.engine),
            'class_names': list(CLASS_NAMES),
            'category_names': list(CATEGORY_NAMES),
            'paths': {name: metrics.to_dict() for name, metrics in self.paths.items()},
        }


class _SamplePicker:
    """Keeps a few frames with ground truth for the overlay strip, degraded ones first.

    Frames segmented with a full memory are preferred (they show what the memory does), and at
    most one frame per sequence and condition is kept so the strip spreads over the data.
    """

    def __init__(self, count: int) -> None:
        self.count = count
        self._kept: dict[tuple[bool, bool], list[ReportSample]] = {}
        self._seen: set[tuple[str, str, bool, bool]] = set()

    def offer(self, frame: EvalFrame, memory_full: bool, predictions: dict[str, np.ndarray]
              ) -> None:
        degraded = bool(frame.degraded)
        key = (frame.camera, frame.sequence, degraded, memory_full)
        kept = self._kept.setdefault((memory_full, degraded), [])
        if frame.ground_truth is None or key in self._seen or len(kept) >= self.count:
            return
        self._seen.add(key)
        kept.append(ReportSample(
            title=f'{frame.camera}\n{frame.name}', image=frame.image,
            ground_truth=frame.ground_truth, predictions=predictions, degraded=frame.degraded,
        ))

    def pick(self) -> list[ReportSample]:
        """Degraded frames first, but the last place goes to a clean frame when there is one."""
        degraded = self._kept.get((True, True), []) + self._kept.get((False, True), [])
        clean = self._kept.get((True, False), []) + self._kept.get((False, False), [])
        if degraded and clean:
            degraded = degraded[: self.count - 1]
        return (degraded + clean)[: self.count]


def write_prediction(directory: str | Path, city: str, name: str, train_ids: np.ndarray) -> Path:
    """Write predicted train ids as a Cityscapes label-id PNG that cityscapesScripts can score.

    The file is ``<directory>/<city>/<name>_pred_labelIds.png``; cityscapesScripts finds it for
    the ground truth ``<name>_gtFine_labelIds.png`` (it matches ``<city>_<seq>_<frame>*.png``).
    Void predictions (255) become label id 0, 'unlabeled', which it ignores.
    """
    folder = Path(directory) / city
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f'{name}_pred_labelIds.png'
    if not cv2.imwrite(str(path), TRAIN_ID_TO_ID[train_ids]):
        raise OSError(f'could not write {path}')
    return path


def evaluate(
    engine: SegmentationEngine,
    frames: Iterable[EvalFrame],
    dataset: DatasetCounts,
    *,
    compare_single_frame: bool = False,
    dump_predictions: str | Path | None = None,
    sample_count: int = 4,
    progress: Callable[[EvalFrame], None] | None = None,
) -> EvaluationResult:
    """Stream `frames` (time order per camera) through `engine` and score each path.

    Predictions of the annotated frames (the frames cityscapesScripts scores) are written under
    ``dump_predictions/<path>/<camera>/`` when it is given (each camera's folder mirrors its
    Cityscapes tree). `progress` is called once per frame.
    """
    paths = {LMA: PathMetrics()}
    if compare_single_frame:
        paths[SINGLE_FRAME] = PathMetrics()
    streams: dict[str, dict[str, CameraStream]] = {name: {} for name in paths}
    current_sequence: dict[str, str] = {}
    picker = _SamplePicker(sample_count)
    warmed_up = False
    for frame in frames:
        if not warmed_up:
            _warm_up(engine, frame.image)
            warmed_up = True
        dataset.add(frame)
        new_sequence = current_sequence.get(frame.camera) != frame.sequence
        current_sequence[frame.camera] = frame.sequence
        memory_full = False
        predictions = {}
        for name, metrics in paths.items():
            stream = streams[name].get(frame.camera)
            if stream is None:
                memory = engine.new_memory() if name == LMA else None
                stream = streams[name][frame.camera] = CameraStream(frame.camera, memory)
            if new_sequence:
                metrics.start_sequence(frame.camera)
            arrived_s = time.monotonic()
            epoch, _ = stream.receive(frame.key, arrived_s, new_sequence=new_sequence)
            streamed = StreamFrame(frame.image, epoch, arrived_s)
            if name == LMA:
                memory = stream.memory_for(streamed)
                memory_full = memory is not None and memory.fill >= memory.length
            (result,) = segment_frames(engine, [(stream, streamed)])
            timings = stream.record_output(streamed, result, time.monotonic())
            metrics.update(frame, result.labels, timings, result.memory_written)
            predictions[name] = result.labels
            if dump_predictions is not None and frame.labels is not None:
                write_prediction(Path(dump_predictions) / name / frame.camera, frame.city,
                                 frame.name, result.labels)
        picker.offer(frame, memory_full, predictions)
        if progress is not None:
            progress(frame)
    for name, metrics in paths.items():
        now_s = time.monotonic()
        metrics.resets = {
            camera: {r: n for r, n in stream.snapshot(now_s).resets.items() if n}
            for camera, stream in streams[name].items()
        }
    return EvaluationResult(
        dataset=dataset,
        engine=engine_description(engine),
        paths=paths,
        samples=picker.pick(),
    )


def _warm_up(engine: SegmentationEngine, image: np.ndarray) -> None:
    """Run the first frame untimed, memory read included, so one-off setup is not latency."""
    scratch = engine.new_memory()
    for _ in range(2):
        engine.segment([image], [scratch])


def engine_description(engine: SegmentationEngine) -> dict:
    """Return the engine settings a report states next to its numbers."""
    config = engine.config
    return {
        'model': 'lma_erfnet' if engine.uses_memory else 'erfnet',
        'device': str(engine.device),
        'backend': engine.backend_name,
        'precision': config.precision,
        'input_size': list(engine.input_size),
        'memory_length': config.memory_length,
        'write_policy': config.write_policy,
        'write_threshold': config.write_threshold,
    }
