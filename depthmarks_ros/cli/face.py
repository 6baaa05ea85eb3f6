"""`depthmarks face IMAGE... -o DIR`: 68-point .pts files (300-W format) and landmarks.json.

For each image: DIR/<stem>.pts (iBUG-68 of the largest face) and, in DIR/landmarks.json, every face
with its 68 landmarks, per-landmark sigma and visibility, and the head pose (focal length from
--focal, default the larger image side: core/camera.assumed_K, the face pipeline's own default for
an image without calibration). Same core, options and defaults (backend hybrid) as the
face_landmarks node (its spec, FaceLandmarksParams).
"""
from __future__ import annotations

import json
import os

import numpy as np


def add_arguments(p) -> None:
    p.add_argument('images', nargs='+')
    p.add_argument('--output', '-o', required=True)
    from depthmarks_ros.cli.options import add_spec_options
    from depthmarks_ros.params.face_landmarks import FaceLandmarksParams
    p.add_argument('--focal', type=float, default=0.0, help='focal length in px (default: the larger image side)')
    add_spec_options(p, FaceLandmarksParams)   # --backend (hybrid, as the node), --no-uncertainty, ...


def run(args) -> int:
    import cv2
    from depthmarks_ros.cli.options import spec_from_args
    from depthmarks_ros.core.camera import assumed_K
    from depthmarks_ros.core.face.backends import BackendError
    from depthmarks_ros.core.face.convention import DEFAULT_CONVENTION
    from depthmarks_ros.core.face.pipeline import FaceLandmarker, fitted_data_dir
    from depthmarks_ros.core.pts_io import write_pts
    from depthmarks_ros.params.face_landmarks import FaceLandmarksParams
    try:
        p = spec_from_args(FaceLandmarksParams, args)
        landmarker = FaceLandmarker(p.backend, p.max_faces, p.refine_landmarks, p.uncertainty, static=True,
                                    dlib_detector=p.dlib_detector, learned_model=p.uncertainty_model,
                                    all_views=p.detector_all_views, mmod=p.detector_mmod,
                                    convention=p.landmark_convention,
                                    data_dir=fitted_data_dir(p.fitted_data, p.backend, p.dlib_detector, p.uncertainty,
                                                             p.landmark_convention))
    except (ValueError, BackendError, FileNotFoundError) as exc:
        print(f'depthmarks face: {exc}')
        return 2
    os.makedirs(args.output, exist_ok=True)
    report = {}
    for path in args.images:
        bgr = cv2.imread(path)
        if bgr is None:
            print(f'{path}: cannot read, skipped')
            continue
        h, w = bgr.shape[:2]
        K = assumed_K(w, h, args.focal)
        landmarker.tracker = type(landmarker.tracker)()  # independent images: fresh ids
        faces = landmarker.process(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), K)
        stem = os.path.splitext(os.path.basename(path))[0]
        entries = []
        for face in faces:
            e = {'face_id': face.face_id, 'bbox': face.bbox.tolist(), 'landmarks68': face.landmarks68.tolist(),
                 'sigma68': np.sqrt(np.trace(face.cov68, axis1=1, axis2=2) / 2).tolist(),
                 'cov68': face.cov68.tolist(), 'visibility68': face.visibility68.tolist()}
            if face.head_pose is not None:
                hp = face.head_pose
                e['head_pose'] = {'yaw_deg': hp.yaw, 'pitch_deg': hp.pitch, 'roll_deg': hp.roll,
                                  'rvec': hp.rvec.tolist(), 'tvec_m': hp.tvec.tolist(),
                                  'covariance_rvec_tvec': hp.covariance.tolist()}
            entries.append(e)
        if faces:
            largest = max(faces, key=lambda fc: (fc.bbox[2] - fc.bbox[0]) * (fc.bbox[3] - fc.bbox[1]))
            write_pts(os.path.join(args.output, f'{stem}.pts'), largest.landmarks68)
        report[os.path.basename(path)] = {'faces': entries}
        print(f'{path}: {len(faces)} face(s)')
    with open(os.path.join(args.output, 'landmarks.json'), 'w') as fh:
        head = {'backend': args.backend}
        if p.landmark_convention != DEFAULT_CONVENTION:     # the '2d' file as before
            head['landmark_convention'] = p.landmark_convention
        json.dump({**head, 'images': report}, fh)
    landmarker.close()
    return 0
