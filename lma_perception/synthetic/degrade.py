"""Transient image degradations: short bursts on a few frames, after which the view recovers.

These are what a per-camera temporal memory is meant to ride out. The ground truth of a degraded
frame stays the clean scene's labels. Kinds:

- ``noise``: a burst of strong sensor noise (Gaussian, σ 15–55 grey levels, plus chroma blotches);
- ``motion_blur``: a linear blur of 6–30 px (at 512 px width) along x, or half that along y,
  as from a jolt of the vehicle;
- ``glare``: over-exposure (gain ×1.7–2.1) with a veiling flare around a bright spot;
- ``occluder``: a windscreen wiper sweeping through the view, or blobs of dirt and water;
- ``dropped_rows``: bands of rows lost in transmission (black, repeated or torn sideways).

Defaults (:class:`DegradationPlan` and ``SynthConfig``): 15 % of frames degraded, in bursts of one
to three frames, event strength drawn from [0.5, 1] × ``strength`` with ``strength`` = 1.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass

import cv2
import numpy as np

KINDS = ('noise', 'motion_blur', 'glare', 'occluder', 'dropped_rows')


@dataclass(frozen=True)
class Degradation:
    """One degraded frame: what happened, how strongly (0..1), and its random seed."""

    kind: str
    strength: float
    seed: int
    step: int = 0  # position within its burst (a wiper moves on between frames)

    def to_dict(self) -> dict:
        """Return the fields as a JSON-ready mapping."""
        return asdict(self)


@dataclass(frozen=True)
class DegradationPlan:
    """How often and how strongly frames are degraded."""

    rate: float = 0.15            # expected fraction of degraded frames
    strength: float = 1.0         # scales every event's strength (0 disables the effect)
    kinds: tuple[str, ...] = KINDS
    max_burst: int = 3            # frames per burst, drawn uniformly from 1..max_burst

    def __post_init__(self) -> None:
        if not 0 <= self.rate < 1:
            raise ValueError(f'degradation rate must be in [0, 1), got {self.rate}')
        if self.strength < 0:
            raise ValueError(f'degradation strength must be >= 0, got {self.strength}')
        unknown = set(self.kinds) - set(KINDS)
        if unknown or not self.kinds:
            raise ValueError(f'degradation kinds must be some of {", ".join(KINDS)}; '
                             f'got {", ".join(self.kinds) or "none"}')
        if self.max_burst < 1:
            raise ValueError(f'max_burst must be >= 1, got {self.max_burst}')

    def schedule(self, rng: np.random.Generator, frames: int,
                 forced: dict[int, bool] | None = None) -> list[Degradation | None]:
        """Plan ``frames`` frames; ``forced`` pins given frames to degraded or clean."""
        plan: list[Degradation | None] = [None] * frames
        if self.rate > 0:
            mean_burst = (1 + self.max_burst) / 2
            # Gaps between bursts are geometric with this start probability, so that the
            # expected degraded fraction is ``rate``.
            start = min(1.0, self.rate / (mean_burst * (1 - self.rate)))
            frame = 0
            while frame < frames:
                if rng.random() < start:
                    length = int(rng.integers(1, self.max_burst + 1))
                    event = self._event(rng)
                    for step in range(min(length, frames - frame)):
                        plan[frame + step] = Degradation(event.kind, event.strength,
                                                         event.seed, step)
                    frame += length + 1  # at least one clean frame between bursts
                else:
                    frame += 1
        for frame, degraded in (forced or {}).items():
            if degraded and plan[frame] is None:
                plan[frame] = self._event(rng)
            elif not degraded:
                plan[frame] = None
        return plan

    def _event(self, rng: np.random.Generator) -> Degradation:
        kind = self.kinds[int(rng.integers(len(self.kinds)))]
        return Degradation(kind, float(rng.uniform(0.5, 1.0) * self.strength),
                           int(rng.integers(2 ** 31)))


def degrade(image: np.ndarray, degradation: Degradation) -> np.ndarray:
    """Apply a degradation to an H×W×3 uint8 RGB image (returns a new image)."""
    rng = np.random.default_rng(degradation.seed)
    return _APPLY[degradation.kind](image, degradation.strength, rng, degradation.step)


@functools.lru_cache(maxsize=4)
def _unit_noise(height: int, width: int) -> np.ndarray:
    """Return a fixed field of unit Gaussian noise; frames read random crops of it."""
    field = np.random.default_rng(0x401).standard_normal((height + 64, width + 64, 3), np.float32)
    field.flags.writeable = False
    return field


def _noise(image: np.ndarray, strength: float, rng: np.random.Generator, step: int):
    h, w = image.shape[:2]
    frame_rng = np.random.default_rng([rng.integers(2 ** 31), step])
    y0, x0 = frame_rng.integers(0, 64, 2)
    sigma = np.float32(15 + 40 * strength)
    noisy = cv2.scaleAdd(_unit_noise(h, w)[y0:y0 + h, x0:x0 + w], sigma,
                         image.astype(np.float32))
    # Chroma blotches: low-frequency colour noise as from a struggling sensor.
    blotches = frame_rng.standard_normal((h // 16 + 1, w // 16 + 1, 3), np.float32)
    noisy += cv2.resize(blotches, (w, h), interpolation=cv2.INTER_LINEAR) * np.float32(
        12 * strength)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def _motion_blur(image: np.ndarray, strength: float, rng: np.random.Generator, step: int):
    # A jolt of the vehicle smears along x (yaw) or, less often, along y (pitch); a box filter
    # along one axis costs the same for any length.
    length = max(3, int((6 + 24 * strength) * image.shape[1] / 512))
    kernel = (length, 1) if rng.random() < 0.7 else (1, max(3, length // 2))
    return cv2.blur(image, kernel, borderType=cv2.BORDER_REFLECT)


def _glare(image: np.ndarray, strength: float, rng: np.random.Generator, step: int):
    h, w = image.shape[:2]
    gain = 1.3 + 0.8 * strength
    # The veiling flare is smooth: computed on a coarse grid, then interpolated.
    gh, gw = h // 8 + 1, w // 8 + 1
    cx, cy = rng.uniform(0.1, 0.9) * gw, rng.uniform(0.0, 0.5) * gh
    ys, xs = np.ogrid[:gh, :gw]
    radius = (0.25 + 0.35 * strength) * gw
    flare = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * radius ** 2))
    veil = flare[..., None] * (200 * (0.3 + 0.5 * strength)) * np.array([1.0, 0.97, 0.9])
    veil = cv2.resize(veil.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    return cv2.addWeighted(image, gain, veil.astype(np.uint8), 1.0, 0.0)


def _occluder(image: np.ndarray, strength: float, rng: np.random.Generator, step: int):
    h, w = image.shape[:2]
    if rng.random() < 0.5:
        # A wiper blade pivoting at the bottom edge, sweeping on between frames of a burst.
        mask = np.zeros((h, w), np.uint8)
        pivot = np.array([rng.uniform(0.2, 0.8) * w, h * 1.05])
        angle = np.radians(rng.uniform(-60, 60) + 35 * step * rng.choice([-1, 1]))
        length = h * (1.0 + 0.4 * strength)
        tip = pivot + length * np.array([np.sin(angle), -np.cos(angle)])
        thickness = max(3, int((0.04 + 0.05 * strength) * h))
        cv2.line(mask, tuple(pivot.astype(int)), tuple(tip.astype(int)), 255, thickness,
                 cv2.LINE_AA)
        colour = (18, 18, 20)
    else:
        # Dirt and water drops: soft blobs, drawn on a coarse grid and interpolated.
        small = np.zeros((h // 4 + 1, w // 4 + 1), np.uint8)
        sw, sh = small.shape[1], small.shape[0]
        for _ in range(int(3 + 8 * strength)):
            centre = (int(rng.uniform(0, sw)), int(rng.uniform(0, sh)))
            axes = (int(rng.uniform(0.03, 0.1 + 0.1 * strength) * sw) + 1,
                    int(rng.uniform(0.03, 0.08 + 0.08 * strength) * sh) + 1)
            cv2.ellipse(small, centre, axes, rng.uniform(0, 180), 0, 360, 255, -1, cv2.LINE_AA)
        small = cv2.GaussianBlur(small, (0, 0), 1.5)
        mask = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
        grey = rng.uniform(40, 90)
        colour = (grey, grey * 0.9, grey * 0.75)
    cover = mask.astype(np.float32) * np.float32((0.75 + 0.25 * strength) / 255)
    solid = np.empty_like(image)
    solid[:] = np.asarray(colour, np.float32).astype(np.uint8)
    return cv2.blendLinear(image, solid, 1 - cover, cover)


def _dropped_rows(image: np.ndarray, strength: float, rng: np.random.Generator, step: int):
    h = image.shape[0]
    out = image.copy()
    rng = np.random.default_rng([rng.integers(2 ** 31), step])  # new bands every frame
    lost = int(h * (0.1 + 0.4 * strength))
    bands = int(rng.integers(1, 4))
    for band in np.array_split(np.arange(lost), bands):
        if not len(band):
            continue
        top = int(rng.integers(0, h - len(band)))
        rows = slice(top, top + len(band))
        mode = rng.integers(3)
        if mode == 0:
            out[rows] = 0
        elif mode == 1:
            out[rows] = image[max(top - 1, 0)]  # the last good row repeated
        else:
            out[rows] = np.roll(image[rows], int(rng.integers(20, 120)), axis=1)
    return out


_APPLY = {'noise': _noise, 'motion_blur': _motion_blur, 'glare': _glare, 'occluder': _occluder,
          'dropped_rows': _dropped_rows}
