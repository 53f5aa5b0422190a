"""Training samples as tensors: single frames (stage 1) or clips of T + 1 frames (stage 2).

Augmentation follows the papers: a horizontal flip (p = 0.5) and a small random translation,
the same for every frame of a clip so that the memory still lines up with the current frame.
Each sample's randomness comes from (seed, epoch, index), so a run is reproducible with any
number of loader workers and after a resume.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from lma_perception.data.cityscapes import CityscapesTree, FrameFiles
from lma_perception.labels import IGNORE_INDEX, NUM_CLASSES

_LOG = logging.getLogger(__name__)


def sample_frames(
    tree: CityscapesTree, memory_length: int, *, dense_labels: bool
) -> list[FrameFiles]:
    """Return the frames that end a sample: labelled, with ``memory_length`` frames before.

    With ``dense_labels`` every frame that has dense ground truth counts, not only the annotated
    one of each sequence (synthetic trees label every frame).
    """
    return [
        files
        for sequence in tree.sequences()
        for position, files in enumerate(sequence.frames)
        if position >= memory_length
        and (files.labels is not None or (dense_labels and files.dense_labels is not None))
    ]


def degraded_targets(tree: CityscapesTree, samples: Sequence[FrameFiles]) -> list[bool]:
    """Return, per sample, whether its last frame is recorded as degraded (synthetic trees)."""
    degraded = {
        (sequence.camera, sequence.city, sequence.sequence, frame)
        for sequence in tree.sequences()
        for frame, degradation in (sequence.degradations or {}).items()
        if degradation is not None
    }
    return [(f.camera, f.city, f.sequence, f.frame) in degraded for f in samples]


class SegmentationSamples(Dataset):
    """Items are (images, labels): images float (T + 1)×3×H×W in [0, 1], labels int64 H×W.

    ``memory_length`` 0 gives single frames (T + 1 = 1).
    """

    def __init__(
        self, tree: CityscapesTree, memory_length: int, *, dense_labels: bool = False,
        augment: bool = False, translate_px: int = 2, seed: int = 0,
        limit: int | None = None,
    ) -> None:
        self.tree, self.memory_length = tree, memory_length
        self.augment, self.translate_px, self.seed = augment, translate_px, seed
        self.epoch = 0
        self.samples = sample_frames(tree, memory_length, dense_labels=dense_labels)
        short = [f.name for s in tree.sequences() for f in s.frames[:memory_length]
                 if f.labels is not None]
        if short:
            _LOG.warning('%s (%s): %d annotated frame(s) have fewer than %d earlier frames (no '
                         'leftImg8bit_sequence snippet) and are not used: %s', tree.root,
                         tree.split, len(short), memory_length, ', '.join(short))
        if limit is not None and limit < len(self.samples):
            # An even spread over the split rather than its first sequences.
            picks = np.linspace(0, len(self.samples) - 1, limit).round().astype(int)
            self.samples = [self.samples[i] for i in picks]
        if not self.samples:
            raise ValueError(
                f'no labelled frame with {memory_length} earlier frame(s) to train on; '
                f'{tree.describe()}'
            )

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        files = self.samples[index]
        frames = self.tree.clip(files, self.memory_length)
        last = frames[-1]
        labels = last.labels if last.labels is not None else last.dense_labels
        images = np.stack([frame.image for frame in frames])
        if self.augment:
            images, labels = self._augment(images, labels, index)
        images_t = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
        return images_t.float().div_(255.0), torch.from_numpy(labels.astype(np.int64))

    def _augment(
        self, images: np.ndarray, labels: np.ndarray, index: int
    ) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng((self.seed, self.epoch, index))
        if rng.random() < 0.5:
            images, labels = images[:, :, ::-1], labels[:, ::-1]
        dy, dx = rng.integers(-self.translate_px, self.translate_px + 1, size=2)
        return _shift(images, dy, dx, 0, axes=(1, 2)), _shift(labels, dy, dx, IGNORE_INDEX)


def _shift(array: np.ndarray, dy: int, dx: int, fill: int, axes: Sequence[int] = (0, 1)):
    """``array`` moved by (dy, dx) pixels along ``axes``, uncovered pixels set to ``fill``."""
    shifted = np.full_like(array, fill)
    source = [slice(None)] * array.ndim
    target = [slice(None)] * array.ndim
    for axis, step in zip(axes, (dy, dx), strict=True):
        size = array.shape[axis]
        source[axis] = slice(max(0, -step), size - max(0, step))
        target[axis] = slice(max(0, step), size - max(0, -step))
    shifted[tuple(target)] = array[tuple(source)]
    return shifted


def class_weights(samples: SegmentationSamples, max_samples: int = 200) -> torch.Tensor:
    """ENet-style class weights 1 / ln(1.10 + p_c) from label frequencies (void weighted 0).

    Returns NUM_CLASSES + 1 weights: the model's void output channel never is a target.
    """
    counts = np.zeros(NUM_CLASSES, dtype=np.int64)
    picks = np.linspace(0, len(samples) - 1, min(max_samples, len(samples))).round().astype(int)
    for index in picks:
        files = samples.samples[index]
        frame = samples.tree.load(files)
        labels = frame.labels if frame.labels is not None else frame.dense_labels
        counts += np.bincount(labels[labels < NUM_CLASSES], minlength=NUM_CLASSES)
    frequency = counts / max(counts.sum(), 1)
    weights = 1.0 / np.log(1.10 + frequency)
    return torch.tensor([*weights, 0.0], dtype=torch.float32)
