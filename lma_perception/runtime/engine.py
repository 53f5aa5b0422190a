"""The inference engine: camera images in, label images out, one batched forward pass.

This is the one code path of the ROS node and the offline evaluator. Per call:

1. *preprocess*: each H×W×3 uint8 RGB image is resized to the network size and scaled to RGB
   in [0, 1]. On a GPU the uint8 image crosses to the device and is resized there (bilinear,
   antialiased); on the CPU OpenCV resizes the uint8 image (area averaging when shrinking, as
   the training data loader does), about twenty times faster than a float resize in torch;
   The CPU runtimes (`runtime/backends.py`) take the resized uint8 images as they are: their
   exported graph does the scaling;
2. *model*: one forward pass of the backend for the whole batch; each image reads its own
   memory (or none), then its frame's key and value are written to that memory per its write
   policy. The backend returns uint8 labels: argmax on its side, the void channel (any output ≥
   the 19 train ids) to 255, optional confidence (max softmax probability × 255);
3. *postprocess*: nearest-neighbour resize back to each image's size (on the device on a GPU,
   by OpenCV on the host on the CPU), and only uint8 maps copied to the host.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn
from torch.nn.functional import interpolate

from lma_perception.memory import (
    DEFAULT_MEMORY_LENGTH,
    DEFAULT_WRITE_THRESHOLD,
    MAX_MEMORY_LENGTH,
    MemoryBank,
    MemoryBatch,
    check_memory_settings,
)
from lma_perception.models.checkpoint import (
    DEFAULT_INPUT_SIZE,
    DEFAULT_WEIGHTS,
    CheckpointError,
    CheckpointInfo,
    load_checkpoint,
)
from lma_perception.models.erfnet import input_size_problem
from lma_perception.models.lma import LMASegmenter
from lma_perception.runtime.backend_names import BACKENDS, CPU_RUNTIMES, precision_problem
from lma_perception.runtime.backends import StepResult, TorchBackend, create_backend
from lma_perception.runtime.device import (
    PRECISIONS,
    autocast,
    device_problem,
    prepare_model,
    resolve_device,
    synchronize,
)

OUTPUT_SIZES = ('input', 'network')


@dataclass(frozen=True)
class EngineConfig:
    """How the engine runs a model; every value is checked here, once."""

    device: str = 'auto'  # 'auto' | 'cpu' | 'cuda' | 'cuda:N'
    precision: str = 'fp32'  # PRECISIONS; who runs reduced ones: REDUCED_PRECISION_BACKENDS
    input_size: tuple[int, int] | None = None  # network (height, width); None: checkpoint's
    memory_length: int = DEFAULT_MEMORY_LENGTH  # T at inference; 0: no memory at all
    write_policy: str = 'always'  # one of WRITE_POLICIES
    write_threshold: float = DEFAULT_WRITE_THRESHOLD  # adaptive policy: 1 - cosine of keys
    backend: str = 'torch'  # one of BACKENDS (runtime/backends.py)

    def __post_init__(self) -> None:
        problem = device_problem(self.device)
        if problem is not None:
            raise ValueError(f'device: {problem}')
        if self.backend not in BACKENDS:
            raise ValueError(
                f'unknown backend {self.backend!r}; choose one of {", ".join(BACKENDS)}'
            )
        if self.backend in CPU_RUNTIMES and self.device.startswith('cuda'):
            raise ValueError(f'backend {self.backend!r} runs on the CPU, not on {self.device}')
        if self.precision not in PRECISIONS:
            raise ValueError(
                f'unknown precision {self.precision!r}; choose one of {", ".join(PRECISIONS)}'
            )
        if self.backend in CPU_RUNTIMES:  # torch and auto: decided once the device is known
            problem = precision_problem(self.backend, self.precision, 'cpu')
            if problem is not None:
                raise ValueError(problem)
        if self.input_size is not None:
            problem = input_size_problem(self.input_size)
            if problem is not None:
                raise ValueError(f'input_size: {problem}')
            object.__setattr__(self, 'input_size', tuple(int(s) for s in self.input_size))
        if not 0 <= self.memory_length <= MAX_MEMORY_LENGTH:
            raise ValueError(f'memory_length must be in [0, {MAX_MEMORY_LENGTH}] (0: no memory), '
                             f'got {self.memory_length}')
        check_memory_settings(None, self.write_policy, self.write_threshold)


@dataclass
class SegmentationResult:
    """The segmentation of one image."""

    labels: np.ndarray  # H×W uint8 train ids 0..18, 255 = void/unlabeled
    confidence: np.ndarray | None  # H×W uint8 (max softmax probability × 255) when asked
    timings_ms: dict[str, float]  # 'preprocess', 'model', 'postprocess' (of the whole batch)
    memory_written: bool


def _check_image(index: int, image: object) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or (
        image.shape[2] != 3 or 0 in image.shape
    ):
        described = (
            f'{image.dtype} array of shape {image.shape}' if isinstance(image, np.ndarray)
            else type(image).__name__
        )
        raise ValueError(f'image {index}: expected an H×W×3 uint8 RGB array, got {described}')


class SegmentationEngine:
    """Runs a segmentation model on batches of camera images, each with its own memory.

    The engine takes the model over: it is moved to the device, channels-last, in eval mode.
    A model with memory (:class:`~lma_perception.models.LMASegmenter`) reads and writes the
    memories passed to :meth:`segment`; a single-frame model ignores them.
    """

    def __init__(self, model: nn.Module, config: EngineConfig = EngineConfig()) -> None:
        self.config = config
        cpu_only = config.backend in CPU_RUNTIMES
        self.device = resolve_device('cpu' if cpu_only else config.device)
        problem = precision_problem(config.backend, config.precision, self.device.type)
        if problem is not None:
            raise ValueError(problem)
        self.input_size: tuple[int, int] = config.input_size or DEFAULT_INPUT_SIZE
        self.model = prepare_model(model, self.device)
        self.backend = create_backend(
            config.backend, self.model, self.device, self.input_size,
            precision=config.precision,
        )
        # torch's autocast dtype; the runtimes take uint8 and apply the precision themselves.
        torch_backend = isinstance(self.backend, TorchBackend)
        self.dtype = PRECISIONS[config.precision] if torch_backend else torch.float32
        self.uses_memory = isinstance(model, LMASegmenter)
        self.checkpoint: CheckpointInfo | None = None

    @property
    def backend_name(self) -> str:
        """The backend that runs the model (what `auto` picked, if asked for)."""
        return self.backend.name

    @classmethod
    def from_checkpoint(
        cls, path: str | Path | None, config: EngineConfig = EngineConfig()
    ) -> SegmentationEngine:
        """Build an engine for the model in a checkpoint file; None: the shipped weights.

        The network input size is the checkpoint's training size unless the config sets one.
        """
        if path is None:
            path = DEFAULT_WEIGHTS
            if not path.is_file():
                raise CheckpointError(
                    f'no default weights at {path}: train them or pass a checkpoint file'
                )
        model, info = load_checkpoint(path)
        engine = cls(model, replace(config, input_size=config.input_size or info.input_size))
        engine.checkpoint = info
        return engine

    def new_memory(self) -> MemoryBank | None:
        """Return an empty memory for one more camera; None when the model or config has none."""
        if not self.uses_memory or self.config.memory_length == 0:
            return None
        return MemoryBank(
            self.config.memory_length, policy=self.config.write_policy,
            threshold=self.config.write_threshold,
        )

    def segment(
        self, images: Sequence[np.ndarray], memories: Sequence[MemoryBank | None], *,
        output_size: str = 'input', confidence: bool = False,
    ) -> list[SegmentationResult]:
        """Segment one image per camera in one forward pass.

        Args:
            images: H×W×3 uint8 RGB arrays; sizes may differ between cameras.
            memories: one per image: its camera's memory, or None for the single-frame path
                (no read, no write).
            output_size: 'input' (labels at each image's size) or 'network'.
            confidence: also return the max softmax probability × 255 per pixel.
        """
        if output_size not in OUTPUT_SIZES:
            raise ValueError(f'output_size must be one of {OUTPUT_SIZES}, got {output_size!r}')
        if len(images) != len(memories):
            raise ValueError(f'{len(images)} images but {len(memories)} memories')
        for index, image in enumerate(images):
            _check_image(index, image)
        banks = [m for m in memories if m is not None]
        if not all(isinstance(m, MemoryBank) for m in banks):
            raise ValueError('each memory must be a MemoryBank or None')
        if len({id(m) for m in banks}) != len(banks):
            raise ValueError('one memory appears twice in a batch; each camera needs its own')
        if not images:
            return []

        with torch.inference_mode(), autocast(self.device, self.dtype):
            start = time.perf_counter()
            batch = self._preprocess(images)
            synchronize(self.device)
            preprocessed = time.perf_counter()
            step, written = self._run_model(batch, memories, confidence)
            synchronize(self.device)
            modelled = time.perf_counter()
            labels, confidences = self._postprocess(step, images, output_size)
            finished = time.perf_counter()

        timings = {
            'preprocess': (preprocessed - start) * 1e3,
            'model': (modelled - preprocessed) * 1e3,
            'postprocess': (finished - modelled) * 1e3,
        }
        return [
            SegmentationResult(labels[i], confidences[i], dict(timings), written[i])
            for i in range(len(images))
        ]

    def _resize_on_host(self, image: np.ndarray) -> np.ndarray:
        """Resize a uint8 image to the network size with OpenCV."""
        height, width = self.input_size
        if image.shape[:2] == (height, width):
            return image
        shrink = height <= image.shape[0] and width <= image.shape[1]
        return cv2.resize(image, (width, height),
                          interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)

    def _preprocess(self, images: Sequence[np.ndarray]) -> torch.Tensor | np.ndarray:
        """Return the batch as the backend takes it, at the network size.

        torch: B×3×h×w float RGB in [0, 1], channels-last, on the device; the CPU runtimes:
        B×h×w×3 uint8 RGB on the host.
        """
        if not isinstance(self.backend, TorchBackend):
            return np.stack([self._resize_on_host(image) for image in images])
        height, width = self.input_size
        on_host = self.device.type == 'cpu'
        tensors = []
        for image in images:
            if on_host:
                image = self._resize_on_host(image)
            if not image.flags.writeable:  # e.g. a view of a ROS message's bytes
                image = image.copy()
            # uint8 crosses to the device (4× fewer bytes than float); resizing happens there.
            pixels = torch.from_numpy(np.ascontiguousarray(image)).to(self.device)
            tensor = pixels.permute(2, 0, 1).unsqueeze(0).float().div_(255.0)
            if tensor.shape[-2:] != (height, width):
                # Antialiasing matters when shrinking; when enlarging it is plain bilinear.
                tensor = interpolate(
                    tensor, size=(height, width), mode='bilinear', align_corners=False,
                    antialias=True,
                )
            tensors.append(tensor)
        return torch.cat(tensors).contiguous(memory_format=torch.channels_last)

    def _run_model(
        self, batch: torch.Tensor | np.ndarray, memories: Sequence[MemoryBank | None],
        confidence: bool,
    ) -> tuple[StepResult, list[bool]]:
        """Run the backend; return its result and, per image, whether memory was written."""
        memory = MemoryBatch.from_banks(memories) if self.uses_memory else None
        step = self.backend.run(batch, memory, confidence)
        if not self.uses_memory:
            return step, [False] * len(memories)
        written = [
            memory is not None and memory.write(step.memory_key[i], step.memory_value[i])
            for i, memory in enumerate(memories)
        ]
        return step, written

    def _postprocess(
        self, step: StepResult, images: Sequence[np.ndarray], output_size: str
    ) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
        """uint8 label (and confidence) maps on the host, at the requested size."""
        labels, scores = step.labels, step.confidence

        def to_host(maps: torch.Tensor, index: int) -> np.ndarray:
            size = images[index].shape[:2]
            one = maps[index]
            if output_size == 'input' and one.shape != size:
                if one.device.type == 'cpu':
                    return cv2.resize(one.numpy(), size[::-1], interpolation=cv2.INTER_NEAREST)
                one = interpolate(one[None, None], size=size, mode='nearest-exact')[0, 0]
            return one.cpu().numpy()

        label_maps = [to_host(labels, i) for i in range(len(images))]
        score_maps = [
            to_host(scores, i) if scores is not None else None for i in range(len(images))
        ]
        return label_maps, score_maps
