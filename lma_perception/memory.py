"""Per-stream temporal memory: the last T (key, value) maps of one camera, owned by the caller.

The model holds weights, not streams: each camera has its own :class:`MemoryBank`, which lives
on the model's device and is passed to the model as a :class:`MemoryBatch` (the banks of one
batch stacked, with the number of frames each holds). As in LMA, the memory is a FIFO: a frame
is written after it has been segmented, so a frame never reads itself.

Write policies:

- ``'always'`` (the paper): every frame is written.
- ``'adaptive'``: a frame is written only when its key map differs enough from the last one
  written, measured as 1 − cosine similarity of the two key maps, each less its channel means
  (so that the measure follows the image content, not the keys' constant part). A static scene
  then keeps older, still valid frames instead of T copies of the same view. The threshold has
  to be tuned on validation data; :data:`DEFAULT_WRITE_THRESHOLD` is a starting point. Each
  decision reads one number back from the device.

Slots are a ring buffer allocated on the first write: writing overwrites the oldest frame in
place, and a batch of one stream reads the buffer without copying it. The attention is a joint
softmax over all slots, so slot order does not matter to the read; :meth:`MemoryBank.frames`
gives the frames in time order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.nn.functional import cosine_similarity, pad

WRITE_POLICIES = ('always', 'adaptive')
DEFAULT_MEMORY_LENGTH = 4
# The model was trained with T = 3 and is read at 4; far longer memories only cost device memory
# (2.6 MB a frame and camera at 512×1024 in fp32) and a slower read. A hard cap for any machine;
# the node also checks what fits the device (runtime/memory_budget.py).
MAX_MEMORY_LENGTH = 64
DEFAULT_WRITE_THRESHOLD = 0.02
WRITE_THRESHOLD_RANGE = (0.0, 2.0)  # 1 − cosine similarity


def check_memory_settings(length: int | None, policy: str, threshold: float) -> None:
    """Raise a ValueError naming the first setting a memory cannot have (`length` None: any).

    The one check of these settings: the memory, the engine and the node parameters use it.
    """
    if length is not None and not 1 <= length <= MAX_MEMORY_LENGTH:
        raise ValueError(f'memory length must be in [1, {MAX_MEMORY_LENGTH}], got {length}')
    if policy not in WRITE_POLICIES:
        raise ValueError(
            f'unknown write policy {policy!r}; choose one of {", ".join(WRITE_POLICIES)}'
        )
    low, high = WRITE_THRESHOLD_RANGE
    if not low <= threshold <= high:
        raise ValueError(
            f'write threshold is a 1 - cosine distance in [{low}, {high}], got {threshold}'
        )


def _centred(key: torch.Tensor) -> torch.Tensor:
    """Flatten a key map less each channel's mean over the image.

    Key maps share a large constant part (the conv biases, the scene's average); without it
    the cosine measures how the image content changed rather than being close to 1 always.
    """
    key = key.float()
    return (key - key.mean((-2, -1), keepdim=True)).flatten()


class MemoryBank:
    """FIFO memory of the last ``length`` (key, value) maps of one stream."""

    def __init__(
        self, length: int = DEFAULT_MEMORY_LENGTH, *, policy: str = 'always',
        threshold: float = DEFAULT_WRITE_THRESHOLD,
    ) -> None:
        check_memory_settings(length, policy, threshold)
        self.length = length
        self.policy = policy
        self.threshold = threshold
        self.writes = 0
        self.writes_skipped = 0
        self._keys: torch.Tensor | None = None  # length×Dk×h×w ring buffer
        self._values: torch.Tensor | None = None  # length×Dv×h×w ring buffer
        self._fill = 0
        self._next = 0  # slot the next write goes to

    @property
    def fill(self) -> int:
        """Number of frames held (0 … length)."""
        return self._fill

    @property
    def nbytes(self) -> int:
        """Bytes of device memory held by this stream's keys and values."""
        if self._keys is None or self._values is None:
            return 0
        return self._keys.nbytes + self._values.nbytes

    def reset(self) -> None:
        """Forget every frame and free the buffers; the write counters keep counting."""
        self._keys = self._values = None
        self._fill = self._next = 0

    def novelty(self, key: torch.Tensor) -> float:
        """1 − cosine similarity between ``key`` and the last key written (1.0 when empty)."""
        if self._keys is None or self._fill == 0:
            return 1.0
        last = self._keys[(self._next - 1) % self.length]
        similarity = cosine_similarity(_centred(key), _centred(last), dim=0)
        return 1.0 - float(similarity)

    def write(self, key: torch.Tensor, value: torch.Tensor) -> bool:
        """Store one frame's Dk×h×w key and Dv×h×w value per the policy; True if written."""
        if key.dim() != 3 or value.dim() != 3 or key.shape[1:] != value.shape[1:]:
            raise ValueError(
                'expected a Dk×h×w key and a Dv×h×w value of the same size, got '
                f'{tuple(key.shape)} and {tuple(value.shape)}'
            )
        if self._keys is not None and self._values is not None and (
            key.shape != self._keys.shape[1:] or value.shape != self._values.shape[1:]
        ):
            raise ValueError(
                f'this memory holds maps of {tuple(self._keys.shape[1:])} and '
                f'{tuple(self._values.shape[1:])}, got {tuple(key.shape)} and '
                f'{tuple(value.shape)}: reset() the memory when the input size changes'
            )
        if self.policy == 'adaptive' and self.novelty(key) <= self.threshold:
            self.writes_skipped += 1
            return False
        # Banks serve inference only (training reads clips, see LMASegmenter.forward_clip), so
        # the buffers are inference tensors whichever mode the caller runs in.
        with torch.inference_mode():
            if self._keys is None or self._values is None:
                # Zeros, so that the slots not yet written are finite (see MemoryBatch). Keys
                # channels-first and values channels-last: the layouts the memory read gathers
                # its windows from without transposing.
                self._keys = key.new_zeros((self.length, *key.shape))
                self._values = value.new_zeros((self.length, *value.shape)).contiguous(
                    memory_format=torch.channels_last
                )
            self._keys[self._next].copy_(key)
            self._values[self._next].copy_(value)
        self._next = (self._next + 1) % self.length
        self._fill = min(self._fill + 1, self.length)
        self.writes += 1
        return True

    def frames(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Return the (key, value) maps held, oldest first."""
        if self._keys is None or self._values is None:
            return []
        first = (self._next - self._fill) % self.length
        slots = [(first + i) % self.length for i in range(self._fill)]
        return [(self._keys[s], self._values[s]) for s in slots]

    def slots(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the first ``count`` slots' keys and values (count×D×h×w), zero-padded.

        Frames are written to slots 0, 1, … until the buffer is full, so the slots holding
        frames are always the first :attr:`fill` ones.
        """
        if self._keys is None or self._values is None:
            raise ValueError('this memory is empty')
        if count <= self.length:
            return self._keys[:count], self._values[:count]
        extra = (0, 0, 0, 0, 0, 0, 0, count - self.length)
        return pad(self._keys, extra), pad(self._values, extra)


@dataclass(frozen=True)
class MemoryBatch:
    """The memories of a batch of streams, stacked for one batched read.

    ``keys`` is B×T×Dk×h×w and ``values`` B×T×Dv×h×w, with T the largest fill in the batch;
    stream b holds frames in its first ``fill[b]`` slots and zeros in the others.
    """

    keys: torch.Tensor
    values: torch.Tensor
    fill: tuple[int, ...]

    @property
    def slot_count(self) -> int:
        """Slots per stream (T)."""
        return self.keys.shape[1]

    @property
    def full(self) -> bool:
        """True when every stream holds a frame in every slot."""
        return all(f == self.slot_count for f in self.fill)

    def valid(self) -> torch.Tensor:
        """B×T bool on the keys' device: which slots hold a frame."""
        fill = torch.tensor(self.fill, device=self.keys.device)
        return torch.arange(self.slot_count, device=self.keys.device) < fill[:, None]

    def select(self, indices: Sequence[int]) -> MemoryBatch:
        """Return the memories of the streams at ``indices``, in that order."""
        if list(indices) == list(range(len(self.fill))):
            return self
        index = torch.tensor(indices, device=self.keys.device)
        return MemoryBatch(
            self.keys.index_select(0, index), self.values.index_select(0, index),
            tuple(self.fill[i] for i in indices),
        )

    @classmethod
    def from_frames(cls, keys: torch.Tensor, values: torch.Tensor) -> MemoryBatch:
        """Make a batch whose every stream holds all T frames of B×T×D×h×w keys, values."""
        return cls(keys, values, (keys.shape[1],) * keys.shape[0])

    @classmethod
    def from_banks(cls, banks: Sequence[MemoryBank | None]) -> MemoryBatch | None:
        """Stack the banks of a batch (None: a stream without memory); None if all empty."""
        fills = tuple(bank.fill if bank is not None else 0 for bank in banks)
        slot_count = max(fills, default=0)
        if slot_count == 0:
            return None
        stacked = [b.slots(slot_count) if b is not None and b.fill else None for b in banks]
        if len(banks) == 1:
            keys, values = stacked[0]
            return cls(keys.unsqueeze(0), values.unsqueeze(0), fills)
        like_keys, like_values = next(s for s in stacked if s is not None)
        sizes = {(s[0].shape[1:], s[1].shape[1:]) for s in stacked if s is not None}
        if len(sizes) > 1:
            raise ValueError(
                f'memories of one batch must hold maps of one size, got {sorted(sizes)}'
            )
        keys = torch.stack([s[0] if s else torch.zeros_like(like_keys) for s in stacked])
        # Stacked channels-last, as the banks hold them (see MemoryBank.write).
        values = torch.stack([
            (s[1] if s else torch.zeros_like(like_values)).permute(0, 2, 3, 1) for s in stacked
        ]).permute(0, 1, 4, 2, 3)
        return cls(keys, values, fills)
