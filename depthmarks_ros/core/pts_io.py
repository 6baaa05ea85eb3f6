"""300-W / iBUG .pts landmark files (shared by core/face and core/learning; neither owns it)."""
from __future__ import annotations

import numpy as np


def read_pts(path: str) -> np.ndarray:
    with open(path) as f:
        text = f.read()
    try:
        body = text[text.index('{') + 1:text.index('}')]
    except ValueError as exc:
        raise ValueError(f'{path}: not a .pts file (no {{ }} block)') from exc
    pts = np.array([[float(v) for v in line.split()] for line in body.strip().splitlines() if line.strip()])
    return pts


def write_pts(path: str, points: np.ndarray) -> None:
    with open(path, 'w') as f:
        f.write(f'version: 1\nn_points: {len(points)}\n{{\n')
        for x, y in points:
            f.write(f'{x:.3f} {y:.3f}\n')
        f.write('}\n')
