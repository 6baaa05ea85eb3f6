"""Scanline completion: the vectorised passes against a plain per-pixel reference of the rule."""
import cv2
import numpy as np
import pytest

from depthmarks_ros.core.fusion.completion import _fill_cols, _fill_rows, complete_scanline


def _fill_line_reference(line, gap, edge_rel, edge_abs):
    """The rule along one line, pixel by pixel: nearest measurement on each side within gap; both
    and agreeing -> linear; else the nearer one (a tie: the nearer depth); none -> NaN."""
    out = line.copy()
    idx = np.flatnonzero(np.isfinite(line))
    for p in range(line.size):
        if np.isfinite(line[p]):
            continue
        b = [i for i in idx if p - gap <= i < p]
        a = [i for i in idx if p < i <= p + gap]
        if not b and not a:
            continue
        if b and a:
            i, j = b[-1], a[0]
            zb, za = line[i], line[j]
            if abs(zb - za) <= edge_abs + edge_rel * min(zb, za):
                out[p] = za + (zb - za) * ((j - p) / (j - i))
                continue
            out[p] = zb if (p - i < j - p or (p - i == j - p and zb <= za)) else za
        else:
            out[p] = line[b[-1]] if b else line[a[0]]
    return out


def _reference(sparse, max_depth=100.0, row_gap=16, col_gap=10, edge_rel=0.05, edge_abs=0.3):
    d = sparse.astype(np.float32).copy()
    d[~(d > 0.1)] = np.nan
    d = np.stack([_fill_line_reference(r, row_gap, edge_rel, edge_abs) for r in d])
    d = np.stack([_fill_line_reference(c, col_gap, edge_rel, edge_abs) for c in d.T]).T.astype(np.float32)
    inv = np.float32(max_depth) - d
    inv[~(inv > 0.1)] = 0.0
    for k in (7, 31):
        np.copyto(inv, cv2.dilate(inv, np.ones((k, k), np.uint8)), where=inv < 0.1)
    out = np.where(inv > 0.1, np.float32(max_depth) - inv, np.nan).astype(np.float32)
    np.copyto(out, d, where=np.isfinite(d) & (d < max_depth))
    return out


def _random_sparse(rng, h, w, share):
    d = np.where(rng.random((h, w)) < share, rng.uniform(-1, 30, (h, w)), np.nan).astype(np.float32)
    d[: rng.integers(0, h)] = np.nan          # often an empty top band, as a LiDAR leaves it
    return d


@pytest.mark.parametrize('seed', range(6))
def test_scanline_passes_match_the_per_pixel_rule(seed):
    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(1, 70)), int(rng.integers(1, 40))
    d = _random_sparse(rng, h, w, rng.uniform(0.02, 0.3))
    d[~(d > 0.1)] = np.nan
    rows = _fill_rows(d, 5, 0.05, 0.3)
    np.testing.assert_allclose(rows, np.stack([_fill_line_reference(r, 5, 0.05, 0.3) for r in d]),
                               rtol=1e-5, atol=1e-5)
    cols = _fill_cols(rows, 4, 0.05, 0.3)
    np.testing.assert_allclose(cols, np.stack([_fill_line_reference(c, 4, 0.05, 0.3) for c in rows.T]).T,
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('seed', range(4))
def test_scanline_completion_matches_the_reference_whole(seed):
    rng = np.random.default_rng(10 + seed)
    d = _random_sparse(rng, int(rng.integers(20, 90)), int(rng.integers(10, 50)), rng.uniform(0.02, 0.2))
    np.testing.assert_allclose(complete_scanline(d, max_depth=25.0), _reference(d, max_depth=25.0),
                               rtol=1e-5, atol=1e-5)
