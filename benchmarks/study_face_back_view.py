#!/usr/bin/env python3
"""The pose head's back-view rule (core/face/pose_head.py facing_away) on real faces that are NOT seen from
behind: every FIT-split AFLW2000-3D and 300-W LFPW face, the pose head run alone on it (as
study_face_pose_head.py does). A head it finds and calls seen from behind (source pose_head_back) is
reported with every face point hidden, so on these faces (|yaw| wrapped to 0-180; 3 of 1049 past 90
deg) it should not fire at all. Prints, per |yaw| band, the heads found and those called back
views.
Split rule: int(sha1(stem).hexdigest(), 16) % 5 == 0 -> report split (not read here), else fit split.

    nice -n 10 env OMP_NUM_THREADS=1 .venv/bin/python benchmarks/study_face_back_view.py --data ../shared/data
"""
import argparse
import os
import sys
import time

import numpy as np

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), '..'))
sys.path.insert(0, ROOT)

from depthmarks_ros.core.face.datasets import SPLIT_RULE, load_aflw2000_3d, load_pts_folder  # noqa: E402
from depthmarks_ros.core.face import pose_head as P  # noqa: E402
from depthmarks_ros.core.face.head_pose import wrap_deg  # noqa: E402

BANDS = (0, 30, 60, 90, 181)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--data', required=True)
    ap.add_argument('--limit', type=int, default=0, help='first N fit-split images per set (0: all)')
    args = ap.parse_args()
    aflw = load_aflw2000_3d(os.path.join(args.data, 'faces', 'aflw2000_3d'), 'fit')
    w300 = load_pts_folder(os.path.join(args.data, 'faces', '300w_lfpw_test'), 'fit')
    if args.limit:
        aflw, w300 = aflw[:args.limit], w300[:args.limit]
    print(f'split rule: {SPLIT_RULE}; fit split only: {len(aflw)} AFLW2000-3D, {len(w300)} 300-W LFPW faces; '
          f'load {os.getloadavg()[0]:.1f}')
    finder = P.PoseHeadFinder()
    rows = {}
    backs = []
    t0 = time.time()
    for s in aflw + w300:
        yaw = abs(wrap_deg(float(s.pose_deg[0]))) if s.pose_deg is not None else None
        band = 'no yaw (300-W)' if yaw is None else \
            next(f'|yaw| {a}-{b}' for a, b in zip(BANDS, BANDS[1:]) if a <= yaw < b)
        rgb = s.load_rgb()
        dets = finder.find(rgb)
        r = rows.setdefault(band, [0, 0, 0])
        r[0] += 1
        if dets:
            r[1] += 1
            if P.seen_from_behind(dets[0].source):
                r[2] += 1
                backs.append((s.stem, yaw))
    finder.close()
    print(f'{"band":18s} {"faces":>6s} {"heads":>6s} {"back":>6s}   ({time.time() - t0:.0f} s, load {os.getloadavg()[0]:.1f})')
    for band in sorted(rows):
        n, found, back = rows[band]
        print(f'{band:18s} {n:6d} {found:6d} {back:6d}')
    for stem, yaw in backs:
        print(f'  called a back view: {stem} |yaw| {yaw if yaw is None else round(yaw, 1)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
