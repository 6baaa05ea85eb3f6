"""Per-landmark uncertainty by test-time augmentation (ROS-free).

The backend also runs on K affinely perturbed copies of the image (small shift and scale); the
predictions are mapped back and their spread gives a 2x2 sample covariance S_i per landmark.
The reported covariance is  Sigma_i = k^2 (S_i + s0^2 I)  with a floor ``s0`` (px, scaled by the
face size) and a calibration factor ``k``; both are set from the agreement of sigma with the
actual error (docs/face_landmarks.md reports how well it holds). Visibility in [0, 1]: inside the
image (5 px margin ramp) times agreement between the passes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Sequence, Tuple

import numpy as np

# small perturbations: (dx, dy, scale) in px / ratio, about the image centre
DEFAULT_AUGMENTATIONS = ((3.0, 2.0, 0.97),)  # one extra pass: keeps MediaPipe above 60 fps


@dataclass
class UncertaintyModel:
    k: float = 1.5           # calibration factor on the standard deviation
    s0: float = 0.006        # floor, as a fraction of the face size (inter-ocular distance)


def affine(dx: float, dy: float, scale: float, w: int, h: int) -> np.ndarray:
    """2x3 forward transform: scale about the image centre, then shift."""
    cx, cy = w / 2.0, h / 2.0
    return np.array([[scale, 0, (1 - scale) * cx + dx], [0, scale, (1 - scale) * cy + dy]])


def invert_points(A: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Map (N, 2) points (or (N, 3) with a relative depth, scaled like x) back through A^-1."""
    M = np.vstack([A, [0, 0, 1]])
    Minv = np.linalg.inv(M)
    xy = pts[:, :2] @ Minv[:2, :2].T + Minv[:2, 2]
    if pts.shape[1] == 2:
        return xy
    return np.column_stack([xy, pts[:, 2:] * np.sqrt(abs(np.linalg.det(Minv[:2, :2])))])


def augmented_predictions(rgb: np.ndarray, runners: Sequence[Callable[[np.ndarray], List[np.ndarray]]],
                          augmentations=DEFAULT_AUGMENTATIONS) -> List[List[np.ndarray]]:
    """Run runner i on augmented image i; returns, per augmentation, the list of (68, 2) landmark sets
    mapped back to the original image."""
    import cv2
    h, w = rgb.shape[:2]
    out = []
    for run, (dx, dy, s) in zip(runners, augmentations):
        A = affine(dx, dy, s, w, h)
        warped = cv2.warpAffine(rgb, A, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        out.append([invert_points(A, lm) for lm in run(warped)])
    return out


def landmark_covariance(base: np.ndarray, others: Sequence[np.ndarray], image_size: Tuple[int, int],
                        model: UncertaintyModel, interocular: float) -> Tuple[np.ndarray, np.ndarray]:
    """(cov (N, 2, 2) px^2, visibility (N,)) from a base prediction and matched augmented ones."""
    samples = np.stack([base] + list(others))          # (K+1, N, 2)
    n = base.shape[0]
    if len(samples) > 1:
        d = samples - samples.mean(axis=0)
        S = np.einsum('kni,knj->nij', d, d) / max(len(samples) - 1, 1)
    else:
        S = np.zeros((n, 2, 2))
    floor = (model.s0 * max(interocular, 1.0)) ** 2
    cov = model.k ** 2 * (S + floor * np.eye(2)[None])
    w, h = image_size
    margin = np.minimum.reduce([base[:, 0], base[:, 1], w - 1 - base[:, 0], h - 1 - base[:, 1]])
    inside = np.clip(margin / 5.0, 0.0, 1.0)
    spread = np.sqrt(np.trace(S, axis1=1, axis2=2))
    agree = np.exp(-spread / max(0.1 * interocular, 1.0))
    return cov, (inside * agree).astype(np.float64)


def match_faces(base: Sequence[np.ndarray], candidates: Sequence[np.ndarray], max_dist: float) -> List:
    """For each base landmark set, the candidate with the nearest centre (or None if farther than max_dist)."""
    out = []
    centres = [c.mean(axis=0) for c in candidates]
    for b in base:
        bc = b.mean(axis=0)
        if not centres:
            out.append(None)
            continue
        d = [np.linalg.norm(bc - c) for c in centres]
        i = int(np.argmin(d))
        out.append(candidates[i] if d[i] <= max_dist else None)
    return out
