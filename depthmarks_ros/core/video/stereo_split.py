"""Side-by-side stereo frames (one USB device delivering left|right halves)."""
from __future__ import annotations

from typing import Tuple

import numpy as np


def split_side_by_side(frame: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(H, 2W, C) -> left (H, W, C), right (H, W, C) as contiguous copies.

    Raises ValueError for an odd width (not a side-by-side frame).
    """
    w2 = frame.shape[1]
    if w2 % 2:
        raise ValueError(f'side-by-side frame width {w2} is odd: not a left|right pair')
    w = w2 // 2
    return np.ascontiguousarray(frame[:, :w]), np.ascontiguousarray(frame[:, w:])
