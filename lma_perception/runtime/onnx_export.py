"""ONNX graphs of the models as deployment runtimes run them: uint8 images in, uint8 labels out.

Two graphs, both with a dynamic batch:

- ``frame`` (any single-frame model, e.g. ERFNet): ``images`` B×H×W×3 uint8 RGB at the network
  size → ``labels`` B×H×W uint8 train ids (void → 255) and, optionally, ``confidence`` B×H×W
  uint8 (max softmax probability × 255).
- ``lma_step`` (:class:`~lma_perception.models.LMASegmenter`, one streaming step): ``images``
  as above, ``memory_keys`` B×T×Dk×h×w and ``memory_values`` B×T×h×w×Dv float32 (the layouts a
  :class:`~lma_perception.memory.MemoryBank` holds them in), ``memory_fill`` B int64 (frames
  held per stream, 0…T: streams of mixed fill share a batch; T is dynamic too) → ``labels``,
  optionally ``confidence``, and ``memory_key`` B×Dk×h×w, ``memory_value`` B×h×w×Dv: this
  frame's entry for the memory.

The /255 scaling, the argmax and the void rule (`models.prediction`) are inside the graph, so
only uint8 maps leave the runtime; a model's last layer that classifies pixel by pixel (ERFNet's
transposed convolution) runs as a matrix product on channels-last features with the argmax
before the pixels are shuffled into place (`prediction.classifier_labels`). The memory read is
`memory_read.local_memory_read_gathered` (gathers and batched matrix products), the slot gate
runs in the graph, and a stream with an empty memory takes the plain encoder → decoder path
as in :meth:`LMASegmenter.attend`. The write policy stays with the host's memory bank: its
decision needs only the ``memory_key`` the graph returns.

The file's ``metadata_props`` carry the model config, input size, class names, palette and the
hash of the weights it was made from (:data:`METADATA_KEYS`).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

from lma_perception.labels import CLASS_NAMES, TRAIN_LABELS
from lma_perception.models.lma import LMASegmenter
from lma_perception.models.memory_read import local_memory_read_gathered
from lma_perception.models.prediction import predict_labels

# 17: the newest opset whose every operator used here ONNX Runtime, OpenVINO and TensorRT
# all run; the graph needs nothing newer.
OPSET = 17
GRAPHS = ('frame', 'lma_step')
# Bumped whenever the exported graphs change, so that export caches rebuild older files.
GRAPH_FORMAT = 3
METADATA_KEYS = (
    'graph', 'graph_format', 'model_config', 'input_size', 'class_names', 'palette',
    'weights_sha256', 'confidence',
)


def weights_hash(model: nn.Module) -> str:
    """SHA-256 of a model's state (names, dtypes, shapes and bytes), in name order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f'{name}:{tensor.dtype}:{tuple(tensor.shape)};'.encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def graph_kind(model: nn.Module) -> str:
    """'lma_step' for a model with memory, 'frame' otherwise."""
    return 'lma_step' if isinstance(model, LMASegmenter) else 'frame'


def _to_network_input(images: torch.Tensor) -> torch.Tensor:
    """B×H×W×3 uint8 → B×3×H×W float in [0, 1], what the models were trained on."""
    return images.permute(0, 3, 1, 2).float() / 255.0


class FrameGraph(nn.Module):
    """A single-frame model between uint8 images and uint8 labels."""

    def __init__(self, model: nn.Module, confidence: bool) -> None:
        super().__init__()
        self.model = model
        self.confidence = confidence

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Labels (and confidence) of B×H×W×3 uint8 images."""
        labels, scores = predict_labels(
            self.model, _to_network_input(images), confidence=self.confidence
        )
        return (labels, scores) if self.confidence else (labels,)


class StepGraph(nn.Module):
    """One LMA streaming step between uint8 images, host memory arrays and uint8 labels."""

    def __init__(self, model: LMASegmenter, confidence: bool) -> None:
        super().__init__()
        self.model = model
        self.confidence = confidence

    def forward(
        self, images: torch.Tensor, memory_keys: torch.Tensor, memory_values: torch.Tensor,
        memory_fill: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        """Labels (and confidence) and this frame's memory key and value; see the module."""
        model = self.model
        features = model.encode(_to_network_input(images))
        query_key, query_value = model.query_kv(features)
        slots = torch.arange(memory_keys.shape[1], device=memory_fill.device)
        valid = slots.view(1, -1) < memory_fill.view(-1, 1)
        values = memory_values.permute(0, 1, 4, 2, 3)
        slot_bias = model.slot_gate(query_key, memory_keys) if model.slot_gate else None
        read = local_memory_read_gathered(
            query_key, memory_keys, values, valid=valid, slot_bias=slot_bias,
            window=model.config.window,
        )
        has_memory = (memory_fill > 0).view(-1, 1, 1, 1)
        decoder_input = torch.where(has_memory, model.fuse(query_value, read), features)
        labels, scores = model.decode_labels(decoder_input, confidence=self.confidence)
        key, value = model.memorize(features)
        value = value.permute(0, 2, 3, 1)
        return (labels, scores, key, value) if self.confidence else (labels, key, value)


def output_names(kind: str, confidence: bool) -> list[str]:
    """Return the graph's output names, in order."""
    names = ['labels'] + (['confidence'] if confidence else [])
    return names + (['memory_key', 'memory_value'] if kind == 'lma_step' else [])


def _example_inputs(
    model: LMASegmenter | None, input_size: tuple[int, int]
) -> tuple[tuple[torch.Tensor, ...], list[str], dict[str, dict[int, str]]]:
    height, width = input_size
    images = torch.zeros(2, height, width, 3, dtype=torch.uint8)
    if model is None:
        return (images,), ['images'], {'images': {0: 'batch'}}
    with torch.inference_mode():
        step = model.step(_to_network_input(images[:1]), None)
    key = step.memory_key[0].expand(2, 2, -1, -1, -1).contiguous()
    value = step.memory_value[0].permute(1, 2, 0).expand(2, 2, -1, -1, -1).contiguous()
    fill = torch.tensor([2, 1])
    axes = {'images': {0: 'batch'}, 'memory_keys': {0: 'batch', 1: 'slots'},
            'memory_values': {0: 'batch', 1: 'slots'}, 'memory_fill': {0: 'batch'}}
    return (images, key, value, fill), list(axes), axes


def export_onnx(
    model: nn.Module, path: str | Path, input_size: tuple[int, int], *,
    confidence: bool = True, graph: str | None = None,
) -> onnx.ModelProto:
    """Write ``model``'s graph (see the module) for ``input_size`` (height, width) to ``path``.

    ``graph`` is one of :data:`GRAPHS`, by default :func:`graph_kind`; ``'frame'`` of a model
    with memory is its single-frame path (encoder → decoder). The file is checked with
    ``onnx.checker`` before it is returned. The model must be in eval mode on the CPU in
    float32; it carries ``model.model_config`` when built by the factory.
    """
    kind = graph or graph_kind(model)
    if kind not in GRAPHS or (kind == 'lma_step' and not isinstance(model, LMASegmenter)):
        raise ValueError(f'graph {kind!r}: choose {" or ".join(GRAPHS)} (lma_step needs memory)')
    graph = (StepGraph if kind == 'lma_step' else FrameGraph)(model, confidence).eval()
    inputs, input_names, axes = _example_inputs(model if kind == 'lma_step' else None,
                                                input_size)
    outputs = output_names(kind, confidence)
    for name in outputs:
        axes[name] = {0: 'batch'}
    path = Path(path)
    with warnings.catch_warnings():
        # The TorchScript exporter: it traces the shapes the graph needs as dynamic without
        # the onnxscript dependency of the newer exporter. Its deprecation notice, the
        # tracer's note that Python-side checks ran on example sizes and its note on strided
        # slices it leaves unfolded are expected.
        warnings.simplefilter('ignore', DeprecationWarning)
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        warnings.filterwarnings('ignore', message='Constant folding')
        torch.onnx.export(
            graph, inputs, str(path), dynamo=False, opset_version=OPSET,
            input_names=input_names, output_names=outputs, dynamic_axes=axes,
            do_constant_folding=True,
        )
    proto = onnx.load(str(path))
    config = getattr(model, 'model_config', None)
    metadata = {
        'graph': kind,
        'graph_format': str(GRAPH_FORMAT),
        'model_config': json.dumps(config.to_dict() if config is not None else None),
        'input_size': json.dumps(list(input_size)),
        'class_names': json.dumps(list(CLASS_NAMES)),
        'palette': json.dumps([list(label.color) for label in TRAIN_LABELS]),
        'weights_sha256': weights_hash(model),
        'confidence': json.dumps(confidence),
    }
    del proto.metadata_props[:]
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(path))
    return proto


def read_metadata(proto: onnx.ModelProto) -> dict[str, str]:
    """Return the file's metadata_props as a dict."""
    return {entry.key: entry.value for entry in proto.metadata_props}
