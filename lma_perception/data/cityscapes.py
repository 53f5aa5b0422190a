"""Reader for Cityscapes-style video trees: real Cityscapes and the synthetic generator's alike.

A *tree* (one camera) is made of part folders: ``leftImg8bit_sequence/<split>/<city>/`` (all
frames of every snippet) and/or ``leftImg8bit/<split>/<city>/`` (the annotated frames),
``gtFine/<split>/<city>/`` (labels and instance ids of the annotated frames), optionally
``gtFineDense`` (labels for every frame) and ``sequenceInfo`` (degradations), as the synthetic
generator writes them. Part folders are found by walking down from the root (up to
``SEARCH_DEPTH`` levels, never into a part folder), so the download's zips unpacked each into
its own folder (``leftImg8bit_trainvaltest/leftImg8bit``, ``gtFine_trainvaltest/gtFine``,
``leftImg8bit_sequence_trainvaltest/leftImg8bit_sequence``) form one tree like the flat layout.

Every annotated frame is read: its image comes from its snippet in ``leftImg8bit_sequence``
when there is one (with the frames before it), else from ``leftImg8bit`` as a sequence of one
frame. An annotated frame with no image at all is left out with a warning naming it.

Cameras: where each part folder occurs once under the root, the root is one camera, named after
the deepest folder holding all parts unless a name is given; where parts repeat, every
sub-folder is looked at the same way (the synthetic layout
``<root>/<camera>/leftImg8bit_sequence/...``, one camera per sub-folder).

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
import logging
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

import cv2
import numpy as np

from lma_perception.labels import ID_TO_TRAIN_ID

IMAGE_FOLDERS = ('leftImg8bit_sequence', 'leftImg8bit')  # a frame's image: the first that has it
PART_FOLDERS = (*IMAGE_FOLDERS, 'gtFine', 'gtFineDense', 'sequenceInfo')
SEARCH_DEPTH = 3  # folder levels walked below a root to find its part folders
_LOG = logging.getLogger(__name__)
_IMAGE_NAME = re.compile(r'^(?P<city>.+)_(?P<sequence>\d{6})_(?P<frame>\d{6})_leftImg8bit\.png$')


class CityscapesError(ValueError):
    """A Cityscapes tree is missing, incomplete or holds unreadable files."""


def frame_stem(city: str, sequence: int, frame: int) -> str:
    """``<city>_<sequence:06d>_<frame:06d>``, the Cityscapes file-name stem."""
    return f'{city}_{sequence:06d}_{frame:06d}'


def sequence_info_file(tree: Path, split: str, city: str, sequence: int) -> Path:
    """Return the path of a sequence's sidecar (the synthetic generator's degradations, poses)."""
    return sequence_info_path(tree / 'sequenceInfo', split, city, sequence)


def sequence_info_path(folder: Path, split: str, city: str, sequence: int) -> Path:
    """Return the sidecar of a sequence inside a ``sequenceInfo`` part folder."""
    return folder / split / city / f'{city}_{sequence:06d}_sequenceInfo.json'


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
    instances: Path | None = None  # gtFine instance ids (annotated frames of real Cityscapes)

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
    instances: np.ndarray | None = None  # H×W uint16 Cityscapes instance ids, where they exist

    @property
    def name(self) -> str:
        """``<city>_<sequence:06d>_<frame:06d>``, the Cityscapes file-name stem."""
        return frame_stem(self.city, self.sequence, self.frame)


class CityscapesTree:
    """Index of one split of a Cityscapes-style tree, for one or more cameras.

    ``size`` is the working (height, width) every image and label is resized to, or None for
    the stored size. ``cameras`` picks cameras by name (default: all); ``camera_name`` names the
    camera of a single-camera root (default: the root folder's name). A tree without any image,
    or with nothing labelled, raises `CityscapesError` naming the folders looked in.
    """

    def __init__(self, root: str | Path, split: str = 'val', *,
                 cameras: Sequence[str] | None = None, camera_name: str | None = None,
                 size: tuple[int, int] | None = None) -> None:
        self.root, self.split = Path(root), split
        if size is not None and (len(size) != 2 or min(size) < 1):
            raise CityscapesError(f'size must be (height, width) > 0, got {size}')
        self.size = None if size is None else (int(size[0]), int(size[1]))
        looked_in: list[Path] = []
        trees = _camera_trees(self.root, camera_name, looked_in)
        if cameras is not None:
            missing = [c for c in cameras if c not in trees]
            if missing:
                raise CityscapesError(f'camera(s) {", ".join(missing)} not in {self.root}; '
                                      f'found: {", ".join(trees)}')
            trees = {c: trees[c] for c in cameras}
        self.cameras: tuple[str, ...] = tuple(trees)
        self._sequences = {}
        self.skipped: list[str] = []  # annotated frames without an image, by name
        for camera, parts in trees.items():
            looked_in += [parts[name] / split for name in (*IMAGE_FOLDERS, 'gtFine')
                          if name in parts]
            self._sequences[camera] = _index(parts, split, camera, self.skipped)
        self._owner = {files: sequence for sequences in self._sequences.values()
                       for sequence in sequences for files in sequence.frames}
        folders = ', '.join(f'{folder}{"" if folder.is_dir() else " (missing)"}'
                            for folder in dict.fromkeys(looked_in))
        if not any(self._sequences.values()):
            raise CityscapesError(f'no images of split {split!r} under {self.root} (looked for '
                                  f'{" or ".join(IMAGE_FOLDERS)}/{split}/<city>/*.png in: '
                                  f'{folders})')
        if not any(f.labels is not None or f.dense_labels is not None
                   for s in self.sequences() for f in s.frames):
            raise CityscapesError(
                f'nothing labelled in split {split!r} under {self.root}: no image has a '
                f'gtFine/{split}/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png (or '
                f'_labelTrainIds.png); folders looked in: {folders}')

    def annotated_counts(self) -> tuple[int, int]:
        """Annotated frames (with earlier frames of a snippet, scored as single frames)."""
        with_snippet = single = 0
        for sequence in self.sequences():
            for position, files in enumerate(sequence.frames):
                if files.labels is not None:
                    with_snippet += position > 0
                    single += position == 0
        return with_snippet, single

    def describe(self) -> str:
        """One line on the annotated frames found and how each is read."""
        with_snippet, single = self.annotated_counts()
        skipped = f', {len(self.skipped)} left out (no image)' if self.skipped else ''
        return (f'{self.root} ({self.split}): {with_snippet + single} annotated frames: '
                f'{with_snippet} with earlier frames of their snippet, {single} as single '
                f'frames (no snippet){skipped}')

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
            instances=None if files.instances is None else self._instances(files.instances),
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

    def _instances(self, path: Path) -> np.ndarray:
        instances = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if instances is None or instances.ndim != 2 or instances.dtype not in (np.uint8,
                                                                                np.uint16):
            raise CityscapesError(f'{path}: expected a single-channel 16-bit instance-id image')
        instances = instances.astype(np.uint16)
        if self.size is None or instances.shape == self.size:
            return instances
        return cv2.resize(instances, self.size[::-1], interpolation=cv2.INTER_NEAREST)

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


def _walk(folder: Path, depth: int, visited: list[Path]) -> dict[str, list[Path]]:
    """Part folders under ``folder``, ``depth`` levels down, never looking inside one."""
    visited.append(folder)
    found: dict[str, list[Path]] = {}
    try:
        children = sorted(p for p in folder.iterdir() if p.is_dir() and p.name[0] != '.')
    except OSError:
        return found
    for child in children:
        if child.name in PART_FOLDERS:
            found.setdefault(child.name, []).append(child)
        elif depth > 1:
            for name, paths in _walk(child, depth - 1, visited).items():
                found.setdefault(name, []).extend(paths)
    return found


def _cameras(folder: Path, depth: int, visited: list[Path]) -> dict[Path, dict[str, Path]]:
    """Camera folder → its part folders, for every camera under ``folder``."""
    found = _walk(folder, depth, visited)
    if not any(name in found for name in IMAGE_FOLDERS):
        return {}
    if all(len(paths) == 1 for paths in found.values()):
        home = Path(os.path.commonpath([paths[0].parent for paths in found.values()]))
        return {home: {name: paths[0] for name, paths in found.items()}}
    cameras: dict[Path, dict[str, Path]] = {}
    for child in sorted(p for p in folder.iterdir() if p.is_dir() and p.name not in PART_FOLDERS):
        cameras |= _cameras(child, depth - 1, visited)
    return cameras


def _camera_trees(root: Path, camera_name: str | None,
                  visited: list[Path]) -> dict[str, dict[str, Path]]:
    """Camera name → its part folders."""
    if not root.is_dir():
        raise CityscapesError(f'no such folder: {root}')
    cameras = _cameras(root, SEARCH_DEPTH, visited)
    if not cameras:
        looked = ', '.join(str(p) for p in dict.fromkeys(visited))
        raise CityscapesError(f'{root} is not a Cityscapes tree: no {" or ".join(IMAGE_FOLDERS)} '
                              f'folder in it or below it (folders looked in: {looked})')
    if len(cameras) == 1:
        ((home, parts),) = cameras.items()
        return {camera_name or home.resolve().name: parts}
    return {home.name: parts for home, parts in cameras.items()}


def _images(parts: dict[str, Path], split: str) -> dict[tuple[str, int, int], Path]:
    """Image per (city, sequence, frame); a snippet's frame wins over the same single frame."""
    images: dict[tuple[str, int, int], Path] = {}
    for name in reversed(IMAGE_FOLDERS):
        root = parts[name] / split if name in parts else None
        if root is None or not root.is_dir():
            continue
        for city_dir in sorted(p for p in root.iterdir() if p.is_dir()):
            for path in city_dir.iterdir():
                match = _IMAGE_NAME.match(path.name)
                if match:
                    images[match['city'], int(match['sequence']), int(match['frame'])] = path
    return images


def _index(parts: dict[str, Path], split: str, camera: str,
           skipped: list[str]) -> list[SequenceFiles]:
    """Every sequence of a camera's split, sorted by city, sequence number and first frame."""
    images = _images(parts, split)
    labels = _label_files(parts.get('gtFine'), split)
    instances = _label_files(parts.get('gtFine'), split, ('_gtFine_instanceIds.png',))
    dense = _label_files(parts.get('gtFineDense'), split)
    stems = {frame_stem(*key) for key in images}
    for stem in sorted(set(labels) - stems):
        skipped.append(stem)
        _LOG.warning('%s (%s): left out: gtFine labels %s but no image in %s', stem, camera,
                     labels[stem], ' or '.join(f'{name}/{split}' for name in IMAGE_FOLDERS))
    sequences = []
    info = parts.get('sequenceInfo')
    for (city, number), members in groupby(sorted(images), key=lambda key: key[:2]):
        degradations = None if info is None else _degradations(
            sequence_info_path(info, split, city, number))
        # Split the frames of one sequence number into runs of consecutive frame numbers.
        run: list[FrameFiles] = []
        for key in members:
            frame, stem = key[2], frame_stem(*key)
            files = FrameFiles(camera, city, number, frame, images[key], labels.get(stem),
                               dense.get(stem), instances.get(stem))
            if run and frame != run[-1].frame + 1:
                sequences.append(SequenceFiles(camera, city, number, tuple(run), degradations))
                run = []
            run.append(files)
        sequences.append(SequenceFiles(camera, city, number, tuple(run), degradations))
    return sequences


def _label_files(part: Path | None, split: str,
                 suffixes: Sequence[str] = ('_gtFine_labelIds.png', '_gtFine_labelTrainIds.png'),
                 ) -> dict[str, Path]:
    """File per frame stem in ``part/split/<city>/``; of several suffixes the last wins."""
    found: dict[str, Path] = {}
    if part is None or not (part / split).is_dir():
        return found
    for suffix in suffixes:
        for path in (part / split).glob(f'*/*{suffix}'):
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
