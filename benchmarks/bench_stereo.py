#!/usr/bin/env python3
"""Stereo: ours vs stereo_image_proc's matcher, speed and accuracy, side by side in one run.

Peer: a plain single-threaded ``cv2.StereoSGBM`` with stereo_image_proc's default parameters
(SGBM, window 15, P1 200, P2 400, uniqueness 15, speckle 100/4), 128 disparities.
Ours: the stereo_depth core (SGBM_3WAY, window 5, both cores), plain / + LR check / + WLS.
Backends: `opencv`, `coarse_to_fine`, `coarse_to_fine_sgm` and `coarse_to_fine_census` (and SGBM_3WAY on
the left-padded pair) against plain OpenCV SGBM_3WAY with the same parameters at 640x480 / 128 and KITTI
size / 80, 128, 160 disparities (ratio = ours / SGBM_3WAY in the same run, frames interleaved; wall and CPU
time), and bad-2 with holes filled on KITTI 2012 (fit and report split) and the Middlebury samples.
Node level: the stereo_depth node as its own process over DDS, frames sent one after the other;
end to end = stamp to the disparity message's arrival; node overhead = (synchronised set in the
node -> its 4 outputs published) - matcher time, as the node measures it.
Accuracy: EPE, bad-1, bad-2, density on the simulated rig, skimage's Middlebury motorcycle and
the Middlebury samples in --data (Cloth3 half size: disparity = png / 2; Cones2003 quarter
size: png / 4; 0 = unknown).
"""
import argparse
import os
import sys
import time

import cv2
import numpy as np

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), '..'))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from timing import median_ms  # noqa: E402
from depthmarks_ros.core.sim import SimConfig, SimRig  # noqa: E402
from depthmarks_ros.core.split import is_report  # noqa: E402
from depthmarks_ros.core.stereo import StereoMatcher, StereoParams  # noqa: E402
from depthmarks_ros.core.stereo.matching import match_padded  # noqa: E402
from depthmarks_ros.core.stereo.metrics import disparity_metrics, sparsify_to_density  # noqa: E402
from depthmarks_ros.core.stereo.params import create_opencv_matcher, stereo_image_proc_defaults  # noqa: E402


def peer_params(disparity_range):
    return stereo_image_proc_defaults().replace(disparity_range=disparity_range)


def peer_compute(matcher, left, right, min_disp=0):
    raw = matcher.compute(left, right)
    d = raw.astype(np.float32) / 16
    d[raw < min_disp * 16] = np.nan
    return d




def speed(args):
    print('\n== speed (ms per frame, median; fps in brackets) ==')
    print(f'{"size":10s} {"peer SGBM 1 thread":>20s} {"ours core":>14s} {"ours SGBM strips":>17s} {"ours +WLS":>14s}')
    for w, h in ((640, 480), (1280, 720)):
        f = SimRig(SimConfig(width=w, height=h)).render(0.0)
        L, R = (cv2.cvtColor(x, cv2.COLOR_RGB2GRAY) for x in (f.left_rgb, f.right_rgb))
        n_threads = cv2.getNumThreads()
        cv2.setNumThreads(1)  # stereo_image_proc's SGBM runs on one core
        peer = create_opencv_matcher(peer_params(128))
        t_peer = median_ms(lambda: peer.compute(L, R), args.repeat)
        cv2.setNumThreads(n_threads)
        ours = StereoMatcher(StereoParams(disparity_range=128))
        t_ours = median_ms(lambda: ours.compute(L, R), args.repeat)
        # the peer's own parameters (SGBM, window 15), matched in 2 parallel strips
        strips = StereoMatcher(peer_params(128).replace(strips=2))
        t_strips = median_ms(lambda: strips.compute(L, R), args.repeat)
        wls = StereoMatcher(StereoParams(disparity_range=128, wls_filter=True))
        t_wls = median_ms(lambda: wls.compute(L, R), args.repeat)
        print(f'{w}x{h:<5d} {t_peer:12.1f} ({1e3 / t_peer:4.1f}) {t_ours:7.1f} ({1e3 / t_ours:4.1f}) '
              f'{t_strips:10.1f} ({1e3 / t_strips:4.1f}) {t_wls:7.1f} ({1e3 / t_wls:4.1f})')


def _kitti(data):
    """KITTI Stereo 2012 frames in --data: (stem, left, right, disparity truth) each."""
    folder = os.path.join(data, 'stereo', 'kitti2012')
    if not os.path.isdir(folder):
        return []
    out = []
    for fn in sorted(os.listdir(os.path.join(folder, 'disp_noc'))):
        g = cv2.imread(os.path.join(folder, 'disp_noc', fn), cv2.IMREAD_UNCHANGED).astype(np.float32) / 256.0
        g[g == 0] = np.nan
        out.append((os.path.splitext(fn)[0], cv2.imread(os.path.join(folder, 'image_0', fn), cv2.IMREAD_GRAYSCALE),
                    cv2.imread(os.path.join(folder, 'image_1', fn), cv2.IMREAD_GRAYSCALE), g))
    return out


report_split = is_report   # docs/real-data.md's rule (core/split.py): the report split is never tuned on


def backends(args):
    """Backends against plain OpenCV SGBM_3WAY (same parameters, OpenCV's own 2 threads), interleaved
    frame by frame so that load changes hit all alike; then bad-2 with holes filled."""
    from depthmarks_ros.core.stereo.backend import create_backend
    from depthmarks_ros.core.stereo.metrics import bad_filled
    kitti = _kitti(args.data)
    sim = SimRig(SimConfig(width=640, height=480)).render(0.0)
    sim_pair = tuple(cv2.cvtColor(x, cv2.COLOR_RGB2GRAY) for x in (sim.left_rgb, sim.right_rgb))
    names = ['opencv', 'coarse_to_fine', 'coarse_to_fine_sgm', 'coarse_to_fine_census']
    print('\n== backends vs plain OpenCV SGBM_3WAY (window 5, P1 200, P2 800, uniqueness 10, speckle 100/2), '
          'ms per frame (median, frames interleaved; ratio = ours / SGBM_3WAY) ==')
    print('(SGBM_3WAY padded: the same matcher on the pair padded on the left by its range, cropped back: '
          'the first columns get a disparity)')
    print(f'load average before: {" ".join(f"{x:.2f}" for x in os.getloadavg())}; OpenCV threads {cv2.getNumThreads()}')
    cases = [('640x480 sim', sim_pair, 128)]
    if kitti:
        k = kitti[1]
        cases += [(f'KITTI {k[1].shape[1]}x{k[1].shape[0]}', (k[1], k[2]), n) for n in (80, 128, 160)]
    cols = ['SGBM_3WAY padded'] + names
    head = f'{"size":18s} {"disp":>4s} {"SGBM_3WAY":>10s}' + ''.join(f' {n:>22s} {"ratio":>6s}' for n in cols)
    wall_rows, cpu_rows = [], []
    for label, (L, R), ndisp in cases:
        p = StereoParams(disparity_range=ndisp)
        anchor = create_opencv_matcher(p)
        ours = [create_backend(n, p) for n in names]
        fns = ([lambda: anchor.compute(L, R), lambda: padded_compute(anchor, L, R, ndisp)]
               + [(lambda b: lambda: b.compute(L, R, confidence=False))(b) for b in ours])
        for fn in fns:
            fn()
        times = [[] for _ in fns]
        cpus = [[] for _ in fns]
        for _ in range(args.repeat):
            for i, fn in enumerate(fns):
                c0, t0 = time.process_time(), time.perf_counter()
                fn()
                times[i].append(time.perf_counter() - t0)
                cpus[i].append(time.process_time() - c0)
        for rows, values in ((wall_rows, times), (cpu_rows, cpus)):
            med = [float(np.median(t)) * 1e3 for t in values]
            rows.append(f'{label:18s} {ndisp:4d} {med[0]:10.1f}' + ''.join(f' {m:22.1f} {m / med[0]:6.2f}'
                                                                         for m in med[1:]))
        for b in ours:
            b.close()
    print(head)
    print('\n'.join(wall_rows))
    print('CPU time per frame (process time, all threads; less sensitive to other jobs than the wall time):')
    print(head)
    print('\n'.join(cpu_rows))
    print(f'load average after: {" ".join(f"{x:.2f}" for x in os.getloadavg())}')
    print('\n== bad-2 with holes filled (% of ground-truth pixels off by > 2 px after KITTI\'s row-wise hole '
          'filling; lower is better) ==')
    print('(KITTI: 128 disparities; report split = sha1(stem) % 5 == 0, never used to choose the coarse_to_fine '
          'backends\' settings; fit split = the rest)')
    sets = []
    if kitti:
        sets.append(('KITTI 2012 fit split', [(L, R, g, 128) for s_, L, R, g in kitti if not report_split(s_)]))
        sets.append(('KITTI 2012 report split', [(L, R, g, 128) for s_, L, R, g in kitti if report_split(s_)]))
    for name, L, R, g, rng in _middlebury(args.data):
        sets.append((name, [(L, R, g, rng)]))
    print(f'{"set":26s} {"frames":>6s} {"SGBM_3WAY":>10s}' + ''.join(f' {n:>22s}' for n in cols))
    for name, frames in sets:
        scores = [[] for _ in range(len(cols) + 1)]
        for L, R, g, rng in frames:
            p = StereoParams(disparity_range=rng)
            anchor = create_opencv_matcher(p)
            scores[0].append(bad_filled(raw_to_disparity(anchor.compute(L, R)), g))
            scores[1].append(bad_filled(padded_compute(anchor, L, R, rng), g))
            for i, n in enumerate(names):
                b = create_backend(n, p)
                scores[i + 2].append(bad_filled(b.compute(L, R, confidence=False)[0], g))
                b.close()
        print(f'{name:26s} {len(frames):6d}' + ''.join(f' {100 * np.mean(c):10.2f}' if i == 0 else
                                                    f' {100 * np.mean(c):22.2f}' for i, c in enumerate(scores)))


def raw_to_disparity(raw):
    """OpenCV's fixed-point disparity (min disparity 0) -> float px, NaN invalid."""
    d = raw.astype(np.float32) / 16
    d[raw < 0] = np.nan
    return d


def padded_compute(matcher, left, right, pad):
    """``matcher`` on the pair padded on the left by ``pad`` columns (replicated), cropped back."""
    return raw_to_disparity(match_padded(matcher.compute, left, right, pad))


def _middlebury(data):
    """(name, left grey, right grey, truth, disparity range) of skimage's motorcycle and --data's samples."""
    from skimage import data as skdata
    l, r, d = skdata.stereo_motorcycle()
    out = [('motorcycle (skimage)', cv2.cvtColor(l, cv2.COLOR_RGB2GRAY), cv2.cvtColor(r, cv2.COLOR_RGB2GRAY),
            np.where(np.isfinite(d), d, np.nan).astype(np.float32), 64)]
    for name, lf, rf, gf, scale, rng in (('Middlebury Cloth3', 'view1.png', 'view5.png', 'disp1.png', 2.0, 96),
                                        ('Middlebury Cones2003', 'im2.png', 'im6.png', 'disp2.png', 4.0, 64)):
        folder = os.path.join(data, 'stereo', name.split()[-1])
        if os.path.isdir(folder):
            g = cv2.imread(os.path.join(folder, gf), cv2.IMREAD_UNCHANGED).astype(np.float32) / scale
            g[g == 0] = np.nan
            out.append((name, cv2.imread(os.path.join(folder, lf), cv2.IMREAD_GRAYSCALE),
                        cv2.imread(os.path.join(folder, rf), cv2.IMREAD_GRAYSCALE), g, rng))
    return out


def _send_pair(probe, pubs, msgs):
    stamp = probe.node.get_clock().now().to_msg()
    for m, p in zip(msgs, pubs):
        m.header.stamp = stamp
        p.publish(m)


def node_level(args):
    """The node as its own process (as deployed) over real DDS: throughput, latency, overhead."""
    from depthmarks_ros.testing.ros_harness import RosProbe, configure_ros_env
    configure_ros_env()
    import rclpy
    rclpy.init()
    probe = RosProbe('bench')
    print('\n== node level, 640x480, 128 disparities, node in its own process over DDS ==')
    print('(node overhead = synchronised set in -> outputs published, minus the matcher: medians from the '
          'node\'s /diagnostics)')
    for all_outputs in (False, True):
        _node_run(args, probe, all_outputs)
    probe.close()
    rclpy.try_shutdown()


def _node_run(args, probe, all_outputs):
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image
    from stereo_msgs.msg import DisparityImage
    from depthmarks_ros.convert.camera_info import info_from_camera
    from depthmarks_ros.convert.image import numpy_to_image
    from depthmarks_ros.convert.stamps import stamp_ns
    from depthmarks_ros.testing.ros_harness import NodeProcess
    sim = SimRig(SimConfig())
    f = sim.render(0.0)
    pubs = [probe.publisher(t, n) for t, n in ((Image, 'stereo/left/image_raw'), (CameraInfo, 'stereo/left/camera_info'),
                                               (Image, 'stereo/right/image_raw'), (CameraInfo, 'stereo/right/camera_info'))]
    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    out = probe.subscribe(DisparityImage, 'stereo/disparity', reliable)
    subs = [probe.node.create_subscription(Image, t, lambda m: None, reliable)
            for t in ('stereo/depth', 'stereo/confidence')] if all_outputs else []
    diag = probe.subscribe(DiagnosticArray, '/diagnostics')
    msgs = [numpy_to_image(f.left_rgb, 'rgb8'), info_from_camera(sim.stereo.left),
            numpy_to_image(f.right_rgb, 'rgb8'), info_from_camera(sim.stereo.right)]
    label = 'disparity, depth, confidence subscribed' if all_outputs else 'disparity subscribed'
    with NodeProcess('stereo_depth', params={'disparity_range': 128}) as proc:
        for p in pubs:
            if not probe.wait_for_subscribers(p, timeout=30):
                print('(node level skipped: the node did not start)\n' + proc.output)
                return
        probe.spin_for(0.5)  # let the node see its subscribers
        lat = []
        t_start = None
        for i in range(args.repeat + 3):
            n0 = len(out)
            _send_pair(probe, pubs, msgs)
            probe.spin_until(lambda: len(out) > n0, 5)
            if i == 2:
                t_start = time.perf_counter()
            if i >= 3 and len(out) > n0:
                lat.append((probe.node.get_clock().now().nanoseconds - stamp_ns(out[-1].header)) * 1e-6)
        one_in_flight = len(lat) / (time.perf_counter() - t_start)
        n_diag = len(diag)  # the node's own timing of these sequential frames (its /diagnostics, 1 Hz)
        probe.spin_until(lambda: len(diag) > n_diag + 1, 5)
        values = {}
        for arr in diag:
            for st in arr.status:
                if 'stereo_depth' in st.name:
                    values = {kv.key: kv.value for kv in st.values}
        # pipelined: inputs at 40 Hz for 3 s, outputs counted (the node drops what it cannot take)
        n0, t0 = len(out), time.perf_counter()
        while time.perf_counter() - t0 < 3.0:
            _send_pair(probe, pubs, msgs)
            probe.spin_for(0.025)
        pipelined = (len(out) - n0) / (time.perf_counter() - t0)
        proc.stop()
    for s in subs:
        probe.node.destroy_subscription(s)
    med = float(np.median(lat)) if lat else float('nan')
    print(f'[{label}] throughput {one_in_flight:.1f} frames/s with one frame in flight, {pipelined:.1f} frames/s '
          f'with inputs at 40 Hz; end to end (stamp -> disparity received, incl. DDS transport) median {med:.1f} ms')
    if 'matcher_ms' in values:
        m, o = float(values['matcher_ms']), float(values['node_overhead_ms'])
        print(f'[{label}] in the node: matcher {m:.1f} ms, node overhead {o:.1f} ms ({100 * o / (m + o):.0f}% of '
              f'the frame time on the worker; of it {float(values["outputs_ms"]):.1f} ms building and publishing '
              f'the outputs); before it, {float(values["worker_wait_ms"]):.1f} ms until the worker thread ran')


def datasets(args):
    sets = []
    sim = SimRig(SimConfig())
    f = sim.render(0.0)
    sets.append(('sim rig 640x480', f.left_rgb, f.right_rgb, f.disparity_gt, 128))
    from skimage import data
    l, r, d = data.stereo_motorcycle()
    sets.append(('motorcycle (skimage)', l, r, np.where(np.isfinite(d), d, np.nan).astype(np.float32), 64))
    for name, lf, rf, gf, scale, rng in (('Middlebury Cloth3', 'view1.png', 'view5.png', 'disp1.png', 2.0, 96),
                                        ('Middlebury Cones2003', 'im2.png', 'im6.png', 'disp2.png', 4.0, 64)):
        folder = os.path.join(args.data, 'stereo', name.split()[-1])
        if not os.path.isdir(folder):
            print(f'(skipping {name}: {folder} not found)')
            continue
        g = cv2.imread(os.path.join(folder, gf), cv2.IMREAD_UNCHANGED).astype(np.float32) / scale
        g[g == 0] = np.nan
        sets.append((name, cv2.imread(os.path.join(folder, lf))[..., ::-1], cv2.imread(os.path.join(folder, rf))[..., ::-1], g, rng))
    print('\n== accuracy (bad-N = fraction of output pixels off by > N px; density = share of GT pixels with output) ==')
    print('(@peer dens.: our least confident pixels dropped down to the peer\'s density, where ours is denser)')
    print(f'{"dataset":22s} {"method":22s} {"EPE":>6s} {"bad1":>6s} {"bad2":>6s} {"density":>8s}')
    for name, l, r, gt, rng in sets:
        L = cv2.cvtColor(np.ascontiguousarray(l), cv2.COLOR_RGB2GRAY)
        R = cv2.cvtColor(np.ascontiguousarray(r), cv2.COLOR_RGB2GRAY)
        peer = peer_compute(create_opencv_matcher(peer_params(rng)), L, R)
        peer_density = disparity_metrics(peer, gt)['density']
        rows = [('peer (sip defaults)', peer)]
        for label, kw in (('ours', {}), ('ours +LR', {'lr_check': True}), ('ours +WLS', {'wls_filter': True})):
            res = StereoMatcher(StereoParams(disparity_range=rng, **kw)).compute(L, R)
            rows.append((label, res.disparity))
            if disparity_metrics(res.disparity, gt)['density'] > peer_density:
                rows.append((f'{label} @peer dens.', sparsify_to_density(res.disparity, res.confidence, gt,
                                                                        peer_density)))
        for label, disp in rows:
            m = disparity_metrics(disp, gt)
            print(f'{name:22s} {label:22s} {m["epe"]:6.2f} {m["bad1"]:6.3f} {m["bad2"]:6.3f} {m["density"]:8.3f}')


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--data', default=os.path.normpath(os.path.join(ROOT, '..', 'shared', 'data')))
    ap.add_argument('--repeat', type=int, default=15)
    ap.add_argument('--skip-node', action='store_true')
    ap.add_argument('--only', default='', help='comma list of sections: speed, backends, accuracy, node')
    args = ap.parse_args()
    only = set(filter(None, args.only.split(',')))
    print(f'load average: {os.getloadavg()[0]:.2f}; OpenCV threads: {cv2.getNumThreads()}; cores: {os.cpu_count()}')
    if not only or 'speed' in only:
        speed(args)
    if not only or 'backends' in only:
        backends(args)
    if not only or 'accuracy' in only:
        datasets(args)
    if only and 'node' not in only:
        return
    if not args.skip_node:
        node_level(args)


if __name__ == '__main__':
    main()
