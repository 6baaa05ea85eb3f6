"""`depthmarks body IMAGE_OR_VIDEO... -o results.json`: COCO keypoint results for every person found.

Whole images (no boxes given) by default: the multi-person core of the body_pose node
(:class:`depthmarks_ros.core.body.pipeline.BodyPoseEstimator`) with :data:`BATCH_DEFAULTS`
(each image on its own, the detector also on 2 x 2 and 4 x 4 grids of overlapping tiles for small people; hands
settled by passes on turned regions and the other hand of a hand on its own searched: ``hand_tta``). A video
file is read frame by frame in tracking mode (ids kept across frames; image_id = frame index).
``--wholebody results133.json`` writes the same people in the COCO-WholeBody 133-keypoint layout
(body 17, feet 6, face 68, left hand 21, right hand 21; see docs/body_pose.md). With
``--annotations person_keypoints.json`` the person boxes there are used top-down instead (one
crop per box through MediaPipe's single-person Pose, the reference protocol) and image ids come
from the file. ``--backend``, ``--model-complexity``, ``--min-detection-confidence``, ``--max-people`` and
``--hand-model`` are the node's parameters (its spec, BodyPoseParams), with its defaults; the rest of
the node's settings are its defaults too (:func:`batch_settings`).
"""
from __future__ import annotations

import os

import numpy as np

# the batch command's settings of the core (the node's are its parameters); the benchmark uses these
BATCH_DEFAULTS = dict(static=True, detect_tiles=4, hands=True, hand_refine=True, hand_tta=True, palms='auto', face=True)
VIDEO_EXTENSIONS = ('.mp4', '.avi', '.mov', '.mkv', '.webm')


def batch_settings(spec=None) -> dict:
    """The estimator's settings for images: the node's (its spec, defaults unless ``spec`` is given)
    with :data:`BATCH_DEFAULTS` over them. The benchmark uses these too."""
    from depthmarks_ros.params.body_pose import BodyPoseParams, estimator_settings
    return dict(estimator_settings(spec if spec is not None else BodyPoseParams()), **BATCH_DEFAULTS)


def add_arguments(p) -> None:
    p.add_argument('inputs', nargs='+', metavar='IMAGE_OR_VIDEO')
    p.add_argument('--output', '-o', required=True, help='COCO keypoint-results JSON (17 keypoints per person)')
    p.add_argument('--wholebody', default='', help='also write COCO-WholeBody results (133 keypoints) here')
    from depthmarks_ros.cli.options import add_spec_options
    from depthmarks_ros.params.body_pose import BodyPoseParams
    # as the node's parameters (its spec); tiles, hands and face are the batch command's own choices
    add_spec_options(p, BodyPoseParams, names=['backend', 'model_complexity', 'min_detection_confidence',
                                               'max_people', 'hand_model'])
    p.add_argument('--tiles', type=int, default=BATCH_DEFAULTS['detect_tiles'],
                   help='person detector also on 2x2, 4x4, ... grids of overlapping tiles up to n x n (0: whole image only)')
    p.add_argument('--no-hands', action='store_true', help='skip hand keypoints')
    p.add_argument('--no-face', action='store_true', help='skip the 68 face keypoints')
    p.add_argument('--annotations', default='', help='COCO keypoint annotations: one crop per person box (reference)')


def _frames(path):
    """(image_id, rgb) of an image, or of every frame of a video."""
    import cv2
    stem = os.path.splitext(os.path.basename(path))[0]
    if path.lower().endswith(VIDEO_EXTENSIONS):
        cap = cv2.VideoCapture(path)
        i = 0
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            yield i, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            i += 1
        cap.release()
        return
    bgr = cv2.imread(path)
    if bgr is None:
        yield None, None
        return
    yield (int(stem) if stem.isdigit() else stem), cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _spec(args):
    from depthmarks_ros.cli.options import spec_from_args
    from depthmarks_ros.params.body_pose import BodyPoseParams
    return spec_from_args(BodyPoseParams, args)


def _annotated(args) -> int:
    import cv2
    from depthmarks_ros.core.body.backends import BackendError, create_backend
    from depthmarks_ros.core.body.coco_io import load_annotations, result_entry, write_results
    from depthmarks_ros.core.body.pipeline import coco17_in_box
    try:
        p = _spec(args)
        backend = create_backend(p.backend, static=True, model_complexity=p.model_complexity,
                                 min_confidence=p.min_detection_confidence)
    except (ValueError, BackendError) as exc:
        print(f'body: {exc}')
        return 2
    ann = load_annotations(args.annotations)
    entries = []
    for path in args.inputs:
        bgr = cv2.imread(path)
        if bgr is None:
            print(f'{path}: cannot read, skipped')
            continue
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        people = ann.get(os.path.basename(path), [])
        found = [coco17_in_box(backend, rgb, p['bbox']) for p in people]
        for p, r in zip(people, found):
            if r is not None:
                entries.append(result_entry(p['image_id'], *r))
        print(f'{path}: {sum(r is not None for r in found)} of {len(people)} annotated person(s)')
    write_results(args.output, entries)
    backend.close()
    return 0


def run(args) -> int:
    if args.annotations:
        return _annotated(args)
    from depthmarks_ros.core.body.backends import BackendError
    from depthmarks_ros.core.body.coco_io import result_entry, wholebody_entry, write_results
    from depthmarks_ros.core.body.pipeline import BodyPoseEstimator
    from depthmarks_ros.core.body.wholebody import wholebody133
    try:
        spec = _spec(args)
    except ValueError as exc:
        print(f'body: {exc}')
        return 2
    settings = dict(batch_settings(spec), detect_tiles=args.tiles, hands=not args.no_hands, face=not args.no_face)
    entries, whole = [], []
    for path in args.inputs:
        video = path.lower().endswith(VIDEO_EXTENSIONS)
        try:
            est = BodyPoseEstimator(**dict(settings, static=not video))
        except BackendError as exc:
            print(f'body: {exc}')
            return 2
        n_frames = n_people = 0
        for image_id, rgb in _frames(path):
            if rgb is None:
                print(f'{path}: cannot read, skipped')
                break
            people = est.process(rgb)
            n_frames += 1
            n_people += len(people)
            for p in people:
                kp, vis, _ = p.coco17()
                entries.append(dict(result_entry(image_id, kp, vis, p.score), track_id=p.person_id))
                if args.wholebody:
                    kp133, s133 = wholebody133(p)
                    whole.append(dict(wholebody_entry(image_id, kp133, s133, p.score), track_id=p.person_id))
        est.close()
        if n_frames:
            print(f'{path}: {n_people} person(s)' + (f' in {n_frames} frames' if video else ''))
    write_results(args.output, entries)
    if args.wholebody:
        write_results(args.wholebody, whole)
    return 0
