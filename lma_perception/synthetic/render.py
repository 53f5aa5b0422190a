"""Deferred rendering of a world into an RGB image and a label-id image, in one pass.

1. Geometry: every part is posed in world coordinates (one numpy pass for all parts), then
   projected through a pinhole camera, back-face and frustum culled, clipped at the near plane.
2. Visibility: parts are filled with ``cv2.fillPoly`` into an index buffer, layer by layer and
   far to near within a layer (painter's order); ground shadows go to a shadow mask the same way.
3. Shading: each covered pixel maps through its part's plane homography to texture coordinates;
   every other pixel is a ray hitting the flat ground (road coordinates → material, markings)
   or the sky (gradient, a cloud layer, the sun). Texels come from one gather in the atlas.
4. Atmosphere and sensor: haze by distance, optional bonnet, white balance, vignetting, lens
   blur and sensor noise.

Labels come from the same index buffer as colours, so colour edges and label edges agree exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from lma_perception.synthetic.props import label_id
from lma_perception.synthetic.scene import (
    ASPHALT,
    GROUND_LABELS,
    LATERAL_RANGE,
    LATERAL_RESOLUTION,
    PAINT,
    RIG,
    SIDEWALK,
    World,
)
from lma_perception.synthetic.textures import LEVEL_FOOTPRINTS, LEVELS, SIZE, TextureAtlas, noise

NEAR = 0.3  # m; geometry closer to the camera plane is clipped
SKY, EGO_VEHICLE = label_id('sky'), label_id('ego vehicle')
CLOUD_HEIGHT = 1500.0  # m
CLOUD_TEXEL = 25.0     # m per cloud texel


@dataclass(frozen=True)
class Intrinsics:
    """A pinhole camera with the field of view of the Cityscapes cameras (about 49° across)."""

    width: int
    height: int

    @property
    def focal(self) -> float:
        """Focal length in pixels (2262 px at Cityscapes' 2048 px width)."""
        return 1.105 * self.width

    @property
    def matrix(self) -> np.ndarray:
        """The 3×3 camera matrix, principal point at the image centre."""
        return np.array([[self.focal, 0, self.width / 2], [0, self.focal, self.height / 2],
                         [0, 0, 1]])


@dataclass(frozen=True)
class View:
    """One rendered camera image: RGB and Cityscapes label ids, both H×W uint8."""

    image: np.ndarray
    label_ids: np.ndarray


def _texel(coordinate: np.ndarray) -> np.ndarray:
    """Return integer texel coordinates, clipped so that stray values cannot overflow."""
    return np.clip(coordinate, -2.0 ** 30, 2.0 ** 30, out=coordinate).astype(np.int32)


def camera_rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Camera → world rotation; camera axes x right, y down, z forward (OpenCV)."""
    cy, sy = math.cos(yaw), math.sin(yaw)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cr, sr = math.cos(roll), math.sin(roll)
    heading = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    tilt = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    bank = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    flip = np.diag([1.0, -1.0, 1.0])  # camera y points down, world y up
    return heading @ tilt @ bank @ flip


class Renderer:
    """Renders the frames of one world; holds per-sequence buffers (textures, noise, rays)."""

    def __init__(self, world: World, atlas: TextureAtlas, intrinsics: Intrinsics,
                 rng: np.random.Generator) -> None:
        self.world, self.atlas, self.k = world, atlas, intrinsics
        w, h = intrinsics.width, intrinsics.height
        cols, rows = np.meshgrid(np.arange(w, dtype=np.float32) + 0.5,
                                 np.arange(h, dtype=np.float32) + 0.5)
        self.pixel_x, self.pixel_y = cols.ravel(), rows.ravel()
        f = np.float32(intrinsics.focal)
        # Camera-space ray of every pixel: (ray_x, ray_y, 1).
        self.ray_x = (self.pixel_x - np.float32(w / 2)) / f
        self.ray_y = (self.pixel_y - np.float32(h / 2)) / f
        self.ray_length = np.sqrt(self.ray_x ** 2 + self.ray_y ** 2 + 1)
        parts = world.parts
        self.vertex_part = np.repeat(np.arange(len(parts)), parts.vcount)
        self.normals = np.cross(parts.axis_u, parts.axis_v)
        self.ground_scales = world.ground_scales.astype(np.float32)
        self.ground_bases = (world.ground_textures * LEVELS * SIZE * SIZE).astype(np.int32)
        self.ground_tints = np.ascontiguousarray(world.ground_tints.T, np.float32)
        self.bonnet = self._bonnet(intrinsics) if world.hood else None
        self.clouds = noise(rng, 14.0, 0.55, 4)
        self.sky_lut = self._sky_gradient()
        ys = np.linspace(-1, 1, h, dtype=np.float32)[:, None]
        xs = np.linspace(-1, 1, w, dtype=np.float32)[None, :]
        self.vignette = (1 - 0.22 * (xs * xs * 0.6 + ys * ys * 0.4)).astype(np.float32)
        # Sensor noise: one buffer per sequence, read at a random offset every frame.
        self.sensor_noise = rng.standard_normal((h + 64, w + 64, 3), np.float32)
        self.noise_sigma = float(rng.uniform(1.5, 4.0))
        self.exposure = float(rng.uniform(0.92, 1.08))
        self.blur = float(rng.uniform(0.45, 0.8))

    # Geometry -----------------------------------------------------------------------------------

    def pose_parts(self, t: float, rig: dict[str, float]) -> dict[str, np.ndarray]:
        """World-space vertices, plane axes and normals of every part at time ``t``."""
        world, objects, parts = self.world, self.world.objects, self.world.parts
        s = objects.s + objects.speed_s * t
        u = objects.u + objects.speed_u * t
        x, z, heading = world.road.to_world(s, u)
        yaw = heading + objects.heading
        facing = np.arctan2(rig['x'] - x, rig['z'] - z)
        yaw = np.where(objects.billboard, facing, yaw)
        period = np.where(objects.anim_period > 0, objects.anim_period, 1.0)
        pose = (np.floor(t / period).astype(np.int64) + objects.anim_phase) % objects.anim_poses
        cos, sin = np.cos(yaw)[parts.obj], np.sin(yaw)[parts.obj]

        def rotate(v: np.ndarray) -> np.ndarray:
            return np.stack([v[:, 0] * cos + v[:, 2] * sin, v[:, 1],
                             -v[:, 0] * sin + v[:, 2] * cos], axis=1)

        origin = rotate(parts.origin) + np.stack([x, np.zeros_like(x), z], axis=1)[parts.obj]
        axis_u, axis_v = rotate(parts.axis_u), rotate(parts.axis_v)
        vp = self.vertex_part
        vertices = (origin[vp] + parts.verts[:, :1] * axis_u[vp]
                    + parts.verts[:, 1:] * axis_v[vp])
        shown = (parts.anim < 0) | (parts.anim == pose[parts.obj])
        return {'origin': origin, 'axis_u': axis_u, 'axis_v': axis_v,
                'normal': rotate(self.normals), 'vertices': vertices, 'shown': shown,
                'position': np.stack([x, z], axis=1), 'yaw': yaw}

    def camera_pose(self, rig: dict[str, float], camera: str) -> tuple[np.ndarray, np.ndarray]:
        """Camera centre (world) and camera → world rotation for a camera of the rig."""
        mount_yaw, offset = RIG[camera]
        yaw = rig['yaw'] + math.radians(mount_yaw)
        centre = np.array([rig['x'] + offset * math.cos(rig['yaw']), rig['y'],
                           rig['z'] - offset * math.sin(rig['yaw'])])
        return centre, camera_rotation(yaw, rig['pitch'], rig['roll'])

    # Rendering ----------------------------------------------------------------------------------

    def render(self, t: float, rig: dict[str, float], posed: dict[str, np.ndarray],
               camera: str, frame_seed: int) -> View:
        """Render one camera at time ``t`` from parts posed by :meth:`pose_parts`."""
        w, h = self.k.width, self.k.height
        centre, rotation = self.camera_pose(rig, camera)
        drawn, shadows, ids = self._visible_parts(posed, centre, rotation)
        index = np.zeros((h, w), np.uint16)
        shadow = np.zeros((h, w), np.uint8)
        for target, batch in ((index, drawn), (shadow, shadows)):
            for value, polygon in batch:
                cv2.fillPoly(target, [polygon], value, cv2.LINE_8, 4)
        weather = self.world.weather
        strength = weather.shadow
        if strength > 0:
            shadow = cv2.GaussianBlur(shadow, (0, 0), 1.2)
        flat_index = index.ravel()
        covered = np.flatnonzero(flat_index)
        background = np.flatnonzero(flat_index == 0)

        colour = np.empty((3, w * h), np.float32)
        distance = np.empty(w * h, np.float32)
        labels = np.empty(w * h, np.uint8)
        self._shade_parts(posed, ids, covered, flat_index[covered] - 1, centre, rotation,
                          colour, distance, labels)
        self._shade_background(background, centre, rotation, shadow.ravel(), colour, distance,
                               labels)
        self._haze(colour, distance)
        image = colour.reshape(3, h, w)
        labels = labels.reshape(h, w)
        if RIG[camera][0] == 0.0 and self.bonnet is not None:
            mask, tone = self.bonnet
            labels[mask] = EGO_VEHICLE
            for channel in range(3):
                image[channel][mask] = tone[channel]
        return View(self._sensor(image, frame_seed), labels)

    def _visible_parts(self, posed, centre, rotation):
        """Pixel polygons (int32, 4 fractional bits) of drawn parts, in painter's order."""
        parts, objects = self.world.parts, self.world.objects
        k = self.k
        to_camera = rotation.T
        cam = (posed['vertices'] - centre) @ to_camera.T
        starts = parts.vstart
        z = cam[:, 2]
        zmin = np.minimum.reduceat(z, starts)
        zmax = np.maximum.reduceat(z, starts)
        facing = np.einsum('ij,ij->i', posed['normal'], centre - posed['origin']) > 0
        keep = posed['shown'] & (zmax > NEAR) & (facing | parts.two_sided | (parts.shadow > 0))
        safe_z = np.maximum(z, NEAR)
        px = k.focal * cam[:, 0] / safe_z + k.width / 2
        py = k.focal * cam[:, 1] / safe_z + k.height / 2
        in_front = zmin >= NEAR
        outside = ((np.maximum.reduceat(px, starts) < 0)
                   | (np.minimum.reduceat(px, starts) > k.width)
                   | (np.maximum.reduceat(py, starts) < 0)
                   | (np.minimum.reduceat(py, starts) > k.height))
        keep &= ~(in_front & outside)
        # Objects are sorted by their footprint's distance from the camera (painter's order).
        position, yaw = posed['position'], posed['yaw']
        dx, dz = centre[0] - position[:, 0], centre[2] - position[:, 1]
        cos, sin = np.cos(yaw), np.sin(yaw)
        local = np.stack([dx * cos - dz * sin, dx * sin + dz * cos], axis=1)
        gap = local - np.clip(local, -objects.half_extent, objects.half_extent)
        distance = np.hypot(gap[:, 0], gap[:, 1]) + 1e-3 * np.hypot(dx, dz)
        candidates = np.flatnonzero(keep)
        obj = parts.obj[candidates]
        order = candidates[np.lexsort((candidates, parts.shadow[candidates], -distance[obj],
                                       objects.layer[obj]))]
        # fillPoly takes integer pixel coordinates with 4 fractional bits, pixel centres at .0.
        fixed = np.empty((len(px), 2), np.int32)
        np.rint((px - 0.5) * 16, out=fixed[:, 0], casting='unsafe')
        np.rint((py - 0.5) * 16, out=fixed[:, 1], casting='unsafe')
        drawn, shadows, drawn_ids = [], [], []
        ends = starts + parts.vcount
        for p, a, b, front, value in zip(order.tolist(), starts[order].tolist(),
                                         ends[order].tolist(), in_front[order].tolist(),
                                         parts.shadow[order].tolist(), strict=True):
            if front:
                polygon = fixed[a:b]
            else:
                polygon = self._clip_near(cam[a:b])
                if polygon is None:
                    continue
            if value:
                shadows.append((value, polygon))
            else:
                drawn_ids.append(p)
                drawn.append((len(drawn_ids), polygon))
        return drawn, shadows, np.array(drawn_ids, np.int64)

    def _clip_near(self, points: np.ndarray) -> np.ndarray | None:
        """Clip a camera-space polygon at z = NEAR and project it to fixed-point pixels."""
        kept = []
        for i in range(len(points)):
            a, b = points[i], points[(i + 1) % len(points)]
            if a[2] >= NEAR:
                kept.append(a)
            if (a[2] >= NEAR) != (b[2] >= NEAR):
                kept.append(a + (NEAR - a[2]) / (b[2] - a[2]) * (b - a))
        if len(kept) < 3:
            return None
        kept = np.array(kept)
        pixels = np.stack([self.k.focal * kept[:, 0] / kept[:, 2] + self.k.width / 2,
                           self.k.focal * kept[:, 1] / kept[:, 2] + self.k.height / 2], axis=1)
        return np.rint((pixels - 0.5) * 16).astype(np.int32)

    def _shade_parts(self, posed, ids, pixels, slot, centre, rotation, colour, distance,
                     labels):
        if not len(pixels):
            return
        parts = self.world.parts
        to_camera = rotation.T
        # Plane (u, v, 1) → camera: M = K [R a_u, R a_v, R (o − c)]; texture = T (u, v, 1).
        columns = np.stack([posed['axis_u'][ids] @ to_camera.T, posed['axis_v'][ids] @ to_camera.T,
                            (posed['origin'][ids] - centre) @ to_camera.T], axis=2)
        plane_to_pixel = self.k.matrix @ columns
        scale = parts.tex_scale[ids]
        texture_from_plane = np.zeros((len(ids), 3, 3))
        texture_from_plane[:, 0, 0], texture_from_plane[:, 1, 1] = scale[:, 0], scale[:, 1]
        texture_from_plane[:, :2, 2] = -scale * parts.tex_origin[ids]
        texture_from_plane[:, 2, 2] = 1
        try:
            pixel_to_plane = np.linalg.inv(plane_to_pixel)
        except np.linalg.LinAlgError:  # a plane seen exactly edge-on
            pixel_to_plane = np.linalg.pinv(plane_to_pixel)
        homography = (texture_from_plane @ pixel_to_plane).reshape(-1, 9).astype(np.float32)
        # A plane seen almost edge-on covers a few pixels with a nearly singular mapping: give
        # those pixels texel 0 rather than NaNs.
        homography[~np.isfinite(homography)] = 0
        hp = np.take(homography, slot, axis=0)
        x, y = self.pixel_x[pixels], self.pixel_y[pixels]
        inv_depth = hp[:, 6] * x + hp[:, 7] * y + hp[:, 8]
        # Pixels at the rim of an almost edge-on part may miss its plane: keep them finite.
        depth = 1 / np.maximum(inv_depth, 1e-4)
        tu = _texel((hp[:, 0] * x + hp[:, 1] * y + hp[:, 2]) * depth)
        tv = _texel((hp[:, 3] * x + hp[:, 4] * y + hp[:, 5]) * depth)
        # Blur level from the texel footprint at the part's centroid depth.
        centroid_depth = np.maximum(columns[:, 2, 2], NEAR)
        footprint = np.sqrt(scale[:, 0] * scale[:, 1]) * centroid_depth / self.k.focal
        level = np.searchsorted(LEVEL_FOOTPRINTS, footprint)
        base = ((parts.texture[ids] * LEVELS + level) * SIZE * SIZE).astype(np.int32)
        texel = self.atlas.texels[np.take(base, slot) + ((tv & (SIZE - 1)) << 8)
                                  + (tu & (SIZE - 1))]
        weather = self.world.weather
        light = weather.ambient + weather.sun_light * np.maximum(
            posed['normal'][ids] @ weather.sun, 0)
        factor = (parts.tint[ids] * light[:, None].astype(np.float32)).T
        for channel in range(3):
            colour[channel, pixels] = ((texel >> (8 * channel)) & 255) * np.take(
                factor[channel], slot)
        distance[pixels] = depth * self.ray_length[pixels]
        labels[pixels] = np.take(parts.label[ids], slot)

    def _shade_background(self, pixels, centre, rotation, shadow, colour, distance, labels):
        world, weather = self.world, self.world.weather
        # World-space rays, written out rather than as a matrix product that BLAS would spread
        # over threads.
        a, b = np.take(self.ray_x, pixels), np.take(self.ray_y, pixels)
        r = rotation.astype(np.float32)
        rays = [r[i, 0] * a + r[i, 1] * b + r[i, 2] for i in range(3)]
        down = rays[1] < -1e-3
        ground, sky = pixels[down], pixels[~down]
        gx, gy, gz = (component[down] for component in rays)
        reach = np.float32(centre[1]) / -gy
        gx = np.float32(centre[0]) + reach * gx
        gz = np.float32(centre[2]) + reach * gz
        dist = reach * self.ray_length[ground]
        s, u = world.road.to_road(gx, gz)
        material = self._ground_material(s, u)
        scale = np.take(self.ground_scales, material)
        footprint = scale * dist * np.sqrt(dist) * np.float32(
            1 / (self.k.focal * math.sqrt(centre[1])))
        level = np.searchsorted(np.float32(LEVEL_FOOTPRINTS), footprint)
        base = np.take(self.ground_bases, material) + level * (SIZE * SIZE)
        tu = (u * scale).astype(np.int32)
        tv = (s * -scale).astype(np.int32)
        texel = self.atlas.texels[base + ((tv & (SIZE - 1)) << 8) + (tu & (SIZE - 1))]
        light = weather.ambient + weather.sun_light * max(weather.sun[1], 0)
        lit = np.float32(light) - np.float32(light * weather.shadow / 255) * np.take(
            shadow, ground)
        for channel in range(3):
            colour[channel, ground] = ((texel >> (8 * channel)) & 255) * np.take(
                self.ground_tints[channel], material) * lit
        distance[ground] = dist
        labels[ground] = np.take(GROUND_LABELS, material)
        self._shade_sky(sky, [component[~down] for component in rays], centre, colour,
                        distance)
        labels[sky] = SKY

    def _ground_material(self, s: np.ndarray, u: np.ndarray):
        """Material per ground point: lateral profile, lane markings, cross street, zebras."""
        world, street = self.world, self.world.street
        lateral = ((u + LATERAL_RANGE) / LATERAL_RESOLUTION).astype(np.int32)
        np.clip(lateral, 0, len(world.ground_material) - 1, out=lateral)
        material = world.ground_material[lateral]
        marking = world.ground_marking[lateral]
        painted = (marking == 1) | ((marking == 2) & (np.mod(s, 9.0) < 3.0))
        crossing = street.crossing
        if crossing is not None:
            right, left = street.right.road_edge, street.left.road_edge
            on_road = (u < right) & (u > -left)
            inside = (s >= crossing.start) & (s < crossing.stop)
            corner = (((s >= crossing.start - crossing.sidewalk) & (s < crossing.start))
                      | ((s >= crossing.stop) & (s < crossing.stop + crossing.sidewalk)))
            material = np.where(inside, ASPHALT, material)
            material = np.where(corner & ~on_road, SIDEWALK, material)
            stripes = np.mod(u, 1.0) < 0.5
            zebra = on_road & stripes & (((s > crossing.start - 4.5) & (s < crossing.start - 0.5))
                                         | ((s > crossing.stop + 0.5) & (s < crossing.stop + 4.5)))
            stop_line = (((s > crossing.start - 5.5) & (s < crossing.start - 5.0) & (u > 0)
                          & (u < right))
                         | ((s > crossing.stop + 5.0) & (s < crossing.stop + 5.5) & (u < 0)
                            & (u > -left)))
            painted = (painted & ~inside & ~(corner & ~on_road)) | zebra | stop_line
        return np.where(painted & (material == ASPHALT), PAINT, material)

    def _sky_gradient(self) -> np.ndarray:
        """Sky colour by sine of elevation, 256 steps from the horizon up."""
        weather = self.world.weather
        e = np.linspace(0, 1, 256)[:, None]
        mix = np.clip(e / 0.6, 0, 1) ** 0.6
        return (weather.horizon * (1 - mix) + weather.zenith * mix).astype(np.float32)

    def _shade_sky(self, pixels, rays, centre, colour, distance):
        weather = self.world.weather
        rx, ry, rz = rays
        norm = self.ray_length[pixels]
        elevation = np.clip(ry / norm, 0, 1)
        gradient = (elevation * 255).astype(np.int32)
        # Clouds: a textured layer at CLOUD_HEIGHT, faded out towards the horizon.
        reach = np.float32(CLOUD_HEIGHT) / np.maximum(ry, np.float32(0.03))
        cu = ((centre[0] + reach * rx) / CLOUD_TEXEL).astype(np.int32) & (SIZE - 1)
        cv = ((centre[2] + reach * rz) / CLOUD_TEXEL).astype(np.int32) & (SIZE - 1)
        density = self.clouds[cv, cu]
        cover = weather.clouds
        alpha = np.clip((density - (1.2 - 2.4 * cover)) * 0.8, 0, 1)
        alpha *= np.clip(elevation / 0.08, 0, 1) * np.float32(0.55 + 0.45 * cover)
        sun = weather.sun.astype(np.float32)
        glow = np.exp(((rx * sun[0] + ry * sun[1] + rz * sun[2]) / norm - 1) * 60) * np.float32(
            120 * (1 - cover) * (sun[1] > 0))
        shade = 0.85 + 0.1 * density
        for channel in range(3):
            sky = np.take(self.sky_lut[:, channel], gradient)
            cloud = np.float32(weather.cloud_colour[channel]) * shade
            colour[channel, pixels] = sky + (cloud - sky) * alpha + glow
        distance[pixels] = np.inf

    def _haze(self, colour: np.ndarray, distance: np.ndarray) -> None:
        weather = self.world.weather
        finite = np.isfinite(distance)
        fade = np.where(finite, 1 - np.exp(-distance / np.float32(weather.visibility)), 0)
        fade = fade.astype(np.float32)
        for channel in range(3):
            colour[channel] += (np.float32(weather.haze[channel]) - colour[channel]) * fade

    def _bonnet(self, intrinsics: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
        """Mask and colours of the ego vehicle's bonnet at the bottom of the front camera."""
        h, w = intrinsics.height, intrinsics.width
        xs = (np.arange(w, dtype=np.float32) - w / 2) / (w / 2)
        top = h * (1 - self.world.hood) + h * 0.08 * xs * xs
        rows = np.arange(h, dtype=np.float32)[:, None]
        mask = rows >= top[None, :]
        # Paint darkened towards the edges, reflecting the sky in a soft band.
        shade = 0.35 + 0.25 * np.exp(-((rows - top[None, :]) / (0.03 * h)) ** 2) - 0.1 * xs * xs
        tone = np.stack([(self.world.hood_tint[c] * 150 * shade + 25)[mask] for c in range(3)])
        return mask, tone.astype(np.float32)

    def _sensor(self, image: np.ndarray, frame_seed: int) -> np.ndarray:
        """Exposure, white balance, vignetting, lens blur and sensor noise → uint8 RGB."""
        weather = self.world.weather
        h, w = image.shape[1:]
        gain = self.exposure * weather.tint
        planes = [image[c] * (self.vignette * np.float32(gain[c])) for c in range(3)]
        rgb = cv2.merge(planes)
        rgb = cv2.GaussianBlur(rgb, (0, 0), self.blur)
        rng = np.random.default_rng(frame_seed)
        y0, x0 = rng.integers(0, 64, 2)
        rgb += self.sensor_noise[y0:y0 + h, x0:x0 + w] * np.float32(self.noise_sigma)
        return np.clip(rgb, 0, 255).astype(np.uint8)
