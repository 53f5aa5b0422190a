"""The segmentation node's parameters: declared with descriptions, validated, read once.

Every parameter is read-only, so the values are checked once, when they are read into
`NodeConfig`, and a bad one stops the node with one message that names the parameter, the value
and what is accepted. Nothing can change afterwards that an on-set callback would need to check.
QoS is not a parameter here: every topic takes the standard `qos_overrides.<topic>.*` parameters
(`QoSOverridingOptions`).
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
)
from rclpy.exceptions import InvalidTopicNameException, ParameterException
from rclpy.node import Node
from rclpy.validate_topic_name import validate_topic_name

from lma_perception.continuity import SEQUENCE_BOUNDARY_S
from lma_perception.memory import MAX_MEMORY_LENGTH, WRITE_POLICIES, WRITE_THRESHOLD_RANGE
from lma_perception.models.erfnet import input_size_problem
from lma_perception.ros.compressed import TRANSPORTS
from lma_perception.runtime.backend_names import BACKENDS, DEFAULT_BACKEND
from lma_perception.runtime.device import DEVICE_FORMS, PRECISIONS
from lma_perception.runtime.engine import OUTPUT_SIZES, EngineConfig

_DEFAULT_ENGINE = EngineConfig()


class ParameterError(ValueError):
    """A parameter has a value the node cannot run with."""


@dataclass(frozen=True)
class CameraConfig:
    """One camera: its name (the namespace of its outputs), its input and camera_info topics."""

    name: str
    image_topic: str
    transport: str
    camera_info_topic: str


@dataclass(frozen=True)
class NodeConfig:
    """Everything the segmentation node reads from its parameters."""

    cameras: tuple[CameraConfig, ...]
    weights: str
    engine: EngineConfig
    output_resolution: str
    publish_color_mask: bool
    publish_overlay: bool
    publish_confidence: bool
    overlay_alpha: float
    max_batch_size: int
    reset_gap_s: float
    no_input_timeout_s: float
    latency_budget_ms: float
    loss_warn_fraction: float
    latency_window: int
    diagnostics_period_s: float


@dataclass(frozen=True)
class _Range:
    """Closed, finite bounds of a number; they go into the parameter's descriptor and its check.

    Every number has an upper bound: an infinite timeout or a window of a million frames is a
    typo, and it should stop the node at start-up rather than much later.
    """

    low: float
    high: float

    def check(self, value: float) -> str | None:
        return None if self.low <= value <= self.high else f'must be in [{self.low}, {self.high}]'

    def descriptor_fields(self, integer: bool) -> dict[str, list]:
        if integer:
            return {'integer_range': [IntegerRange(from_value=int(self.low),
                                                   to_value=int(self.high), step=1)]}
        return {'floating_point_range': [FloatingPointRange(from_value=float(self.low),
                                                            to_value=float(self.high), step=0.0)]}


_SECONDS = _Range(math.ulp(0.0), 3600.0)  # gaps, timeouts and periods: at most an hour
MAX_CAMERAS = 64
MAX_BATCH_SIZE = 64
MAX_LATENCY_WINDOW = 100_000
MAX_LATENCY_BUDGET_MS = 3_600_000.0  # an hour, as the other durations


@dataclass(frozen=True)
class _Spec:
    default: Any
    description: str
    options: tuple[str, ...] = ()
    bounds: _Range | None = None
    check: Callable[[Any], str | None] | None = None


# `input_size` that stands for the checkpoint's own size. A value and not an unset parameter:
# rclpy answers a get-parameters request that names an unset one with no values at all. Not an
# empty list either, whose type rclpy would take for a byte array.
CHECKPOINT_SIZE = (0, 0)


def _input_size(value: list[int]) -> str | None:
    if tuple(value) == CHECKPOINT_SIZE:
        return None
    problem = input_size_problem(value)
    return None if problem is None else f'expected [height, width]: {problem}'


def _cameras(value: list[str]) -> str | None:
    if not value:
        return 'list at least one camera'
    if len(value) > MAX_CAMERAS:
        return f'at most {MAX_CAMERAS} cameras, got {len(value)}'
    for name in value:
        if not re.fullmatch(r'[A-Za-z][A-Za-z0-9_]*', name):
            return f'camera name {name!r} must be a ROS name token ([A-Za-z][A-Za-z0-9_]*)'
    if len(set(value)) != len(value):
        return 'camera names must be unique'
    return None


# Engine settings are only declared here: `EngineConfig` checks their values, and their option
# lists and ranges come from the constants it checks against.
PARAMETERS: dict[str, _Spec] = {
    'cameras': _Spec(
        ['camera'],
        'Camera names. Each camera is a namespace: it reads <name>.image_topic (default '
        '<name>/image) and publishes <name>/labels, <name>/color_mask, <name>/overlay and '
        '<name>/confidence.',
        check=_cameras,
    ),
    'weights': _Spec('', 'Checkpoint file; empty for the weights shipped with the package.'),
    'device': _Spec(_DEFAULT_ENGINE.device, f'{DEVICE_FORMS}.'),
    'backend': _Spec(
        DEFAULT_BACKEND,
        'Inference backend; auto picks the first that runs here (see runtime/backends.py).',
        options=BACKENDS,
    ),
    'precision': _Spec(
        _DEFAULT_ENGINE.precision,
        'Compute precision: bf16 runs in openvino on CPUs with AVX-512 BF16 or AMX and in torch '
        'on CUDA, fp16 in torch on CUDA.',
        options=tuple(PRECISIONS),
    ),
    'input_size': _Spec(
        list(CHECKPOINT_SIZE),
        f'Network input [height, width], multiples of 8; {list(CHECKPOINT_SIZE)} for the '
        'checkpoint\'s size.',
        check=_input_size,
    ),
    'memory_length': _Spec(
        _DEFAULT_ENGINE.memory_length,
        'Frames T each camera remembers; 0 segments every frame on its own.',
        bounds=_Range(0, MAX_MEMORY_LENGTH),
    ),
    'write_policy': _Spec(
        _DEFAULT_ENGINE.write_policy,
        'always: every frame enters the memory; adaptive: only frames whose features changed '
        'by more than write_threshold.',
        options=WRITE_POLICIES,
    ),
    'write_threshold': _Spec(
        float(_DEFAULT_ENGINE.write_threshold),
        'Feature change (1 − cosine similarity of key maps) a frame needs to be written under '
        'the adaptive policy.',
        bounds=_Range(*WRITE_THRESHOLD_RANGE),
    ),
    'output_resolution': _Spec(
        'input',
        'input: outputs have the camera image size (labels resized nearest-neighbour); '
        'network: outputs keep the network input size.',
        options=OUTPUT_SIZES,
    ),
    'publish_color_mask': _Spec(
        True, 'Publish <camera>/color_mask (computed only while subscribed).'
    ),
    'publish_overlay': _Spec(True, 'Publish <camera>/overlay (computed only while subscribed).'),
    'publish_confidence': _Spec(
        False,
        'Publish <camera>/confidence, max softmax probability × 255 (computed only while '
        'subscribed).',
    ),
    'overlay_alpha': _Spec(0.5, 'Weight of the colour mask in the overlay.', bounds=_Range(0, 1)),
    'max_batch_size': _Spec(
        8, 'Most cameras segmented together in one forward pass.',
        bounds=_Range(1, MAX_BATCH_SIZE),
    ),
    'reset_gap_s': _Spec(
        SEQUENCE_BOUNDARY_S,
        'A camera\'s memory is cleared when the stamps of two frames it receives jump forward '
        'by more than this (the boundary bags are split at).',
        bounds=_SECONDS,
    ),
    'no_input_timeout_s': _Spec(
        2.0, 'Diagnostics report ERROR for a camera silent for longer than this.',
        bounds=_SECONDS,
    ),
    'latency_budget_ms': _Spec(
        100.0,
        'Diagnostics report WARN when the p95 of receive-to-publish latency exceeds this.',
        bounds=_Range(math.ulp(0.0), MAX_LATENCY_BUDGET_MS),
    ),
    'loss_warn_fraction': _Spec(
        0.01,
        'Diagnostics report WARN when more than this share of a camera\'s frames was lost in '
        'transport over the last 10 s.',
        bounds=_Range(0, 1),
    ),
    'latency_window': _Spec(
        100, 'Frames over which latency percentiles are computed.',
        bounds=_Range(1, MAX_LATENCY_WINDOW),
    ),
    'diagnostics_period_s': _Spec(
        1.0, 'Seconds between /diagnostics messages.', bounds=_SECONDS
    ),
}

_IMAGE_TOPIC_DESCRIPTION = 'Input image topic of camera {name} (sensor_msgs/Image).'
_TRANSPORT_DESCRIPTION = (
    'raw: sensor_msgs/Image on {name}.image_topic; compressed: sensor_msgs/CompressedImage '
    '(jpeg or png, as image_transport publishes it) on <{name}.image_topic>/compressed.'
)
_CAMERA_INFO_DESCRIPTION = (
    'sensor_msgs/CameraInfo of camera {name}; republished scaled to the labels on '
    '{name}/labels/camera_info.'
)


def read_config(node: Node) -> NodeConfig:
    """Declare every parameter on `node` and return their validated values.

    Raises:
        ParameterError: a value of the wrong type or outside what the node accepts.
    """
    values = {name: _declare(node, name, spec) for name, spec in PARAMETERS.items()}
    cameras = []
    for name in values['cameras']:
        topic = _declare(
            node,
            f'{name}.image_topic',
            _Spec(f'{name}/image', _IMAGE_TOPIC_DESCRIPTION.format(name=name), check=_topic),
        )
        transport = _declare(
            node, f'{name}.transport',
            _Spec('raw', _TRANSPORT_DESCRIPTION.format(name=name), options=TRANSPORTS),
        )
        camera_info = _declare(
            node, f'{name}.camera_info_topic',
            _Spec(f'{name}/camera_info', _CAMERA_INFO_DESCRIPTION.format(name=name),
                  check=_topic),
        )
        cameras.append(CameraConfig(name, topic, transport, camera_info))
    try:
        engine = EngineConfig(
            device=values['device'],
            backend=values['backend'],
            precision=values['precision'],
            input_size=None if tuple(values['input_size']) == CHECKPOINT_SIZE
            else tuple(values['input_size']),
            memory_length=values['memory_length'],
            write_policy=values['write_policy'],
            write_threshold=values['write_threshold'],
        )
    except ValueError as error:
        raise ParameterError(f'engine parameters: {error}') from None
    return NodeConfig(
        cameras=tuple(cameras),
        weights=values['weights'],
        engine=engine,
        output_resolution=values['output_resolution'],
        publish_color_mask=values['publish_color_mask'],
        publish_overlay=values['publish_overlay'],
        publish_confidence=values['publish_confidence'],
        overlay_alpha=values['overlay_alpha'],
        max_batch_size=values['max_batch_size'],
        reset_gap_s=values['reset_gap_s'],
        no_input_timeout_s=values['no_input_timeout_s'],
        latency_budget_ms=values['latency_budget_ms'],
        loss_warn_fraction=values['loss_warn_fraction'],
        latency_window=values['latency_window'],
        diagnostics_period_s=values['diagnostics_period_s'],
    )


def reject_unknown(node: Node) -> None:
    """Refuse a parameter given to `node` (file, `-p`, overrides) that it never declared.

    Call it once every parameter is declared, the `qos_overrides.*` of its topics included.
    rclpy keeps the values it was given in `Node._parameter_overrides` (there is no public
    accessor) and ignores those that nothing declares, so a misspelt name would pass unnoticed.

    Raises:
        ParameterError: naming the first unknown parameter and the closest declared name.
    """
    unknown = sorted(name for name in node._parameter_overrides if not node.has_parameter(name))
    if not unknown:
        return
    declared = node.list_parameters([], 0).names
    name = unknown[0]
    close = difflib.get_close_matches(name, declared, n=1)
    hint = f'; did you mean {close[0]!r}?' if close else ''
    others = f' (unknown too: {", ".join(unknown[1:])})' if len(unknown) > 1 else ''
    raise ParameterError(f'unknown parameter {name!r}{hint}{others}')


def _topic(value: str) -> str | None:
    try:
        validate_topic_name(value)
    except InvalidTopicNameException as error:
        return str(error).splitlines()[0].removeprefix('Invalid topic name: ')
    return None


def _declare(node: Node, name: str, spec: _Spec) -> Any:
    # Numbers accept integers too (`-p reset_gap_s:=1`), which a DOUBLE parameter would refuse;
    # rclpy then skips the descriptor's range, so the range is checked here as well.
    number = isinstance(spec.default, float)
    extra = {}
    if spec.bounds is not None:
        extra = spec.bounds.descriptor_fields(integer=not number)
    if spec.options:
        extra['additional_constraints'] = f'one of: {", ".join(spec.options)}'
    descriptor = ParameterDescriptor(
        description=spec.description, read_only=True, dynamic_typing=number,
        **extra,
    )
    try:
        # Declared already when a lifecycle node is configured again after a cleanup.
        value = (node.get_parameter(name) if node.has_parameter(name)
                 else node.declare_parameter(name, spec.default, descriptor)).value
    except ParameterException as error:
        raise ParameterError(f'parameter {name!r}: {error}') from None
    if number:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParameterError(f'parameter {name!r} = {value!r}: expected a number')
        value = float(value)
    problems = (
        None if not spec.options or value in spec.options
        else f'expected one of {", ".join(spec.options)}',
        spec.bounds.check(value) if spec.bounds is not None else None,
        spec.check(value) if spec.check is not None else None,
    )
    problem = next((p for p in problems if p is not None), None)
    if problem is not None:
        raise ParameterError(f'parameter {name!r} = {value!r}: {problem}')
    return value
