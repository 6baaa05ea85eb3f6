"""v2 refinement features and network (refine_net.RefineFeaturesV2 / build_network_v2): candidate hole
fills, the left-padded classical matcher, and the exported network's choice among the candidates
through the learned backend (ROS-free; torch and onnxruntime)."""
import numpy as np
import pytest

torch = pytest.importorskip('torch')
pytest.importorskip('onnxruntime')

from depthmarks_ros.core.stereo import StereoMatcher, StereoParams  # noqa: E402
from depthmarks_ros.core.stereo.learned import LearnedStereo  # noqa: E402
from depthmarks_ros.core.stereo.refine_net import (CANDIDATES, FEATURES, FEATURES_V2, FEATURES_V3,  # noqa: E402
                                                   RefineFeaturesV2,
                                                   build_network_v2, candidate_fills)
from depthmarks_ros.core.stereo.fill import fill_holes_rows, row_fills  # noqa: E402


@pytest.fixture(scope='module')
def sim_pair():
    import cv2
    from depthmarks_ros.core.sim import SimConfig, SimRig
    f = SimRig(SimConfig(width=320, height=240, seed=7)).render(0.0)
    return (cv2.cvtColor(f.left_rgb, cv2.COLOR_RGB2GRAY), cv2.cvtColor(f.right_rgb, cv2.COLOR_RGB2GRAY),
            f.disparity_gt)


def test_row_fills_take_the_left_right_interpolated_and_edge_aware_neighbours():
    n = np.nan
    d = np.array([[n, 4, n, n, 10, n], [n] * 6], np.float32)
    valid = np.isfinite(d)
    lin, lv, rv = row_fills(np.nan_to_num(d), valid)
    np.testing.assert_allclose(lv[0], [4, 4, 4, 4, 10, 10])
    np.testing.assert_allclose(rv[0], [4, 4, 10, 10, 10, 10])
    np.testing.assert_allclose(lin[0], [4, 4, 6, 8, 10, 10])
    np.testing.assert_allclose(lin[1], 4)   # an empty row: the smallest valid value
    # edge-aware: a hole pixel takes the side it reaches without crossing the image edge
    d = np.array([[4, n, n, n, n, 10]], np.float32)
    edges = np.array([[0, 0, 1, 0, 0, 0]], bool)            # a step between columns 1 and 2
    valid = np.isfinite(d)
    np.testing.assert_allclose(row_fills(np.nan_to_num(d), valid, edges)[3][0], [4, 4, 10, 10, 10, 10])
    no_edge = row_fills(np.nan_to_num(d), valid, np.zeros_like(edges))[3][0]
    np.testing.assert_allclose(no_edge, [4, 4, 4, 4, 4, 10])  # no edge either way: the smaller (background)


def test_candidates_keep_matched_pixels_and_fill_holes_between_neighbours():
    d = np.full((16, 32), 20.0, np.float32)
    d[:, 16:] = 8.0
    d[:, 6:26] = np.nan                     # a hole between 20 (left) and 8 (right)
    left = np.full((16, 32), 50, np.uint8)
    left[:, 16:] = 150                      # the image edge at column 16
    cands, valid = candidate_fills(d, left)
    assert cands.shape == (len(CANDIDATES), 16, 32) and np.isfinite(cands).all()
    for c in cands:
        np.testing.assert_allclose(c[valid], d[valid])
    hole = ~valid
    hole[:, 1:-1] &= ~valid[:, :-2] & ~valid[:, 2:]   # fills come from every second column: 1 px of slack
    assert np.all(cands[1][hole] >= 19.5) and np.all(cands[2][hole] <= 8.5)     # row_left, row_right
    assert 8 < cands[3][4, 16] < 20                                           # row_linear in between
    np.testing.assert_allclose(cands[0][:, 8:14], 20, atol=0.5)              # row_edge: left of the edge
    np.testing.assert_allclose(cands[0][:, 19:24], 8, atol=0.5)              # and right of it


def test_left_padded_matcher_fills_the_first_columns(sim_pair):
    left, right, gt = sim_pair
    m = StereoMatcher(StereoParams(disparity_range=64))
    plain = m.compute(left, right, confidence=False).disparity
    padded = RefineFeaturesV2().classical_disparity(m, left, right)
    assert padded.shape == plain.shape
    first = np.s_[:, 40:60]   # OpenCV leaves columns < 64 empty; the pad (half the range) reaches 32
    assert np.isfinite(plain[first]).mean() < 0.05 < 0.5 < np.isfinite(padded[first]).mean()
    ok = np.isfinite(padded[first]) & np.isfinite(gt[first])
    assert np.median(np.abs(padded[first][ok] - gt[first][ok])) < 1.0
    # elsewhere the same matcher gives the same disparities
    both = np.isfinite(plain) & np.isfinite(padded)
    assert np.mean(np.abs(plain[both] - padded[both]) < 0.5) > 0.95


@pytest.mark.parametrize('features,pick', [(FEATURES_V2, 1), (FEATURES_V2, 2), (FEATURES_V3, 0)])
def test_exported_v2_network_chooses_a_candidate(tmp_path, sim_pair, features, pick):
    from depthmarks_ros.core.stereo.train_refine import export
    net = build_network_v2(8).eval()
    k = len(CANDIDATES)
    with torch.no_grad():
        net.head.weight.zero_()
        net.head.bias.zero_()
        net.head.bias[pick] = 5.0           # always this candidate
        net.head.bias[k + 2] = np.log(0.5)  # output log b
        net.photo_weight.zero_()
    path = str(tmp_path / 'v2.onnx')
    export(net, path, 2.0, {'test': True}, 64, features)
    left, right, _gt = sim_pair
    r = LearnedStereo(path).compute(left, right)
    fb = FEATURES[features]()
    base = fb.classical_disparity(StereoMatcher(StereoParams(disparity_range=64)), left, right)
    want = candidate_fills(base, left, fb.candidates, fb.edge_step)[0][pick]
    np.testing.assert_allclose(r.disparity, want, atol=1e-3)
    if features == FEATURES_V3:   # v3 starts from KITTI's row rule (fill.fill_holes_rows)
        np.testing.assert_allclose(want, fill_holes_rows(base))
    np.testing.assert_allclose(r.sigma, 1.0, rtol=1e-4)          # sigma_scale 2 x b 0.5


def test_v2_mixture_loss_prefers_the_candidate_nearest_the_truth():
    from depthmarks_ros.core.stereo.train_refine import mixture_nll
    gt = torch.full((1, 4, 4), 10.0)
    offsets = torch.stack([torch.zeros(1, 4, 4), torch.full((1, 4, 4), 5.0)], 1)   # centres 10 and 15
    base, res, log_b = torch.full((1, 4, 4), 10.0), torch.zeros(1, 4, 4), torch.zeros(1, 4, 4)
    mask = torch.ones(1, 4, 4, dtype=torch.bool)
    right = mixture_nll(torch.stack([torch.full((1, 4, 4), 3.0), torch.zeros(1, 4, 4)], 1), offsets, base, res,
                        log_b, gt, mask)
    wrong = mixture_nll(torch.stack([torch.zeros(1, 4, 4), torch.full((1, 4, 4), 3.0)], 1), offsets, base, res,
                        log_b, gt, mask)
    assert right < wrong
