"""The simulated sensor rig: a stereo pair (the left camera doubles as the RGB camera) and a
spinning LiDAR, ray-cast against :mod:`scene` with Open3D's CPU RaycastingScene (ROS-free).

Calibration comes from the same files as real sensors (``config/sim_rig/rig.yaml``). Ground
truth is exact: ``depth_gt`` is the z of the first surface along each left-camera ray;
``disparity_gt = f * B / depth_gt``. With ``motion`` on, the whole rig sways sideways
(``motion_amplitude`` m, ``motion_period`` s); the world is static, so every sensor of one
instant sees one consistent scene. A LiDAR sweep is rendered as one instant (no rolling
shutter).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Tuple

import numpy as np

from depthmarks_ros.core.calibration import Rig, default_rig_path, load_rig
from depthmarks_ros.core.camera import PinholeCamera, StereoCamera
from depthmarks_ros.core.params import ParamSet, param
from depthmarks_ros.core.sim.scene import Scene, build_scene, texture_coords
from depthmarks_ros.core.transforms import make_transform

LIDAR_DTYPE = np.dtype([('x', np.float32), ('y', np.float32), ('z', np.float32),
                        ('intensity', np.float32), ('ring', np.uint16)])


@dataclass
class SimConfig(ParamSet):
    """What the simulated rig renders: the one spec of these values (the sim_rig node's spec
    inherits it; ``depthmarks sim`` takes its options from it)."""
    width: int = param(640, 'Image width (px); the calibration is scaled', min=16, max=4096, read_only=True)
    height: int = param(480, 'Image height (px)', min=16, max=4096, read_only=True)
    seed: int = param(0, 'Random seed (textures, noise)', min=0, max=2**31 - 1, read_only=True)
    scene: str = param('default', 'Scene to render', choices=('default', 'simple'), read_only=True)
    baseline: float = param(0.0, 'Stereo baseline override (m); 0 = from the calibration', min=0.0, max=2.0,
                            read_only=True)
    image_noise: float = param(1.5, 'Std of additive image noise (grey levels)', min=0.0, max=50.0,
                               read_only=True)
    lidar_rings: int = param(32, 'LiDAR rings (beams)', min=1, max=256, read_only=True)
    lidar_horizontal_resolution: int = param(1024, 'LiDAR points per ring per revolution', min=8, max=8192,
                                             read_only=True)
    lidar_vertical_fov_min: float = param(-25.0, 'Elevation of the lowest ring (deg)', min=-90.0, max=90.0,
                                          read_only=True)
    lidar_vertical_fov_max: float = param(15.0, 'Elevation of the highest ring (deg)', min=-90.0, max=90.0,
                                          read_only=True)
    lidar_range_noise: float = param(0.02, 'LiDAR range noise std (m)', min=0.0, max=1.0, read_only=True)
    lidar_dropout: float = param(0.02, 'Probability that a LiDAR return is lost', min=0.0, max=1.0,
                                 read_only=True)
    lidar_max_range: float = param(60.0, 'LiDAR maximum range (m)', min=0.5, max=500.0, read_only=True)
    motion: bool = param(False, 'Sway the rig sideways over time', read_only=True)
    motion_amplitude: float = param(0.15, 'Sideways sway amplitude with motion (m)', min=0.0, max=5.0,
                                    read_only=True)
    motion_period: float = param(8.0, 'Sway period with motion (s)', min=0.1, max=600.0, read_only=True)
    rig_file: str = param('', 'Rig calibration YAML; empty = the package config/sim_rig/rig.yaml',
                          read_only=True)

    def cross_check(self) -> Optional[str]:
        if self.lidar_vertical_fov_min > self.lidar_vertical_fov_max:
            return (f'lidar_vertical_fov_min ({self.lidar_vertical_fov_min}) is above lidar_vertical_fov_max '
                    f'({self.lidar_vertical_fov_max})')
        return None

    @property
    def lidar_vertical_fov(self) -> Tuple[float, float]:
        """(lowest, highest) ring elevation in degrees."""
        return (self.lidar_vertical_fov_min, self.lidar_vertical_fov_max)


@dataclass
class SimFrame:
    """One camera instant of the rig (images are rectified; left = RGB camera)."""
    left_rgb: np.ndarray
    right_rgb: np.ndarray
    depth_gt: np.ndarray
    disparity_gt: np.ndarray
    stamp_ns: int
    person_mask: Optional[np.ndarray] = None   # (H, W) bool: left pixels on the person billboard
    right_depth_gt: Optional[np.ndarray] = field(default=None, repr=False)


class SimRig:
    """Renders frames and LiDAR sweeps of a scene as seen by a calibrated rig."""

    def __init__(self, config: Optional[SimConfig] = None):
        import open3d as o3d
        self.config = cfg = (config or SimConfig()).validate()
        self.rig: Rig = load_rig(cfg.rig_file or default_rig_path('sim_rig'))
        self._configure_cameras()
        self.scene: Scene = build_scene(cfg.scene, cfg.seed)
        self._o3d = o3d
        self._raycast = o3d.t.geometry.RaycastingScene()
        for obj in self.scene.objects:
            mesh = o3d.t.geometry.TriangleMesh()
            mesh.vertex.positions = o3d.core.Tensor(obj.vertices.astype(np.float32))
            mesh.triangle.indices = o3d.core.Tensor(obj.triangles.astype(np.int32))
            gid = self._raycast.add_triangles(mesh)
            assert gid == self.scene.objects.index(obj)
        self._person_gid = next((i for i, o in enumerate(self.scene.objects) if o.is_person), -1)
        cam = self.rig.camera('left')
        u = (np.arange(cfg.width, dtype=np.float64) - cam.cx) / cam.fx
        v = (np.arange(cfg.height, dtype=np.float64) - cam.cy) / cam.fy
        self._pixel_dirs = np.stack(np.broadcast_arrays(u[None, :], v[:, None], np.ones((1, 1))), -1).astype(np.float32)  # (H, W, 3), z = 1
        self._lidar_dirs, self._rings = self._lidar_pattern()
        self._frame_index = 0
        self._cache = None  # (pose key, clean render): a static rig re-renders only the noise
        self._lidar_cache = None  # (pose key, noise-free sweep): likewise for the LiDAR
        self._ray_cache = None    # (camera rotations, rays (2, H, W, 6), directions (2 H W, 3))
        bank_rng = np.random.default_rng((cfg.seed, 104729))
        self._noise_bank = [np.round(bank_rng.normal(0, cfg.image_noise, (2, cfg.height, cfg.width, 3))).astype(np.int16)
                            for _ in range(3)] if cfg.image_noise > 0 else []

    # ------------------------------------------------------------------ calibration
    def _configure_cameras(self) -> None:
        cfg = self.config
        left_s, right_s = self.rig.sensor('left'), self.rig.sensor('right')
        for s in (left_s, right_s):
            if s.camera.size != (cfg.width, cfg.height):
                s.camera = s.camera.scaled(cfg.width, cfg.height)
                s.camera.frame_id = s.frame_id
        if cfg.baseline > 0:
            P = right_s.camera.P.copy()
            P[0, 3] = -P[0, 0] * cfg.baseline
            right_s.camera = PinholeCamera(cfg.width, cfg.height, right_s.camera.K, right_s.camera.D,
                                           right_s.camera.R, P, right_s.camera.distortion_model,
                                           right_s.frame_id, right_s.camera.name)
            right_s.sensor2base = left_s.sensor2base @ make_transform(np.eye(3), [cfg.baseline, 0, 0])   # right2left
        self.rig.sensors['rgb'] = left_s  # the RGB camera is the left camera
        self.stereo = StereoCamera(left_s.camera, right_s.camera)

    def rig_pose(self, t: float) -> np.ndarray:
        """4x4 ``base2world`` (the rig's pose) at time t (seconds)."""
        cfg = self.config
        if not cfg.motion:
            return np.eye(4)
        y = cfg.motion_amplitude * np.sin(2 * np.pi * t / cfg.motion_period)
        return make_transform(np.eye(3), [0.0, y, 0.0])

    def _lidar_pattern(self):
        cfg = self.config
        lo, hi = np.radians(cfg.lidar_vertical_fov[0]), np.radians(cfg.lidar_vertical_fov[1])
        elev = np.linspace(lo, hi, cfg.lidar_rings) if cfg.lidar_rings > 1 else np.array([0.5 * (lo + hi)])
        az = np.linspace(-np.pi, np.pi, cfg.lidar_horizontal_resolution, endpoint=False)
        E, A = np.meshgrid(elev, az, indexing='ij')
        dirs = np.stack([np.cos(E) * np.cos(A), np.cos(E) * np.sin(A), np.sin(E)], -1).reshape(-1, 3)
        rings = np.repeat(np.arange(cfg.lidar_rings, dtype=np.uint16), cfg.lidar_horizontal_resolution)
        return dirs, rings

    # ------------------------------------------------------------------ ray casting and shading
    def _cast(self, origins: np.ndarray, dirs: np.ndarray):
        return self._cast_rays(np.concatenate([origins, dirs], axis=-1).astype(np.float32))

    def _cast_rays(self, rays: np.ndarray):
        """Cast (..., 6) float32 rays: t_hit (...), geometry id (...; -1 = miss), normals (..., 3), hit mask."""
        res = self._raycast.cast_rays(self._o3d.core.Tensor.from_numpy(np.ascontiguousarray(rays)), nthreads=0)
        t = res['t_hit'].numpy()
        gid = res['geometry_ids'].numpy().astype(np.int64)
        normals = res['primitive_normals'].numpy()
        hit = np.isfinite(t)
        gid[~hit] = -1
        return t, gid, normals, hit

    def _albedo(self, points: np.ndarray, normals: np.ndarray, gid: np.ndarray) -> np.ndarray:
        """Texture colour (N, 3) float32 of hit points (N, 3) on objects gid (N,; -1 = miss: any colour)."""
        atlas = self.scene.atlas
        mapx = np.zeros(len(points), np.float32)   # atlas pixel coordinates
        mapy = np.zeros(len(points), np.float32)
        # one stable sort instead of a full-length mask per object
        order = np.argsort(gid, kind='stable')
        starts = np.searchsorted(gid, np.arange(len(self.scene.objects) + 1), sorter=order)
        for i, obj in enumerate(self.scene.objects):
            idx = order[starts[i]:starts[i + 1]]
            if idx.size:
                s, t, wrap = texture_coords(obj, points[idx], normals[idx])
                s, t = atlas.texel_coords(s, t, wrap)
                x0, y0 = atlas.tile_origin(obj.tile)
                mapx[idx] = s + np.float32(x0)
                mapy[idx] = t + np.float32(y0)
        return atlas.sample(mapx, mapy)

    def _shade(self, points, normals, dirs, gid):
        # Lambert with the normal turned towards the viewer: n.l with the sign of -n.d
        facing = np.where(np.einsum('ij,ij->i', normals, dirs) > 0, np.float32(-1), np.float32(1))
        lambert = np.clip(facing * (normals @ self.scene.light_dir.astype(normals.dtype)), 0, 1)
        light = np.float32(self.scene.ambient) + np.float32(1 - self.scene.ambient) * lambert
        return self._albedo(points, normals, gid) * light[:, None]

    def _cast_lidar(self, lidar2world: np.ndarray):
        """Noise-free sweep from the LiDAR at pose ``lidar2world`` (4x4): range (N,), hit (N,),
        intensity (N,) in [0, 1] (surface brightness times |cos(incidence)|; 0 where nothing is hit)."""
        dirs_w = self._lidar_dirs @ lidar2world[:3, :3].T
        origins = np.broadcast_to(lidar2world[:3, 3], dirs_w.shape)
        th, gid, normals, hit = self._cast(origins, dirs_w)
        brightness = np.zeros(th.shape, np.float32)
        pts_w = origins[hit] + th[hit][:, None] * dirs_w[hit]
        albedo = self._albedo(pts_w, normals[hit], gid[hit]).mean(axis=1) / 255.0
        cos_inc = np.abs(np.einsum('ij,ij->i', normals[hit], dirs_w[hit]))
        brightness[hit] = np.clip(albedo * cos_inc, 0, 1)
        return th, hit, brightness

    # ------------------------------------------------------------------ public API
    def render(self, t: float = 0.0, stamp_ns: Optional[int] = None) -> SimFrame:
        """Render both cameras and their ground truth at time ``t`` (seconds)."""
        cfg = self.config
        base2world = self.rig_pose(t)
        key = base2world.tobytes()
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, self._render_clean(base2world))
        clean, depth, right_depth, person = self._cache[1]
        rng = np.random.default_rng((cfg.seed, self._frame_index))
        self._frame_index += 1
        if cfg.image_noise > 0:
            noise = self._noise_bank[rng.integers(len(self._noise_bank))]
            shift = rng.integers(0, noise.shape[2], 2)
            noise = np.roll(noise, tuple(int(x) for x in shift), axis=(1, 2))
            imgs = np.clip(clean.astype(np.int16) + noise, 0, 255).astype(np.uint8)
        else:
            imgs = clean
        disparity = self.stereo.depth_to_disparity(depth)
        return SimFrame(imgs[0], imgs[1], depth.copy(), disparity,
                        int(round(t * 1e9)) if stamp_ns is None else int(stamp_ns),
                        person_mask=person.copy(), right_depth_gt=right_depth.copy())

    def _render_clean(self, base2world: np.ndarray):
        """Noise-free images (2, H, W, 3) uint8, left and right depth, person mask at rig pose ``base2world``.

        Works on all pixels at once (misses shaded as if at the ray origin, then painted sky):
        cheaper than gathering the hit pixels, which are nearly all of them.
        """
        cfg = self.config
        shape = (2, cfg.height, cfg.width)
        poses = [base2world @ self.rig.sensor(sensor).sensor2base for sensor in ('left', 'right')]   # cam2world
        # ray directions depend on the rotation only (the sim's motion is a sideways sway): kept
        key = b''.join(T[:3, :3].tobytes() for T in poses)
        if self._ray_cache is None or self._ray_cache[0] != key:
            dirs = np.stack([self._pixel_dirs.reshape(-1, 3) @ T[:3, :3].T.astype(np.float32) for T in poses])
            rays = np.empty(shape + (6,), np.float32)
            rays[..., 3:] = dirs.reshape(shape + (3,))
            self._ray_cache = (key, rays, dirs.reshape(-1, 3))
        rays, dirs = self._ray_cache[1], self._ray_cache[2]
        for k, T in enumerate(poses):
            rays[k, ..., :3] = T[:3, 3]
        th, gid, normals, hit = self._cast_rays(rays)
        origins = np.repeat(np.stack([T[:3, 3] for T in poses]).astype(np.float32), cfg.height * cfg.width, axis=0)
        pts = np.where(hit, th, np.float32(0)).reshape(-1, 1) * dirs
        pts += origins
        shaded = self._shade(pts, normals.reshape(-1, 3), dirs, gid.ravel()).reshape(shape + (3,))
        shaded[~hit] = np.asarray(self.scene.sky_rgb, np.float32)
        imgs = np.clip(shaded + 0.5, 0, 255).astype(np.uint8)
        depth = np.where(hit[0], th[0], np.nan).astype(np.float32)  # t along a z = 1 direction is z
        right_depth = np.where(hit[1], th[1], np.nan).astype(np.float32)
        return imgs, depth, right_depth, gid[0] == self._person_gid

    def render_lidar(self, t: float = 0.0) -> np.ndarray:
        """One LiDAR sweep at time ``t``: (N,) structured x, y, z, intensity, ring in the lidar frame.

        Range noise is Gaussian (``lidar_range_noise``); returns are lost with probability
        ``lidar_dropout``, beyond ``lidar_max_range`` and where the beam hits nothing.
        Intensity in [0, 1]: surface brightness times |cos(incidence)|.
        """
        cfg = self.config
        lidar2world = self.rig_pose(t) @ self.rig.sensor('lidar').sensor2base
        key = lidar2world.tobytes()
        if self._lidar_cache is None or self._lidar_cache[0] != key:
            self._lidar_cache = (key, self._cast_lidar(lidar2world))
        th, hit, brightness = self._lidar_cache[1]
        rng = np.random.default_rng((cfg.seed, 7919, int(round(t * 1000))))
        r = th + rng.normal(0, cfg.lidar_range_noise, th.shape) if cfg.lidar_range_noise > 0 else th.copy()
        keep = hit & (th <= cfg.lidar_max_range) & (rng.random(th.shape) >= cfg.lidar_dropout) & (r > 0)
        out = np.zeros(int(keep.sum()), LIDAR_DTYPE)
        local = self._lidar_dirs[keep] * r[keep][:, None]
        out['x'], out['y'], out['z'] = local[:, 0], local[:, 1], local[:, 2]
        out['intensity'] = brightness[keep]
        out['ring'] = self._rings[keep]
        return out
