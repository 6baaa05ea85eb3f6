#!/usr/bin/env python3
"""Regenerate depthmarks_ros/data/face_model_68.npy: a generic 3D face model (metres) for head pose.

Built from MediaPipe Face Mesh's relative depth on the frontal face of skimage's astronaut photo:
(x, y, z) of the 68 iBUG-mapped vertices, centred on their mean, scaled so that the outer eye
corners are 90 mm apart (a typical adult outer canthal distance). Axes: x image right, y image
down, z away from the camera (the face looks along -z at identity rotation).
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.normpath(os.path.join(os.path.dirname(__file__), '..')))


def main():
    from skimage import data
    from depthmarks_ros.core.face.backends import MediaPipeFaceMesh
    from depthmarks_ros.core.face.ibug68 import LEFT_EYE_OUTER, MEDIAPIPE_TO_IBUG68, RIGHT_EYE_OUTER
    mesh = MediaPipeFaceMesh(max_faces=1, static=True)
    face = mesh.process(data.astronaut())[0]
    pts = np.column_stack([face.landmarks, face.z])[MEDIAPIPE_TO_IBUG68]
    pts -= pts.mean(axis=0)
    pts *= 0.090 / np.linalg.norm(pts[LEFT_EYE_OUTER] - pts[RIGHT_EYE_OUTER])
    out = os.path.join(os.path.dirname(__file__), '..', 'depthmarks_ros', 'data', 'face_model_68.npy')
    np.save(out, pts.astype(np.float64))
    print(f'wrote {out}')


if __name__ == '__main__':
    main()
