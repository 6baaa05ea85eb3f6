"""LiDAR-camera fusion, batch commands: `depthmarks fit-fusion` reproduces the shipped sigma
defaults and fits real-data layouts on the fit split only; `depthmarks fuse-kitti` on a KITTI
layout made from the simulated rig."""
import os

import cv2
import numpy as np
import pytest

from depthmarks_ros.core.fusion import kitti
from depthmarks_ros.core.fusion.learned import load_model
from depthmarks_ros.core.fusion.metrics import sigma_calibration
from depthmarks_ros.core.fusion.uncertainty import SigmaModel


def test_fit_fusion_command_reproduces_the_shipped_sigma_defaults():
    from depthmarks_ros.cli.fit_fusion import fit_sim_model
    fitted = fit_sim_model(4, 'classical').to_dict()   # = depthmarks fit-fusion --frames 4 --completion classical
    assert fitted['stereo_fuse_factor'] > 1 and fitted['fused_scale'] != 1   # fitted on the pipeline chain's output
    for name, shipped in SigmaModel().to_dict().items():
        assert fitted[name] == pytest.approx(shipped, rel=0.03), name


def test_fuse_kitti_command_on_synthetic_kitti_layout(tmp_path, fusion_scene):
    from depthmarks_ros.cli.main import main
    sim, f, sweep, pts, sparse = fusion_scene
    root = tmp_path / 'kitti'
    for sub in ('image_2', 'velodyne', 'calib'):
        os.makedirs(root / sub)
    cv2.imwrite(str(root / 'image_2' / '000007.png'), cv2.cvtColor(f.left_rgb, cv2.COLOR_RGB2BGR))
    np.hstack([pts, sweep['intensity'][:, None]]).astype(np.float32).tofile(root / 'velodyne' / '000007.bin')
    lidar2cam = sim.rig.transform('lidar', 'left')
    P = sim.stereo.left.P
    with open(root / 'calib' / '000007.txt', 'w') as fh:
        fh.write('P2: ' + ' '.join(f'{x:.9e}' for x in P.ravel()) + '\n')
        fh.write('R0_rect: 1 0 0 0 1 0 0 0 1\n')
        fh.write('Tr_velo_to_cam: ' + ' '.join(f'{x:.9e}' for x in lidar2cam[:3].ravel()) + '\n')
    assert main(['fuse-kitti', str(root), '-o', str(tmp_path / 'out')]) == 0
    depth = kitti.read_depth_png(str(tmp_path / 'out' / '000007.png'))
    ok = np.isfinite(depth) & np.isfinite(f.depth_gt)
    assert ok.mean() > 0.5 and np.median(np.abs(depth[ok] - f.depth_gt[ok])) < 0.1
    # the camera-visibility filter (the node's visibility_rows): fewer sparse returns, none of them see-through
    assert main(['fuse-kitti', str(root), '-o', str(tmp_path / 'vis'), '--visibility-rows', '5']) == 0
    before, after = (kitti.read_depth_png(str(tmp_path / d / '000007_sparse.png')) for d in ('out', 'vis'))
    assert np.isfinite(after).sum() < np.isfinite(before).sum()
    see_through = lambda sp: int((np.isfinite(sp) & (sp - f.depth_gt > 0.3)).sum())   # noqa: E731
    assert see_through(after) < 0.5 * see_through(before)
    assert main(['fuse-kitti', str(root), '-o', str(tmp_path / 'bad'), '--visibility-rows', '4']) == 2


def test_fit_fusion_on_real_data_layouts_fits_the_fit_split_only(tmp_path, fusion_scene):
    """`fit-fusion --kitti --kitti-stereo` on KITTI-layout folders made from the simulated rig: only
    the fit-split frames (sha1 rule) are used and recorded, and each source is calibrated on its own
    (68.3 % of its fitting errors within 1 sigma)."""
    from depthmarks_ros.cli.main import main
    from depthmarks_ros.core.fusion import real_data as R
    from depthmarks_ros.core.fusion.uncertainty import lidar_sigma, stereo_sigma
    from depthmarks_ros.core.stereo.io import write_disparity_png
    sim, f, sweep, pts, sparse = fusion_scene
    assert R.in_report_split('000007') and not R.in_report_split('000003')
    root, sroot = tmp_path / 'kitti', tmp_path / 'kitti2012'
    for sub in ('image_2', 'velodyne', 'calib'):
        os.makedirs(root / sub)
    for sub in ('image_0', 'image_1', 'disp_noc'):
        os.makedirs(sroot / sub)
    lidar2cam, P = sim.rig.transform('lidar', 'left'), sim.stereo.left.P
    for stem in ('000003', '000007'):                              # fit, report
        cv2.imwrite(str(root / 'image_2' / f'{stem}.png'), cv2.cvtColor(f.left_rgb, cv2.COLOR_RGB2BGR))
        np.hstack([pts, sweep['intensity'][:, None]]).astype(np.float32).tofile(root / 'velodyne' / f'{stem}.bin')
        with open(root / 'calib' / f'{stem}.txt', 'w') as fh:
            fh.write('P2: ' + ' '.join(f'{x:.9e}' for x in P.ravel()) + '\nR0_rect: 1 0 0 0 1 0 0 0 1\n')
            fh.write('Tr_velo_to_cam: ' + ' '.join(f'{x:.9e}' for x in lidar2cam[:3].ravel()) + '\n')
    for stem in ('000003_10', '000007_10'):                        # fit, report
        cv2.imwrite(str(sroot / 'image_0' / f'{stem}.png'), cv2.cvtColor(f.left_rgb, cv2.COLOR_RGB2GRAY))
        cv2.imwrite(str(sroot / 'image_1' / f'{stem}.png'), cv2.cvtColor(f.right_rgb, cv2.COLOR_RGB2GRAY))
        write_disparity_png(str(sroot / 'disp_noc' / f'{stem}.png'), f.disparity_gt)
    out = tmp_path / 'm.json'
    assert main(['fit-fusion', '--kitti', str(root), '--kitti-stereo', str(sroot), '--completion', 'scanline',
                 '--steps', '150', '--hold-out-seeds', '2', '-o', str(out)]) == 0
    import json
    doc = json.loads(out.read_text())
    assert doc['provenance']['lidar']['fit_frames'] == ['000003']
    assert doc['provenance']['stereo']['fit_frames'] == ['000003_10']
    assert 'sha1' in doc['provenance']['split_rule'] and '--kitti-stereo' in doc['provenance']['command']
    model = load_model(str(out))
    assert model.sigma_scale == 1.0
    # the simulated rig's fused terms do not travel into a real-data model
    assert (model.stereo_fuse_factor, model.fused_edge, model.fused_scale) == (1.0, 0.0, 1.0)
    assert model.lidar_k > 0 and model.lidar_a == model.lidar_b == model.lidar_c == 0.0   # REAL_LIDAR_FIXED
    # the layer term (learned.fit_lidar_layer) is fitted on top
    assert model.lidar_layer > 0 and np.isfinite([model.lidar_layer_bias, model.lidar_layer_slope]).all()
    samples, _ = __import__('depthmarks_ros.cli.fit_fusion', fromlist=['x']).collect_real_samples(
        str(root), str(sroot), 'scanline', 2)
    for smp in samples:
        if 'lidar' in smp:
            sig = lidar_sigma(smp['lidar'], smp['lidar_dist'], model, resid=smp['lidar_resid'], gap=smp['lidar_gap'],
                              layer=smp['lidar_layer'])
            cal = sigma_calibration(smp['lidar'], sig, smp['gt'])
        else:
            sig = stereo_sigma(smp['stereo'], smp['stereo_conf'], smp['fb'], 1.0, model)
            cal = sigma_calibration(smp['stereo'], sig, smp['gt'])
        assert 0.6 < cal['within_1sigma'] < 0.76, cal                # each source calibrated on its own
