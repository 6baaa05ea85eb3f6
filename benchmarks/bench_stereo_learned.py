#!/usr/bin/env python3
"""Learned stereo vs the classical matchers, one run, on real frames never trained on.

Frames: KITTI Stereo 2012 report split (rule: int(sha1(stem)) % 5 == 0; the network trained on the
other KITTI frames and on simulated ones) and every Middlebury frame (Cloth3, Cones2003,
skimage's motorcycle: none trained on). Methods, all with the same disparity range per frame:
stereo_image_proc's BM and SGBM defaults, OpenCV SGBM_3WAY with stereo_image_proc's parameters,
our default matcher (StereoParams()), the same on the pair padded on the left as the v2 refinement
network's input is (the classical share of its gain), and the learned backend (--model, default:
the refinement network shipped in the package, refining our default matcher).

Accuracy: bad-2 with holes filled (every method's holes filled by KITTI's rule, scored on every
ground-truth pixel), EPE (filled), density (before filling) and bad-2 over the pixels output;
pooled over the pixels of all frames of a set. Confidence: sparsification (drop the least
confident pixels, mean absolute error of the rest, 20 steps from 0 to 95 % dropped): area under
the curve for the hand-made confidence of our matcher (on its own pixels), for the learned sigma
(on the learned disparity), for the hand-made confidence ranking the learned disparity, and for
each the optimum (pixels ordered by their true error); sigma coverage = share of errors within
1 sigma (target 63-73 %), with depth_fusion's sigma model of the hand-made confidence as anchor.
Speed: ms per frame (median, methods interleaved) on a 640x480 simulated frame and on the KITTI
frames, with the load average printed.
"""
import argparse
import os
import sys
import time

import cv2
import numpy as np

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), '..'))
sys.path.insert(0, ROOT)

from depthmarks_ros.core.stereo import StereoMatcher, StereoParams  # noqa: E402
from depthmarks_ros.core.stereo.datasets import SPLIT_RULE, kitti2012_frames, middlebury_frames  # noqa: E402
from depthmarks_ros.core.stereo.fill import fill_holes_rows  # noqa: E402
from depthmarks_ros.core.stereo.learned import LearnedStereo, shipped_model_path  # noqa: E402
from depthmarks_ros.core.stereo.params import create_opencv_matcher, stereo_image_proc_defaults  # noqa: E402
from depthmarks_ros.core.stereo.refine_net import RefineFeaturesV2  # noqa: E402

STEPS = np.arange(0.0, 1.0, 0.05)


class Plain:
    """An OpenCV matcher as stereo_image_proc runs it (one matcher, no strips)."""

    def __init__(self, params):
        self.params = params
        self.m = create_opencv_matcher(params)

    def compute(self, left, right, confidence=True):
        raw = self.m.compute(left, right)
        d = raw.astype(np.float32) / 16.0
        d[raw < self.params.min_disparity * 16] = np.nan
        return type('R', (), {'disparity': d, 'confidence': None, 'sigma': None})()

    def close(self):
        pass


class LeftPadded:
    """Our default matcher on the pair padded on the left as the v2 refinement network's input is
    (refine_net.RefineFeaturesV2.classical_disparity): the share of the learned gain that is classical."""

    def __init__(self, params):
        self.m = StereoMatcher(params)
        self.f = RefineFeaturesV2()

    def compute(self, left, right, confidence=True):
        d = self.f.classical_disparity(self.m, left, right)
        return type('R', (), {'disparity': d, 'confidence': None, 'sigma': None})()

    def close(self):
        self.m.close()


def methods(model, rng):
    sip = stereo_image_proc_defaults().replace(disparity_range=rng)
    return [
        ('sip BM defaults', Plain(sip.replace(stereo_algorithm=0))),
        ('sip SGBM defaults', Plain(sip)),
        ('OpenCV SGBM_3WAY (sip params)', Plain(sip.replace(stereo_algorithm=2))),
        ('ours default', StereoMatcher(StereoParams(disparity_range=rng))),
        ('ours default, left-padded', LeftPadded(StereoParams(disparity_range=rng))),
        ('learned', LearnedStereo(model, device='cpu', classical=StereoParams(disparity_range=rng))),
    ]


def sparsification_auc(err, conf):
    """Area under mean-|error|-of-the-kept-pixels vs fraction dropped (least confident first)."""
    order = np.argsort(-conf, kind='stable')
    e = err[order]
    csum = np.cumsum(e)
    n = e.size
    vals = [csum[max(int(round(n * (1 - f))), 1) - 1] / max(int(round(n * (1 - f))), 1) for f in STEPS]
    return float(np.mean(vals))


def grey(img):
    return img if img.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY)


def evaluate(sets, model):
    print('\n== accuracy on held-out frames (pooled over the pixels of each set) ==')
    print(f'split rule: {SPLIT_RULE}; KITTI: report split only; Middlebury: never trained on')
    print(f'{"set":34s} {"method":30s} {"bad2 filled":>11s} {"EPE filled":>10s} {"density":>8s} {"bad2 out":>9s}')
    summary = {}
    for set_name, frames in sets:
        acc = {}
        conf_rows = {k: [] for k in ('hand', 'hand_opt', 'learned', 'learned_opt', 'hand_on_learned')}
        cover = {'learned': [], 'fusion model of hand-made': []}
        for fr in frames:
            L, R = grey(fr.left), grey(fr.right)
            ok = np.isfinite(fr.gt) & (fr.gt > 0)
            gt = fr.gt[ok]
            for name, m in methods(model, fr.disparity_range):
                r = m.compute(L, R)
                d = r.disparity
                filled = fill_holes_rows(d)[ok]
                out = np.isfinite(d[ok]) & (d[ok] > 0)
                e_f = np.abs(filled - gt)
                e_o = np.abs(d[ok][out] - gt[out])
                a = acc.setdefault(name, np.zeros(5))
                a += [(e_f > 2).sum(), e_f.sum(), out.sum(), ok.sum(), (e_o > 2).sum()]
                if name == 'ours default':
                    c = r.confidence[ok][out]
                    conf_rows['hand'].append((e_o, c))
                    from depthmarks_ros.core.fusion.uncertainty import SigmaModel
                    fm = SigmaModel()
                    sd = fm.stereo_sigma_d / np.maximum(c, fm.stereo_conf_min)
                    cover['fusion model of hand-made'].append(e_o <= sd)
                    hand_full = r.confidence
                if name == 'learned':
                    sig = r.sigma[ok]
                    e_l = np.abs(d[ok] - gt)
                    fin = np.isfinite(e_l) & np.isfinite(sig)
                    conf_rows['learned'].append((e_l[fin], -sig[fin]))
                    cover['learned'].append(e_l[fin] <= sig[fin])
                    # the hand-made confidence (texture x validity of our matcher) ranking the learned output
                    conf_rows['hand_on_learned'].append((e_l[fin], hand_full[ok][fin]))
                m.close()
        for name, (b2, esum, nout, ngt, b2o) in acc.items():
            print(f'{set_name:34s} {name:30s} {b2 / ngt:11.4f} {esum / ngt:10.3f} {nout / ngt:8.3f} '
                  f'{b2o / max(nout, 1):9.4f}')
        base = acc['ours default'][0] / acc['ours default'][3]
        lrn = acc['learned'][0] / acc['learned'][3]
        pad = acc['ours default, left-padded'][0] / acc['ours default, left-padded'][3]
        print(f'{set_name:34s} learned vs ours default: bad-2 filled {100 * (1 - lrn / base):+.1f}% lower '
              f'(target >= 15%); of it, the left-padded matcher alone {100 * (1 - pad / base):+.1f}%')
        res = {}
        for key, label in (('hand', 'hand-made confidence, ours default'), ('learned', 'learned sigma, learned'),
                           ('hand_on_learned', 'hand-made confidence, learned disp')):
            e = np.concatenate([x[0] for x in conf_rows[key]])
            c = np.concatenate([x[1] for x in conf_rows[key]])
            auc, opt, rnd = sparsification_auc(e, c), sparsification_auc(e, -e), float(e.mean())
            res[key] = (auc, opt, rnd)
            print(f'{set_name:34s} sparsification AUC {label:36s} {auc:.4f} (optimum {opt:.4f}, random {rnd:.4f}; '
                  f'gap to optimum {100 * (auc - opt) / opt:.0f}% of it)')
        g_hand = res['hand'][0] - res['hand'][1]
        g_lrn = res['learned'][0] - res['learned'][1]
        g_same = res['hand_on_learned'][0] - res['hand_on_learned'][1]
        print(f'{set_name:34s} relative gap (AUC - opt) / opt: learned {g_lrn / res["learned"][1]:.2f} vs hand-made '
              f'{g_hand / res["hand"][1]:.2f} -> {100 * (1 - (g_lrn / res["learned"][1]) / (g_hand / res["hand"][1])):+.0f}% '
              f'closer; same learned disparity ranked by hand-made: gap {g_same:.4f} vs learned {g_lrn:.4f} -> '
              f'{100 * (1 - g_lrn / g_same):+.0f}% closer (target >= 20%)')
        for key, vals in cover.items():
            v = np.concatenate(vals)
            print(f'{set_name:34s} sigma coverage ({key}): {100 * v.mean():.1f}% of errors within 1 sigma '
                  f'(target 63-73%)')
        summary[set_name] = (base, lrn)
    return summary


def speed(frames, model, repeat):
    print('\n== speed, ms per frame (median over repeats, methods interleaved) ==')
    for label, fr in frames:
        L, R = grey(fr.left), grey(fr.right)
        ms = methods(model, fr.disparity_range)
        times = {n: [] for n, _ in ms}
        cpu = {n: [] for n, _ in ms}
        for i in range(repeat + 1):
            for n, m in ms:
                t0, c0 = time.perf_counter(), time.process_time()
                m.compute(L, R)
                if i:
                    times[n].append((time.perf_counter() - t0) * 1e3)
                    cpu[n].append((time.process_time() - c0) * 1e3)
        med = {n: float(np.median(t)) for n, t in times.items()}
        med_cpu = {n: float(np.median(t)) for n, t in cpu.items()}
        cells = '  '.join(f'{n} {t:.1f} (CPU {med_cpu[n]:.1f})' for n, t in med.items())
        print(f'{label} ({L.shape[1]}x{L.shape[0]}, load {os.getloadavg()[0]:.2f}): wall ms (CPU ms of all '
              f'threads) {cells}')
        print(f'{label}: learned - ours default = {med["learned"] - med["ours default"]:+.1f} ms wall, '
              f'{med_cpu["learned"] - med_cpu["ours default"]:+.1f} ms CPU (target <= 60 ms at 640x480)')
        for _n, m in ms:
            m.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--data', default=os.path.normpath(os.path.join(ROOT, '..', 'shared', 'data')))
    ap.add_argument('--model', default=shipped_model_path())
    ap.add_argument('--repeat', type=int, default=10)
    ap.add_argument('--skip-speed', action='store_true')
    ap.add_argument('--skip-accuracy', action='store_true')
    args = ap.parse_args()
    print(f'load average at start: {tuple(round(x, 2) for x in os.getloadavg())}; model {args.model}')
    kitti = kitti2012_frames(args.data, 'report')
    midd = middlebury_frames(args.data)
    print(f'KITTI 2012 report split: {", ".join(f.name for f in kitti)}; Middlebury: {", ".join(f.name for f in midd)}')
    sets = [('KITTI 2012 report split', kitti)] + [(f.name, [f]) for f in midd] + [('Middlebury, all 3', midd)]
    if not args.skip_accuracy:
        evaluate([s for s in sets if s[1]], args.model)
    if not args.skip_speed:
        from depthmarks_ros.core.sim import SimConfig, SimRig
        from depthmarks_ros.core.stereo.datasets import StereoFrame
        f = SimRig(SimConfig(width=640, height=480, seed=11)).render(0.0)
        sim = StereoFrame('sim', f.left_rgb, f.right_rgb, f.disparity_gt, 128)
        speed([('sim 640x480', sim)] + ([('KITTI ' + kitti[0].name, kitti[0])] if kitti else []), args.model,
              args.repeat)
    print(f'load average at end: {tuple(round(x, 2) for x in os.getloadavg())}')


if __name__ == '__main__':
    main()
