"""Synthetic error records of a face backend (the format of core/face/sigma_fit.py) with a known
sigma: for the sigma model's tests (no real data in tests)."""
from __future__ import annotations

import numpy as np


def synthetic_sigma_records(rng, faces=(60, 20), names=('aflw2000_3d', '300w')):
    """Two sets of faces (the first with self-occlusion labels and yaw up to 80 deg, the second
    near-frontal and unlabelled). True sigma per point: 0.5 x TTA spread, x 3 where the point is
    hidden (far side of a turned face), x exp(-sharp) with ``sharp`` the image-quality feature of
    the face (a soft image: larger errors). Returns (records, true sigma (F, 68) px)."""
    from depthmarks_ros.core.face.head_pose import face_model_68
    base = face_model_68()[:, :2] * 1000 + 200
    side = np.sign(base[:, 0] - base[:, 0].mean())
    rows = {k: [] for k in ('E', 'L', 'spread68', 'yaw0', 'pitch0', 'reproj68', 'blur', 'dark', 'sharp', 'contrast',
                            'hidden', 'has_hidden', 'dataset', 'stem')}
    true = []
    for k, (n, name) in enumerate(zip(faces, names)):
        for i in range(n):
            yaw = rng.uniform(-80, 80) if k == 0 else rng.uniform(-15, 15)
            hidden = side * yaw / 90.0 > 0.35
            spread = rng.uniform(0.3, 3.0, 68)
            sharp = rng.normal(0.0, 0.4)
            s = 0.5 * spread * np.where(hidden, 3.0, 1.0) * np.exp(-sharp)
            rows['E'].append(rng.normal(0, 1, (68, 2)) * s[:, None])
            rows['L'].append(base + rng.normal(0, 0.5, (68, 2)))
            rows['spread68'].append(spread)
            rows['yaw0'].append(yaw)
            rows['pitch0'].append(rng.uniform(-10, 10))
            rows['reproj68'].append(rng.uniform(0.5, 5.0, 68))
            rows['blur'].append(rng.normal(-1.4, 0.1))
            rows['dark'].append(rng.normal(-1.0, 0.05))
            rows['sharp'].append(sharp)
            rows['contrast'].append(rng.normal(-1.0, 0.2))
            rows['hidden'].append(hidden if k == 0 else np.zeros(68, bool))
            rows['has_hidden'].append(k == 0)
            rows['dataset'].append(name)
            rows['stem'].append(f'{name}_{i:04d}')
            true.append(s)
    return {k: np.array(v) for k, v in rows.items()}, np.array(true)
