"""The simulated scene: textured triangle meshes in the world frame (ROS-free).

World frame = the rig's ``base_link`` at t = 0 (REP-103: x forward, y left, z up, metres).
Each object has a texture tile in the atlas and a mapping from a surface point to texels:

* ``planar``: s = (p - origin)·u / texel, t = (p - origin)·v / texel (tiling);
* ``box``: tri-planar: the two world axes orthogonal to the hit normal's dominant axis;
* ``sphere``: longitude/latitude around the centre;
* ``photo``: the tile stretched once over the quad (the person billboard).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import numpy as np

from depthmarks_ros.core.sim import textures as tex

MAPPINGS = ('planar', 'box', 'sphere', 'photo')


@dataclass
class SceneObject:
    name: str
    vertices: np.ndarray            # (V, 3) float64, world
    triangles: np.ndarray           # (T, 3) int32
    tile: int                       # atlas tile index
    mapping: str
    origin: np.ndarray = field(default_factory=lambda: np.zeros(3))
    u_axis: np.ndarray = field(default_factory=lambda: np.array([1.0, 0, 0]))
    v_axis: np.ndarray = field(default_factory=lambda: np.array([0, 1.0, 0]))
    texel: float = 0.005            # metres per texel (tiling mappings)
    size: Tuple[float, float] = (1.0, 1.0)  # photo: width, height in metres
    is_person: bool = False


@dataclass
class Scene:
    objects: List[SceneObject]
    atlas: tex.Atlas
    sky_rgb: Tuple[int, int, int] = (170, 200, 235)
    light_dir: np.ndarray = field(default_factory=lambda: np.array([-0.5, 0.3, 0.8]) / np.linalg.norm([-0.5, 0.3, 0.8]))
    ambient: float = 0.55
    person: Optional[SceneObject] = None


def quad(origin, u_axis, v_axis, width, height) -> Tuple[np.ndarray, np.ndarray]:
    """A rectangle: corner ``origin``, spanning width along u and height along v (two triangles)."""
    o, u, v = (np.asarray(a, np.float64) for a in (origin, u_axis, v_axis))
    verts = np.array([o, o + width * u, o + width * u + height * v, o + height * v])
    return verts, np.array([[0, 1, 2], [0, 2, 3]], np.int32)


def box(center, size) -> Tuple[np.ndarray, np.ndarray]:
    """An axis-aligned box (12 triangles, outward winding)."""
    c, s = np.asarray(center, np.float64), np.asarray(size, np.float64) / 2
    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], np.float64) * s + c
    tris = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
                     [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]], np.int32)
    return corners, tris


def sphere(center, radius, resolution: int = 24) -> Tuple[np.ndarray, np.ndarray]:
    import open3d as o3d
    m = o3d.geometry.TriangleMesh.create_sphere(radius, resolution)
    return np.asarray(m.vertices) + np.asarray(center, np.float64), np.asarray(m.triangles, np.int32)


def person_photo() -> np.ndarray:
    """A real photo of a person (face and upper body), bundled with scikit-image."""
    from skimage import data
    return data.astronaut()


def build_scene(name: str = 'default', seed: int = 0) -> Scene:
    """Build a scene by name: 'default' (room, boxes, sphere, person) or 'simple' (wall, floor, person)."""
    if name not in ('default', 'simple'):
        raise ValueError(f"unknown scene {name!r}: use 'default' or 'simple'")
    rng = np.random.default_rng(seed)
    tiles = [
        tex.checker_noise_texture(rng, (150, 140, 120), (95, 90, 80)),     # 0 floor
        tex.noise_texture(rng, (190, 170, 150), contrast=70),               # 1 back wall
        tex.noise_texture(rng, (140, 170, 190), contrast=70),               # 2 side walls
        tex.noise_texture(rng, (180, 90, 60), contrast=80),                 # 3 box A
        tex.noise_texture(rng, (70, 140, 90), contrast=80),                 # 4 box B
        tex.noise_texture(rng, (120, 110, 190), contrast=80),               # 5 sphere
        tex.photo_texture(person_photo()),                                   # 6 person
    ]
    atlas = tex.Atlas(tiles)
    objs: List[SceneObject] = []
    ex, ey, ez = np.eye(3)
    # floor: z = 0, from x = -1 to 8, y = -4 to 4
    v, t = quad([-1, 4, 0], -ey, ex, 8, 9)
    objs.append(SceneObject('floor', v, t, 0, 'planar', np.array([-1, 4, 0.0]), ex, -ey, texel=0.006))
    # back wall at x = 7 facing the rig
    v, t = quad([7, 4, 3], -ey, -ez, 8, 3)
    objs.append(SceneObject('back_wall', v, t, 1, 'planar', np.array([7, 4, 3.0]), -ey, -ez, texel=0.006))
    if name == 'default':
        for side, y in (('left_wall', 4.0), ('right_wall', -4.0)):
            v, t = quad([-1, y, 3], ex, -ez, 8, 3)
            objs.append(SceneObject(side, v, t, 2, 'planar', np.array([-1, y, 3.0]), ex, -ez, texel=0.006))
        v, t = box([3.6, -1.1, 0.45], [0.8, 0.9, 0.9])
        objs.append(SceneObject('box_a', v, t, 3, 'box', texel=0.004))
        v, t = box([5.2, 1.6, 0.7], [1.0, 1.2, 1.4])
        objs.append(SceneObject('box_b', v, t, 4, 'box', texel=0.005))
        v, t = sphere([4.4, -2.4, 0.6], 0.6)
        objs.append(SceneObject('sphere', v, t, 5, 'sphere', origin=np.array([4.4, -2.4, 0.6]), texel=0.004))
    # the person billboard: a 1.7 m square photo facing the rig, 2 m ahead, centre near camera
    # height; large enough (~425 px at 640x480) for MediaPipe's short-range face detector
    w = h = 1.7
    corner = np.array([2.0, 0.35 + w / 2, 1.2 + h / 2])
    v, t = quad(corner, -ey, -ez, w, h)
    person = SceneObject('person', v, t, 6, 'photo', corner, -ey, -ez, size=(w, h), is_person=True)
    objs.append(person)
    return Scene(objs, atlas, person=person)


def texture_coords(obj: SceneObject, points: np.ndarray, normals: np.ndarray) -> Tuple[np.ndarray, np.ndarray, bool]:
    """Texel coordinates (s, t) of surface points (N, 3) of one object (in the points' dtype), and whether they tile."""
    p = points
    f = p.dtype.type
    if obj.mapping in ('planar', 'photo'):
        d = p - obj.origin.astype(p.dtype)
        s = d @ obj.u_axis.astype(p.dtype)
        t = d @ obj.v_axis.astype(p.dtype)
        if obj.mapping == 'photo':
            return s * f((tex.TILE - 1) / obj.size[0]), t * f((tex.TILE - 1) / obj.size[1]), False
        return s * f(1 / obj.texel), t * f(1 / obj.texel), True
    if obj.mapping == 'box':
        axis = np.argmax(np.abs(normals), axis=1)
        a = np.where(axis == 0, p[:, 1], p[:, 0])
        b = np.where(axis == 2, p[:, 1], p[:, 2])
        return a * f(1 / obj.texel), b * f(1 / obj.texel), True
    if obj.mapping == 'sphere':
        d = p - obj.origin.astype(p.dtype)
        r = np.linalg.norm(d, axis=1) + f(1e-9)
        lon = np.arctan2(d[:, 1], d[:, 0])
        lat = np.arcsin(np.clip(d[:, 2] / r, -1, 1))
        return lon * r * f(1 / obj.texel), lat * r * f(1 / obj.texel), True
    raise ValueError(f'unknown mapping {obj.mapping!r}')
