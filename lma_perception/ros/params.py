"""The segmentation node's parameters: declared with descriptions, validated, read once.

Every parameter is read-only, so the values are checked once, when they are read into
`NodeConfig`, and a bad one stops the node with one message that names the parameter, the value
and what is accepted. Nothing can change afterwards that an on-set callback would need to check.
QoS is not a parameter here: every topic takes the standard `qos_overrides.<topic>.*` parameters
(`QoSOverridingOptions`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.exceptions import InvalidTopicNameException, ParameterException
from rclpy.node import Node
from rclpy.validate_topic_name import validate_topic_name

from lma_perception.runtime.engine import EngineConfig

_DEFAULT_ENGINE = EngineConfig()


class ParameterError(ValueError):
    """A parameter has a value the node cannot run with."""


@dataclass(frozen=True)
class CameraConfig:
    """One camera: its name (the namespace of its outputs) and its input topic."""

    name: str
    image_topic: str


@dataclass(frozen=True)
class NodeConfig:
    """Everything the segmentation node reads from its parameters."""

    cameras: tuple[CameraConfig, ...]
    weights: str
    engine: EngineConfig
    use_memory: bool
    output_resolution: str
    publish_color_mask: bool
    publish_overlay: bool
    publish_confidence: bool
    overlay_alpha: float
    max_batch_size: int
    reset_gap_s: float
    no_input_timeout_s: float
    latency_budget_ms: float
    latency_window: int
    diagnostics_period_s: float


@dataclass(frozen=True)
class _Spec:
    default: Any  # every parameter has a value, so `ros2 param get/dump` can read it
    description: str
    check: Callable[[Any], str | None]


def _one_of(*options: str) -> Callable[[Any], str | None]:
    return lambda value: None if value in options else f'expected one of {", ".join(options)}'


def _at_least(minimum: float) -> Callable[[Any], str | None]:
    return lambda value: None if value >= minimum else f'must be ≥ {minimum}'


def _positive(value: float) -> str | None:
    return None if value > 0 else 'must be > 0'


def _device(value: str) -> str | None:
    if re.fullmatch(r'auto|cpu|cuda(:\d+)?', value):
        return None
    return 'expected auto, cpu, cuda or cuda:N'


# `input_size` that stands for the checkpoint's own size. A value and not an unset parameter:
# rclpy answers a get-parameters request that names an unset one with no values at all. Not an
# empty list either, whose type rclpy would take for a byte array.
_CHECKPOINT_SIZE = [0, 0]


def _input_size(value: list[int]) -> str | None:
    if list(value) == _CHECKPOINT_SIZE:
        return None
    if len(value) != 2 or any(side <= 0 or side % 8 for side in value):
        return 'expected [height, width], both positive multiples of 8'
    return None


def _cameras(value: list[str]) -> str | None:
    if not value:
        return 'list at least one camera'
    for name in value:
        if not re.fullmatch(r'[A-Za-z][A-Za-z0-9_]*', name):
            return f'camera name {name!r} must be a ROS name token ([A-Za-z][A-Za-z0-9_]*)'
    if len(set(value)) != len(value):
        return 'camera names must be unique'
    return None


def _unit_interval(value: float) -> str | None:
    return None if 0.0 <= value <= 1.0 else 'must be in [0, 1]'


def _no_check(value: Any) -> str | None:
    return None


PARAMETERS: dict[str, _Spec] = {
    'cameras': _Spec(
        ['camera'],
        'Camera names. Each camera is a namespace: it reads <name>.image_topic (default '
        '<name>/image) and publishes <name>/labels, <name>/color_mask, <name>/overlay and '
        '<name>/confidence.',
        _cameras,
    ),
    'weights': _Spec(
        '', 'Checkpoint file; empty for the weights shipped with the package.', _no_check
    ),
    'device': _Spec(_DEFAULT_ENGINE.device, 'auto, cpu, cuda or cuda:N.', _device),
    'precision': _Spec(
        _DEFAULT_ENGINE.precision,
        'fp32, fp16 or bf16 (half precisions need CUDA).',
        _one_of('fp32', 'fp16', 'bf16'),
    ),
    'input_size': _Spec(
        _CHECKPOINT_SIZE,
        'Network input [height, width], multiples of 8; [0, 0] for the checkpoint\'s size.',
        _input_size,
    ),
    'memory_length': _Spec(
        _DEFAULT_ENGINE.memory_length,
        'Frames T each camera remembers; 0 segments every frame on its own.',
        _at_least(0),
    ),
    'write_policy': _Spec(
        _DEFAULT_ENGINE.write_policy,
        'always: every frame enters the memory; adaptive: only frames whose features changed '
        'by more than write_threshold.',
        _one_of('always', 'adaptive'),
    ),
    'write_threshold': _Spec(
        float(_DEFAULT_ENGINE.write_threshold),
        'Feature change (1 − cosine similarity of key maps, 0 to 2) a frame needs to be '
        'written under the adaptive policy.',
        lambda value: None if 0.0 <= value <= 2.0 else 'must be in [0, 2]',
    ),
    'output_resolution': _Spec(
        'input',
        'input: outputs have the camera image size (labels resized nearest-neighbour); '
        'network: outputs keep the network input size.',
        _one_of('input', 'network'),
    ),
    'publish_color_mask': _Spec(
        True, 'Publish <camera>/color_mask (computed only while subscribed).', _no_check
    ),
    'publish_overlay': _Spec(
        True, 'Publish <camera>/overlay (computed only while subscribed).', _no_check
    ),
    'publish_confidence': _Spec(
        False,
        'Publish <camera>/confidence, max softmax probability × 255 (computed only while '
        'subscribed).',
        _no_check,
    ),
    'overlay_alpha': _Spec(0.5, 'Weight of the colour mask in the overlay.', _unit_interval),
    'max_batch_size': _Spec(
        8, 'Most cameras segmented together in one forward pass.', _at_least(1)
    ),
    'reset_gap_s': _Spec(
        1.0,
        'A camera\'s memory is cleared when its stamps jump forward by more than this.',
        _positive,
    ),
    'no_input_timeout_s': _Spec(
        2.0, 'Diagnostics report ERROR for a camera silent for longer than this.', _positive
    ),
    'latency_budget_ms': _Spec(
        100.0,
        'Diagnostics report WARN when the p95 of receive-to-publish latency exceeds this.',
        _positive,
    ),
    'latency_window': _Spec(
        100, 'Frames over which latency percentiles are computed.', _at_least(1)
    ),
    'diagnostics_period_s': _Spec(1.0, 'Seconds between /diagnostics messages.', _positive),
}

_IMAGE_TOPIC_DESCRIPTION = 'Input image topic of camera {name} (sensor_msgs/Image).'


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
            _Spec(f'{name}/image', _IMAGE_TOPIC_DESCRIPTION.format(name=name), _topic),
        )
        cameras.append(CameraConfig(name, topic))
    input_size = values['input_size']
    try:
        engine = EngineConfig(
            device=values['device'],
            precision=values['precision'],
            input_size=None if list(input_size) == _CHECKPOINT_SIZE else tuple(input_size),
            # 0 (no memory) is `use_memory` below; the engine then never makes a memory.
            memory_length=max(values['memory_length'], 1),
            write_policy=values['write_policy'],
            write_threshold=values['write_threshold'],
        )
    except ValueError as error:
        raise ParameterError(f'engine parameters: {error}') from None
    return NodeConfig(
        cameras=tuple(cameras),
        weights=values['weights'],
        engine=engine,
        use_memory=values['memory_length'] > 0,
        output_resolution=values['output_resolution'],
        publish_color_mask=values['publish_color_mask'],
        publish_overlay=values['publish_overlay'],
        publish_confidence=values['publish_confidence'],
        overlay_alpha=values['overlay_alpha'],
        max_batch_size=values['max_batch_size'],
        reset_gap_s=values['reset_gap_s'],
        no_input_timeout_s=values['no_input_timeout_s'],
        latency_budget_ms=values['latency_budget_ms'],
        latency_window=values['latency_window'],
        diagnostics_period_s=values['diagnostics_period_s'],
    )


def _topic(value: str) -> str | None:
    try:
        validate_topic_name(value)
    except InvalidTopicNameException as error:
        return str(error).splitlines()[0].removeprefix('Invalid topic name: ')
    return None


def _declare(node: Node, name: str, spec: _Spec) -> Any:
    # Numbers accept integers too (`-p reset_gap_s:=1`), which a DOUBLE parameter would refuse.
    number = isinstance(spec.default, float)
    descriptor = ParameterDescriptor(
        description=spec.description, read_only=True, dynamic_typing=number
    )
    try:
        value = node.declare_parameter(name, spec.default, descriptor).value
    except ParameterException as error:
        raise ParameterError(f'parameter {name!r}: {error}') from None
    if number:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParameterError(f'parameter {name!r} = {value!r}: expected a number')
        value = float(value)
    problem = spec.check(value)
    if problem is not None:
        raise ParameterError(f'parameter {name!r} = {value!r}: {problem}')
    return value
