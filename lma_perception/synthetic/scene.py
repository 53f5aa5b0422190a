"""A random street scene: road geometry, street layout, weather, ego motion and all objects.

World coordinates: x to the right, y up, z forward at the start of the sequence, metres. The road
is a circular arc (or a straight line) described by arc length ``s`` along its centre line and
lateral offset ``u`` (positive to the right). Traffic drives on the right. Objects live in road
coordinates so that they follow the bend; the renderer turns them into world poses every frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from lma_perception.synthetic.props import (
    Objects,
    Parts,
    PartsBuilder,
    bicycle_end,
    bicycle_side,
    ellipse,
    label_id,
    person_outline,
    rider_outline,
)
from lma_perception.synthetic.textures import FACADE_BAY, TextureAtlas

# Cameras of the rig: yaw (degrees, + turns right) and lateral mount offset (m).
RIG: dict[str, tuple[float, float]] = {
    'front': (0.0, 0.0),
    'front_left': (-45.0, -0.4),
    'front_right': (45.0, 0.4),
}


# Road geometry ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Road:
    """The centre line: straight (curvature 0) or a circular arc (+ bends right), from (0, 0)."""

    curvature: float

    def to_world(self, s, u):
        """World x, z and heading (rad, + right of +z) of road coordinates (arrays)."""
        s, u = np.asarray(s, np.float64), np.asarray(u, np.float64)
        k = self.curvature
        if k == 0:
            return u, s, np.zeros_like(s)
        theta = k * s
        x = (1 - np.cos(theta)) / k + u * np.cos(theta)
        z = np.sin(theta) / k - u * np.sin(theta)
        return x, z, theta

    def to_road(self, x, z):
        """Road coordinates (s, u) of world points (float32 arrays in, float32 out)."""
        k = self.curvature
        if k == 0:
            return z, x
        sign = np.float32(math.copysign(1.0, k))
        dx = x - np.float32(1 / k)
        radius = np.sqrt(dx * dx + z * z)
        u = np.float32(1 / k) - sign * radius
        s = np.arctan2(sign * z, -sign * dx) * np.float32(1 / k)
        return s, u


@dataclass(frozen=True)
class Side:
    """The lateral profile of one side of the street, from the centre line outwards (m)."""

    lanes: int
    lane_width: float
    parking: float
    kerb: float
    verge: float        # grass strip between kerb and sidewalk
    sidewalk: float
    setback: float      # between sidewalk and building line
    setback_grass: bool
    urban: float        # 0 suburban (houses, gardens) .. 1 city centre (closed rows)

    @property
    def road_edge(self) -> float:
        """Distance of the kerb from the centre line."""
        return self.lanes * self.lane_width + self.parking

    @property
    def building_line(self) -> float:
        """Distance of the facades from the centre line."""
        return self.road_edge + self.kerb + self.verge + self.sidewalk + self.setback

    @property
    def sidewalk_centre(self) -> float:
        """Distance of the middle of the sidewalk from the centre line."""
        return self.road_edge + self.kerb + self.verge + self.sidewalk / 2


@dataclass(frozen=True)
class Crossing:
    """A cross street between arc lengths ``start`` and ``stop`` with zebra crossings."""

    start: float
    stop: float
    sidewalk: float


# Ground materials: the renderer looks them up per pixel.
ASPHALT, PAINT, KERB, SIDEWALK, GRASS, YARD = range(6)
GROUND_LABELS = np.array([label_id(n) for n in
                          ('road', 'road', 'sidewalk', 'sidewalk', 'terrain', 'sidewalk')],
                         np.uint8)
LATERAL_RESOLUTION = 0.05  # m per entry of the lateral profile tables
LATERAL_RANGE = 80.0       # m each side of the centre line


@dataclass(frozen=True)
class Street:
    """Both sides, markings and optional cross street; builds the ground lookup tables."""

    left: Side
    right: Side
    centre_line: str  # 'dashed', 'solid' or 'double'
    crossing: Crossing | None

    def lateral_tables(self) -> tuple[np.ndarray, np.ndarray]:
        """Material and marking kind per lateral bin (0 none, 1 solid, 2 dashed).

        Bin i covers u from ``-LATERAL_RANGE + i * LATERAL_RESOLUTION``.
        """
        u = np.arange(-LATERAL_RANGE, LATERAL_RANGE, LATERAL_RESOLUTION) + LATERAL_RESOLUTION / 2
        material = np.full(u.shape, ASPHALT, np.uint8)
        marking = np.zeros(u.shape, np.uint8)
        for sign, side in ((1, self.right), (-1, self.left)):
            d = u * sign
            edge = side.road_edge
            bands = ((edge, edge + side.kerb, KERB),
                     (edge + side.kerb, edge + side.kerb + side.verge, GRASS),
                     (edge + side.kerb + side.verge, edge + side.kerb + side.verge
                      + side.sidewalk, SIDEWALK),
                     (side.building_line - side.setback, LATERAL_RANGE,
                      GRASS if side.setback_grass else YARD))
            for low, high, kind in bands:
                material[(d >= low) & (d < high)] = kind
            for lane in range(1, side.lanes):
                marking[np.abs(d - lane * side.lane_width) < 0.06] = 2
            if side.parking:
                marking[np.abs(d - side.lanes * side.lane_width) < 0.06] = 2
        width = 0.06 if self.centre_line != 'double' else 0.2
        centre = np.abs(u) < width
        if self.centre_line == 'double':
            centre &= np.abs(u) > 0.08
        marking[centre] = 2 if self.centre_line == 'dashed' else 1
        return material, marking


# Light and weather ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Weather:
    """Lighting and atmosphere of a sequence (colours RGB 0..255)."""

    name: str
    sun: np.ndarray            # unit vector towards the sun
    sun_light: float           # direct light on a surface facing the sun
    ambient: float             # light from the sky on every surface
    shadow: float              # how dark cast shadows get (0..1)
    haze: np.ndarray           # colour far surfaces fade to
    visibility: float          # m at which haze reaches 63 %
    zenith: np.ndarray
    horizon: np.ndarray
    clouds: float              # cloud cover 0..1
    cloud_colour: np.ndarray
    tint: np.ndarray           # white balance of the whole image


def random_weather(rng: np.random.Generator) -> Weather:
    """Sunny, overcast, hazy or low sun, with random sun position and colour balance."""
    name = rng.choice(['sunny', 'sunny', 'overcast', 'hazy', 'low_sun'])
    azimuth = rng.uniform(-np.pi, np.pi)
    elevation = rng.uniform(0.15, 0.3) if name == 'low_sun' else rng.uniform(0.4, 1.0)
    sun = np.array([np.cos(elevation) * np.sin(azimuth), np.sin(elevation),
                    np.cos(elevation) * np.cos(azimuth)])
    warm = np.array([1.0, 0.93, 0.82])
    if name == 'overcast':
        return Weather(name, sun, 0.15, 0.9, 0.15, np.array([190.0, 192, 196]),
                       rng.uniform(500, 1200), np.array([150.0, 155, 162]),
                       np.array([205.0, 207, 210]), 1.0, np.array([200.0, 202, 206]),
                       rng.uniform(0.95, 1.02, 3))
    if name == 'hazy':
        return Weather(name, sun, 0.45, 0.65, 0.45, np.array([200.0, 200, 195]),
                       rng.uniform(150, 300), np.array([150.0, 170, 190]),
                       np.array([205.0, 205, 200]), rng.uniform(0.2, 0.6),
                       np.array([225.0, 225, 222]), rng.uniform(0.97, 1.03, 3))
    low = name == 'low_sun'
    return Weather(
        str(name), sun, 0.75 if not low else 0.6, 0.5 if not low else 0.45, 0.6,
        np.array([185.0, 200, 220]) if not low else np.array([215.0, 190, 160]),
        rng.uniform(800, 2500), np.array([60.0, 110, 190]) if not low else
        np.array([80.0, 110, 170]),
        np.array([175.0, 200, 230]) if not low else np.array([235.0, 200, 160]),
        rng.uniform(0.0, 0.5), np.array([245.0, 245, 245]) if not low else
        np.array([250.0, 210, 170]),
        (warm if low else np.ones(3)) * rng.uniform(0.96, 1.04, 3))


# Ego motion -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EgoMotion:
    """The rig's path: lane keeping or a lane change, plus suspension and road shake."""

    s0: float
    speed: float
    accel: float
    lane: float             # lateral offset of the lane centre (m)
    lane_change: float      # lateral distance of an optional lane change (m)
    change_start: float     # s
    change_time: float      # s
    height: float
    pitch: float            # rad, + looks down
    shake: np.ndarray       # (3, 3): pitch, roll, height; amplitude, frequency (Hz), phase
    jitter_seed: int

    def pose(self, road: Road, t: float) -> dict[str, float]:
        """Rig position (x, y, z), yaw, pitch and roll at time ``t`` (s)."""
        s = self.s0 + self.speed * t + 0.5 * self.accel * t * t
        progress = np.clip((t - self.change_start) / self.change_time, 0, 1)
        smooth = progress * progress * (3 - 2 * progress)
        u = self.lane + self.lane_change * smooth
        # Lateral speed over forward speed gives the yaw relative to the road.
        du = self.lane_change * 6 * progress * (1 - progress) / self.change_time
        x, z, heading = road.to_world(s, u)
        speed = self.speed + self.accel * t
        wobble = [a * math.sin(2 * math.pi * f * t + p) for a, f, p in self.shake]
        jitter = np.random.default_rng([self.jitter_seed, round(t * 1000)]).normal(0, 1, 3)
        return {
            'x': float(x), 'y': self.height + wobble[2] + 0.004 * jitter[2], 'z': float(z),
            'yaw': float(heading) + math.atan2(du, max(speed, 0.1)),
            'pitch': self.pitch + wobble[0] + 0.0015 * jitter[0],
            'roll': wobble[1] + 0.001 * jitter[1],
            's': float(s), 'u': float(u), 'speed': float(speed),
        }


# The world --------------------------------------------------------------------------------------

@dataclass
class World:
    """Everything needed to render any frame of one sequence from any camera of the rig."""

    road: Road
    street: Street
    weather: Weather
    ego: EgoMotion
    parts: Parts
    objects: Objects
    ground_material: np.ndarray  # lateral table (see Street.lateral_tables)
    ground_marking: np.ndarray
    ground_textures: np.ndarray  # (6,) atlas index per ground material
    ground_scales: np.ndarray    # (6,) texels per metre
    ground_tints: np.ndarray     # (6, 3)
    hood: float                  # bonnet height at the image centre, fraction of image height
    hood_tint: np.ndarray


def build_world(rng: np.random.Generator, atlas: TextureAtlas, duration: float) -> World:
    """Draw a random street scene for a sequence lasting ``duration`` seconds."""
    weather = random_weather(rng)
    curvature = 0.0 if rng.random() < 0.35 else rng.choice([-1, 1]) / rng.uniform(180, 600)
    road = Road(float(curvature))
    urban = float(rng.choice([0.15, 0.6, 0.9, 1.0]))
    right, left = (_random_side(rng, urban) for _ in range(2))
    speed = float(rng.uniform(4, 13))
    ego = EgoMotion(
        s0=0.0, speed=speed, accel=float(rng.uniform(-1.0, 1.0)),
        lane=((right.lanes - 0.5) if rng.random() < 0.6 else 0.5) * right.lane_width,
        lane_change=0.0, change_start=0.0, change_time=1.0,
        height=float(rng.uniform(1.18, 1.4)), pitch=float(rng.uniform(0.005, 0.05)),
        shake=np.array([[rng.uniform(0.002, 0.006), rng.uniform(0.8, 2.0), rng.uniform(0, 6.3)],
                        [rng.uniform(0.001, 0.004), rng.uniform(0.5, 1.5), rng.uniform(0, 6.3)],
                        [rng.uniform(0.005, 0.015), rng.uniform(1.0, 2.5), rng.uniform(0, 6.3)]]),
        jitter_seed=int(rng.integers(2 ** 31)),
    )
    if right.lanes > 1 and rng.random() < 0.3:
        direction = -1 if ego.lane > right.lane_width else 1
        ego = replace(ego, lane_change=direction * right.lane_width,
                      change_start=float(rng.uniform(0, duration / 2)),
                      change_time=float(rng.uniform(1.5, 3.0)))
    travel = speed * duration + 2 * duration ** 2
    crossing = None
    if rng.random() < 0.45:
        start = float(travel + rng.uniform(15, 60))
        crossing = Crossing(start, start + float(rng.uniform(8, 14)), float(rng.uniform(2, 4)))
    street = Street(left, right, str(rng.choice(['dashed', 'dashed', 'solid', 'double'])),
                    crossing)
    builder = PartsBuilder(weather.sun)
    populate = _Populator(rng, atlas, builder, road, street, ego, duration, weather)
    populate.all()
    parts, objects = builder.build()
    material, marking = street.lateral_tables()
    asphalt_i = int(rng.integers(3))
    grass = atlas.group('grass')[rng.integers(3)]
    paving_tex = atlas.group('paving')[rng.integers(4)]
    yard = atlas.group('paving')[rng.integers(4)]
    textures = [atlas.group('asphalt')[asphalt_i], atlas.group('paint')[asphalt_i],
                atlas['kerb0'], paving_tex, grass, yard]
    tints = np.array([_tint(rng, 0.06), [1, 1, 1], [1, 1, 1], _tint(rng, 0.08),
                      _tint(rng, 0.1), _tint(rng, 0.08)], np.float32)
    return World(
        road=road, street=street, weather=weather, ego=ego, parts=parts, objects=objects,
        ground_material=material, ground_marking=marking,
        ground_textures=np.array([t.index for t in textures], np.int32),
        ground_scales=np.array([t.scale[0] for t in textures], np.float32),
        ground_tints=tints, hood=float(rng.uniform(0.1, 0.16)),
        hood_tint=np.array(_paint_colour(rng), np.float32) / 255,
    )


def _random_side(rng: np.random.Generator, urban: float) -> Side:
    verge = float(rng.uniform(0.8, 2.5)) if rng.random() < 0.3 + 0.3 * (1 - urban) else 0.0
    setback = 0.0 if rng.random() < urban else float(rng.uniform(1, 6))
    return Side(
        lanes=int(rng.choice([1, 1, 2])), lane_width=float(rng.uniform(3.0, 3.6)),
        parking=float(rng.uniform(2.0, 2.4)) if rng.random() < 0.5 else 0.0,
        kerb=float(rng.uniform(0.15, 0.3)), verge=verge, sidewalk=float(rng.uniform(1.8, 5.0)),
        setback=setback, setback_grass=bool(rng.random() < 0.7), urban=urban,
    )


def _tint(rng: np.random.Generator, spread: float) -> np.ndarray:
    return (1 + rng.uniform(-spread, spread)) * (1 + rng.uniform(-spread, spread, 3) / 3)


# Plausible car colours (most cars are grey, black, white or silver).
CAR_COLOURS = ((235, 235, 235), (40, 40, 42), (150, 152, 155), (185, 187, 190), (95, 98, 105),
               (30, 50, 110), (140, 20, 25), (20, 70, 50), (200, 200, 210), (120, 90, 60),
               (230, 190, 40), (60, 90, 140))


# Traffic mix in the lanes (trams count as 'train', as in Cityscapes).
VEHICLE_KINDS = ('car', 'truck', 'bus', 'motorcycle', 'tram')
VEHICLE_SHARES = (0.78, 0.07, 0.06, 0.06, 0.03)
MAX_HALF_LENGTH = {'car': 2.5, 'truck': 5.0, 'bus': 6.5, 'motorcycle': 1.0, 'tram': 16.0}

# Length and wheel radius (m) of bicycles (False) and motorcycles (True).
TWO_WHEELER_SIZE = {False: (1.75, 0.34), True: (2.0, 0.32)}


def _paint_colour(rng: np.random.Generator) -> np.ndarray:
    return np.asarray(CAR_COLOURS[rng.integers(len(CAR_COLOURS))], np.float64)


class _Populator:
    """Places buildings, street furniture, vehicles and people along the street."""

    def __init__(self, rng, atlas, builder, road, street, ego, duration, weather):
        self.rng, self.atlas, self.b = rng, atlas, builder
        self.road, self.street, self.ego, self.weather = road, street, ego, weather
        self.times = np.linspace(0, duration, 32)
        travel = self.ego_s(self.times).max()
        self.s_min, self.s_max = -25.0, travel + 230.0
        self.near_end = travel + 110.0  # traffic and people are placed up to here
        # Lateral offsets the rig drives along: its lane, and the target of a lane change.
        self.path = (ego.lane, ego.lane + ego.lane_change)

    def all(self) -> None:
        for sign in (1, -1):
            side = self.street.right if sign > 0 else self.street.left
            self.frontage(sign, side)
            self.skyline(sign, side)
            self.furniture(sign, side)
            self.pedestrians(sign, side)
            self.parked(sign, side)
        self.traffic()
        if self.street.crossing:
            self.crossing_objects(self.street.crossing)

    # Helpers ------------------------------------------------------------------------------------

    def ego_s(self, t: np.ndarray) -> np.ndarray:
        return self.ego.s0 + self.ego.speed * t + 0.5 * self.ego.accel * t * t

    def in_path(self, u: float, half_width: float) -> bool:
        """Tell whether something at lateral offset ``u`` would be in the rig's way."""
        return any(abs(u - p) < half_width + 1.0 for p in self.path)

    def clear_start(self, speed: float, margin: float = 8.0) -> float:
        """Return the least start (rear end) that stays ``margin`` ahead of the rig throughout."""
        return float((self.ego_s(self.times) - speed * self.times).max() + margin)

    def heading_at(self, s: float) -> float:
        return float(self.road.curvature * s)

    def blocked(self, s0: float, s1: float) -> bool:
        """Tell whether a cross street leaves no room for buildings between s0 and s1."""
        c = self.street.crossing
        return c is not None and s1 > c.start - c.sidewalk - 1 and s0 < c.stop + c.sidewalk + 1

    def obj(self, *, layer, s, u, heading=0.0, **kw) -> int:
        return self.b.add_object(layer=layer, s=s, u=u, heading=heading,
                                 road_heading=self.heading_at(s), **kw)

    def pick(self, group: str):
        options = self.atlas.group(group)
        return options[self.rng.integers(len(options))]

    def sun_lit(self) -> bool:
        return self.weather.shadow > 0.3

    # Buildings ----------------------------------------------------------------------------------

    def frontage(self, sign: int, side: Side) -> None:
        """Fill the building line: buildings, or walls, fences, hedges and trees."""
        rng = self.rng
        s = self.s_min
        while s < self.s_max:
            if rng.random() < 0.2 + 0.75 * side.urban:
                width = self.building(sign, side, s)
            else:
                width = self.yard(sign, side, s)
            s += width + (rng.uniform(0, 3) if rng.random() > side.urban else 0.0)

    def building(self, sign: int, side: Side, s: float) -> float:
        rng = self.rng
        kind = rng.choice(['plaster'] * 5 + ['brick'] * 2 + ['glass'] * (1 if side.urban > 0.5
                                                                           else 0))
        facades = [t for t in self.atlas.group(f'facade_{kind}')]
        facade = facades[rng.integers(len(facades))]
        bay, storey = FACADE_BAY / facade.scale[0], FACADE_BAY / facade.scale[1]
        bays = int(rng.integers(3, 9))
        width = bays * bay
        if self.blocked(s, s + width):
            return width
        urban = side.urban
        storeys = int(rng.integers(1, 3) + round(urban * rng.integers(1, 5)))
        depth = float(rng.uniform(8, 16))
        shop = urban > 0.5 and rng.random() < 0.6
        ground = 4.0 if shop else 0.0
        height = ground + storeys * storey
        u = sign * (side.building_line + depth / 2)
        obj = self.obj(layer=1, s=s + width / 2, u=u, half_extent=(depth / 2, width / 2))
        tint = _tint(rng, 0.12) * np.array(_facade_colour(rng, kind)) / 220
        faces = 'fblr'
        # In object coordinates (heading along the road) the facade faces −x on the right.
        if shop:
            self.b.add_box(obj, (0, 0, 0), (depth, ground, width),
                           {'*': self.pick('concrete'), 'l' if sign > 0 else 'r':
                            self.pick('shop')}, 'building', tint=(1, 1, 1), faces=faces)
        self.b.add_box(obj, (0, ground, 0), (depth, height - ground, width), {'*': facade},
                       'building', tint=tint, faces=faces)
        if self.sun_lit():
            self.b.add_shadow(obj, _footprint(depth, width), height)
        return width

    def yard(self, sign: int, side: Side, s: float) -> float:
        """Fill a gap in the row: a wall, fence or hedge, trees behind."""
        rng = self.rng
        width = float(rng.uniform(6, 20))
        if self.blocked(s, s + width):
            return width
        u = sign * (side.building_line + 0.15)
        kind = rng.choice(['wall', 'fence', 'hedge', 'open'])
        obj = self.obj(layer=1, s=s + width / 2, u=u, half_extent=(0.3, width / 2))
        if kind == 'wall':
            height = float(rng.uniform(0.8, 2.4))
            self.b.add_box(obj, (0, 0, 0), (0.3, height, width), {'*': self.pick('concrete')},
                           'wall', tint=_tint(rng, 0.1), faces='fblrt')
        elif kind == 'fence':
            height = float(rng.uniform(1.0, 2.0))
            fence = self.pick('fence_mesh') if rng.random() < 0.5 else self.pick(
                rng.choice(['fence_wood', 'fence_bars']))
            self.b.add_part(obj, (0, height, -width / 2), (0, 0, 1), (0, -1, 0),
                            [(0, 0), (width, 0), (width, height), (0, height)], fence, 'fence',
                            tint=_tint(rng, 0.1), two_sided=True)
        elif kind == 'hedge':
            height = float(rng.uniform(0.9, 2.2))
            self.b.add_box(obj, (0, 0, 0), (1.0, height, width), {'*': self.pick('foliage')},
                           'vegetation', tint=_tint(rng, 0.1), faces='fblrt')
        for _ in range(int(rng.integers(0, 3))):
            self.tree(sign * (side.building_line + rng.uniform(2, 10)),
                      s + rng.uniform(0, width), layer=1, big=True)
        return width

    def skyline(self, sign: int, side: Side) -> None:
        """Taller blocks behind the first row, and tree masses in the suburbs."""
        rng = self.rng
        s = self.s_min + rng.uniform(0, 20)
        while s < self.s_max + 80:
            width = float(rng.uniform(15, 40))
            back = side.building_line + rng.uniform(20, 45)
            if rng.random() < side.urban:
                facade = self.pick('facade_plaster' if rng.random() < 0.7 else 'facade_glass')
                storey = FACADE_BAY / facade.scale[1]
                height = float(rng.integers(4, 12) * storey)
                obj = self.obj(layer=0, s=s, u=sign * (back + 8), half_extent=(8, width / 2))
                self.b.add_box(obj, (0, 0, 0), (16, height, width), {'*': facade}, 'building',
                               tint=_tint(rng, 0.15) * 0.95, faces='fblr')
            else:
                for _ in range(3):
                    self.tree(sign * back, s + rng.uniform(0, width), layer=0, big=True)
            s += width + rng.uniform(0, 15)

    # Street furniture ---------------------------------------------------------------------------

    def tree(self, u: float, s: float, layer: int, big: bool = False) -> None:
        rng = self.rng
        trunk = float(rng.uniform(2.0, 3.5))
        radius = float(rng.uniform(2.5, 4.5) if big else rng.uniform(1.5, 3.0))
        obj = self.obj(layer=layer, s=s, u=u, billboard=True, half_extent=(0.2, 0.2))
        bark = self.atlas['bark0']
        self.b.add_cutout(obj, [(-0.15, 0), (0.15, 0), (0.12, trunk + radius * 0.5),
                                (-0.12, trunk + radius * 0.5)], bark, 'vegetation')
        foliage = self.pick('foliage')
        tint = _tint(rng, 0.12)
        for dx, dy, scale in ((0.0, 0.0, 1.0), (-0.45, -0.25, 0.7), (0.45, -0.2, 0.75)):
            blob = ellipse(dx * radius, trunk + radius * (0.9 + dy), radius * scale,
                           radius * scale * 0.9, 14, jitter=rng.uniform(-0.12, 0.12, 14))
            self.b.add_cutout(obj, blob, foliage, 'vegetation', tint=tint)
        if self.sun_lit():
            self.b.add_shadow(obj, _footprint(radius * 1.4, radius * 1.4), radius * 1.6,
                              base=trunk, value=200)

    def furniture(self, sign: int, side: Side) -> None:
        rng = self.rng
        kerb_u = side.road_edge + side.kerb + 0.5
        spacing = float(rng.uniform(22, 40))
        s = self.s_min + rng.uniform(0, spacing)
        while s < self.s_max:
            if not self.blocked(s, s):
                self.lamp(sign, kerb_u, s)
            s += spacing
        if side.verge > 1.0 or rng.random() < 0.4:
            spacing = float(rng.uniform(8, 16))
            s = self.s_min + rng.uniform(0, spacing)
            tree_u = side.road_edge + side.kerb + (side.verge / 2 if side.verge > 1.0 else 0.8)
            while s < self.s_max:
                if not self.blocked(s - 3, s + 3):
                    self.tree(sign * tree_u, s, layer=2)
                s += spacing * rng.uniform(0.8, 1.2)
        for _ in range(int(rng.integers(1, 5))):
            s = float(rng.uniform(0, self.near_end))
            if not self.blocked(s, s):
                self.sign(sign, kerb_u, s)
        for _ in range(int(rng.integers(0, 3))):
            s = float(rng.uniform(0, self.near_end))
            self.parked_bicycle(sign * (side.building_line - rng.uniform(0.4, 1.0)), s)

    def lamp(self, sign: int, u: float, s: float) -> None:
        rng = self.rng
        height = float(rng.uniform(5.5, 8.5))
        obj = self.obj(layer=2, s=s, u=sign * u, half_extent=(0.1, 0.1))
        metal = self.pick('metal')
        self.b.add_box(obj, (0, 0, 0), (0.16, height, 0.16), {'*': metal}, 'pole', faces='fblrt')
        arm = float(rng.uniform(1.0, 2.2))
        # The arm reaches over the road: towards −x on the right-hand side.
        self.b.add_box(obj, (-sign * arm / 2, height - 0.1, 0), (arm, 0.1, 0.1), {'*': metal},
                       'pole', faces='fblrt')
        self.b.add_box(obj, (-sign * arm, height - 0.25, 0), (0.5, 0.2, 0.3), {'*': metal},
                       'pole', faces='fblrt')
        if self.sun_lit():
            self.b.add_shadow(obj, _footprint(0.16, 0.16), height, value=170)

    def sign(self, sign: int, u: float, s: float) -> None:
        rng = self.rng
        kind = rng.choice(['prohibitory', 'mandatory', 'warning', 'priority', 'information'])
        obj = self.obj(layer=2, s=s, u=sign * u, half_extent=(0.05, 0.05),
                       heading=0.0 if sign > 0 else float(rng.choice([0.0, np.pi])))
        height = float(rng.uniform(2.0, 2.6))
        self.b.add_box(obj, (0, 0, 0), (0.07, height + 0.5, 0.07), {'*': self.pick('metal')},
                       'pole', faces='fblr')
        size = float(rng.uniform(0.55, 0.8))
        shape = {'prohibitory': ellipse(0, 0, size / 2, size / 2, 16),
                 'mandatory': ellipse(0, 0, size / 2, size / 2, 16),
                 'warning': np.array([(0, 0.45), (0.52, -0.45), (-0.52, -0.45)]) * size,
                 'priority': np.array([(0, 0.5), (0.5, 0), (0, -0.5), (-0.5, 0)]) * size * 1.2,
                 'information': np.array([(-0.5, -0.5), (0.5, -0.5), (0.5, 0.5),
                                          (-0.5, 0.5)]) * size}[kind]
        # Plane coordinates are (x, −y) for the face looking back along the road (−z), towards
        # approaching traffic, and (−x, −y) for the plate's back.
        x, y = shape[:, 0], height + size / 2 + shape[:, 1]
        self.b.add_part(obj, (0, 0, -0.06), (1, 0, 0), (0, -1, 0), np.stack([x, -y], axis=1),
                        self.atlas[f'sign_{kind}0'], 'traffic sign')
        self.b.add_part(obj, (0, 0, -0.05), (-1, 0, 0), (0, -1, 0), np.stack([-x, -y], axis=1),
                        self.atlas['sign_back0'], 'traffic sign')

    def traffic_light(self, u: float, s: float, facing: float, overhead: float = 0.0) -> None:
        rng = self.rng
        obj = self.obj(layer=2, s=s, u=u, heading=facing, half_extent=(0.1, 0.1))
        metal = self.pick('metal')
        height = 5.6 if overhead else float(rng.uniform(2.8, 3.4))
        self.b.add_box(obj, (0, 0, 0), (0.14, height, 0.14), {'*': metal}, 'pole', faces='fblrt')
        x = 0.0
        if overhead:
            # Reach over the road: object −x is towards the centre line for a right-side pole.
            self.b.add_box(obj, (-overhead / 2, height - 0.3, 0), (overhead, 0.12, 0.12),
                           {'*': metal}, 'pole', faces='fblrt')
            x = -overhead + 0.3
        lit = self.atlas.group('light')[rng.integers(3)]
        housing = self.atlas['metal1']
        top = height - (0.35 if overhead else 0.0)
        self.b.add_box(obj, (x, top - 1.0 if overhead else top, -0.2), (0.34, 0.95, 0.25),
                       {'*': housing, 'b': lit}, 'traffic light', tint=(0.35, 0.35, 0.35),
                       tints={'b': (1, 1, 1)}, faces='fblrt')

    def parked_bicycle(self, u: float, s: float) -> None:
        rng = self.rng
        motor = rng.random() < 0.35
        obj = self.obj(layer=2, s=s, u=u, heading=float(rng.choice([0.5, -0.5, np.pi / 2])),
                       half_extent=(0.3, 0.9))
        self.vehicle_2wheel(obj, motor, _paint_colour(rng) / 255)

    # Vehicles and people ------------------------------------------------------------------------

    def car(self, s: float, u: float, heading: float, speed: float, speed_u: float = 0.0) -> None:
        rng = self.rng
        length, width = float(rng.uniform(3.9, 4.9)), float(rng.uniform(1.7, 1.9))
        obj = self.obj(layer=2, s=s, u=u, heading=heading, speed_s=speed, speed_u=speed_u,
                       half_extent=(width / 2, length / 2))
        tint = _paint_colour(rng) / 225
        a = self.atlas
        wheel_r = 0.32
        body = float(rng.uniform(0.65, 0.8))
        self.b.add_box(obj, (0, 0.28, 0), (width, body, length),
                       {'*': a['paint0'], 'l': a['car_side0'], 'r': a['car_side0'],
                        'f': a['car_front0'], 'b': a['car_back0']}, 'car', tint=tint)
        # The cabin: a frustum with raked windscreen and rear window, set back from the nose.
        cabin, roof = length * rng.uniform(0.5, 0.62), length * rng.uniform(0.28, 0.38)
        low, high = 0.28 + body, 0.28 + body + rng.uniform(0.42, 0.58)
        back = -length / 2 + length * rng.uniform(0.08, 0.2)
        roof_back = back + rng.uniform(0.15, 0.5)
        half_low, half_high = width * 0.46, width * 0.38
        self.b.add_hull(obj, _ring(half_low, low, back, back + cabin),
                        _ring(half_high, high, roof_back, roof_back + roof),
                        {'*': a['glass0'], 'f': a['windscreen0'], 'b': a['windscreen0'],
                         't': a['paint0']}, 'car', tints={'t': tint})
        for zw in (-length / 2 + 0.8, length / 2 - 0.8):
            for side in (-1, 1):
                wheel = ellipse(zw * side, wheel_r, wheel_r, wheel_r, 10)
                # Side cut-outs are drawn per side and culled with the body side behind them.
                axis_u = np.array([0.0, 0.0, float(side)])
                self.b.add_part(obj, (side * (width / 2 + 0.01), 0, 0), axis_u, (0, -1, 0),
                                np.stack([wheel[:, 0], -wheel[:, 1]], axis=1), a['wheel0'],
                                'car')
        for zf, normal in ((length / 2, 1), (-length / 2, -1)):
            for side in (-1, 1):
                x0 = side * (width / 2 - 0.15)
                self.b.add_part(obj, (x0 + 0.11 * normal, 0.3, zf + 0.01 * normal),
                                (-normal, 0, 0), (0, -1, 0), _quad(0.22, 0.3), a['wheel0'],
                                'car', tint=(0.3, 0.3, 0.3))
        self.b.add_shadow(obj, _footprint(width * 1.05, length * 1.02), 0.25, value=255)
        if self.sun_lit():
            self.b.add_shadow(obj, _footprint(width, length), 1.4, value=200)

    def big_vehicle(self, kind: str, s: float, u: float, heading: float, speed: float) -> None:
        rng = self.rng
        a = self.atlas
        tint = _paint_colour(rng) / 225 if kind != 'tram' else np.array([1.0, 0.95, 0.8])
        if kind == 'bus':
            length, width, height = float(rng.uniform(11, 13)), 2.55, 3.1
            textures = {'*': a['paint0'], 'l': a['bus_side0'], 'r': a['bus_side0'],
                        'f': a['vehicle_front0'], 'b': a['vehicle_back0']}
            label = 'bus'
        elif kind == 'tram':
            length, width, height = float(rng.uniform(25, 32)), 2.4, 3.4
            textures = {'*': a['paint0'], 'l': a['tram_side0'], 'r': a['tram_side0'],
                        'f': a['vehicle_front0'], 'b': a['vehicle_front0']}
            label = 'train'
        else:
            length, width, height = float(rng.uniform(7, 10)), 2.5, float(rng.uniform(3.0, 3.8))
            textures = {'*': self.pick('cargo')}
            label = 'truck'
        obj = self.obj(layer=2, s=s, u=u, heading=heading, speed_s=speed,
                       half_extent=(width / 2, length / 2))
        clearance = 0.35
        if kind == 'truck':
            cab = 2.2
            self.b.add_box(obj, (0, clearance, -cab / 2), (width, height - clearance,
                                                           length - cab), textures, label,
                           tint=_tint(rng, 0.1))
            self.b.add_box(obj, (0, clearance, length / 2 - cab / 2), (width, 2.6, cab),
                           {'*': a['paint0'], 'f': a['vehicle_front0']}, label, tint=tint)
        else:
            self.b.add_box(obj, (0, clearance, 0), (width, height - clearance, length), textures,
                           label, tint=tint)
        if kind == 'tram':
            self.b.add_part(obj, (0.0, height + 0.9, -2.0), (0, 0, 1), (0, -1, 0),
                            [(0, 0), (2.5, 0.85), (2.4, 0.9), (-0.1, 0.05)], a['metal0'], label,
                            two_sided=True, tint=(0.4, 0.4, 0.4))
        for zw in (-length / 2 + 1.6, length / 2 - 1.6):
            for side in (-1, 1):
                wheel = ellipse(zw * side, 0.5, 0.5, 0.5, 10)
                self.b.add_part(obj, (side * (width / 2 + 0.01), 0, 0), (0, 0, side), (0, -1, 0),
                                np.stack([wheel[:, 0], -wheel[:, 1]], axis=1), a['wheel0'],
                                label)
        self.b.add_shadow(obj, _footprint(width * 1.04, length * 1.01), 0.3, value=255)
        if self.sun_lit():
            self.b.add_shadow(obj, _footprint(width, length), height, value=200)

    def vehicle_2wheel(self, obj: int, motor: bool, tint: np.ndarray) -> None:
        a = self.atlas
        label = 'motorcycle' if motor else 'bicycle'
        length, wheel = TWO_WHEELER_SIZE[motor]
        wheels, frame = bicycle_side(length, wheel, motor)
        for outline in wheels:
            self.b.add_cutout(obj, outline, a['wheel0'], label, side=True)
        self.b.add_cutout(obj, frame, a['paint0'], label, tint=tint, side=True)
        self.b.add_cutout(obj, bicycle_end(0.75 if motor else 0.6, wheel, motor), a['metal1'],
                          label, tint=(0.5, 0.5, 0.5))
        if motor:
            self.b.add_cutout(obj, [(-0.3, 0.35), (0.3, 0.35), (0.25, 0.9), (-0.25, 0.9)],
                              a['paint0'], label, tint=tint)

    def rider(self, s: float, u: float, heading: float, speed: float, motor: bool) -> None:
        rng = self.rng
        obj = self.obj(layer=2, s=s, u=u, heading=heading, speed_s=speed,
                       half_extent=(0.35, 1.0))
        self.vehicle_2wheel(obj, motor, _paint_colour(rng) / 255)
        # The rider faces the rig like a person; a second object at the same place.
        rider = self.obj(layer=2, s=s, u=u, heading=heading, speed_s=speed, billboard=True,
                         half_extent=(0.3, 0.3))
        texture = self.pick('rider' if motor or rng.random() < 0.5 else 'person')
        seat = 0.95 if motor else 1.05
        for outline in rider_outline(seat, float(rng.uniform(0.55, 0.7))):
            self.b.add_cutout(rider, outline, texture, 'rider')
        self.b.add_shadow(obj, _footprint(0.6, TWO_WHEELER_SIZE[motor][0]), 0.3, value=230)

    def person(self, s: float, u: float, speed_s: float, speed_u: float = 0.0) -> None:
        rng = self.rng
        height = float(rng.normal(1.72, 0.09) if rng.random() < 0.9 else rng.uniform(1.1, 1.4))
        walking = abs(speed_s) + abs(speed_u) > 0.1
        obj = self.obj(layer=2, s=s, u=u, speed_s=speed_s, speed_u=speed_u, billboard=True,
                       half_extent=(0.25, 0.25), anim_period=0.32 if walking else 0.0,
                       anim_poses=4, anim_phase=int(rng.integers(4)))
        texture = self.pick('person')
        build = float(rng.uniform(0.9, 1.15))
        strides = (0.0, 0.09, 0.0, -0.09) if walking else (0.0,)
        for pose, stride in enumerate(strides):
            for outline in person_outline(height, stride, build):
                self.b.add_cutout(obj, outline, texture, 'person',
                                  anim=pose if walking else -1)
        if rng.random() < 0.2:  # a bag or pushchair next to some people
            self.b.add_cutout(obj, [(0.22, 0.35), (0.42, 0.35), (0.42, 0.75), (0.22, 0.75)],
                              self.atlas['paint0'], 'person', tint=_paint_colour(rng) / 400,
                              anim=-1, depth=0.02)
        self.b.add_shadow(obj, _footprint(0.5, 0.35), 0.1, value=230)
        if self.sun_lit():
            self.b.add_shadow(obj, _footprint(0.35, 0.25), height * 0.9, value=190)

    def pedestrians(self, sign: int, side: Side) -> None:
        rng = self.rng
        count = int(rng.poisson(3 + 5 * side.urban))
        for _ in range(count):
            s = float(rng.uniform(-5, self.near_end))
            u = sign * (side.sidewalk_centre + rng.uniform(-0.4, 0.4) * side.sidewalk)
            speed = float(rng.choice([-1, 1]) * rng.uniform(0.9, 1.6)) if rng.random() < 0.8 \
                else 0.0
            if rng.random() < 0.25:  # groups
                for _ in range(int(rng.integers(1, 3))):
                    self.person(s + rng.uniform(-1, 1), u + rng.uniform(-0.6, 0.6), speed)
            self.person(s, u, speed)

    def parked(self, sign: int, side: Side) -> None:
        if not side.parking:
            return
        rng = self.rng
        u = sign * (side.road_edge - side.parking / 2)
        s = self.s_min + rng.uniform(0, 5)
        while s < self.near_end + 40:
            if rng.random() < 0.55 and not self.blocked(s - 6, s + 6):
                heading = 0.0 if sign > 0 or rng.random() < 0.3 else np.pi
                self.car(s, u + rng.uniform(-0.15, 0.15), heading, 0.0)
            s += rng.uniform(5.2, 7.5)

    def traffic(self) -> None:
        """Put vehicles in every lane; lanes on the rig's path keep clear ahead of it."""
        rng = self.rng
        ego = self.ego
        for sign, side in ((1, self.street.right), (-1, self.street.left)):
            for lane in range(side.lanes):
                u = sign * (lane + 0.5) * side.lane_width
                speed = float(rng.uniform(5, 13)) * sign
                if sign > 0 and self.in_path(u, 0.5):
                    speed = max(1.0, ego.speed + rng.uniform(-2.0, 2.0))
                    s = self.clear_start(speed) + rng.uniform(0, 15)
                else:
                    s = ego.s0 + rng.uniform(-15, 20)
                while s < self.near_end:
                    if rng.random() < 0.55:
                        s += self.vehicle(s, u, 0.0 if sign > 0 else np.pi, speed)
                    s += rng.uniform(8, 30)
            if rng.random() < 0.5:
                u = sign * (side.lanes * side.lane_width - 0.8)
                speed = sign * float(rng.uniform(3, 6))
                low = self.clear_start(speed) if self.in_path(u, 0.4) else 5.0
                self.rider(float(rng.uniform(low, max(low, self.near_end))), u,
                           0.0 if sign > 0 else np.pi, speed, motor=False)

    def vehicle(self, s: float, u: float, heading: float, speed: float) -> float:
        """Place a random vehicle in a lane with its rear end at ``s``; returns its length."""
        kind = str(self.rng.choice(VEHICLE_KINDS, p=VEHICLE_SHARES))
        centre = s + MAX_HALF_LENGTH[kind]
        if kind == 'car':
            self.car(centre, u, heading, speed)
        elif kind == 'motorcycle':
            self.rider(centre, u, heading, speed, motor=True)
        else:
            self.big_vehicle(kind, centre, u, heading, speed)
        return 2 * MAX_HALF_LENGTH[kind]

    def crossing_objects(self, c: Crossing) -> None:
        rng = self.rng
        for sign, side in ((1, self.street.right), (-1, self.street.left)):
            pole_u = sign * (side.road_edge + side.kerb + 0.6)
            # Lights for the rig's direction stand before the crossing, for oncoming after it.
            if sign > 0:
                self.traffic_light(pole_u, c.start - 0.5, 0.0,
                                   overhead=float(side.road_edge * 0.6) if rng.random() < 0.5
                                   else 0.0)
                self.traffic_light(pole_u, c.stop + 0.5, 0.0)
            else:
                self.traffic_light(pole_u, c.stop + 0.5, np.pi)
                self.traffic_light(pole_u, c.start - 0.5, 0.0)
        for _ in range(int(rng.integers(0, 4))):
            walk = float(rng.choice([-1, 1]) * rng.uniform(0.9, 1.5))
            self.person(c.start - rng.uniform(1, 3.5), rng.uniform(-6, 6), 0.0, walk)
        for _ in range(int(rng.integers(0, 3))):
            direction = float(rng.choice([-1, 1]))
            self.car((c.start + c.stop) / 2 + direction * 2.0, -direction * rng.uniform(15, 40),
                     direction * np.pi / 2, 0.0, speed_u=direction * rng.uniform(4, 9))


def _facade_colour(rng: np.random.Generator, kind: str) -> tuple[float, float, float]:
    if kind != 'plaster':
        return (220, 220, 220)
    palette = ((230, 220, 200), (235, 230, 220), (220, 200, 170), (210, 180, 150),
               (200, 205, 210), (225, 210, 190), (190, 170, 160), (215, 215, 200),
               (200, 190, 150), (170, 175, 180))
    return palette[rng.integers(len(palette))]


def _footprint(width: float, length: float) -> np.ndarray:
    return np.array([(-width / 2, -length / 2), (width / 2, -length / 2),
                     (width / 2, length / 2), (-width / 2, length / 2)])


def _ring(half_width: float, y: float, z0: float, z1: float) -> np.ndarray:
    """Four corners at height y: back-left, back-right, front-right, front-left."""
    return np.array([(-half_width, y, z0), (half_width, y, z0), (half_width, y, z1),
                     (-half_width, y, z1)])


def _quad(width: float, height: float) -> np.ndarray:
    return np.array([(0, 0), (width, 0), (width, height), (0, height)], np.float64)
