"""Inference backends: who runs the network for the engine.

- ``torch``: PyTorch eager, on the CPU or CUDA, any precision.
- ``onnxruntime``: ONNX Runtime's CPU execution provider on the exported graph.
- ``openvino``: OpenVINO on the CPU, f32 asked for explicitly (its CPU plugin would otherwise
  run bf16 on CPUs with AVX-512 BF16 or AMX), or bf16 when that precision is asked for.
- ``tensorrt``: needs CUDA and the ``tensorrt`` package; neither is here, and the backend says
  so in one message rather than falling back silently.
- ``auto``: a fixed rule (`backend_names.AUTO_ORDER`), the first backend of the device's list
  that runs the precision and builds, each refusal logged once. On CPUs the order is the one
  ``lma-perception bench model`` measured on this project's 2-core machine (ONNX Runtime
  ahead of OpenVINO, both ahead of torch eager; README, Deployment runtimes).

Every backend takes B×H×W×3 uint8 images (torch: B×3×H×W float, its own preprocessing) and a
:class:`~lma_perception.memory.MemoryBatch` and returns uint8 labels (argmax on the backend's
side), optional uint8 confidence and this frame's memory entries. The CPU runtimes read and
return host arrays, so their memory banks live on the host; the write policy, the FIFO and the
resets stay in :class:`~lma_perception.memory.MemoryBank` for every backend.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lma_perception.memory import MemoryBatch
from lma_perception.models.lma import LMASegmenter
from lma_perception.models.prediction import predict_labels
from lma_perception.runtime.backend_names import auto_candidates, precision_problem
from lma_perception.runtime.export_cache import cached_export
from lma_perception.runtime.onnx_export import output_names

log = logging.getLogger(__name__)

# Distribution name of each runtime's Python package.
DISTRIBUTIONS = {'onnxruntime': 'onnxruntime', 'openvino': 'openvino', 'tensorrt': 'tensorrt'}


class BackendError(RuntimeError):
    """A backend that is not installed here, or that refused the model; says which and why."""


@dataclass
class StepResult:
    """What a backend returns for one batch."""

    labels: torch.Tensor  # B×h×w uint8, on the backend's device
    confidence: torch.Tensor | None  # B×h×w uint8 when asked for
    memory_key: torch.Tensor | None  # B×Dk×h×w, None for single-frame models
    memory_value: torch.Tensor | None  # B×Dv×h×w


def runtime_version(name: str) -> str:
    """Return the installed version of a runtime's package (BackendError: missing)."""
    if importlib.util.find_spec(name) is None:
        raise BackendError(
            f'backend {name!r}: the Python package {DISTRIBUTIONS[name]!r} is not installed '
            f'(pip install -r requirements.txt installs it)'
        )
    return importlib.metadata.version(DISTRIBUTIONS[name])


class TorchBackend:
    """PyTorch eager on the engine's device."""

    name = 'torch'

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.uses_memory = isinstance(model, LMASegmenter)
        self.version = torch.__version__

    def run(
        self, batch: torch.Tensor, memory: MemoryBatch | None, confidence: bool
    ) -> StepResult:
        """Segment B×3×H×W float images in [0, 1] on the model's device."""
        if not self.uses_memory:
            labels, scores = predict_labels(self.model, batch, confidence=confidence)
            return StepResult(labels, scores, None, None)
        return StepResult(*self.model.step_labels(batch, memory, confidence=confidence))


class OnnxBackend:
    """A runtime on the exported graph; subclasses open a file and run one batch of feeds."""

    name = ''

    def __init__(self, model: nn.Module, input_size: tuple[int, int], threads: int | None,
                 precision: str = 'fp32') -> None:
        self.version = runtime_version(self.name)
        self.precision = precision
        self.model = model.cpu().float().eval()
        self.uses_memory = isinstance(model, LMASegmenter)
        self.input_size = input_size
        self.threads = threads
        self._runners: dict[bool, object] = {}
        self._runner(False)  # export and compile now: a refusal shows at start-up

    def _runner(self, confidence: bool) -> object:
        if confidence not in self._runners:
            try:
                path = cached_export(
                    self.model, self.input_size, self.name, self.version, confidence=confidence
                )
                self._runners[confidence] = self._open(path)
            except Exception as error:  # the exporter and the runtimes raise their own types
                raise BackendError(
                    f'backend {self.name!r} {self.version} refused the model: '
                    f'{type(error).__name__}: {error}'
                ) from error
        return self._runners[confidence]

    def _open(self, path: Path) -> object:
        raise NotImplementedError

    def _infer(self, runner: object, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError

    def run(self, images: np.ndarray, memory: MemoryBatch | None, confidence: bool) -> StepResult:
        """Segment B×H×W×3 uint8 images at the network size; memory arrays on the host."""
        feeds = {'images': images}
        if self.uses_memory:
            feeds.update(self._memory_feeds(memory, len(images)))
        outputs = dict(zip(
            output_names('lma_step' if self.uses_memory else 'frame', confidence),
            self._infer(self._runner(confidence), feeds), strict=True,
        ))
        tensors = {name: torch.from_numpy(array) for name, array in outputs.items()}
        value = tensors.get('memory_value')
        return StepResult(
            tensors['labels'], tensors.get('confidence'), tensors.get('memory_key'),
            None if value is None else value.permute(0, 3, 1, 2),
        )

    def _memory_feeds(self, memory: MemoryBatch | None, batch: int) -> dict[str, np.ndarray]:
        if memory is None:
            # No stream holds a frame: one empty slot each (the graph takes the plain path).
            key, value = self._empty_slot()
            return {
                'memory_keys': np.broadcast_to(key, (batch, 1, *key.shape)).copy(),
                'memory_values': np.broadcast_to(value, (batch, 1, *value.shape)).copy(),
                'memory_fill': np.zeros(batch, np.int64),
            }
        return {
            'memory_keys': np.ascontiguousarray(memory.keys.float().cpu().numpy()),
            # The banks hold values channels-last, so this permutation is usually free.
            'memory_values': np.ascontiguousarray(
                memory.values.float().cpu().permute(0, 1, 3, 4, 2).numpy()
            ),
            'memory_fill': np.asarray(memory.fill, np.int64),
        }

    def _empty_slot(self) -> tuple[np.ndarray, np.ndarray]:
        config = self.model.config
        height, width = (s // self.model.stride for s in self.input_size)
        return (np.zeros((config.key_dim, height, width), np.float32),
                np.zeros((height, width, config.value_dim), np.float32))


class OnnxRuntimeBackend(OnnxBackend):
    """ONNX Runtime, CPU execution provider, all graph optimisations, no spinning threads."""

    name = 'onnxruntime'

    def _open(self, path: Path) -> object:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle worker threads sleep instead of spinning: the cores are shared with DDS, the
        # node's other threads and other processes, which spinning threads would starve.
        options.add_session_config_entry('session.intra_op.allow_spinning', '0')
        if self.threads:
            options.intra_op_num_threads = self.threads
        return onnxruntime.InferenceSession(
            str(path), options, providers=['CPUExecutionProvider']
        )

    def _infer(self, runner: object, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return runner.run(None, feeds)


class OpenVinoBackend(OnnxBackend):
    """OpenVINO's CPU plugin, f32 (or bf16) inference precision, tuned for latency."""

    name = 'openvino'

    def _open(self, path: Path) -> object:
        import openvino

        core = openvino.Core()
        precision = {'fp32': 'f32', 'bf16': 'bf16'}[self.precision]
        if precision == 'bf16' and 'BF16' not in core.get_property(
            'CPU', 'OPTIMIZATION_CAPABILITIES'
        ):
            # Asked for on a CPU without it, OpenVINO would silently run f32.
            raise BackendError('bf16 needs a CPU with AVX-512 BF16 or AMX; this one has neither')
        config = {'INFERENCE_PRECISION_HINT': precision, 'PERFORMANCE_HINT': 'LATENCY'}
        if self.threads:
            config['INFERENCE_NUM_THREADS'] = self.threads
        return core.compile_model(str(path), 'CPU', config).create_infer_request()

    def _infer(self, runner: object, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        results = runner.infer(feeds)
        return [results[port] for port in runner.model_outputs]


def check_tensorrt() -> None:
    """Raise BackendError: TensorRT needs CUDA and the package, and runs no model here."""
    if not torch.cuda.is_available():
        raise BackendError("backend 'tensorrt' needs a CUDA device; none is available here")
    runtime_version('tensorrt')
    raise BackendError(
        "backend 'tensorrt': this version builds no TensorRT engines yet; use 'torch' on CUDA"
    )


def create_backend(
    name: str, model: nn.Module, device: torch.device, input_size: tuple[int, int],
    threads: int | None = None, precision: str = 'fp32',
) -> TorchBackend | OnnxBackend:
    """Build backend ``name`` for a model on ``device``; ``auto`` per `backend_names.AUTO_ORDER`.

    ``precision`` is fp32 or a reduced precision the backend runs on this device
    (`backend_names.REDUCED_PRECISION_BACKENDS`); torch applies it itself (autocast).
    """
    problem = precision_problem(name, precision, device.type)
    if problem is not None:
        raise BackendError(problem)
    if name == 'auto':
        refusals = []
        for candidate in auto_candidates(device.type, precision):
            try:
                backend = create_backend(
                    candidate, model, device, input_size, threads, precision
                )
            except BackendError as error:
                log.warning('%s; trying the next backend', error)
                refusals.append(candidate)
                continue
            log.info('backend auto: %s %s', backend.name, backend.version)
            return backend
        raise BackendError(f'no backend of {", ".join(refusals)} runs here')
    if name == 'torch':
        return TorchBackend(model)
    if name == 'tensorrt':
        check_tensorrt()
    if device.type != 'cpu':
        raise BackendError(f'backend {name!r} runs on the CPU, not on {device}')
    return {'onnxruntime': OnnxRuntimeBackend, 'openvino': OpenVinoBackend}[name](
        model, input_size, threads, precision
    )
