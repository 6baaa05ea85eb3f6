"""Calibration files (ROS-free): camera_info_manager YAML per camera, and one rig file.

Camera YAML (the format camera_info_manager and camera_calibration write)::

    image_width: 640
    image_height: 480
    camera_name: left
    camera_matrix: {rows: 3, cols: 3, data: [fx, 0, cx, 0, fy, cy, 0, 0, 1]}
    distortion_model: plumb_bob
    distortion_coefficients: {rows: 1, cols: 5, data: [k1, k2, t1, t2, k3]}
    rectification_matrix: {rows: 3, cols: 3, data: [...]}
    projection_matrix: {rows: 3, cols: 4, data: [...]}

Rig YAML (ours): the pose of every sensor in one base frame, so any pair's extrinsics follow::

    rig_name: sim_rig
    base_frame: base_link
    sensors:
      left:                                  # a name used by nodes and launch files
        frame_id: left_camera_optical_frame  # REP-103/105: cameras use *_optical_frame
        camera_info: left.yaml               # relative to the rig file (cameras only)
        translation: [x, y, z]               # metres, sensor origin in base_frame
        rotation: [qx, qy, qz, qw]           # unit quaternion, sensor axes in base_frame
      lidar:
        frame_id: lidar_link
        translation: [...]
        rotation: [...]
      rgb:
        same_as: left                        # the RGB camera is the left camera


Transforms are named ``A2B`` (pytransform3d's convention): the 4x4 ``A2B`` maps coordinates in
frame A to frame B, ``p_B = A2B @ p_A``, so compositions chain by name (``B2C @ A2B`` is ``A2C``).
A sensor's ``sensor2base`` maps its coordinates into the base frame; ``rig.transform('lidar', 'left')``
is ``lidar2left``, mapping LiDAR points into the left optical frame.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Dict, Optional

import numpy as np
import yaml

from depthmarks_ros.core.camera import CalibrationError, PinholeCamera, StereoCamera
from depthmarks_ros.core.transforms import matrix_to_quaternion, quaternion_to_matrix, make_transform

_MATRIX_FIELDS = {
    'camera_matrix': (3, 3),
    'rectification_matrix': (3, 3),
    'projection_matrix': (3, 4),
}


def _read_yaml(path: str) -> dict:
    if not os.path.isfile(path):
        raise CalibrationError(f'{path}: calibration file not found')
    try:
        with open(path, 'r', encoding='utf-8') as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as exc:
        raise CalibrationError(f'{path}: not valid YAML ({exc})') from exc
    if not isinstance(data, dict):
        raise CalibrationError(f'{path}: expected a mapping at the top level')
    return data


def _matrix(data: dict, key: str, shape, path: str) -> np.ndarray:
    if key not in data:
        raise CalibrationError(f'{path}: missing field {key!r}')
    entry = data[key]
    if not isinstance(entry, dict) or 'data' not in entry:
        raise CalibrationError(f'{path}: field {key!r} must be a mapping with rows, cols, data')
    values = entry['data']
    rows, cols = entry.get('rows', shape[0]), entry.get('cols', shape[1])
    if (rows, cols) != shape:
        raise CalibrationError(f'{path}: field {key!r} must be {shape[0]}x{shape[1]}, says {rows}x{cols}')
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise CalibrationError(f'{path}: field {key!r} has non-numeric data') from exc
    if arr.size != rows * cols:
        raise CalibrationError(f'{path}: field {key!r} has {arr.size} values, expected {rows * cols}')
    if not np.all(np.isfinite(arr)):
        raise CalibrationError(f'{path}: field {key!r} holds NaN or Inf')
    return arr.reshape(shape)


def camera_from_dict(data: dict, source: str = '<dict>') -> PinholeCamera:
    """Build a :class:`PinholeCamera` from a parsed camera_info_manager YAML mapping."""
    for key in ('image_width', 'image_height'):
        if key not in data:
            raise CalibrationError(f'{source}: missing field {key!r}')
    mats = {k: _matrix(data, k, s, source) for k, s in _MATRIX_FIELDS.items()}
    dist = data.get('distortion_coefficients', {'data': []})
    if not isinstance(dist, dict) or 'data' not in dist:
        raise CalibrationError(f'{source}: field distortion_coefficients must have data')
    try:
        D = np.asarray(dist['data'] or [], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise CalibrationError(f'{source}: distortion_coefficients has non-numeric data') from exc
    try:
        cam = PinholeCamera(
            width=int(data['image_width']), height=int(data['image_height']),
            K=mats['camera_matrix'], D=D, R=mats['rectification_matrix'], P=mats['projection_matrix'],
            distortion_model=str(data.get('distortion_model', 'plumb_bob') or 'plumb_bob'),
            name=str(data.get('camera_name', 'camera')))
    except CalibrationError as exc:
        raise CalibrationError(f'{source}: {exc}') from exc
    return cam


def load_camera_yaml(path: str) -> PinholeCamera:
    """Load a camera_info_manager YAML file. Raises :class:`CalibrationError` naming file and field."""
    return camera_from_dict(_read_yaml(path), path)


def camera_to_dict(cam: PinholeCamera) -> dict:
    def m(a):
        a = np.asarray(a)
        return {'rows': int(a.shape[0]), 'cols': int(a.shape[1]), 'data': [float(x) for x in a.ravel()]}
    return {
        'image_width': int(cam.width),
        'image_height': int(cam.height),
        'camera_name': cam.name,
        'camera_matrix': m(cam.K),
        'distortion_model': cam.distortion_model or 'plumb_bob',
        'distortion_coefficients': {'rows': 1, 'cols': int(cam.D.size), 'data': [float(x) for x in cam.D]},
        'rectification_matrix': m(cam.R),
        'projection_matrix': m(cam.P),
    }


def save_camera_yaml(cam: PinholeCamera, path: str) -> None:
    """Write a camera_info_manager YAML file."""
    with open(path, 'w', encoding='utf-8') as f:
        yaml.safe_dump(camera_to_dict(cam), f, sort_keys=False, default_flow_style=None)


@dataclass
class Sensor:
    """One sensor of a rig: its frame, pose in the base frame, and camera model if a camera."""

    name: str
    frame_id: str
    sensor2base: np.ndarray       # 4x4: sensor coordinates -> base coordinates
    camera: Optional[PinholeCamera] = None
    camera_info_file: Optional[str] = None


@dataclass
class Rig:
    """Sensors with their poses in one base frame (see module docstring for the file format)."""

    name: str
    base_frame: str
    sensors: Dict[str, Sensor] = field(default_factory=dict)
    path: Optional[str] = None

    def sensor(self, name: str) -> Sensor:
        if name not in self.sensors:
            where = f'{self.path}: ' if self.path else ''
            raise CalibrationError(f'{where}rig has no sensor {name!r} (has {sorted(self.sensors)})')
        return self.sensors[name]

    def camera(self, name: str) -> PinholeCamera:
        s = self.sensor(name)
        if s.camera is None:
            where = f'{self.path}: ' if self.path else ''
            raise CalibrationError(f'{where}sensor {name!r} has no camera_info')
        return s.camera

    def transform(self, source: str, target: str) -> np.ndarray:
        """4x4 ``source2target``: maps points in ``source``'s frame to ``target``'s frame."""
        source2base = self.sensor(source).sensor2base
        base2target = np.linalg.inv(self.sensor(target).sensor2base)
        return base2target @ source2base

    def stereo(self, left: str = 'left', right: str = 'right') -> StereoCamera:
        return StereoCamera(self.camera(left), self.camera(right))

    def frame_of(self, name: str) -> str:
        return self.sensor(name).frame_id


def transform_from_pose(values, what: str = 'pose') -> np.ndarray:
    """4x4 transform of ``[x, y, z, qx, qy, qz, qw]``; raises :class:`CalibrationError` unless it is
    7 finite numbers with a unit quaternion (within 1e-3, as rig files)."""
    v = np.asarray(list(values), dtype=np.float64)
    if v.shape != (7,):
        raise CalibrationError(f'{what} needs 7 values [x, y, z, qx, qy, qz, qw], got {v.size}')
    if not np.all(np.isfinite(v[:3])):
        raise CalibrationError(f'{what}: translation {list(v[:3])} is not finite')
    q = v[3:]
    norm = float(np.linalg.norm(q)) if np.all(np.isfinite(q)) else float('nan')
    if not np.isclose(norm, 1.0, atol=1e-3):
        raise CalibrationError(f'{what}: rotation {list(q)} is not a unit quaternion [qx, qy, qz, qw] '
                               f'(norm {norm:.4g})')
    return make_transform(quaternion_to_matrix(q), v[:3])


def load_rig(path: str) -> Rig:
    """Load a rig YAML and every camera_info YAML it names (paths relative to the rig file)."""
    data = _read_yaml(path)
    folder = os.path.dirname(os.path.abspath(path))
    base = data.get('base_frame', 'base_link')
    sensors_data = data.get('sensors')
    if not isinstance(sensors_data, dict) or not sensors_data:
        raise CalibrationError(f'{path}: missing or empty field "sensors"')
    rig = Rig(name=str(data.get('rig_name', 'rig')), base_frame=str(base), path=path)
    frames = set()
    aliases = {}
    for name, entry in sensors_data.items():
        where = f'{path}: sensors.{name}'
        if not isinstance(entry, dict):
            raise CalibrationError(f'{where} must be a mapping')
        if 'same_as' in entry:
            aliases[name] = str(entry['same_as'])
            continue
        frame_id = entry.get('frame_id')
        if not frame_id:
            raise CalibrationError(f'{where}: missing field "frame_id"')
        if frame_id in frames:
            raise CalibrationError(f'{where}: frame_id {frame_id!r} used by two sensors')
        frames.add(frame_id)
        t = np.asarray(entry.get('translation', [0, 0, 0]), dtype=np.float64)
        q = np.asarray(entry.get('rotation', [0, 0, 0, 1]), dtype=np.float64)
        if t.shape != (3,) or not np.all(np.isfinite(t)):
            raise CalibrationError(f'{where}: field "translation" must be 3 finite numbers')
        if q.shape != (4,) or not np.all(np.isfinite(q)) or not np.isclose(np.linalg.norm(q), 1.0, atol=1e-3):
            raise CalibrationError(f'{where}: field "rotation" must be a unit quaternion [x, y, z, w]')
        camera, info_file = None, None
        if entry.get('camera_info'):
            info_file = os.path.join(folder, entry['camera_info'])
            camera = load_camera_yaml(info_file)
            camera.frame_id = frame_id
            if 'optical' not in frame_id:
                raise CalibrationError(f'{where}: camera frame_id {frame_id!r} should be an '
                                       '*_optical_frame (REP-103/105)')
        rig.sensors[name] = Sensor(name, frame_id, make_transform(quaternion_to_matrix(q), t),
                                   camera, info_file)
    for name, target in aliases.items():
        if target not in rig.sensors:
            raise CalibrationError(f'{path}: sensors.{name}: same_as names unknown sensor {target!r}')
        src = rig.sensors[target]
        rig.sensors[name] = Sensor(name, src.frame_id, src.sensor2base, src.camera, src.camera_info_file)
    return rig


def save_rig(rig: Rig, path: str, camera_files: Optional[Dict[str, str]] = None) -> None:
    """Write a rig YAML next to camera YAMLs (``camera_files`` maps sensor -> file name)."""
    folder = os.path.dirname(os.path.abspath(path))
    camera_files = dict(camera_files or {})
    sensors = {}
    written = {}
    for name, s in rig.sensors.items():
        if id(s.camera) in written and s.camera is not None:
            sensors[name] = {'same_as': written[id(s.camera)]}
            continue
        if s.camera is not None:
            written[id(s.camera)] = name
        entry = {'frame_id': s.frame_id}
        if s.camera is not None:
            fname = camera_files.get(name, f'{name}.yaml')
            save_camera_yaml(s.camera, os.path.join(folder, fname))
            entry['camera_info'] = fname
        entry['translation'] = [float(x) for x in s.sensor2base[:3, 3]]
        entry['rotation'] = [float(x) for x in matrix_to_quaternion(s.sensor2base[:3, :3])]
        sensors[name] = entry
    with open(path, 'w', encoding='utf-8') as f:
        yaml.safe_dump({'rig_name': rig.name, 'base_frame': rig.base_frame, 'sensors': sensors},
                       f, sort_keys=False, default_flow_style=None)


def package_config_dir() -> str:
    """The package's config/ folder: share/depthmarks_ros/config when installed, else the source tree."""
    here = os.path.dirname(os.path.abspath(__file__))
    source = os.path.normpath(os.path.join(here, '..', '..', 'config'))
    if os.path.isdir(source):
        return source
    # `pip install .` (scripts/setup.sh) puts the data files under this prefix's share/
    prefix_share = os.path.join(sys.prefix, 'share', 'depthmarks_ros', 'config')
    if os.path.isdir(prefix_share):
        return prefix_share
    try:
        from ament_index_python.packages import get_package_share_directory
        return os.path.join(get_package_share_directory('depthmarks_ros'), 'config')
    except Exception as exc:  # noqa: BLE001 - any lookup failure means "not found"
        raise CalibrationError('cannot find the depthmarks_ros config folder (not in a source tree, '
                               'and ament_index found no installed package)') from exc


def resolve_url(url: str) -> str:
    """camera_info_manager style URL (``file://``, ``package://depthmarks_ros/...``, plain path) to a path."""
    if url.startswith('file://'):
        return url[len('file://'):]
    if url.startswith('package://'):
        rest = url[len('package://'):]
        pkg, _, rel = rest.partition('/')
        if pkg == 'depthmarks_ros':
            return os.path.join(os.path.dirname(package_config_dir()), rel)
        try:
            from ament_index_python.packages import get_package_share_directory
            return os.path.join(get_package_share_directory(pkg), rel)
        except Exception as exc:  # noqa: BLE001
            raise CalibrationError(f'{url}: package {pkg!r} not found') from exc
    return url


def default_rig_path(name: str = 'sim_rig') -> str:
    return os.path.join(package_config_dir(), name, 'rig.yaml')
