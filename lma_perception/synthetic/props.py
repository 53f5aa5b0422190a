"""Scene objects as flat, textured polygons ("parts") in object coordinates.

Every visible surface is a planar polygon: a box is five quads, a person a cut-out silhouette, a
bicycle two crossed cut-outs. A part is given by a plane (origin and two unit axes ``axis_u``
to the right and ``axis_v`` downwards as seen from its front, so that ``axis_u × axis_v`` is the
outward normal), a polygon in that plane (metres) and a texture mapping. Ground shadows are parts
too, lying on the ground and drawn into a shadow mask instead of the image.

Object coordinates: x to the right, y up, z forward (the heading), origin on the ground at the
footprint centre. The renderer places objects by their road coordinates and heading each frame.
Parts of one object are drawn in the order they were added, objects far to near.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lma_perception.labels import LABEL_BY_NAME
from lma_perception.synthetic.textures import SIZE, Texture

UP = np.array([0.0, 1.0, 0.0])
DOWN = -UP
# Box faces: outward normal, axis_u, axis_v (axis_u × axis_v = normal; v runs down the face).
BOX_FACES = {
    face: (np.array(normal, np.float64), np.cross(down, normal), np.array(down, np.float64))
    for face, normal, down in (('f', (0, 0, 1), DOWN), ('b', (0, 0, -1), DOWN),
                               ('l', (-1, 0, 0), DOWN), ('r', (1, 0, 0), DOWN),
                               ('t', (0, 1, 0), (0.0, 0.0, -1.0)))
}


def label_id(name: str) -> int:
    """Return the Cityscapes label id of a class name."""
    return LABEL_BY_NAME[name].id


@dataclass
class Parts:
    """All parts of a world as flat arrays (P parts, V polygon vertices)."""

    obj: np.ndarray        # (P,) int32 owning object
    origin: np.ndarray     # (P, 3) float64, object coordinates
    axis_u: np.ndarray     # (P, 3)
    axis_v: np.ndarray     # (P, 3)
    two_sided: np.ndarray  # (P,) bool: never back-face culled
    shadow: np.ndarray     # (P,) uint8: 0 = visible surface, else shadow-mask value
    label: np.ndarray      # (P,) uint8 Cityscapes label id
    texture: np.ndarray    # (P,) int32 atlas index
    tex_origin: np.ndarray  # (P, 2) plane coordinates (metres) of texel (0, 0)
    tex_scale: np.ndarray  # (P, 2) texels per metre along u and v
    tint: np.ndarray       # (P, 3) float32 colour multiplier
    anim: np.ndarray       # (P,) int8: -1 always shown, k: only in the object's animation pose k
    vstart: np.ndarray     # (P,) int32 first vertex
    vcount: np.ndarray     # (P,) int32 vertex count
    verts: np.ndarray      # (V, 2) float64 polygon vertices in plane coordinates

    def __len__(self) -> int:
        return len(self.obj)


@dataclass
class Objects:
    """Placement and motion of every object (O objects), in road coordinates."""

    layer: np.ndarray       # (O,) int8: drawn layer by layer (0 skyline, 1 frontage, 2 street)
    billboard: np.ndarray   # (O,) bool: turns to face the camera rig every frame
    s: np.ndarray           # (O,) arc length along the road at t = 0 (m)
    u: np.ndarray           # (O,) lateral offset from the centre line at t = 0 (m, + right)
    speed_s: np.ndarray     # (O,) m/s along the road
    speed_u: np.ndarray     # (O,) m/s across the road
    heading: np.ndarray     # (O,) yaw relative to the road direction (rad)
    half_extent: np.ndarray  # (O, 2) footprint half width (x) and half length (z)
    anim_period: np.ndarray  # (O,) seconds per animation pose, 0 = static
    anim_poses: np.ndarray  # (O,) number of poses
    anim_phase: np.ndarray  # (O,) pose offset

    def __len__(self) -> int:
        return len(self.layer)


@dataclass
class PartsBuilder:
    """Accumulates objects and their parts, then packs them into arrays."""

    sun: np.ndarray  # unit vector towards the sun, world coordinates
    _parts: list[tuple] = field(default_factory=list)
    _verts: list[np.ndarray] = field(default_factory=list)
    _objects: list[tuple] = field(default_factory=list)
    _yaws: list[float] = field(default_factory=list)

    def add_object(self, *, layer: int, s: float, u: float, heading: float = 0.0,
                   road_heading: float = 0.0, speed_s: float = 0.0, speed_u: float = 0.0,
                   billboard: bool = False, half_extent: tuple[float, float] = (0.5, 0.5),
                   anim_period: float = 0.0, anim_poses: int = 1, anim_phase: int = 0) -> int:
        """Add an object and return its index; ``road_heading`` orients its shadows."""
        self._objects.append((layer, billboard, s, u, speed_s, speed_u, heading, *half_extent,
                              anim_period, anim_poses, anim_phase))
        self._yaws.append(road_heading + heading)
        return len(self._objects) - 1

    def add_part(self, obj: int, origin, axis_u, axis_v, polygon, texture: Texture, label: str,
                 *, tint=(1.0, 1.0, 1.0), two_sided: bool = False, anim: int = -1,
                 shadow: int = 0) -> None:
        """Add a planar polygon (plane coordinates, metres) with a texture."""
        polygon = np.asarray(polygon, np.float64).reshape(-1, 2)
        low, high = polygon.min(0), polygon.max(0)
        scale = np.array(texture.scale, np.float64)
        stretched = scale == 0
        # A stretched texture spans the polygon's bounding box from texel 0.5 to SIZE - 0.5.
        extent = np.maximum(high - low, 1e-6)
        scale = np.where(stretched, (SIZE - 1) / extent, scale)
        tex_origin = np.where(stretched, low - 0.5 / scale, low)
        self._parts.append((obj, np.asarray(origin, np.float64), np.asarray(axis_u, np.float64),
                            np.asarray(axis_v, np.float64), two_sided, shadow,
                            label_id(label) if label else 0, texture.index, tex_origin, scale,
                            np.asarray(tint, np.float32), anim, len(polygon)))
        self._verts.append(polygon)

    def add_box(self, obj: int, centre, size, textures: dict[str, Texture], label: str, *,
                tint=(1.0, 1.0, 1.0), faces: str = 'fblrt', tints: dict | None = None) -> None:
        """Add the faces of a box: centre of its base, size (width x, height y, length z).

        ``faces`` picks front (+z), back (−z), left (−x), right (+x), top; ``textures`` maps
        those letters to textures (missing letters use ``textures['*']``).
        """
        cx, base, cz = centre
        width, height, length = size
        half = np.array([width, height, length]) / 2
        middle = np.array([cx, base + height / 2, cz])
        for face in faces:
            normal, axis_u, axis_v = BOX_FACES[face]
            extent_u = float(np.abs(axis_u) @ half) * 2
            extent_v = float(np.abs(axis_v) @ half) * 2
            face_centre = middle + normal * half
            origin = face_centre - axis_u * extent_u / 2 - axis_v * extent_v / 2
            texture = textures.get(face, textures.get('*'))
            face_tint = (tints or {}).get(face, tint)
            self.add_part(obj, origin, axis_u, axis_v, _rect(extent_u, extent_v), texture, label,
                          tint=face_tint)

    def add_hull(self, obj: int, bottom, top, textures: dict[str, Texture], label: str, *,
                 tint=(1.0, 1.0, 1.0), tints: dict | None = None) -> None:
        """Add a convex hexahedron from its bottom and top corners, e.g. a raked cabin.

        Corners are (x, y, z), four each, in the order back-left, back-right, front-right,
        front-left.
        """
        bottom, top = np.asarray(bottom, np.float64), np.asarray(top, np.float64)
        centre = np.concatenate([bottom, top]).mean(0)
        faces = {'b': (0, 1), 'r': (1, 2), 'f': (2, 3), 'l': (3, 0)}
        quads = {face: np.array([bottom[i], bottom[j], top[j], top[i]])
                 for face, (i, j) in faces.items()}
        quads['t'] = top
        for face, corners in quads.items():
            normal = np.cross(corners[1] - corners[0], corners[3] - corners[0])
            normal /= np.linalg.norm(normal)
            if normal @ (corners.mean(0) - centre) < 0:
                normal = -normal
            down = np.array([0.0, 0.0, -1.0]) if face == 't' else DOWN
            axis_v = down - (down @ normal) * normal
            axis_v /= np.linalg.norm(axis_v)
            axis_u = np.cross(axis_v, normal)
            origin = corners.mean(0)
            polygon = np.stack([(corners - origin) @ axis_u, (corners - origin) @ axis_v], 1)
            self.add_part(obj, origin, axis_u, axis_v, polygon,
                          textures.get(face, textures.get('*')), label,
                          tint=(tints or {}).get(face, tint))

    def add_cutout(self, obj: int, outline, texture: Texture, label: str, *, tint=(1.0,) * 3,
                   anim: int = -1, depth: float = 0.0, side: bool = False) -> None:
        """Add a two-sided vertical cut-out; ``outline`` in (x right, y up) metres.

        Facing the object's front (+z) by default, or its right side (+x, outline x = forward)
        when ``side`` is set; ``depth`` shifts it along its normal.
        """
        outline = np.asarray(outline, np.float64)
        if side:
            origin, axis_u = np.array([depth, 0.0, 0.0]), np.array([0.0, 0.0, 1.0])
        else:
            origin, axis_u = np.array([0.0, 0.0, depth]), np.array([-1.0, 0.0, 0.0])
        polygon = np.stack([outline[:, 0], -outline[:, 1]], axis=1)
        self.add_part(obj, origin, axis_u, DOWN, polygon, texture, label, tint=tint,
                      two_sided=True, anim=anim)

    def add_shadow(self, obj: int, footprint, height: float, base: float = 0.0,
                   value: int = 255) -> None:
        """Add the ground shadow cast by a prism over ``footprint`` (x, z object coordinates)."""
        footprint = np.asarray(footprint, np.float64)
        yaw = self._yaws[obj]
        # The sun's horizontal direction in object coordinates; a point at height h casts its
        # shadow h / tan(elevation) away from the sun.
        cos_y, sin_y = np.cos(yaw), np.sin(yaw)
        sun_x = self.sun[0] * cos_y - self.sun[2] * sin_y
        sun_z = self.sun[0] * sin_y + self.sun[2] * cos_y
        reach = np.array([sun_x, sun_z]) / max(self.sun[1], 0.1)
        points = np.concatenate([footprint - reach * base, footprint - reach * (base + height)])
        hull = _convex_hull(points)
        polygon = np.stack([hull[:, 0], -hull[:, 1]], axis=1)  # plane axes: x and −z
        self.add_part(obj, np.zeros(3), np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, -1.0]),
                      polygon, Texture(0, (1.0, 1.0)), '', shadow=value)

    def build(self) -> tuple[Parts, Objects]:
        """Pack everything added so far into arrays."""
        columns = list(zip(*self._parts, strict=True))
        counts = np.array(columns[12], np.int32)
        parts = Parts(
            obj=np.array(columns[0], np.int32),
            origin=np.array(columns[1]), axis_u=np.array(columns[2]),
            axis_v=np.array(columns[3]), two_sided=np.array(columns[4], bool),
            shadow=np.array(columns[5], np.uint8), label=np.array(columns[6], np.uint8),
            texture=np.array(columns[7], np.int32), tex_origin=np.array(columns[8]),
            tex_scale=np.array(columns[9]), tint=np.array(columns[10], np.float32),
            anim=np.array(columns[11], np.int8),
            vstart=np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int32),
            vcount=counts, verts=np.concatenate(self._verts),
        )
        o = list(zip(*self._objects, strict=True))
        objects = Objects(
            layer=np.array(o[0], np.int8), billboard=np.array(o[1], bool),
            s=np.array(o[2]), u=np.array(o[3]), speed_s=np.array(o[4]),
            speed_u=np.array(o[5]), heading=np.array(o[6]),
            half_extent=np.stack([o[7], o[8]], axis=1), anim_period=np.array(o[9]),
            anim_poses=np.array(o[10], np.int32), anim_phase=np.array(o[11], np.int32),
        )
        return parts, objects


def _rect(width: float, height: float) -> np.ndarray:
    return np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float64)


def _convex_hull(points: np.ndarray) -> np.ndarray:
    """Monotone-chain convex hull of 2-D points, counter-clockwise."""
    pts = sorted(map(tuple, np.round(points, 6)))

    def half(sequence):
        chain: list = []
        for p in sequence:
            while len(chain) >= 2 and ((chain[-1][0] - chain[-2][0]) * (p[1] - chain[-2][1])
                                       - (chain[-1][1] - chain[-2][1]) * (p[0] - chain[-2][0])
                                       ) <= 0:
                chain.pop()
            chain.append(p)
        return chain[:-1]

    return np.array(half(pts) + half(pts[::-1]), np.float64)


def ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 12,
            jitter: np.ndarray | None = None) -> np.ndarray:
    """Return a polygon approximating an ellipse, optionally with radius jitter."""
    angle = np.linspace(0, 2 * np.pi, n, endpoint=False)
    radius = 1 + (jitter if jitter is not None else 0)
    return np.stack([cx + rx * radius * np.cos(angle), cy + ry * radius * np.sin(angle)], axis=1)


def person_outline(height: float, stride: float, build: float = 1.0) -> list[np.ndarray]:
    """Outline the body and head of a standing person (x right, y up, metres).

    ``stride`` lifts the left (> 0) or right (< 0) foot, for a walking animation.
    """
    h = height
    hip, shoulder = 0.15 * build, 0.2 * build
    lift_l, lift_r = max(stride, 0.0), max(-stride, 0.0)
    body = np.array([
        (-hip, lift_l), (-0.025, lift_l), (0.0, 0.47 * h), (0.025, lift_r), (hip, lift_r),
        (hip + 0.02, 0.5 * h), (shoulder + 0.05, 0.45 * h), (shoulder - 0.02, 0.45 * h),
        (shoulder - 0.05, 0.7 * h), (shoulder, 0.81 * h), (0.05, 0.845 * h), (-0.05, 0.845 * h),
        (-shoulder, 0.81 * h), (-shoulder + 0.05, 0.7 * h), (-shoulder + 0.02, 0.45 * h),
        (-shoulder - 0.05, 0.45 * h), (-hip - 0.02, 0.5 * h),
    ])
    head = ellipse(0.0, 0.92 * h, 0.058 * h, 0.068 * h, 10)
    return [body, head]


def rider_outline(seat: float, torso: float) -> list[np.ndarray]:
    """Outline a seated rider seen from the front or back, legs down to the pedals."""
    body = np.array([
        (-0.16, seat - 0.45), (-0.08, seat - 0.45), (-0.06, seat - 0.05), (0.06, seat - 0.05),
        (0.08, seat - 0.45), (0.16, seat - 0.45), (0.17, seat + 0.05), (0.26, seat + torso * 0.45),
        (0.2, seat + torso), (0.05, seat + torso + 0.04), (-0.05, seat + torso + 0.04),
        (-0.2, seat + torso), (-0.26, seat + torso * 0.45), (-0.17, seat + 0.05),
    ])
    head = ellipse(0.0, seat + torso + 0.15, 0.11, 0.13, 10)
    return [body, head]


def bicycle_side(length: float, wheel: float,
                 motor: bool) -> tuple[list[np.ndarray], np.ndarray]:
    """Outline a bicycle or motorcycle from the side (x forward, y up): wheels, frame."""
    rear, front = -length / 2 + wheel, length / 2 - wheel
    wheels = [ellipse(x, wheel, wheel, wheel, 12) for x in (rear, front)]
    if motor:
        frame = np.array([(rear, wheel), (rear + 0.1, wheel + 0.45), (-0.1, wheel + 0.5),
                          (0.25, wheel + 0.62), (front - 0.05, wheel + 0.7), (front, wheel),
                          (0.1, wheel - 0.05), (-0.2, wheel - 0.05)])
    else:
        frame = np.array([(rear, wheel), (-0.05, wheel + 0.45), (-0.12, wheel + 0.55),
                          (0.0, wheel + 0.55), (front - 0.15, wheel + 0.62), (front - 0.1,
                                                                              wheel + 0.7),
                          (front - 0.05, wheel + 0.66), (front, wheel), (front - 0.1, wheel),
                          (0.05, wheel - 0.02), (rear + 0.05, wheel - 0.05)])
    return wheels, frame


def bicycle_end(width: float, wheel: float, motor: bool) -> np.ndarray:
    """Outline a bicycle or motorcycle from behind: a wheel edge under a handlebar."""
    tyre = 0.09 if motor else 0.04
    bar = 2 * wheel + 0.28
    return np.array([(-tyre, 0.0), (tyre, 0.0), (tyre, bar), (width / 2, bar),
                     (width / 2, bar + 0.05), (-width / 2, bar + 0.05), (-width / 2, bar),
                     (-tyre, bar)])
