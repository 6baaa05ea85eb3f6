#!/usr/bin/env python3
"""The pose-head last resort (core/face/pose_head.py) ALONE, as if every face view had found nothing.

Issue 18 (recall): the hybrid misses no fit-split face, so the last resort cannot be designed on fit
faces it would rescue; instead this runs it on every FIT-split face by itself (no face detector
before it) and on images without a face close enough (KITTI object and stereo 2012, Middlebury,
hand sets, synthetic blank and noise images):
* faces: share it finds (the criterion of bench_face.py: 68 points whose centre lies within half the
  annotation's extent of the annotated centre), box-NME of the hybrid's keypoint path on its
  detection, by |yaw| band;
* no-face images: detections (there must be none), with the head size and visibility of each.
Split rule: int(sha1(stem).hexdigest(), 16) % 5 == 0 -> report split (not read here), else fit split.

    nice -n 10 env OMP_NUM_THREADS=1 .venv/bin/python benchmarks/study_face_pose_head.py --data ../shared/data
"""
import argparse
import os
import sys
import time

import numpy as np

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), '..'))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from depthmarks_ros.core.face.datasets import SPLIT_RULE  # noqa: E402
from depthmarks_ros.core.face.metrics import bbox_size  # noqa: E402
from depthmarks_ros.core.face.pipeline import FaceLandmarker  # noqa: E402
from depthmarks_ros.core.face.pose_head import PoseHeadFinder  # noqa: E402
from depthmarks_ros.core.camera import assumed_K  # noqa: E402
from face_negatives import faces_on, fit_sets, no_face_images  # noqa: E402

def cost(finder, lm, repeat):
    """ms of one BlazePose head search at 640x480 (the astronaut frame of bench_face.py's speed table, and a
    blank frame), interleaved with the whole default hybrid on the blank frame (every view, MMOD, the
    oversized view: what runs before the pose head on an image without a face)."""
    import cv2
    from skimage import data
    frame = np.full((480, 640, 3), 90, np.uint8)
    frame[:, 80:560] = cv2.resize(data.astronaut(), (480, 480))
    blank = np.full((480, 640, 3), 90, np.uint8)
    K = assumed_K(640, 480)
    det = lm.backend.mesh._detector
    ts = {'pose head, astronaut frame': [], 'pose head, blank frame': [], 'hybrid before it, blank frame': []}
    finder.find(frame)
    for _ in range(repeat):
        for k, img in (('pose head, astronaut frame', frame), ('pose head, blank frame', blank)):
            t0 = time.perf_counter()
            finder.find(img)
            ts[k].append(time.perf_counter() - t0)
        pose, det._pose_head = det._pose_head, type('NoPose', (), {'find': lambda self, rgb: [], 'close': lambda self: None})()
        t0 = time.perf_counter()
        lm.process(blank, K)
        ts['hybrid before it, blank frame'].append(time.perf_counter() - t0)
        det._pose_head = pose
    ref = np.median(ts['hybrid before it, blank frame'])
    print(f'\n-- cost at 640x480 (median of {repeat}, interleaved; load {os.getloadavg()[0]:.1f}) --')
    for k, v in ts.items():
        print(f'  {k:32s} {np.median(v) * 1e3:8.1f} ms  ({np.median(v) / ref * 100:5.1f} % of the hybrid before it)')


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--data', default=os.path.normpath(os.path.join(ROOT, '..', 'shared', 'data')))
    ap.add_argument('--limit', type=int, default=0)
    ap.add_argument('--min-head-px', type=float, default=None)
    ap.add_argument('--end-to-end', action='store_true', help='also the whole default hybrid on the no-face images '
                    '(MMOD runs on each: ~1-9 s per image)')
    ap.add_argument('--end-to-end-only', action='store_true', help='stop after that (no faces)')
    ap.add_argument('--cost', action='store_true', help='also time the pose head at 640x480 (interleaved)')
    ap.add_argument('--cost-only', action='store_true')
    ap.add_argument('--repeat', type=int, default=5)
    args = ap.parse_args()
    args.cost |= args.cost_only
    args.end_to_end |= args.end_to_end_only
    print(f'split: fit ({SPLIT_RULE}); load average {os.getloadavg()}')
    finder = PoseHeadFinder() if args.min_head_px is None else PoseHeadFinder(min_head_px=args.min_head_px)
    lm = FaceLandmarker('hybrid', static=True)
    hy = lm.backend
    if args.cost:
        cost(finder, lm, args.repeat)
        if args.cost_only:
            return
    print('\n-- images without a face close enough (a detection is a false positive unless the image holds a face after all: look) --')
    neg = no_face_images(args.data)
    fp = 0
    for path, rgb in neg:
        dets = finder.find(rgb)
        lmk = finder.landmarks(rgb)
        if dets or lmk is not None:
            side = dets[0].box[2] - dets[0].box[0] if dets else float('nan')
            print(f'  {os.path.relpath(path, args.data) if os.path.isabs(path) else path}: pose found, head '
                  f'{side:.0f} px, visibility {np.mean(lmk[:11, 2]):.2f} -> {"FACE" if dets else "rejected"}')
        fp += bool(dets)
    print(f'no-face images: {len(neg)}, with a pose-head face: {fp}')
    if args.end_to_end:         # the whole default hybrid (every view, MMOD, oversized view, pose head)
        t0 = time.time()
        n = 0
        for path, rgb in neg:
            hy.mesh._detector.stage_counts.clear()
            faces = faces_on(lm, rgb)
            n += len(faces)
            if faces:
                print(f'  hybrid: {len(faces)} face(s) on {path}: {dict(hy.mesh._detector.stage_counts)}')
        print(f'end to end, default hybrid on the {len(neg)} no-face images: {n} faces '
              f'({time.time() - t0:.0f} s; pose model runs {hy.mesh._detector._pose_head.runs if hy.mesh._detector._pose_head else 0})')
        if args.end_to_end_only:
            return
    for name, samples in fit_sets(args.data).items():
        samples = samples[:args.limit] if args.limit else samples
        t0 = time.time()
        rows = []
        for s in samples:
            rgb = s.load_rgb()
            dets = finder.find(rgb)
            found, nme = False, np.nan
            if dets:
                d = dets[0]
                kp = hy._from_keypoints(rgb, d.box, d.keypoints, None, per_view=True)
                if kp is not None:
                    p68 = kp[0]
                    gt = s.landmarks68
                    found = np.linalg.norm(p68.mean(axis=0) - gt.mean(axis=0)) < 0.5 * max(np.ptp(gt, axis=0))
                    nme = np.linalg.norm(p68 - gt, axis=1).mean() / bbox_size(gt)
            yaw = abs(s.pose_deg[0]) if s.pose_deg is not None else 0.0
            rows.append((yaw, bool(dets), found, nme))
        r = np.array(rows, float)
        print(f'\n-- {name}, fit split, {len(r)} faces, pose head alone ({time.time() - t0:.0f} s) --')
        for lo, hi in ((0, 30), (30, 60), (60, 90), (90, 1e9)):
            m = (r[:, 0] >= lo) & (r[:, 0] < hi)
            if m.any():
                f = m & (r[:, 2] > 0)
                print(f'  |yaw| {lo:3.0f}-{hi:<5.0f}: {m.sum():4d} faces, pose person {r[m, 1].mean() * 100:5.1f} %, '
                      f'found {f.sum()} ({f.sum() / m.sum() * 100:5.1f} %), box-NME of found {np.nanmean(r[f, 3]) if f.any() else np.nan:.4f}')
        f = r[:, 2] > 0
        print(f'  all: found {f.sum()}/{len(r)}, box-NME {np.nanmean(r[f, 3]):.4f}')
    lm.close()
    finder.close()
    print(f'load average at the end: {os.getloadavg()}')


if __name__ == '__main__':
    main()
