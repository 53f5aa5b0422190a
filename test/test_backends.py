"""Every backend reproduces torch's labels stream by stream, with real runtime sessions.

Clips are rendered by the synthetic generator; the shipped weights run at their training size.
Per camera the memory resets at sequence boundaries and, for one camera, mid-sequence (so a
batch mixes memory fills); a repeated frame makes the adaptive write policy skip a write.
"""

from __future__ import annotations

import importlib.util
import logging
import sys

import numpy as np
import pytest
import torch

from lma_perception.models import ERFNet, load_checkpoint
from lma_perception.models.checkpoint import DEFAULT_WEIGHTS
from lma_perception.runtime.backends import BackendError
from lma_perception.runtime.engine import EngineConfig, SegmentationEngine
from lma_perception.synthetic.generator import SynthConfig, generate_sequence

CAMERAS = ('front', 'front_left', 'front_right')
SEQUENCES, FRAMES = 2, 5
MIN_AGREEMENT = 0.999
MIN_REDUCED_PRECISION_AGREEMENT = 0.995


@pytest.fixture(scope='module', autouse=True)
def export_cache(tmp_path_factory):
    """Exports go to a fresh per-user cache for this module."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv('XDG_CACHE_HOME', str(tmp_path_factory.mktemp('cache')))
        yield


@pytest.fixture(scope='module')
def clips() -> list[list[np.ndarray]]:
    """Batches (one image per camera) of two synthetic sequences, the first frame repeated."""
    config = SynthConfig(width=320, height=160, frames=FRAMES, annotated_frame=FRAMES - 1,
                         cameras=CAMERAS)
    batches = []
    for sequence in range(SEQUENCES):
        frames = list(generate_sequence(config, 'val', sequence))
        for index in range(FRAMES):
            batches.append([f.image for f in frames[index * 3:(index + 1) * 3]])
        batches.insert(len(batches) - FRAMES + 1, batches[-FRAMES])  # a repeated frame
    return batches


def _resets(batch_index: int) -> set[int]:
    """Cameras whose memory is cleared before batch ``batch_index``."""
    per_sequence = FRAMES + 1
    resets = set(CAMERAS) if batch_index and batch_index % per_sequence == 0 else set()
    if batch_index == 3:
        resets.add('front_left')  # mid-sequence: the batch then mixes fills
    return {CAMERAS.index(camera) for camera in resets}


def _stream(engine: SegmentationEngine, clips) -> tuple[np.ndarray, list[list[bool]], list]:
    """Labels (batch × camera × H × W), write decisions and fills of a run over the clips."""
    memories = [engine.new_memory() for _ in CAMERAS]
    labels, written, fills = [], [], []
    for index, batch in enumerate(clips):
        for camera in _resets(index):
            memories[camera].reset()
        fills.append([m.fill for m in memories])
        results = engine.segment(batch, memories)
        labels.append(np.stack([r.labels for r in results]))
        written.append([r.memory_written for r in results])
    return np.stack(labels), written, fills


def _engine(backend: str, precision: str = 'fp32') -> SegmentationEngine:
    config = EngineConfig(device='cpu', backend=backend, precision=precision,
                          write_policy='adaptive', write_threshold=0.02)
    return SegmentationEngine.from_checkpoint(None, config)


def _runnable(backend: str) -> None:
    if backend == 'tensorrt':
        if not torch.cuda.is_available():
            pytest.skip('the TensorRT backend needs a CUDA device; this machine has none')
        if importlib.util.find_spec('tensorrt') is None:
            pytest.skip('the TensorRT backend needs the tensorrt package; it is not installed')


@pytest.fixture(scope='module')
def torch_run(clips):
    return _stream(_engine('torch'), clips)


@pytest.mark.parametrize('backend', ['onnxruntime', 'openvino', 'tensorrt'])
def test_lma_labels_match_torch_stream_by_stream(backend, clips, torch_run):
    _runnable(backend)
    expected, expected_written, expected_fills = torch_run
    engine = _engine(backend)
    assert engine.backend_name == backend
    labels, written, fills = _stream(engine, clips)
    assert labels.dtype == np.uint8 and labels.shape == expected.shape
    for camera in range(len(CAMERAS)):
        agreement = (labels[:, camera] == expected[:, camera]).mean()
        assert agreement >= MIN_AGREEMENT, (CAMERAS[camera], agreement)
    # The write policy decided the same: the repeated frames were skipped, the rest written.
    assert written == expected_written
    assert fills == expected_fills
    assert any(not all(w) for w in written)
    assert any(len(set(f)) > 1 and max(f) > 0 for f in fills)  # mixed fills in one batch


def test_bf16_on_the_cpu_keeps_the_labels(clips, torch_run):
    import openvino

    if 'BF16' not in openvino.Core().get_property('CPU', 'OPTIMIZATION_CAPABILITIES'):
        pytest.skip('this CPU has neither AVX-512 BF16 nor AMX, so no bf16 backend runs here')
    expected, _, expected_fills = torch_run
    engine = _engine('auto', precision='bf16')
    assert engine.backend_name == 'openvino'
    labels, _, fills = _stream(engine, clips)
    for camera in range(len(CAMERAS)):
        agreement = (labels[:, camera] == expected[:, camera]).mean()
        assert MIN_REDUCED_PRECISION_AGREEMENT <= agreement < 1, (CAMERAS[camera], agreement)
    # The adaptive policy sees bf16 keys, yet still skips the repeated frames.
    assert fills == expected_fills


@pytest.mark.parametrize('backend', ['onnxruntime', 'openvino'])
def test_single_frame_model_matches_torch(backend, clips):
    lma, info = load_checkpoint(DEFAULT_WEIGHTS)
    erfnet = ERFNet(info.config.backbone)
    erfnet.load_state_dict({k: v for k, v in lma.state_dict().items()
                            if k.startswith(('encoder.', 'decoder.'))})
    config = EngineConfig(device='cpu', input_size=info.input_size)
    images = clips[0] + clips[-1]
    expected = SegmentationEngine(erfnet, config).segment(
        images, [None] * len(images), confidence=True)
    engine = SegmentationEngine(erfnet, EngineConfig(**{**config.__dict__, 'backend': backend}))
    results = engine.segment(images, [None] * len(images), confidence=True)
    for got, want in zip(results, expected, strict=True):
        assert got.labels.dtype == np.uint8 and got.confidence.dtype == np.uint8
        assert (got.labels == want.labels).mean() >= MIN_AGREEMENT
        assert np.abs(got.confidence.astype(int) - want.confidence).max() <= 1


class _Messages(logging.Handler):
    """Log messages, caught where they are logged.

    The launch tools' pytest plugin makes every logger created after it loads stop
    propagating, so pytest's own capture does not see them.
    """

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def package_log():
    """Messages of the backends' and the export cache's loggers."""
    handler = _Messages()
    loggers = [logging.getLogger(f'lma_perception.runtime.{name}')
               for name in ('backends', 'export_cache')]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    yield handler.messages
    for logger, level in zip(loggers, levels, strict=True):
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_a_missing_runtime_is_named_and_auto_falls_back(monkeypatch, package_log):
    # A None entry in sys.modules is how Python marks a module as not importable.
    monkeypatch.setitem(sys.modules, 'onnxruntime', None)
    with pytest.raises(BackendError, match="'onnxruntime' is not installed"):
        _engine('onnxruntime')
    engine = _engine('auto')
    assert engine.backend_name == 'openvino'
    messages = package_log
    assert sum("'onnxruntime' is not installed" in m for m in messages) == 1
    assert any(m.startswith('backend auto: openvino') for m in messages)


def test_tensorrt_without_cuda_says_so():
    if torch.cuda.is_available():
        pytest.skip('this machine has CUDA')
    with pytest.raises(BackendError, match="'tensorrt' needs a CUDA device"):
        _engine('tensorrt')


def test_runtime_backends_refuse_settings_they_cannot_run():
    with pytest.raises(ValueError, match="'openvino' does not run fp16 on cpu"):
        EngineConfig(backend='openvino', precision='fp16')
    with pytest.raises(ValueError, match="'onnxruntime' does not run bf16 on cpu; bf16 runs "
                                         "with torch on cuda; openvino on cpu"):
        EngineConfig(backend='onnxruntime', precision='bf16')
    with pytest.raises(ValueError, match="'torch' does not run bf16 on cpu"):
        _engine('torch', precision='bf16')
    with pytest.raises(ValueError, match="runs on the CPU"):
        EngineConfig(backend='onnxruntime', device='cuda')
    with pytest.raises(ValueError, match="unknown backend 'tflite'"):
        EngineConfig(backend='tflite')


def test_the_backend_node_parameter_reaches_the_engine_config(ros_context):
    from rclpy.node import Node
    from rclpy.parameter import Parameter

    from lma_perception.ros.params import ParameterError, read_config

    node = Node('segment_node', context=ros_context,
                parameter_overrides=[Parameter('backend', value='openvino')])
    try:
        assert read_config(node).engine.backend == 'openvino'
        (descriptor,) = node.describe_parameters(['backend'])
        assert descriptor.additional_constraints == (
            'one of: torch, onnxruntime, openvino, tensorrt, auto'
        )
    finally:
        node.destroy_node()
    node = Node('segment_node', context=ros_context,
                parameter_overrides=[Parameter('backend', value='tflite')])
    try:
        with pytest.raises(ParameterError, match=r"'backend'.*expected one of torch"):
            read_config(node)
    finally:
        node.destroy_node()
