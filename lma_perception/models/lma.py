"""Local Memory Attention (Paul et al., IROS 2021) around any encoder–decoder segmenter.

LMA sits between an encoder and its decoder, on the encoder's output (stride 8, 128 channels
for ERFNet), and leaves both unchanged:

1. ``memory_kv`` maps the features of each past frame to a key (16-d) and a value (64-d) map,
   computed once per frame and kept in the caller's :class:`~lma_perception.memory.MemoryBank`.
2. ``query_kv`` maps the current frame's features to a query key and value; its key conv starts
   from the same weights as the memory key conv so that keys begin in one space.
3. The local memory read (``memory_read.py``): each pixel attends to a 21×21 window in each of
   the T memory frames, one joint softmax over all T·441 positions.
4. ``fusion`` gates the query value and the read memory into a map as wide as the encoder
   output, which the decoder takes as if it were the encoder output.

A stream with an empty memory (its first frame) runs the plain encoder → decoder path. The
wrapper is built from ``encoder.out_channels`` and ``encoder.stride`` and the decoder's
``num_classes``, so it serves any backbone with those attributes.

With ERFNet's 128-channel features LMA adds 627,872 parameters (key/value convs 184,480,
fusion 443,392). The optional per-slot gate (``slot_gate=True``, our addition, not in the
paper) adds :class:`SlotGate`'s few hundred more.

Parameter names differ from the published LMANet code; ``checkpoint.py`` maps them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn
from torch.nn.functional import conv2d, logsigmoid, relu

from lma_perception.memory import MemoryBatch
from lma_perception.models.erfnet import BN_EPS, check_input_size
from lma_perception.models.memory_kernels import local_memory_read
from lma_perception.models.memory_read import DEFAULT_WINDOW
from lma_perception.models.prediction import predict_labels


@dataclass(frozen=True)
class LMAConfig:
    """Hyper-parameters of the memory module (defaults: the paper's ERFNet setting)."""

    key_dim: int = 16
    value_dim: int = 64
    window: int = DEFAULT_WINDOW
    fusion_dropout: float = 0.3
    slot_gate: bool = False


class KeyValue(nn.Module):
    """Key and value maps of a feature map, each from a 3×3 conv."""

    def __init__(self, in_channels: int, key_dim: int, value_dim: int) -> None:
        super().__init__()
        self.key = nn.Conv2d(in_channels, key_dim, 3, padding=1)
        self.value = nn.Conv2d(in_channels, value_dim, 3, padding=1)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the key and value maps."""
        return self.key(features), self.value(features)


class GatedFusion(nn.Module):
    """Fuse the query value and the memory read through two sigmoid gates.

    ``a = ReLU(drop(BN(query)))``, ``b = ReLU(drop(BN(memory)))``, ``g = [a, b]``;
    ``out = ReLU(BN(conv(a) · σ(conv(g)) + conv(b) · σ(conv'(g))))``, all convs 3×3.
    """

    def __init__(self, value_dim: int, out_channels: int, dropout: float = 0.3) -> None:
        super().__init__()
        self.bn_query = nn.BatchNorm2d(value_dim, eps=BN_EPS)
        self.bn_memory = nn.BatchNorm2d(value_dim, eps=BN_EPS)
        self.dropout = nn.Dropout2d(dropout)
        self.conv_query = nn.Conv2d(value_dim, out_channels, 3, padding=1)
        self.conv_memory = nn.Conv2d(value_dim, out_channels, 3, padding=1)
        self.gate_query = nn.Conv2d(2 * value_dim, out_channels, 3, padding=1)
        self.gate_memory = nn.Conv2d(2 * value_dim, out_channels, 3, padding=1)
        self.bn_out = nn.BatchNorm2d(out_channels, eps=BN_EPS)

    def forward(self, query_value: torch.Tensor, memory_read: torch.Tensor) -> torch.Tensor:
        """Return the fused map."""
        a = relu(self.dropout(self.bn_query(query_value)))
        b = relu(self.dropout(self.bn_memory(memory_read)))
        # Both gates read the same input: one conv with the two weight sets stacked is
        # faster than two, and gives the same result.
        gates = conv2d(
            torch.cat([a, b], 1),
            torch.cat([self.gate_query.weight, self.gate_memory.weight]),
            torch.cat([self.gate_query.bias, self.gate_memory.bias]),
            padding=1,
        ).sigmoid()
        gate_a, gate_b = gates.chunk(2, 1)
        out = self.conv_query(a) * gate_a + self.conv_memory(b) * gate_b
        return relu(self.bn_out(out))


class SlotGate(nn.Module):
    """A learned soft gate per memory slot, returned as a log-gate to add to its logits.

    From the spatial means of the query key and of the slot's key, a two-layer MLP gives a
    gate g in (0, 1); adding log g to all logits of the slot scales its share of the joint
    softmax by g. It starts almost open (g ≈ 0.95).
    """

    def __init__(self, key_dim: int, hidden: int = 16) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(2 * key_dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        nn.init.constant_(self.mlp[2].bias, 3.0)

    def forward(self, query_key: torch.Tensor, memory_keys: torch.Tensor) -> torch.Tensor:
        """Return B×T log-gates for B×Dk×h×w query keys and B×T×Dk×h×w memory keys."""
        query = query_key.mean((-2, -1))  # B×Dk
        slots = memory_keys.mean((-2, -1))  # B×T×Dk
        pairs = torch.cat([query.unsqueeze(1).expand_as(slots), slots], -1)
        return logsigmoid(self.mlp(pairs).squeeze(-1))


class StepOutput(NamedTuple):
    """One streaming step: the logits and the current frame's memory entry."""

    logits: torch.Tensor
    memory_key: torch.Tensor
    memory_value: torch.Tensor


class LabelStep(NamedTuple):
    """One streaming step as deployed: uint8 labels (and confidence) and the memory entry."""

    labels: torch.Tensor
    confidence: torch.Tensor | None
    memory_key: torch.Tensor
    memory_value: torch.Tensor


class LMASegmenter(nn.Module):
    """An encoder–decoder segmenter with Local Memory Attention between the two.

    The encoder must expose ``out_channels`` and ``stride`` and the decoder ``num_classes``; the
    decoder must accept a map as wide as the encoder output. A decoder with a ``labels``
    method (ERFNet's) gives the labels itself (`prediction.predict_labels`).
    """

    def __init__(
        self, encoder: nn.Module, decoder: nn.Module, config: LMAConfig = LMAConfig()
    ) -> None:
        super().__init__()
        self.config = config
        self.num_classes: int = decoder.num_classes
        self.stride: int = encoder.stride
        channels = encoder.out_channels
        self.encoder = encoder
        self.decoder = decoder
        self.memory_kv = KeyValue(channels, config.key_dim, config.value_dim)
        self.query_kv = KeyValue(channels, config.key_dim, config.value_dim)
        with torch.no_grad():
            self.query_kv.key.weight.copy_(self.memory_kv.key.weight)
            self.query_kv.key.bias.copy_(self.memory_kv.key.bias)
        self.fusion = GatedFusion(config.value_dim, channels, config.fusion_dropout)
        self.slot_gate = SlotGate(config.key_dim) if config.slot_gate else None

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Return encoder features of B×3×H×W RGB images in [0, 1] (H, W: stride multiples)."""
        check_input_size(images.shape[-2], images.shape[-1], self.stride)
        return self.encoder(images)

    def memorize(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the memory key and value of each frame's features (what a bank stores)."""
        return self.memory_kv(features)

    def read_memory(self, query_key: torch.Tensor, memory: MemoryBatch) -> torch.Tensor:
        """Read the memory for each pixel of the query key map (B×Dv×h×w)."""
        slot_bias = self.slot_gate(query_key, memory.keys) if self.slot_gate else None
        return local_memory_read(
            query_key, memory.keys, memory.values,
            valid=None if memory.full else memory.valid(), slot_bias=slot_bias,
            window=self.config.window,
        )

    def fuse(self, query_value: torch.Tensor, memory_read: torch.Tensor) -> torch.Tensor:
        """Return the decoder input made of the query value and the memory read."""
        return self.fusion(query_value, memory_read)

    def decode(self, features: torch.Tensor) -> torch.Tensor:
        """Return class logits at input size."""
        return self.decoder(features)

    def decode_labels(
        self, features: torch.Tensor, *, confidence: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Return uint8 labels (and confidence) at input size: `decode`, then the argmax."""
        return predict_labels(self.decoder, features, confidence=confidence)

    def attend(self, features: torch.Tensor, memory: MemoryBatch | None) -> torch.Tensor:
        """Return the decoder input: fused with memory where a stream has some, else as is."""
        if memory is None:
            return features
        if len(memory.fill) != features.shape[0]:
            raise ValueError(
                f'the memory batch has {len(memory.fill)} streams for {features.shape[0]} images'
            )
        with_memory = [i for i, fill in enumerate(memory.fill) if fill]
        if not with_memory:
            return features
        if len(with_memory) == features.shape[0]:
            query_key, query_value = self.query_kv(features)
            return self.fuse(query_value, self.read_memory(query_key, memory))
        index = torch.tensor(with_memory, device=features.device)
        subset = features.index_select(0, index)
        query_key, query_value = self.query_kv(subset)
        fused = self.fuse(query_value, self.read_memory(query_key, memory.select(with_memory)))
        return features.index_copy(0, index, fused.to(features.dtype))

    def step(self, images: torch.Tensor, memory: MemoryBatch | None = None) -> StepOutput:
        """Segment one frame per stream and return the frames' memory entries to store."""
        features = self.encode(images)
        logits = self.decode(self.attend(features, memory))
        return StepOutput(logits, *self.memorize(features))

    def step_labels(
        self, images: torch.Tensor, memory: MemoryBatch | None = None, *,
        confidence: bool = False,
    ) -> LabelStep:
        """`step` with the labels instead of the logits, as the engine runs it."""
        features = self.encode(images)
        labels, scores = self.decode_labels(self.attend(features, memory), confidence=confidence)
        return LabelStep(labels, scores, *self.memorize(features))

    def forward(self, images: torch.Tensor, memory: MemoryBatch | None = None) -> torch.Tensor:
        """Return class logits of B×3×H×W images, each reading its stream's memory."""
        return self.decode(self.attend(self.encode(images), memory))

    def forward_clip(self, clips: torch.Tensor) -> torch.Tensor:
        """Return logits of the last frame of B×(T+1)×3×H×W clips, T earlier ones as memory.

        This is the training and clip-evaluation setting of the paper (the memory holds the T
        frames before the annotated one, oldest first).
        """
        batch, length = clips.shape[:2]
        if length < 2:
            raise ValueError(f'a clip needs at least 2 frames (memory + current), got {length}')
        features = self.encode(clips.flatten(0, 1))
        features = features.view(batch, length, *features.shape[1:])
        keys, values = self.memorize(features[:, :-1].flatten(0, 1))
        memory = MemoryBatch.from_frames(
            keys.view(batch, length - 1, *keys.shape[1:]),
            values.view(batch, length - 1, *values.shape[1:]),
        )
        return self.decode(self.attend(features[:, -1], memory))
