"""Procedural textures for the synthetic driving scenes, packed into one mip-mapped atlas.

Every texture is a tileable 256×256 RGB image made from band-limited noise (white noise shaped
in the Fourier domain, which tiles by construction) and simple drawn shapes. A texture knows its
natural scale in texels per metre, so a facade's windows have the same size on every building.
Colour variety between objects comes from per-surface tints in the renderer, so one bank serves
a whole data set; it is built once per seed and cached.

The atlas stores each texture at ``LEVELS`` blur levels (same size, increasingly low-passed) so
that the renderer can pick a level from the texel footprint of a pixel and far surfaces do not
shimmer; texels are packed as little-endian RGBA ``uint32`` because one gather of a 4-byte word
is an order of magnitude faster in numpy than a gather of three bytes.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

SIZE = 256
LEVELS = 3
# Gaussian sigma (texels) of each blur level; the renderer switches level at the texel
# footprints in LEVEL_FOOTPRINTS (texels per pixel).
LEVEL_SIGMAS = (0.0, 1.5, 4.0)
LEVEL_FOOTPRINTS = (2.0, 5.0)


@dataclass(frozen=True)
class Texture:
    """One atlas entry: its index and natural scale (texels per metre, u then v).

    A scale of 0 on an axis means the texture is stretched once over the surface on that axis
    (sign faces, vehicle sides, people); otherwise it tiles.
    """

    index: int
    scale: tuple[float, float]


@dataclass(frozen=True)
class TextureAtlas:
    """All textures of a bank, flattened for gathers: ``texels[index(tex, level, v, u)]``."""

    texels: np.ndarray  # (count × LEVELS × SIZE × SIZE,) uint32 RGBA, read-only
    textures: dict[str, Texture]
    groups: dict[str, tuple[str, ...]]  # e.g. 'facade' → the names of every facade texture

    def __getitem__(self, name: str) -> Texture:
        return self.textures[name]

    def group(self, name: str) -> tuple[Texture, ...]:
        """Return every texture of a family, e.g. all facades."""
        return tuple(self.textures[n] for n in self.groups[name])


def noise(rng: np.random.Generator, feature: float, roughness: float = 0.5,
          octaves: int = 3, size: int = SIZE) -> np.ndarray:
    """Tileable fractal noise (float32, zero mean, unit deviation) with blobs of ``feature`` px."""
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    radius2 = fx * fx + fy * fy
    spectrum = np.zeros_like(radius2)
    for octave in range(octaves):
        width = feature / 2 ** octave
        spectrum += roughness ** octave * width * np.exp(-radius2 * (np.pi * width) ** 2)
    white = rng.standard_normal((size, size))
    field = np.fft.irfft2(np.fft.rfft2(white) * spectrum, s=(size, size))
    field -= field.mean()
    field /= field.std() + 1e-12
    return field.astype(np.float32)


def _rgb(base: tuple[float, float, float], luminance: np.ndarray) -> np.ndarray:
    """Modulate a colour by a luminance field (1 = the base colour); float32 H×W×3."""
    return luminance[..., None] * np.asarray(base, np.float32)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(image, 0, 255).astype(np.uint8)


def _periodic_mask(size: int, period: float, start: float, stop: float) -> np.ndarray:
    """Boolean 1-D mask: True where ``start <= (i mod period) < stop`` for texel centres i."""
    phase = np.mod(np.arange(size) + 0.5, period)
    return (phase >= start) & (phase < stop)


# Ground -----------------------------------------------------------------------------------------

def asphalt(rng: np.random.Generator, tone: float) -> np.ndarray:
    """Grey asphalt: fine grain, large patches and a few cracks."""
    grain = noise(rng, 1.5, 0.6, 2)
    patches = noise(rng, 60.0, 0.5, 3)
    lum = 1.0 + 0.07 * grain + 0.07 * patches
    cracks = noise(rng, 6.0, 0.5, 2)
    lum -= 0.25 * (np.abs(cracks) < 0.02)
    return _to_uint8(_rgb((tone, tone, tone * 1.04), lum))


def road_paint(rng: np.random.Generator, tone: float) -> np.ndarray:
    """Paint white road markings, worn down to the asphalt in places."""
    base = asphalt(rng, tone).astype(np.float32)
    wear = np.clip(0.9 + 0.25 * noise(rng, 8.0, 0.6, 3), 0, 1)[..., None]
    paint = _rgb((222, 222, 212), 1 + 0.04 * noise(rng, 2.0, 0.5, 1))
    return _to_uint8(base * (1 - wear) + paint * wear)


def paving(rng: np.random.Generator, base: tuple[int, int, int], tiles: int,
           brick: bool) -> np.ndarray:
    """Paving stones: ``tiles`` per texture side, joints darker, every stone a little different."""
    period = SIZE / tiles
    rows = np.arange(SIZE)[:, None] + 0.5
    cols = np.arange(SIZE)[None, :] + 0.5
    row_index = np.floor(rows / period)
    offset = (row_index % 2) * period / 2 if brick else 0.0
    cols_shifted = cols + offset
    col_index = np.floor(cols_shifted / (period * (2 if brick else 1)))  # stones per row
    stone_tone = rng.normal(1.0, 0.06, (tiles, tiles + 1))
    lum = stone_tone[(row_index % tiles).astype(int), (col_index % (tiles + 1)).astype(int)]
    stone_length = period * (2 if brick else 1)
    joint = (np.mod(rows, period) < 1.2) | (np.mod(cols_shifted, stone_length) < 1.2)
    lum = lum * (1 + 0.06 * noise(rng, 2.0, 0.5, 2) + 0.05 * noise(rng, 50.0, 0.5, 2))
    lum = np.where(joint, lum * 0.72, lum)
    return _to_uint8(_rgb(base, lum))


def kerbstone(rng: np.random.Generator) -> np.ndarray:
    """Lay light granite kerb blocks, one metre long (v runs along the road)."""
    lum = 1.05 + 0.06 * noise(rng, 1.5, 0.5, 2) + 0.04 * noise(rng, 30.0, 0.5, 2)
    lum[_periodic_mask(SIZE, SIZE / 4, 0, 1.5)] *= 0.6
    return _to_uint8(_rgb((168, 166, 160), lum))


def grass(rng: np.random.Generator, dry: float) -> np.ndarray:
    """Grass in clumps with patches of soil; ``dry`` 0 (green) .. 1 (straw)."""
    blades = noise(rng, 1.2, 0.7, 2)
    clumps = noise(rng, 24.0, 0.5, 3)
    base = np.array([78 + 50 * dry, 112 + 20 * dry, 46 + 22 * dry], np.float32)
    lum = 1 + 0.18 * blades + 0.14 * clumps
    soil = np.clip(noise(rng, 40.0, 0.5, 3) - 1.3, 0, 1)[..., None]
    image = _rgb(tuple(base), lum) * (1 - soil) + soil * np.float32([110, 92, 70])
    return _to_uint8(image)


# Buildings --------------------------------------------------------------------------------------

FACADE_BAY = 64  # texels per window bay and per storey: four bays and four storeys per tile


def facade(rng: np.random.Generator, kind: str) -> np.ndarray:
    """Draw a building facade: plaster, brick or glass with a regular grid of windows."""
    plaster = 1 + 0.05 * noise(rng, 2.0, 0.5, 2) + 0.06 * noise(rng, 80.0, 0.5, 3)
    if kind == 'brick':
        image = paving(rng, (150, 82, 62), 48, brick=True).astype(np.float32)
        image *= plaster[..., None] * 0.95
    elif kind == 'glass':
        image = _rgb((92, 108, 118), 1 + 0.1 * noise(rng, 120.0, 0.5, 2))
    else:
        image = _rgb((205, 200, 190), plaster)
    width = rng.uniform(0.35, 0.6) * FACADE_BAY
    height = rng.uniform(0.45, 0.65) * FACADE_BAY
    left = (FACADE_BAY - width) / 2
    top = rng.uniform(0.18, 0.28) * FACADE_BAY
    window_cols = _periodic_mask(SIZE, FACADE_BAY, left, left + width)
    window_rows = _periodic_mask(SIZE, FACADE_BAY, top, top + height)
    frame = 2.0
    inner_cols = _periodic_mask(SIZE, FACADE_BAY, left + frame, left + width - frame)
    inner_rows = _periodic_mask(SIZE, FACADE_BAY, top + frame, top + height - frame)
    window = window_rows[:, None] & window_cols[None, :]
    glass = inner_rows[:, None] & inner_cols[None, :]
    frame_tone = (235, 235, 230) if rng.random() < 0.6 else (60, 56, 52)
    image[window] = frame_tone
    # Every window its own sky reflection, blind or dark room; a gradient fakes reflection.
    panes = rng.uniform(0.5, 1.5, (SIZE // FACADE_BAY, SIZE // FACADE_BAY))
    pane = np.kron(panes, np.ones((FACADE_BAY, FACADE_BAY)))
    gradient = np.tile(np.linspace(1.25, 0.8, FACADE_BAY), SIZE // FACADE_BAY)[:, None]
    glass_rgb = _rgb((70, 84, 96), pane * gradient * (1 + 0.05 * noise(rng, 3.0, 0.5, 1)))
    image[glass] = glass_rgb[glass]
    sill = _periodic_mask(SIZE, FACADE_BAY, top + height, top + height + 3)[:, None] & window_cols
    image[sill] *= 0.75
    if kind == 'glass':
        mullion = _periodic_mask(SIZE, FACADE_BAY / 2, 0, 2)
        image[:, mullion] = (50, 52, 55)
    return _to_uint8(image)


def shopfront(rng: np.random.Generator) -> np.ndarray:
    """Draw a ground floor of shops: windows, doors and a sign band (four metres high)."""
    lum = 1 + 0.05 * noise(rng, 2.0, 0.5, 2)
    base = rng.choice([(120, 110, 100), (200, 195, 185), (80, 80, 84), (170, 150, 120)])
    image = _rgb(tuple(base), lum)
    sign_band = slice(int(0.12 * SIZE), int(0.26 * SIZE))
    for start in range(0, SIZE, SIZE // 2):
        sign_colour = rng.uniform(40, 230, 3)
        image[sign_band, start + 8:start + SIZE // 2 - 8] = sign_colour
        glass_cols = slice(start + 14, start + SIZE // 2 - 14)
        image[int(0.32 * SIZE):int(0.94 * SIZE), glass_cols] = _rgb(
            (60, 70, 78), 1 + 0.15 * noise(rng, 30.0, 0.5, 2))[
            int(0.32 * SIZE):int(0.94 * SIZE), glass_cols]
        door = slice(start + 40, start + 64)
        image[int(0.4 * SIZE):, door] = (45, 40, 38)
    return _to_uint8(image)


def concrete(rng: np.random.Generator, base: tuple[int, int, int]) -> np.ndarray:
    """Concrete panels with stains, for walls."""
    lum = 1 + 0.05 * noise(rng, 1.5, 0.5, 2) + 0.08 * noise(rng, 40.0, 0.6, 3)
    stains = np.clip(noise(rng, 10.0, 0.5, 2)[::-1] * 0.06, -0.1, 0.1)
    lum -= np.abs(stains)
    lum[_periodic_mask(SIZE, SIZE / 2, 0, 1.5), :] *= 0.8
    lum[:, _periodic_mask(SIZE, SIZE / 2, 0, 1.5)] *= 0.8
    return _to_uint8(_rgb(base, lum))


def fence(rng: np.random.Generator, kind: str) -> np.ndarray:
    """Draw fence panels against a dark background (fences are labelled as a whole)."""
    background = _rgb((62, 70, 58), 1 + 0.3 * noise(rng, 12.0, 0.6, 3))
    rows = np.arange(SIZE)[:, None] + 0.5
    cols = np.arange(SIZE)[None, :] + 0.5
    if kind == 'mesh':
        cell = 16
        wire = (np.mod(rows + cols, cell) < 2) | (np.mod(rows - cols, cell) < 2)
        metal = (150, 155, 150)
    elif kind == 'wood':
        wire = np.mod(cols, 24) < 18
        metal = (140, 112, 80)
    else:  # bars
        wire = (np.mod(cols, 20) < 4) | (np.mod(rows, 128) < 6)
        metal = (52, 56, 54)
    post = np.mod(cols, 128) < 8
    image = np.where((wire | post)[..., None], _rgb(metal, 1 + 0.06 * noise(rng, 2.0)),
                     background)
    return _to_uint8(image)


# Nature -----------------------------------------------------------------------------------------

def foliage(rng: np.random.Generator, base: tuple[int, int, int]) -> np.ndarray:
    """Leaves in clusters with dark gaps, for trees and hedges."""
    leaves = noise(rng, 2.5, 0.7, 3)
    clusters = noise(rng, 18.0, 0.5, 2)
    lum = 1 + 0.28 * leaves + 0.22 * clusters
    gaps = (leaves + clusters) < -2.0
    lum = np.where(gaps, 0.35, lum)
    return _to_uint8(_rgb(base, lum))


def bark(rng: np.random.Generator) -> np.ndarray:
    """Vertically streaked tree bark."""
    streaks = cv2.resize(noise(rng, 3.0, 0.5, 2)[:, :32], (SIZE, SIZE))
    lum = 1 + 0.2 * streaks + 0.06 * noise(rng, 2.0)
    return _to_uint8(_rgb((88, 74, 62), lum))


# Street furniture -------------------------------------------------------------------------------

def metal(rng: np.random.Generator, base: tuple[int, int, int]) -> np.ndarray:
    """Painted metal, shaded across like a round pole."""
    lum = 1 + 0.04 * noise(rng, 2.0) + 0.05 * noise(rng, 60.0)
    lum *= np.linspace(1.15, 0.85, SIZE, dtype=np.float32)[None, :]
    return _to_uint8(_rgb(base, lum))


def sign_face(kind: str) -> np.ndarray:
    """Draw a traffic-sign face; the sign plate's polygon cuts its shape out."""
    image = np.full((SIZE, SIZE, 3), 235, np.uint8)
    centre = (SIZE // 2, SIZE // 2)
    red, blue, yellow, white = (200, 30, 35), (20, 70, 160), (245, 195, 20), (240, 240, 240)
    if kind == 'prohibitory':
        cv2.circle(image, centre, SIZE // 2 - 4, red, 36, cv2.LINE_AA)
        cv2.putText(image, '30', (58, 165), cv2.FONT_HERSHEY_DUPLEX, 3.2, (20, 20, 20), 9)
    elif kind == 'mandatory':
        image[:] = blue
        cv2.arrowedLine(image, (128, 210), (128, 50), white, 26, cv2.LINE_AA, tipLength=0.4)
    elif kind == 'warning':
        image[:] = red
        triangle = np.array([[128, 42], [224, 218], [32, 218]], np.int32)
        cv2.fillPoly(image, [triangle], white, cv2.LINE_AA)
        cv2.putText(image, '!', (110, 200), cv2.FONT_HERSHEY_DUPLEX, 4.0, (20, 20, 20), 12)
    elif kind == 'priority':
        image[:] = white
        diamond = np.array([[128, 36], [220, 128], [128, 220], [36, 128]], np.int32)
        cv2.fillPoly(image, [diamond], yellow, cv2.LINE_AA)
    elif kind == 'information':
        image[:] = blue
        cv2.rectangle(image, (40, 40), (216, 216), white, 8)
        cv2.putText(image, 'P', (80, 190), cv2.FONT_HERSHEY_DUPLEX, 5.0, white, 16)
    else:  # back of a sign plate
        image[:] = (150, 152, 150)
    return image


def traffic_light(lit: int) -> np.ndarray:
    """Draw a three-lamp traffic light; ``lit`` 0, 1, 2 = red, amber, green."""
    image = np.full((SIZE, SIZE, 3), 34, np.uint8)
    colours = ((235, 40, 30), (250, 170, 20), (40, 220, 120))
    for lamp, colour in enumerate(colours):
        centre = (SIZE // 2, int(SIZE * (0.2 + 0.3 * lamp)))
        cv2.circle(image, centre, 58, (18, 18, 18), -1, cv2.LINE_AA)
        tone = colour if lamp == lit else tuple(c // 5 + 20 for c in colour)
        cv2.circle(image, centre, 46, tone, -1, cv2.LINE_AA)
    return image


# Vehicles ---------------------------------------------------------------------------------------

def paint(rng: np.random.Generator) -> np.ndarray:
    """Make white car paint with a soft reflection band; tinted per vehicle."""
    rows = np.linspace(0, 1, SIZE, dtype=np.float32)[:, None]
    lum = 1.0 - 0.12 * rows + 0.1 * np.exp(-((rows - 0.25) / 0.08) ** 2)
    lum = lum + 0.02 * noise(rng, 40.0)
    return _to_uint8(_rgb((225, 225, 225), lum))


def car_side(rng: np.random.Generator) -> np.ndarray:
    """Car flank: paint with door gaps, handle and dark sills."""
    image = paint(rng).astype(np.float32)
    for x in (0.42, 0.7):
        image[:, int(x * SIZE):int(x * SIZE) + 2] *= 0.55  # door gaps
    image[int(0.82 * SIZE):] *= 0.45  # sills and bumpers
    image[int(0.25 * SIZE):int(0.29 * SIZE), int(0.5 * SIZE):int(0.56 * SIZE)] *= 0.5  # handle
    return _to_uint8(image)


def car_end(rng: np.random.Generator, front: bool) -> np.ndarray:
    """Car front (head lamps, grille) or back (tail lamps), with a number plate."""
    image = paint(rng).astype(np.float32)
    lamp = (245, 240, 220) if front else (200, 30, 30)
    for x0 in (0.04, 0.74):
        cv2.rectangle(image, (int(x0 * SIZE), int(0.2 * SIZE)),
                      (int((x0 + 0.22) * SIZE), int(0.42 * SIZE)), lamp, -1, cv2.LINE_AA)
    if front:
        cv2.rectangle(image, (int(0.32 * SIZE), int(0.3 * SIZE)),
                      (int(0.68 * SIZE), int(0.55 * SIZE)), (30, 30, 32), -1)
    plate = (int(0.36 * SIZE), int(0.6 * SIZE)), (int(0.64 * SIZE), int(0.76 * SIZE))
    cv2.rectangle(image, *plate, (235, 235, 235), -1)
    image[int(0.82 * SIZE):] *= 0.4
    return _to_uint8(image)


def glass(rng: np.random.Generator, pillars: bool) -> np.ndarray:
    """Make tinted vehicle glass reflecting a blurred sky; pillars and frame black."""
    rows = np.linspace(0, 1, SIZE, dtype=np.float32)[:, None]
    lum = 0.7 + 0.5 * rows * (1 + 0.3 * noise(rng, 50.0))
    image = _rgb((58, 66, 76), lum)
    image[:int(0.08 * SIZE)] = 24
    if pillars:
        for x in (0.0, 0.46, 0.97):
            image[:, int(x * SIZE):int(x * SIZE) + 10] = 22
    return _to_uint8(image)


def wheel(rng: np.random.Generator) -> np.ndarray:
    """Draw a tyre with a grey rim and a dark hub, stretched over a wheel polygon."""
    image = np.full((SIZE, SIZE, 3), 26, np.uint8)
    cv2.circle(image, (SIZE // 2, SIZE // 2), int(SIZE * 0.3), (150, 150, 155), -1, cv2.LINE_AA)
    cv2.circle(image, (SIZE // 2, SIZE // 2), int(SIZE * 0.1), (70, 70, 72), -1, cv2.LINE_AA)
    return image


def cargo_box(rng: np.random.Generator) -> np.ndarray:
    """Panelled truck body, sometimes with a coloured band."""
    lum = 1 + 0.03 * noise(rng, 3.0) + 0.04 * noise(rng, 80.0)
    lum[:, _periodic_mask(SIZE, SIZE / 6, 0, 3)] *= 0.82
    lum[int(0.9 * SIZE):] *= 0.5
    image = _rgb((232, 232, 228), lum)
    if rng.random() < 0.6:
        band = slice(int(0.35 * SIZE), int(0.5 * SIZE))
        image[band] *= rng.uniform(0.3, 1.0, 3).astype(np.float32)
    return _to_uint8(image)


def bus_side(rng: np.random.Generator, rail: bool) -> np.ndarray:
    """Draw a bus or tram side: a band of windows above a livery stripe."""
    image = paint(rng).astype(np.float32)
    top, bottom = (0.18, 0.55) if rail else (0.12, 0.5)
    band = slice(int(top * SIZE), int(bottom * SIZE))
    image[band] = glass(rng, False)[band]
    image[:, _periodic_mask(SIZE, SIZE / 2, 0, 6)] *= 0.5
    stripe = slice(int(0.62 * SIZE), int(0.7 * SIZE))
    image[stripe] *= 0.55 if rail else 0.75
    image[int(0.92 * SIZE):] *= 0.4
    return _to_uint8(image)


def vehicle_end(rng: np.random.Generator, front: bool, tall: bool) -> np.ndarray:
    """Draw the front or back of a bus, truck cab or tram: windscreen over lamps."""
    image = paint(rng).astype(np.float32)
    if front:
        screen = glass(rng, False)
        image[int(0.06 * SIZE):int(0.5 * SIZE)] = screen[int(0.06 * SIZE):int(0.5 * SIZE)]
    elif tall:
        image[int(0.1 * SIZE):int(0.3 * SIZE), int(0.15 * SIZE):int(0.85 * SIZE)] *= 0.35
    lamp = (245, 240, 220) if front else (200, 30, 30)
    for x0 in (0.05, 0.8):
        cv2.rectangle(image, (int(x0 * SIZE), int(0.78 * SIZE)),
                      (int((x0 + 0.15) * SIZE), int(0.86 * SIZE)), lamp, -1)
    image[int(0.9 * SIZE):] *= 0.35
    return _to_uint8(image)


# People -----------------------------------------------------------------------------------------

SKIN_TONES = ((233, 196, 170), (198, 150, 120), (150, 105, 75), (98, 68, 50))
CLOTHES = ((30, 32, 40), (60, 70, 110), (170, 40, 45), (220, 220, 215), (85, 95, 60),
           (200, 160, 60), (110, 70, 50), (40, 90, 140), (150, 150, 155), (200, 110, 140))


def clothing(rng: np.random.Generator, helmet: bool) -> np.ndarray:
    """Dress a person or rider from head (row 0) to feet: hair, skin, top, trousers, shoes."""
    rows = np.arange(SIZE) / SIZE
    skin = SKIN_TONES[rng.integers(len(SKIN_TONES))]
    top = CLOTHES[rng.integers(len(CLOTHES))]
    bottom = CLOTHES[rng.integers(len(CLOTHES))]
    hair = (230, 230, 40) if helmet else tuple(rng.choice([(30, 25, 20), (90, 60, 35), (180, 150,
                                                            90), (120, 120, 120)]))
    bands = ((0.05, hair), (0.14, skin), (0.5, top), (0.94, bottom), (1.01, (28, 26, 26)))
    image = np.empty((SIZE, SIZE, 3), np.float32)
    start = 0.0
    for stop, colour in bands:
        image[(rows >= start) & (rows < stop)] = colour
        start = stop
    image *= (1 + 0.08 * noise(rng, 6.0, 0.5, 2))[..., None]
    image[:, : SIZE // 6] *= 0.8  # a little roundness: darker edges
    image[:, -SIZE // 6:] *= 0.8
    return _to_uint8(image)


# The bank ---------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=2)
def texture_bank(seed: int) -> TextureAtlas:
    """Build (once per seed) every texture the scenes use."""
    rng = np.random.default_rng([seed, 0x7E87])
    entries: list[tuple[str, np.ndarray, tuple[float, float]]] = []
    groups: dict[str, list[str]] = {}

    def add(group: str, image: np.ndarray, scale: tuple[float, float]) -> None:
        name = f'{group}{len(groups.setdefault(group, []))}'
        groups[group].append(name)
        entries.append((name, image, scale))

    for tone in (82, 98, 112):
        add('asphalt', asphalt(rng, tone), (32, 32))
        add('paint', road_paint(rng, tone), (32, 32))
    for base, tiles, brick in (((172, 168, 160), 8, False), ((150, 122, 112), 16, True),
                               ((160, 160, 158), 4, False), ((185, 178, 162), 12, True)):
        add('paving', paving(rng, base, tiles, brick), (SIZE / (tiles * 0.35),) * 2)
    add('kerb', kerbstone(rng), (64, 64))
    for dry in (0.0, 0.4, 0.9):
        add('grass', grass(rng, dry), (48, 48))
    for kind in ('plaster',) * 5 + ('brick',) * 2 + ('glass',):
        bay, storey = rng.uniform(2.6, 3.6), rng.uniform(3.0, 3.5)
        add(f'facade_{kind}', facade(rng, kind), (FACADE_BAY / bay, FACADE_BAY / storey))
    for _ in range(3):
        add('shop', shopfront(rng), (SIZE / 12, SIZE / 4))
    for base in ((170, 168, 160), (150, 140, 125), (120, 124, 128)):
        add('concrete', concrete(rng, base), (24, 24))
    for kind in ('mesh', 'wood', 'bars'):
        add(f'fence_{kind}', fence(rng, kind), (96, 96))
    for base in ((62, 98, 42), (78, 110, 48), (50, 80, 44), (96, 112, 52)):
        add('foliage', foliage(rng, base), (40, 40))
    add('bark', bark(rng), (128, 128))
    for base in ((128, 130, 132), (70, 82, 72), (170, 172, 170)):
        add('metal', metal(rng, base), (SIZE / 0.3, 64))
    for kind in ('prohibitory', 'mandatory', 'warning', 'priority', 'information', 'back'):
        add(f'sign_{kind}', sign_face(kind), (0, 0))
    for lit in range(3):
        add('light', traffic_light(lit), (0, 0))
    add('paint', paint(rng), (64, 64))
    add('car_side', car_side(rng), (0, 0))
    add('car_front', car_end(rng, front=True), (0, 0))
    add('car_back', car_end(rng, front=False), (0, 0))
    add('glass', glass(rng, pillars=True), (0, 0))
    add('windscreen', glass(rng, pillars=False), (0, 0))
    add('wheel', wheel(rng), (0, 0))
    for _ in range(2):
        add('cargo', cargo_box(rng), (0, 0))
    add('bus_side', bus_side(rng, rail=False), (SIZE / 6, 0))
    add('tram_side', bus_side(rng, rail=True), (SIZE / 5, 0))
    add('vehicle_front', vehicle_end(rng, front=True, tall=True), (0, 0))
    add('vehicle_back', vehicle_end(rng, front=False, tall=True), (0, 0))
    for _ in range(12):
        add('person', clothing(rng, helmet=False), (0, 0))
    for _ in range(4):
        add('rider', clothing(rng, helmet=True), (0, 0))
    return _pack(entries, groups)


def _pack(entries: list[tuple[str, np.ndarray, tuple[float, float]]],
          groups: dict[str, list[str]]) -> TextureAtlas:
    rgba = np.zeros((len(entries), LEVELS, SIZE, SIZE, 4), np.uint8)
    textures = {}
    for index, (name, image, scale) in enumerate(entries):
        for level, sigma in enumerate(LEVEL_SIGMAS):
            if sigma:
                # Wrap the borders so that blurred tiles still tile.
                pad = int(3 * sigma) + 1
                wrapped = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_WRAP)
                blurred = cv2.GaussianBlur(wrapped, (0, 0), sigma)[pad:-pad, pad:-pad]
            else:
                blurred = image
            rgba[index, level, ..., :3] = blurred
        textures[name] = Texture(index, (float(scale[0]), float(scale[1])))
    texels = rgba.view('<u4').reshape(-1)
    texels.flags.writeable = False
    return TextureAtlas(texels, textures, {k: tuple(v) for k, v in groups.items()})
