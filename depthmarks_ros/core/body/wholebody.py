"""COCO-WholeBody 133-keypoint layout of one person (ROS-free).

Index ranges (COCO-WholeBody order): 0-16 body (COCO-17), 17-22 feet (left big toe, left small
toe, left heel, right big toe, right small toe, right heel), 23-90 face (iBUG 68, 0-based), 91-111
left hand, 112-132 right hand (21 each: wrist, then thumb, index, middle, ring, little finger, each
from the base to the tip). From BlazePose-33: body by :data:`BLAZEPOSE_TO_COCO17`; big toe =
foot index (31/32), heel = heel (29/30); BlazePose has no small toe, so the small toe repeats
the foot index with half its score. Parts not found (no face model, hand not seen) are NaN with
score 0.
"""
from __future__ import annotations

from typing import Dict, Tuple

import numpy as np

from depthmarks_ros.core.body.coco17 import BLAZEPOSE_TO_COCO17

BODY, FEET, FACE, LEFT_HAND, RIGHT_HAND = (slice(0, 17), slice(17, 23), slice(23, 91), slice(91, 112),
                                           slice(112, 133))
BLAZEPOSE_TO_FEET = np.array([31, 31, 29, 32, 32, 30])
FEET_SCORE_FACTOR = np.array([1.0, 0.5, 1.0, 1.0, 0.5, 1.0])
N_WHOLEBODY = 133


def wholebody_arrays(person) -> Dict[str, np.ndarray]:
    """{'uv' (133, 2), 'score' (133,), 'sigma_px' (133,), 'xyz' (133, 3), 'cov' (133, 3, 3),
    'source' (133,)} of a :class:`depthmarks_ros.core.body.pipeline.Person`."""
    out = {'uv': np.full((N_WHOLEBODY, 2), np.nan), 'score': np.zeros(N_WHOLEBODY),
           'sigma_px': np.full(N_WHOLEBODY, np.nan), 'xyz': np.full((N_WHOLEBODY, 3), np.nan),
           'cov': np.full((N_WHOLEBODY, 3, 3), np.nan), 'source': np.zeros(N_WHOLEBODY, np.uint8)}

    def put(sl, uv, score, sigma, xyz, cov, source):
        out['uv'][sl], out['score'][sl], out['sigma_px'][sl] = uv, score, sigma
        out['xyz'][sl], out['cov'][sl], out['source'][sl] = xyz, cov, source

    for sl, idx, factor in ((BODY, BLAZEPOSE_TO_COCO17, 1.0), (FEET, BLAZEPOSE_TO_FEET, FEET_SCORE_FACTOR)):
        put(sl, person.keypoints[idx], person.visibility[idx] * factor, person.sigma_px[idx], person.xyz[idx],
            person.cov[idx], person.source[idx])
    if person.face68 is not None:
        n = 68
        put(FACE, person.face68, np.ones(n), person.face_sigma_px,
            person.face_xyz if person.face_xyz is not None else np.full((n, 3), np.nan),
            person.face_cov if person.face_cov is not None else np.full((n, 3, 3), np.nan),
            person.face_source if person.face_source is not None else np.zeros(n, np.uint8))
    for side, sl in (('left', LEFT_HAND), ('right', RIGHT_HAND)):
        h = person.hands.get(side)
        if h is not None:
            put(sl, h.keypoints, np.full(21, h.score), h.sigma_px, h.xyz, h.cov, h.source)
    return out


def wholebody133(person) -> Tuple[np.ndarray, np.ndarray]:
    """(keypoints (133, 2) px, score (133,)) of a person."""
    a = wholebody_arrays(person)
    return a['uv'], a['score']
