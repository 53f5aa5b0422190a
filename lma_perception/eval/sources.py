"""Recorded data as one time-ordered stream of `EvalFrame`s: Cityscapes-style trees and bags.

Trees (real Cityscapes or synthetic, one or several cameras) come through
`lma_perception.data.cityscapes`: annotated labels, instance ids, dense labels and degradation
flags when the tree has them. Bags come through `lma_perception.data.rosbag`: a frame's ground
truth is scored as an annotated frame, with its instance ids where recorded, and a frame is
clean or degraded when the bag records its degradation (bags written from synthetic trees do),
so such bags have the same clean/degraded split as the tree. Frames of a bag are named after
the Cityscapes stem it records, so predictions dumped from a bag pair with the tree's ground
truth; without one they are named ``bag_<sequence>_<frame>``.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from lma_perception.continuity import FrameKey
from lma_perception.data.cityscapes import CityscapesError, CityscapesTree, frame_stem
from lma_perception.data.rosbag import BagError, read_bag
from lma_perception.eval.evaluator import DatasetCounts, EvalFrame

# City name of the Cityscapes-style file names given to bag frames without a recorded stem.
BAG_CITY = 'bag'
_STEM = re.compile(r'^(?P<city>.+)_\d{6}_\d{6}$')


BAG_STORAGE_SUFFIXES = ('.mcap', '.db3')


class DatasetError(ValueError):
    """The data to evaluate is missing, empty or unreadable; the message says which and why."""


def is_bag(path: Path) -> bool:
    """Whether `path` is a rosbag2: a folder with metadata.yaml or storage files, or one file."""
    if path.is_dir():
        return (path / 'metadata.yaml').is_file() or any(
            child.suffix in BAG_STORAGE_SUFFIXES for child in path.iterdir()
        )
    return path.suffix in BAG_STORAGE_SUFFIXES


def tree_frames(tree: CityscapesTree) -> Iterator[EvalFrame]:
    """Every frame of a tree's split in time order, cameras interleaved per time step."""
    for frame in tree.stream():
        yield EvalFrame(
            camera=frame.camera, sequence=frame.sequence_name, image=frame.image,
            labels=frame.labels, dense_labels=frame.dense_labels, degraded=frame.degraded,
            city=frame.city, name=frame.name, instances=frame.instances,
        )


def bag_frames(path: Path) -> Iterator[EvalFrame]:
    """Every frame of a bag in time order; sequences restart where the bag's time jumps."""
    sequence: dict[str, int] = {}
    position: dict[str, int] = {}
    for frame in read_bag(path, require_ground_truth=True):
        # '' is a frame recorded as clean, None one whose degradation the bag does not record.
        degraded = None if frame.degradation is None else frame.degradation != ''
        if frame.sequence_start or frame.camera not in sequence:
            sequence[frame.camera] = sequence.get(frame.camera, -1) + 1
            position[frame.camera] = 0
        else:
            position[frame.camera] += 1
        number = sequence[frame.camera]
        stem = frame.stem and _STEM.match(frame.stem)
        yield EvalFrame(
            camera=frame.camera, sequence=f'{number:06d}', image=frame.image,
            labels=frame.ground_truth, dense_labels=None, degraded=degraded,
            city=stem['city'] if stem else BAG_CITY,
            name=stem[0] if stem else frame_stem(BAG_CITY, number, position[frame.camera]),
            key=FrameKey(frame.stamp_ns, frame.frame_id, *frame.image.shape[:2]),
            instances=frame.instances,
        )


def limit_sequences(frames: Iterable[EvalFrame], count: int | None) -> Iterator[EvalFrame]:
    """Yield the frames of the first `count` sequences (all of them when `count` is None)."""
    seen: set[str] = set()
    for frame in frames:
        if frame.sequence not in seen:
            if count is not None and len(seen) >= count:
                return
            seen.add(frame.sequence)
        yield frame


def _reader_errors_as_dataset_errors(frames: Iterator[EvalFrame]) -> Iterator[EvalFrame]:
    try:
        yield from frames
    except (CityscapesError, BagError) as error:
        raise DatasetError(str(error)) from None


def open_dataset(
    path: str | Path, *, split: str = 'val', max_sequences: int | None = None
) -> tuple[Iterator[EvalFrame], DatasetCounts]:
    """Open a tree or a bag: its frame stream and the (still empty) counts to fill in.

    The first frame is read here, so a missing, unreadable, empty or unlabelled dataset raises
    `DatasetError` before any model is loaded. A tree's counts say how its annotated frames are
    read (`DatasetCounts.reading`).
    """
    path = Path(path)
    if not path.exists():
        raise DatasetError(f'{path} does not exist')
    reading = ''
    if is_bag(path):
        kind, frames = 'rosbag2', bag_frames(path)
    else:
        try:
            tree = CityscapesTree(path, split)
        except CityscapesError as error:
            raise DatasetError(str(error)) from None
        kind, frames = f'Cityscapes-style tree, split {split}', tree_frames(tree)
        reading = tree.describe()
    frames = _reader_errors_as_dataset_errors(limit_sequences(frames, max_sequences))
    first = next(frames, None)
    if first is None:
        raise DatasetError(f'{path} holds no frames to evaluate')
    return itertools.chain([first], frames), DatasetCounts(str(path), kind, reading=reading)
