"""Stable ids for detections (faces, people, hands) across frames: greedy matching of box centres (ROS-free).

Shared by `core/face` and `core/body`; neither owns it."""
from __future__ import annotations

from typing import Dict, List

import numpy as np


class CentroidTracker:
    """Assigns each detection the id of the nearest track from the previous frame (within
    ``max_distance`` times the box size), or a new id. Tracks unseen for ``max_missed`` frames end."""

    def __init__(self, max_distance: float = 0.6, max_missed: int = 10):
        self.max_distance, self.max_missed = max_distance, max_missed
        self._tracks: Dict[int, dict] = {}
        self._next = 0

    def new_id(self) -> int:
        """An id no track of this tracker has had or will have (for objects tracked another way)."""
        self._next += 1
        return self._next - 1

    def update(self, boxes: List[np.ndarray]) -> List[int]:
        ids = [-1] * len(boxes)
        centres = [np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2]) for b in boxes]
        sizes = [max(b[2] - b[0], b[3] - b[1], 1.0) for b in boxes]
        pairs = []
        for tid, tr in self._tracks.items():
            for i, c in enumerate(centres):
                d = np.linalg.norm(c - tr['centre']) / max(sizes[i], tr['size'])
                if d <= self.max_distance:
                    pairs.append((d, tid, i))
        used_t, used_d = set(), set()
        for d, tid, i in sorted(pairs):
            if tid in used_t or i in used_d:
                continue
            ids[i] = tid
            used_t.add(tid)
            used_d.add(i)
        for i in range(len(boxes)):
            if ids[i] < 0:
                ids[i] = self.new_id()
        for tid in list(self._tracks):
            if tid not in ids:
                self._tracks[tid]['missed'] += 1
                if self._tracks[tid]['missed'] > self.max_missed:
                    del self._tracks[tid]
        for i, tid in enumerate(ids):
            self._tracks[tid] = {'centre': centres[i], 'size': sizes[i], 'missed': 0}
        return ids
