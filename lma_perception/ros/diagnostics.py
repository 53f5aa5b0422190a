"""One `diagnostic_msgs/DiagnosticStatus` per camera, built from a `StreamSnapshot`.

diagnostic_updater is not available as a Python wheel, so the node publishes the
`DiagnosticArray` itself; the fields follow its conventions (`name` = "<node>: <camera>",
`hardware_id` = camera). The keys `frame_rate_node`, `current_delay_from_realtime_ms` and
`total_dropped_frames` carry the meaning they have in greenwave_monitor / NITROS diagnostics, so
tools reading those keep working.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

from lma_perception.continuity import RESET_REASONS
from lma_perception.runtime.stream import LOSS_WINDOW_S, STAGES, StreamSnapshot

STATUS_PREFIX = 'lma_perception'


@dataclass(frozen=True)
class HealthLimits:
    """When a camera's status turns WARN or ERROR."""

    no_input_timeout_s: float
    latency_budget_ms: float
    loss_warn_fraction: float = 0.01  # WARN above this share of frames lost recently


def camera_status(
    snapshot: StreamSnapshot, now_ns: int, device: str, limits: HealthLimits
) -> DiagnosticStatus:
    """Return the status of one camera at ROS time `now_ns` (sim time when `use_sim_time`)."""
    level, message = _health(snapshot, limits)
    return DiagnosticStatus(
        level=level,
        name=f'{STATUS_PREFIX}: {snapshot.name}',
        message=message,
        hardware_id=snapshot.name,
        values=[KeyValue(key=key, value=value) for key, value in _values(
            snapshot, now_ns, device
        )],
    )


def _health(snapshot: StreamSnapshot, limits: HealthLimits) -> tuple[bytes, str]:
    errors, warnings = [], []
    if snapshot.error is not None:
        errors.append(snapshot.error)
    if snapshot.seconds_since_input > limits.no_input_timeout_s:
        # Losses reported means frames are coming: it is the transport that fails them.
        if snapshot.seconds_since_loss <= limits.no_input_timeout_s:
            errors.append(
                f'every frame lost in transport for {snapshot.seconds_since_input:.1f} s on '
                f'{snapshot.source}'
            )
        else:
            errors.append(
                f'no input for {snapshot.seconds_since_input:.1f} s on {snapshot.source}'
            )
    if snapshot.warning is not None:
        warnings.append(snapshot.warning)
    if snapshot.recent_lost > limits.loss_warn_fraction * snapshot.recent_frames:
        warnings.append(
            f'{snapshot.recent_lost} of {snapshot.recent_frames} frames lost before reaching '
            f'the node in the last {LOSS_WINDOW_S:.0f} s'
        )
    total_p95 = snapshot.latency['total'].p95
    if total_p95 > limits.latency_budget_ms:  # False for NaN: no frame yet
        warnings.append(
            f'latency p95 {total_p95:.1f} ms over budget {limits.latency_budget_ms:.1f} ms'
        )
    if errors:
        return DiagnosticStatus.ERROR, '; '.join(errors + warnings)
    if warnings:
        return DiagnosticStatus.WARN, '; '.join(warnings)
    return DiagnosticStatus.OK, 'ok'


def _values(snapshot: StreamSnapshot, now_ns: int, device: str) -> list[tuple[str, str]]:
    age_ms = math.nan
    if snapshot.last_stamp_ns is not None and now_ns > 0:  # sim time 0: no /clock yet
        age_ms = (now_ns - snapshot.last_stamp_ns) / 1e6
    size = snapshot.last_size
    values = [
        ('input_topic', snapshot.source),
        ('encoding', snapshot.last_encoding),
        ('resolution', f'{size[0]}x{size[1]}' if size else ''),
        ('frame_rate_node', _number(snapshot.input_hz)),
        ('frame_rate_output', _number(snapshot.output_hz)),
        ('current_delay_from_realtime_ms', _number(age_ms)),
        ('frames_received', str(snapshot.received)),
        ('frames_published', str(snapshot.published)),
        ('total_dropped_frames', str(snapshot.dropped)),
        ('bad_frames', str(snapshot.bad_frames)),
        ('frames_lost_in_transport', str(snapshot.lost_in_transport)),
        ('frames_missing_in_sequence', str(snapshot.missed_in_sequence)),
        ('outputs_published', ','.join(snapshot.outputs)),
    ]
    for stage in STAGES:
        summary = snapshot.latency[stage]
        values += [
            (f'{stage}_ms_p50', _number(summary.p50)),
            (f'{stage}_ms_p95', _number(summary.p95)),
            (f'{stage}_ms_max', _number(summary.max)),
        ]
    values += [
        ('memory_fill', str(snapshot.memory_fill)),
        ('memory_length', str(snapshot.memory_length)),
        ('memory_writes', str(snapshot.memory_writes)),
        ('memory_writes_skipped', str(snapshot.memory_writes_skipped)),
        ('memory_resets', str(sum(snapshot.resets.values()))),
    ]
    values += [(f'memory_resets_{reason}', str(snapshot.resets[reason]))
               for reason in RESET_REASONS]
    values += [
        ('device', device),
        ('last_error', snapshot.last_error),
    ]
    return values


def _number(value: float) -> str:
    return 'nan' if math.isnan(value) else f'{value:.2f}'
