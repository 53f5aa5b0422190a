"""The report of a live evaluation: per-camera figures and overall scores, for people and JSON.

Plain data with no ROS graph; `lma_perception.ros.live_eval` fills it in. The scores are those
of offline evaluation (`lma_perception.eval.metrics`, cityscapesScripts' definitions): class
mIoU over the classes with a non-empty union, category mIoU over the 7 categories; live
evaluation has no instance ids, so no iIoU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lma_perception.runtime.latency import LatencySummary


@dataclass
class CameraReport:
    """Figures of one camera."""

    camera: str
    images_published: int
    images_received: int
    labels_received: int
    frames_scored: int
    frames_dropped: int  # published images that never came back as labels
    node_received: int  # images the node's subscription got
    node_dropped: int  # replaced in the node by a newer frame before it was segmented
    # As on /diagnostics: what DDS reported lost before the node's callback, and the frames
    # missing from the publisher's sequence numbers (lost, or replaced in the input queue).
    frames_lost_in_transport: int
    frames_missing_in_sequence: int
    memory_resets: int
    memory_resets_by_reason: dict[str, int]  # the reasons that occurred
    latency_ms: LatencySummary
    miou: float


@dataclass
class LiveEvalReport:
    """The outcome of a live evaluation."""

    bag: str
    cameras: list[CameraReport]
    miou: float
    category_miou: float
    pixel_accuracy: float
    class_iou: dict[str, float]
    latency_ms: LatencySummary
    wall_s: float
    device: str
    interrupted: bool = False  # stopped by a signal: the figures cover what was played so far

    def as_dict(self) -> dict[str, Any]:
        """Return plain data for JSON (NaN written as null)."""
        def clean(value: Any) -> Any:
            if isinstance(value, float) and np.isnan(value):
                return None
            if isinstance(value, LatencySummary):
                return {k: clean(v) for k, v in value.as_dict().items()}
            if isinstance(value, dict):
                return {k: clean(v) for k, v in value.items()}
            if isinstance(value, list):
                return [clean(v) for v in value]
            if isinstance(value, CameraReport):
                return {k: clean(v) for k, v in vars(value).items()}
            return value

        return {k: clean(v) for k, v in vars(self).items()}

    def summary(self) -> str:
        """Return a table of the cameras and the overall scores, for people."""
        lines = [
            f'live evaluation of {self.bag} on {self.device} ({self.wall_s:.1f} s)'
            + (', interrupted: partial report' if self.interrupted else ''),
            f'{"camera":<14}{"published":>10}{"received":>9}{"lost":>6}{"missing":>8}'
            f'{"labels":>8}{"scored":>8}{"dropped":>9}{"resets":>8}{"lat p50":>9}'
            f'{"lat p95":>9}{"mIoU":>8}',
        ]
        for c in self.cameras:
            lines.append(
                f'{c.camera:<14}{c.images_published:>10}{c.node_received:>9}'
                f'{c.frames_lost_in_transport:>6}{c.frames_missing_in_sequence:>8}'
                f'{c.labels_received:>8}{c.frames_scored:>8}{c.frames_dropped:>9}'
                f'{c.memory_resets:>8}{c.latency_ms.p50:>9.1f}{c.latency_ms.p95:>9.1f}'
                f'{100 * c.miou:>8.1f}'
            )
        lines.append(
            'received: by the node; lost: in transport, as DDS reports it; missing: gaps in '
            'the publisher\'s sequence numbers'
        )
        lines.append(
            f'mIoU {100 * self.miou:.1f} %, category mIoU {100 * self.category_miou:.1f} %, '
            f'pixel accuracy {100 * self.pixel_accuracy:.1f} %, '
            f'end-to-end latency p50 {self.latency_ms.p50:.1f} ms, '
            f'p95 {self.latency_ms.p95:.1f} ms, max {self.latency_ms.max:.1f} ms'
        )
        return '\n'.join(lines)
