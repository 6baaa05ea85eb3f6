"""The one hole-filling rule of disparity maps (core/stereo/fill.py, real-data.md): used by the bad-2
"holes filled" metric and as the refinement network's starting disparity; checked against a
per-pixel reference of the rule."""
import numpy as np
import pytest

from depthmarks_ros.core.stereo.fill import fill_holes_rows
from depthmarks_ros.core.stereo.metrics import bad_filled


def _reference(d, empty_row):
    """The rule, pixel by pixel."""
    out = np.array(d, np.float32)
    for y, row in enumerate(d):
        valid = [x for x, v in enumerate(row) if np.isfinite(v) and v > 0]
        for x in range(len(row)):
            if x in valid:
                continue
            left = [row[i] for i in valid if i < x][-1:]
            right = [row[i] for i in valid if i > x][:1]
            out[y, x] = min(left + right) if valid else empty_row
    return out


def test_between_two_values_the_smaller_at_the_borders_the_nearest_and_empty_rows_as_asked():
    n, inf = np.nan, np.inf
    d = np.array([[n, 5, n, n, 9, n],
                  [n, n, n, n, n, n],
                  [3, 0, 8, -1, inf, 2]], np.float32)           # 0, negative, inf: holes too (KITTI: 0 = none)
    filled = fill_holes_rows(d, empty_row=np.nan)
    np.testing.assert_array_equal(filled[0], [5, 5, 5, 5, 9, 9])
    assert np.isnan(filled[1]).all()                             # nothing to fill from
    np.testing.assert_array_equal(filled[2], [3, 3, 8, 2, 2, 2])
    np.testing.assert_array_equal(fill_holes_rows(d)[1], [2] * 6)   # default: the image's smallest value
    np.testing.assert_array_equal(fill_holes_rows(d, empty_row=7.0)[1], [7] * 6)
    assert (fill_holes_rows(np.full((2, 3), np.nan)) == 0).all()    # nothing valid anywhere: 0
    with pytest.raises(ValueError, match='empty_row'):
        fill_holes_rows(d, empty_row='max')
    with pytest.raises(ValueError, match=r'\(H, W\)'):
        fill_holes_rows(np.zeros((2, 3, 1)))


def test_matches_the_rule_pixel_by_pixel_on_random_maps():
    rng = np.random.default_rng(0)
    for _ in range(20):
        d = rng.uniform(1, 60, (6, 9)).astype(np.float32)
        d[rng.random(d.shape) < rng.uniform(0.2, 0.95)] = np.nan
        d[rng.random(d.shape) < 0.05] = 0.0
        pos = d[np.isfinite(d) & (d > 0)]
        for empty, value in (('min', pos.min() if pos.size else 0.0), (np.nan, np.nan)):
            np.testing.assert_array_equal(fill_holes_rows(d, empty_row=empty), _reference(d, value))


def test_bad_filled_counts_every_truth_pixel_after_filling_and_an_empty_row_as_bad():
    n = np.nan
    d = np.array([[n, 5, n, n, 9, n], [n, n, n, n, n, n], [3, n, 8, 8, n, 2]], np.float32)
    gt = np.full_like(d, 5.0)
    gt[2] = [3, 3, 8, 8, 8, 2]                                 # (2, 4) filled with 2 instead of 8: bad
    # row 0: 9, 9 off by 4 (2 bad); row 1 all NaN (6 bad); row 2: one bad -> 9 of 18
    assert bad_filled(d, gt) == pytest.approx(9 / 18)


def test_a_holes_mask_keeps_zero_and_negative_disparities():
    """Matchers with a negative min_disparity give 0 and negative matches: with ``holes`` only the
    masked pixels are filled (KITTI's rule, the default, would fill 0 and below too)."""
    d = np.array([[5.0, 0.0, -3.0, np.nan, 4.0]], np.float32)
    out = fill_holes_rows(d, empty_row=np.nan, holes=np.isnan(d))
    np.testing.assert_array_equal(out, [[5.0, 0.0, -3.0, -3.0, 4.0]])
    assert fill_holes_rows(d, empty_row=np.nan)[0, 1] == 4.0      # KITTI: 0 and -3 are holes (min of 5, 4)
    with pytest.raises(ValueError, match='holes mask'):
        fill_holes_rows(d, holes=np.zeros((2, 5), bool))
