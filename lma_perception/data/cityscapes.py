"""Reader for Cityscapes-style video trees: real Cityscapes and the synthetic generator's alike.

A *tree* is a folder holding ``leftImg8bit_sequence/<split>/<city>/`` (all frames of every
snippet) and ``gtFine/<split>/<city>/`` (labels of the annotated frames), optionally
``gtFineDense`` (labels for every frame) and ``sequenceInfo`` (degradations), as the synthetic
generator writes them. A tree without ``leftImg8bit_sequence`` may use ``leftImg8bit`` (annotated
frames only: single frames work, clips and streams get just those frames).

Cameras: a root that is itself a tree is one camera, named after its folder unless a name is
given; otherwise every sub-folder that is a tree is a camera named after that sub-folder (the
synthetic layout ``<root>/<camera>/leftImg8bit_sequence/...``).

A *sequence* is a run of consecutive frame numbers of one ``<city>_<seq>`` (real Cityscapes keeps
several 30-frame snippets under one sequence number). Three ways to read:

- :meth:`CityscapesTree.annotated` and :meth:`CityscapesTree.load`: single annotated frames;
- :meth:`CityscapesTree.clip`: the annotated frame and the T frames before it (training samples
  of temporal models), also as the map-style :class:`ClipDataset`;
- :meth:`CityscapesTree.stream`: whole sequences in time order, cameras interleaved per time
  step, as a live rig would deliver them.

Images are resized to a working size with area averaging when shrinking (like PIL's bilinear
filter) and bilinear interpolation otherwise; labels with nearest neighbour. Labels are train ids
(``_gtFine_labelTrainIds.png``, or ``_gtFine_labelIds.png`` mapped through the lookup table).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

import cv2
import numpy as np

from lma_perception.labels import ID_TO_TRAIN_ID

IMAGE_FOLDERS = ('leftImg8bit_sequence', 'leftImg8bit')
_IMAGE_NAME = re.compile(r'^(?P<city>.+)_(?P<sequence>\d{6})_(?P<frame>\d{6})_leftImg8bit\.png$')


class CityscapesError(ValueError):
    """A Cityscapes tree is missing, incomplete or holds unreadable files."""


def frame_stem(city: str, sequence: int, frame: int) -> str:
    """``<city>_<sequence:06d>_<frame:06d>``, the Cityscapes file-name stem."""
    return f'{city}_{sequence:06d}_{frame:06d}'


def sequence_info_file(tree: Path, split: str, city: str, sequence: int) -> Path:
    """Return the path of a sequence's sidecar (the synthetic generator's degradations, poses)."""
    return tree / 'sequenceInfo' / split / city / f'{city}_{sequence:06d}_sequenceInfo.json'


@dataclass(frozen=True)
class FrameFiles:
    """Where one frame's image and labels are on disk."""

    camera: str
    city: str
    sequence: int
    frame: int
    image: Path
    labels: Path | None        # gtFine train ids or label ids (annotated frames only)
    dense_labels: Path | None  # gtFineDense train ids

    @property
    def name(self) -> str:
        """``<city>_<sequence:06d>_<frame:06d>``, the Cityscapes file-name stem."""
        return frame_stem(self.city, self.sequence, self.frame)


@dataclass(frozen=True)
class SequenceFiles:
    """One camera's run of consecutive frames of a ``<city>_<sequence>``."""

    camera: str
    city: str
    sequence: int
    frames: tuple[FrameFiles, ...]
    degradations: dict[int, dict | None] | None  # per frame number, when the tree records it

    @property
    def name(self) -> str:
        """``<city>_<sequence:06d>_<first frame:06d>``, unique within a camera and split."""
        return frame_stem(self.city, self.sequence, self.frames[0].frame)


@dataclass(frozen=True)
class Frame:
    """One loaded camera frame."""

    camera: str
    city: str
    sequence: int
    frame: int
    sequence_name: str
    image: np.ndarray                 # H×W×3 uint8 RGB
    labels: np.ndarray | None         # H×W uint8 train ids, annotated frames only
    dense_labels: np.ndarray | None   # H×W uint8 train ids, when the tree has dense labels
    degradation: dict | None          # what degraded this frame (synthetic trees)
    degraded: bool | None             # None when the tree does not record degradations

    @property
    def name(self) -> str:
        """``<city>_<sequence:06d>_<frame:06d>``, the Cityscapes file-name stem."""
        return frame_stem(self.city, self.sequence, self.frame)


class CityscapesTree:
    """Index of one split of a Cityscapes-style tree, for one or more cameras.

    ``size`` is the working (height, width) every image and label is resized to, or None for
    the stored size. ``cameras`` picks cameras by name (default: all); ``camera_name`` names the
    camera of a single-camera root (default: the root folder's name).
    """

    def __init__(self, root: str | Path, split: str = 'val', *,
                 cameras: Sequence[str] | None = None, camera_name: str | None = None,
                 size: tuple[int, int] | None = None) -> None:
        self.root, self.split = Path(root), split
        if size is not None and (len(size) != 2 or min(size) < 1):
            raise CityscapesError(f'size must be (height, width) > 0, got {size}')
        self.size = None if size is None else (int(size[0]), int(size[1]))
        trees = _camera_trees(self.root, camera_name)
        if cameras is not None:
            missing = [c for c in cameras if c not in trees]
            if missing:
                raise CityscapesError(f'camera(s) {", ".join(missing)} not in {self.root}; '
                                      f'found: {", ".join(trees)}')
            trees = {c: trees[c] for c in cameras}
        self.cameras: tuple[str, ...] = tuple(trees)
        self._sequences = {camera: _index(tree, split, camera) for camera, tree in trees.items()}
        self._owner = {files: sequence for sequences in self._sequences.values()
                       for sequence in sequences for files in sequence.frames}
        if not any(self._sequences.values()):
            raise CityscapesError(f'no images of split {split!r} under {self.root} (looked for '
                                  f'{" or ".join(IMAGE_FOLDERS)}/{split}/<city>/*.png)')

    def sequences(self, camera: str | None = None) -> list[SequenceFiles]:
        """Return the sequences of one camera (default: every camera, camera by camera)."""
        cameras = self.cameras if camera is None else (camera,)
        return [s for c in cameras for s in self._sequences[c]]

    def annotated(self, camera: str | None = None) -> list[FrameFiles]:
        """Return every frame with gtFine labels, in sequence order."""
        return [f for s in self.sequences(camera) for f in s.frames if f.labels is not None]

    def load(self, files: FrameFiles) -> Frame:
        """Read one frame's image and labels, resized to the working size."""
        sequence = self._sequence_of(files)
        degradation = None
        degraded = None
        if sequence.degradations is not None:
            degradation = sequence.degradations.get(files.frame)
            degraded = degradation is not None
        return Frame(
            camera=files.camera, city=files.city, sequence=files.sequence, frame=files.frame,
            sequence_name=sequence.name, image=self._image(files.image),
            labels=None if files.labels is None else self._labels(files.labels),
            dense_labels=None if files.dense_labels is None else self._labels(files.dense_labels),
            degradation=degradation, degraded=degraded,
        )

    def clip(self, files: FrameFiles, memory_length: int) -> list[Frame]:
        """Load ``files`` and the ``memory_length`` frames before it, oldest first."""
        sequence = self._sequence_of(files)
        position = sequence.frames.index(files)
        if position < memory_length:
            raise CityscapesError(
                f'{files.name} ({files.camera}) has {position} earlier frame(s) in its sequence, '
                f'{memory_length} needed (is leftImg8bit_sequence present?)')
        return [self.load(f) for f in sequence.frames[position - memory_length:position + 1]]

    def stream(self) -> Iterator[Frame]:
        """Yield every frame of the split in time order.

        Sequence by sequence, frame by frame, and within a time step camera by camera (the
        cameras of a rig share sequence names and frame numbers).
        """
        steps: dict[tuple[str, int], list[FrameFiles]] = {}
        order: list[str] = []
        for camera in self.cameras:
            for sequence in self._sequences[camera]:
                if sequence.name not in order:
                    order.append(sequence.name)
                for files in sequence.frames:
                    steps.setdefault((sequence.name, files.frame), []).append(files)
        rank = {name: i for i, name in enumerate(sorted(order))}
        for key in sorted(steps, key=lambda k: (rank[k[0]], k[1])):
            for files in steps[key]:
                yield self.load(files)

    def _sequence_of(self, files: FrameFiles) -> SequenceFiles:
        try:
            return self._owner[files]
        except KeyError:
            raise CityscapesError(f'{files.name} ({files.camera}) is not part of this tree '
                                  f'({self.root}, {self.split})') from None

    def _image(self, path: Path) -> np.ndarray:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise CityscapesError(f'cannot read image {path}')
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        if self.size is None or image.shape[:2] == self.size:
            return image
        height, width = self.size
        shrink = height <= image.shape[0] and width <= image.shape[1]
        return cv2.resize(image, (width, height),
                          interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)

    def _labels(self, path: Path) -> np.ndarray:
        labels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if labels is None:
            raise CityscapesError(f'cannot read label image {path}')
        if labels.ndim != 2 or labels.dtype != np.uint8:
            raise CityscapesError(f'{path}: expected a single-channel 8-bit label image, got '
                                  f'shape {labels.shape} {labels.dtype}')
        if not path.name.endswith('_labelTrainIds.png'):
            labels = ID_TO_TRAIN_ID[labels]
        if self.size is None or labels.shape == self.size:
            return labels
        return cv2.resize(labels, self.size[::-1], interpolation=cv2.INTER_NEAREST)


@dataclass(frozen=True)
class Clip:
    """A training sample: T + 1 consecutive frames ending at an annotated frame."""

    images: np.ndarray                # (T + 1)×H×W×3 uint8 RGB, oldest first
    labels: np.ndarray                # H×W uint8 train ids of the last frame
    dense_labels: np.ndarray | None   # (T + 1)×H×W uint8 train ids, when the tree has them
    degraded: tuple[bool | None, ...]
    name: str                         # the annotated frame's stem
    camera: str


class ClipDataset:
    """Map-style dataset of clips (usable with ``torch.utils.data.DataLoader`` as is)."""

    def __init__(self, tree: CityscapesTree, memory_length: int) -> None:
        if memory_length < 0:
            raise ValueError(f'memory_length must be >= 0, got {memory_length}')
        self.tree, self.memory_length = tree, memory_length
        self.samples = [f for s in tree.sequences() for i, f in enumerate(s.frames)
                        if f.labels is not None and i >= memory_length]
        if not self.samples:
            raise CityscapesError(f'no annotated frame with {memory_length} earlier frames in '
                                  f'{tree.root} ({tree.split})')

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Clip:
        files = self.samples[index]
        frames = self.tree.clip(files, self.memory_length)
        dense = None
        if all(f.dense_labels is not None for f in frames):
            dense = np.stack([f.dense_labels for f in frames])
        return Clip(np.stack([f.image for f in frames]), frames[-1].labels, dense,
                    tuple(f.degraded for f in frames), files.name, files.camera)


def _is_tree(folder: Path) -> bool:
    return any((folder / name).is_dir() for name in IMAGE_FOLDERS)


def _camera_trees(root: Path, camera_name: str | None) -> dict[str, Path]:
    if not root.is_dir():
        raise CityscapesError(f'no such folder: {root}')
    if _is_tree(root):
        return {camera_name or root.resolve().name: root}
    trees = {child.name: child for child in sorted(root.iterdir())
             if child.is_dir() and _is_tree(child)}
    if not trees:
        raise CityscapesError(f'{root} is not a Cityscapes tree: no {" or ".join(IMAGE_FOLDERS)} '
                              'folder in it or in its sub-folders')
    return trees


def _index(tree: Path, split: str, camera: str) -> list[SequenceFiles]:
    """Every sequence of a camera's split, sorted by city, sequence number and first frame."""
    image_root = next((tree / name / split for name in IMAGE_FOLDERS
                       if (tree / name / split).is_dir()), None)
    if image_root is None:
        return []
    frames = []
    for city_dir in sorted(p for p in image_root.iterdir() if p.is_dir()):
        for path in city_dir.iterdir():
            match = _IMAGE_NAME.match(path.name)
            if match:
                frames.append((match['city'], int(match['sequence']), int(match['frame']), path))
    frames.sort()
    labels = _label_files(tree / 'gtFine' / split)
    dense = _label_files(tree / 'gtFineDense' / split)
    sequences = []
    for (city, number), members in groupby(frames, key=lambda f: (f[0], f[1])):
        members = list(members)
        degradations = _degradations(sequence_info_file(tree, split, city, number))
        # Split the frames of one sequence number into runs of consecutive frame numbers.
        run: list[FrameFiles] = []
        for _, _, frame, path in members:
            stem = frame_stem(city, number, frame)
            files = FrameFiles(camera, city, number, frame, path, labels.get(stem),
                               dense.get(stem))
            if run and frame != run[-1].frame + 1:
                sequences.append(SequenceFiles(camera, city, number, tuple(run), degradations))
                run = []
            run.append(files)
        sequences.append(SequenceFiles(camera, city, number, tuple(run), degradations))
    return sequences


def _label_files(folder: Path) -> dict[str, Path]:
    """Label file per frame stem, train ids preferred over label ids."""
    found: dict[str, Path] = {}
    if not folder.is_dir():
        return found
    for suffix in ('_gtFine_labelIds.png', '_gtFine_labelTrainIds.png'):  # later wins
        for path in folder.glob(f'*/*{suffix}'):
            found[path.name[:-len(suffix)]] = path
    return found


def _degradations(path: Path) -> dict[int, dict | None] | None:
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text())
        return {int(f['frame']): f.get('degradation') for f in info['frames']}
    except (ValueError, KeyError, TypeError) as error:
        raise CityscapesError(f'{path}: not a sequence sidecar ({error})') from None
