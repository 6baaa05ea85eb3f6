"""After a run: PNG previews (colour bars, overlays) and a metrics JSON (ROS-free except for
deserializing the kept messages)."""
from __future__ import annotations

import json
import os
from typing import Dict, List, Mapping, Optional, Tuple

import numpy as np


def _deserialize(data: bytes, type_name: str):
    """A kept message: CDR bytes (DDS subscriptions), or the message itself (handed over in-process)."""
    from rclpy.serialization import deserialize_message
    if not isinstance(data, (bytes, bytearray, memoryview)):
        return data
    from depthmarks_ros.pipeline.registry import message_class
    return deserialize_message(data, message_class(type_name))


def save_colourised(path: str, image: np.ndarray, title: str, unit: str, cmap: str = 'turbo',
                    vmin: Optional[float] = None, vmax: Optional[float] = None) -> None:
    """A float image with a colour bar (NaN shown black) as PNG."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    finite = image[np.isfinite(image)]
    if finite.size == 0:
        finite = np.array([0.0, 1.0])
    vmin = float(np.percentile(finite, 1)) if vmin is None else vmin
    vmax = float(np.percentile(finite, 99)) if vmax is None else vmax
    h, w = image.shape
    fig, ax = plt.subplots(figsize=(w / 100 + 1.2, h / 100 + 0.5), dpi=100)
    cm = plt.get_cmap(cmap).with_extremes(bad='black')
    im = ax.imshow(np.ma.masked_invalid(image), cmap=cm, vmin=vmin, vmax=vmax)
    ax.set_title(title, fontsize=9)
    ax.axis('off')
    fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02, label=unit)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _points_uv(cloud) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    from depthmarks_ros.convert.cloud import cloud_to_array
    arr = cloud_to_array(cloud)
    if arr.size == 0 or 'u' not in arr.dtype.names or 'v' not in arr.dtype.names:
        return None
    ids = None
    for key in ('keypoint_index', 'landmark_index', 'index'):
        if key in arr.dtype.names:
            ids = arr[key]
    return np.stack([arr['u'], arr['v']], 1), ids


def _draw_skeletons(image: np.ndarray, cloud, colour) -> None:
    """Bones of every person of a body/keypoints cloud (COCO-17 or BlazePose-33 by its point count)."""
    import cv2
    from depthmarks_ros.convert.cloud import cloud_to_array
    from depthmarks_ros.core.body.coco17 import BLAZEPOSE_BONES, COCO17_BONES
    arr = cloud_to_array(cloud)
    if arr.size == 0 or not {'u', 'v', 'keypoint_index', 'person_id'} <= set(arr.dtype.names):
        return
    for pid in np.unique(arr['person_id']):
        person = arr[arr['person_id'] == pid]
        n = int(person['keypoint_index'].max()) + 1
        uv = np.full((n, 2), np.nan)
        uv[person['keypoint_index']] = np.stack([person['u'], person['v']], 1)
        for a, b in (COCO17_BONES if n <= 17 else BLAZEPOSE_BONES):
            if max(a, b) < n and np.isfinite(uv[[a, b]]).all():
                cv2.line(image, tuple(int(round(x)) for x in uv[a]), tuple(int(round(x)) for x in uv[b]), colour, 2)


def _nearest(items: List[Tuple[int, bytes]], stamp: int) -> Optional[bytes]:
    if not items:
        return None
    return min(items, key=lambda e: abs(e[0] - stamp))[1]


def write_previews(folder: str, last: Dict[str, List[Tuple[int, bytes]]], types: Dict[str, str]) -> List[str]:
    """Write previews of the newest messages; returns the file names written."""
    import cv2
    from depthmarks_ros.convert.image import image_to_numpy, image_to_rgb8
    os.makedirs(folder, exist_ok=True)
    written = []

    def newest(topic):
        return _deserialize(last[topic][-1][1], types[topic]) if last.get(topic) else None
    cam = newest('camera/image_raw')
    rgb = image_to_rgb8(cam) if cam is not None else None
    if rgb is not None:
        cv2.imwrite(os.path.join(folder, 'camera.png'), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        written.append('camera.png')
    disp = newest('stereo/disparity')
    if disp is not None:
        d = image_to_numpy(disp.image).astype(np.float32).copy()
        d[d < disp.min_disparity] = np.nan
        save_colourised(os.path.join(folder, 'disparity.png'), d, 'stereo/disparity', 'px')
        written.append('disparity.png')
    for topic, fname, title, unit, cmap in (('stereo/depth', 'stereo_depth.png', 'stereo/depth', 'm', 'turbo_r'),
                                            ('fusion/depth', 'fused_depth.png', 'fusion/depth', 'm', 'turbo_r'),
                                            ('fusion/depth_sigma', 'fused_sigma.png', 'fusion/depth_sigma', 'm', 'magma'),
                                            ('mono/depth', 'mono_depth.png', 'mono/depth', 'm', 'turbo_r'),
                                            ('sim/depth_gt', 'depth_ground_truth.png', 'sim/depth_gt', 'm', 'turbo_r')):
        msg = newest(topic)
        if msg is not None:
            vmax = 8.0 if 'sigma' not in topic else None
            save_colourised(os.path.join(folder, fname), image_to_numpy(msg).astype(np.float32), title, unit, cmap,
                            0.0 if 'sigma' not in topic else None, vmax)
            written.append(fname)
    if rgb is not None:
        overlay = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        stamp = last['camera/image_raw'][-1][0]
        sparse = _nearest(last.get('fusion/sparse_depth', []), stamp)
        if sparse is not None:
            s = image_to_numpy(_deserialize(sparse, 'sensor_msgs/msg/Image'))
            vs, us = np.nonzero(np.isfinite(s))
            colours = cv2.applyColorMap(np.clip(s[vs, us] / 8.0 * 255, 0, 255).astype(np.uint8).reshape(-1, 1),
                                        cv2.COLORMAP_TURBO).reshape(-1, 3)
            lidar = overlay.copy()
            lidar[vs, us] = colours
            cv2.imwrite(os.path.join(folder, 'lidar_on_camera.png'), lidar)
            written.append('lidar_on_camera.png')
        drawn = False
        for topic, colour in (('face/landmarks', (0, 255, 0)), ('body/keypoints', (0, 128, 255))):
            data = _nearest(last.get(topic, []), stamp)
            if data is None:
                continue
            res = _points_uv(_deserialize(data, 'sensor_msgs/msg/PointCloud2'))
            if res is None:
                continue
            if topic == 'body/keypoints':
                _draw_skeletons(overlay, _deserialize(data, 'sensor_msgs/msg/PointCloud2'), colour)
            for u, v in res[0]:
                if np.isfinite(u) and np.isfinite(v):
                    cv2.circle(overlay, (int(round(u)), int(round(v))), 2, colour, -1)
            drawn = True
        if drawn:
            cv2.imwrite(os.path.join(folder, 'landmarks_and_skeleton.png'), overlay)
            written.append('landmarks_and_skeleton.png')
    return written


# what accuracy() reads at equal stamps (a run keeps 30 messages of each; /diagnostics too, for every
# node's newest counters); previews need only a few of any other topic
SCORED_TOPICS = ('sim/depth_gt', 'stereo/depth', 'fusion/depth', 'fusion/depth_sigma', 'mono/depth', '/diagnostics')
PREVIEW_KEEP = 5


def accuracy(last: Dict[str, List[Tuple[int, bytes]]]) -> Dict[str, Dict[str, float]]:
    """Depth outputs vs the simulated rig's ground truth at equal stamps (mean over kept frames)."""
    from depthmarks_ros.convert.image import depth_image_to_metres
    from depthmarks_ros.core.fusion.metrics import depth_metrics, sigma_calibration
    gt = {s: d for s, d in last.get('sim/depth_gt', [])}
    out = {}
    for topic in ('stereo/depth', 'fusion/depth', 'mono/depth'):
        rows = []
        for stamp, data in last.get(topic, []):
            if stamp not in gt:
                continue
            pred = depth_image_to_metres(_deserialize(data, 'sensor_msgs/msg/Image'))
            truth = depth_image_to_metres(_deserialize(gt[stamp], 'sensor_msgs/msg/Image'))
            m = depth_metrics(pred, truth)
            if topic == 'fusion/depth':
                sig = {s: d for s, d in last.get('fusion/depth_sigma', [])}.get(stamp)
                if sig is not None:
                    m.update(sigma_calibration(pred, depth_image_to_metres(_deserialize(sig, 'sensor_msgs/msg/Image')),
                                               truth))
            rows.append(m)
        if rows:
            # a frame whose sigma was not kept (the edge of the kept window) has no sigma keys
            keys = list(dict.fromkeys(k for r in rows for k in r))
            out[topic] = {k: float(np.nanmean([r[k] for r in rows if k in r])) for k in keys}
            out[topic]['frames_scored'] = len(rows)
    return out


def write_metrics(path: str, metrics: dict) -> None:
    with open(path, 'w') as f:
        json.dump(metrics, f, indent=2, sort_keys=True, default=float)


def node_counters(diagnostics: List[Tuple[int, bytes]], only: Optional[set] = None) -> Dict[str, Dict[str, str]]:
    """The newest /diagnostics values of each node (frames_in, frames_out, dropped, ...); ``only``:
    the fully qualified names of the nodes to keep (/diagnostics is shared by every rig)."""
    out: Dict[str, Dict[str, str]] = {}
    for _stamp, data in diagnostics:          # oldest first: newer values overwrite
        arr = _deserialize(data, 'diagnostic_msgs/msg/DiagnosticArray')
        for st in arr.status:
            if only is None or st.hardware_id in only:
                out[st.name.split(':')[0]] = {kv.key: kv.value for kv in st.values}
    return out


_EXITED = ' exited with '


def exit_note(what: str, code: int, name: str) -> str:
    """metrics.json ``skipped`` entry (pipeline/runner.py) of a process that exited with an error
    (:func:`exited_with_error`)."""
    return f'{what}{_EXITED}{code} (see {name}.log)'


def exited_with_error(skipped: Mapping[str, str]) -> Dict[str, str]:
    """The ``skipped`` entries of processes that exited with an error (not the nodes that did not
    start, such as one whose import failed: those are the same in every run)."""
    return {k: v for k, v in (skipped or {}).items() if _EXITED in str(v) and str(v).endswith('.log)')}
