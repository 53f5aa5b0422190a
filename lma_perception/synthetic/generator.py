"""Procedural Cityscapes-style driving video with dense ground truth for every frame.

Each sequence is one random street (``scene.py``) driven through for ``frames`` frames at ``fps``
and rendered (``render.py``) from every camera of the rig; a few frames get transient
degradations (``degrade.py``), while their ground truth stays that of the clean scene. A sequence
is a pure function of (seed, split, index): the same seed gives byte-identical files, and one
sequence can be regenerated without the others.

Folder layout: one Cityscapes tree per camera, under a folder named after the camera, so that
every camera tree is a valid Cityscapes root for other tools and readers recover the camera name
from the folder::

    <root>/synth.json                                       the resolved configuration
    <root>/<camera>/leftImg8bit_sequence/<split>/<city>/<city>_<seq:06d>_<frame:06d>_leftImg8bit.png
    <root>/<camera>/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_{labelIds,labelTrainIds,color}.png
    <root>/<camera>/gtFineDense/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelTrainIds.png
    <root>/<camera>/sequenceInfo/<split>/<city>/<city>_<seq:06d>_sequenceInfo.json

``gtFine`` holds the annotated frame of each sequence only (index 19 of 30, as in Cityscapes);
``gtFineDense`` holds every frame. The sidecar lists, per frame, its degradation (or null) and the
rig's pose, and the camera's intrinsics and mount.

The annotated frame is degraded in an exact, known fraction of sequences: sequence ``i`` has it
degraded when ``floor((i + 1) * rate) > floor(i * rate)``, so any run of sequences starting at 0
has ``floor(n * rate)`` of them.
"""

from __future__ import annotations

import functools
import json
import math
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import cv2
import numpy as np

from lma_perception.data.cityscapes import frame_stem, sequence_info_file
from lma_perception.labels import ID_TO_TRAIN_ID, colorize_ids
from lma_perception.synthetic.degrade import KINDS, Degradation, DegradationPlan, degrade
from lma_perception.synthetic.render import Intrinsics, Renderer
from lma_perception.synthetic.scene import RIG, build_world
from lma_perception.synthetic.textures import texture_bank

CAMERAS = tuple(RIG)


@dataclass(frozen=True)
class SynthConfig:
    """What to generate; every field has a command-line flag of the same name."""

    width: int = 512
    height: int = 256
    frames: int = 30
    annotated_frame: int = 19
    fps: float = 17.0
    cameras: tuple[str, ...] = CAMERAS
    seed: int = 0
    city: str = 'synthcity'
    degradation_rate: float = 0.15
    degradation_strength: float = 1.0
    degradations: tuple[str, ...] = KINDS
    max_burst: int = 3

    def __post_init__(self) -> None:
        problems = []
        if self.width < 16 or self.height < 16:
            problems.append(f'image size must be at least 16×16, got {self.width}×{self.height}')
        if self.frames < 1:
            problems.append(f'frames must be >= 1, got {self.frames}')
        if not 0 <= self.annotated_frame < self.frames:
            problems.append(f'annotated_frame must be in [0, {self.frames}), got '
                            f'{self.annotated_frame}')
        if self.fps <= 0:
            problems.append(f'fps must be > 0, got {self.fps}')
        unknown = [c for c in self.cameras if c not in RIG]
        if unknown or not self.cameras:
            problems.append(f'cameras must be some of {", ".join(RIG)}; got '
                            f'{", ".join(self.cameras) or "none"}')
        if not self.city.isalnum() or self.city != self.city.lower():
            problems.append(f'city must be lower-case letters and digits, got {self.city!r}')
        try:
            self.degradation_plan  # noqa: B018 (building the plan validates its settings)
        except ValueError as error:
            problems.append(str(error))
        if problems:
            raise ValueError('; '.join(problems))

    @property
    def degradation_plan(self) -> DegradationPlan:
        """The degradation settings as a plan."""
        return DegradationPlan(self.degradation_rate, self.degradation_strength,
                               tuple(self.degradations), self.max_burst)

    @classmethod
    def from_dict(cls, values: dict) -> SynthConfig:
        """Build from a mapping (e.g. YAML), rejecting unknown keys by name."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f'unknown synth setting(s): {", ".join(unknown)}; '
                             f'known: {", ".join(sorted(known))}')
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        return cls(**values)

    def to_dict(self) -> dict:
        """Return the settings as a JSON-ready mapping."""
        return asdict(self)


@dataclass(frozen=True)
class SyntheticFrame:
    """One rendered camera frame with its ground truth and what was done to it."""

    camera: str
    sequence: int
    frame: int
    image: np.ndarray          # H×W×3 uint8 RGB (degraded if ``degradation`` is set)
    label_ids: np.ndarray      # H×W uint8 Cityscapes label ids of the clean scene
    degradation: Degradation | None
    ego: dict[str, float] = field(repr=False)

    @property
    def train_ids(self) -> np.ndarray:
        """The labels as train ids (0..18, 255 ignored)."""
        return ID_TO_TRAIN_ID[self.label_ids]


def sequence_seed(seed: int, split: str, index: int) -> np.random.SeedSequence:
    """Return the random stream of one sequence, independent of every other sequence."""
    return np.random.SeedSequence([seed, zlib.crc32(split.encode()), index])


def annotated_degraded(index: int, rate: float) -> bool:
    """Whether sequence ``index`` has its annotated frame degraded (exactly ``rate`` of them)."""
    return math.floor((index + 1) * rate) > math.floor(index * rate)


def generate_sequence(config: SynthConfig, split: str, index: int) -> Iterator[SyntheticFrame]:
    """Render one sequence: frames in time order, every camera of a frame in config order."""
    streams = sequence_seed(config.seed, split, index).spawn(2 + len(config.cameras))
    world_rng = np.random.default_rng(streams[0])
    atlas = texture_bank(config.seed)
    world = build_world(world_rng, atlas, config.frames / config.fps)
    renderer = Renderer(world, atlas, Intrinsics(config.width, config.height),
                        np.random.default_rng(streams[1]))
    forced = {config.annotated_frame: annotated_degraded(index, config.degradation_rate)}
    plans = {camera: config.degradation_plan.schedule(np.random.default_rng(stream),
                                                      config.frames, forced)
             for camera, stream in zip(config.cameras, streams[2:], strict=True)}
    for frame in range(config.frames):
        t = frame / config.fps
        rig = world.ego.pose(world.road, t)
        posed = renderer.pose_parts(t, rig)
        for camera in config.cameras:
            view = renderer.render(t, rig, posed, camera, frame_seed=frame)
            degradation = plans[camera][frame]
            image = degrade(view.image, degradation) if degradation else view.image
            yield SyntheticFrame(camera, index, frame, image, view.label_ids, degradation, rig)


# Writing ----------------------------------------------------------------------------------------

def _write_png(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = image[..., ::-1] if image.ndim == 3 else image  # OpenCV writes BGR
    if not cv2.imwrite(str(path), data):
        raise OSError(f'could not write {path}')


def write_sequence(root: str | Path, config: SynthConfig, split: str, index: int) -> dict:
    """Generate one sequence and write its files under ``root``; returns its sidecar."""
    root = Path(root)
    city = config.city
    intrinsics = Intrinsics(config.width, config.height)
    sidecars = {camera: {
        'city': city, 'sequence': index, 'split': split, 'camera': camera,
        'fps': config.fps, 'annotated_frame': config.annotated_frame,
        'intrinsics': {'fx': intrinsics.focal, 'fy': intrinsics.focal,
                       'cx': config.width / 2, 'cy': config.height / 2,
                       'width': config.width, 'height': config.height},
        'mount': {'yaw_deg': RIG[camera][0], 'lateral_offset_m': RIG[camera][1]},
        'frames': [],
    } for camera in config.cameras}
    for item in generate_sequence(config, split, index):
        tree = root / item.camera
        stem = frame_stem(city, index, item.frame)
        _write_png(tree / 'leftImg8bit_sequence' / split / city / f'{stem}_leftImg8bit.png',
                   item.image)
        train_ids = item.train_ids
        _write_png(tree / 'gtFineDense' / split / city / f'{stem}_gtFine_labelTrainIds.png',
                   train_ids)
        if item.frame == config.annotated_frame:
            gt = tree / 'gtFine' / split / city
            _write_png(gt / f'{stem}_gtFine_labelIds.png', item.label_ids)
            _write_png(gt / f'{stem}_gtFine_labelTrainIds.png', train_ids)
            _write_png(gt / f'{stem}_gtFine_color.png', colorize_ids(item.label_ids))
        sidecars[item.camera]['frames'].append({
            'frame': item.frame,
            'time_s': round(item.frame / config.fps, 6),
            'degradation': item.degradation.to_dict() if item.degradation else None,
            'ego': {k: round(v, 6) for k, v in item.ego.items()},
        })
    for camera, sidecar in sidecars.items():
        path = sequence_info_file(root / camera, split, city, index)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(sidecar, indent=1) + '\n')
    return sidecars


def write_dataset(root: str | Path, config: SynthConfig, split: str, sequences: int, *,
                  start: int = 0, jobs: int = 1,
                  progress: Callable[[int], None] | None = None) -> Path:
    """Write sequences ``start .. start + sequences - 1`` of a split; returns ``root``.

    ``jobs`` > 1 renders sequences in parallel processes (the output is the same). The resolved
    configuration is saved as ``<root>/synth.json``; adding a split or more sequences to an
    existing root requires the same configuration.
    """
    if not split.isidentifier():
        raise ValueError(f'split must be a plain name such as train or val, got {split!r}')
    if sequences < 0 or start < 0:
        raise ValueError('sequences and start must be >= 0')
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    record = root / 'synth.json'
    settings = config.to_dict()
    if record.exists():
        existing = json.loads(record.read_text())
        if existing.get('config') != json.loads(json.dumps(settings)):
            raise ValueError(f'{root} holds data generated with other settings '
                             f'({record}); use a new folder or the same settings')
        splits = existing.get('splits', {})
    else:
        splits = {}
    indices = range(start, start + sequences)
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as pool:
            for _ in pool.map(functools.partial(write_sequence, root, config, split), indices):
                if progress:
                    progress(1)
    else:
        for index in indices:
            write_sequence(root, config, split, index)
            if progress:
                progress(1)
    done = set(splits.get(split, [])) | set(indices)
    splits[split] = sorted(done)
    record.write_text(json.dumps({'format': 'lma_perception synthetic v1', 'config': settings,
                                  'splits': splits}, indent=1) + '\n')
    return root


def load_config(root: str | Path) -> SynthConfig | None:
    """Return the configuration a synthetic root was made with (None for other trees)."""
    record = Path(root) / 'synth.json'
    if not record.is_file():
        return None
    return SynthConfig.from_dict(json.loads(record.read_text())['config'])

