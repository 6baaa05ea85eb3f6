"""2D keypoint accuracy (ROS-free): PCK and COCO OKS."""
from __future__ import annotations

import numpy as np

from depthmarks_ros.core.body.coco17 import COCO_SIGMAS


def pck(pred: np.ndarray, gt: np.ndarray, labelled: np.ndarray, ref_size: float, alpha: float = 0.2) -> float:
    """Share of labelled keypoints within alpha * ref_size pixels (pred/gt (17, 2))."""
    if not labelled.any():
        return float('nan')
    d = np.linalg.norm(pred[labelled] - gt[labelled], axis=1)
    return float(np.mean(np.nan_to_num(d, nan=np.inf) <= alpha * ref_size))


def oks(pred: np.ndarray, gt: np.ndarray, labelled: np.ndarray, area: float) -> float:
    """COCO object keypoint similarity of one person."""
    if not labelled.any():
        return float('nan')
    d2 = np.sum((pred - gt) ** 2, axis=1)
    e = d2 / (2 * area * (2 * COCO_SIGMAS) ** 2 + np.spacing(1))
    return float(np.mean(np.exp(-np.nan_to_num(e[labelled], nan=np.inf))))


def oks_matrix(dets: list, gts: list, sigmas: np.ndarray = COCO_SIGMAS) -> np.ndarray:
    """OKS of every detection (K, 2) with every ground truth dict ('keypoints' (K, 2), 'labelled' (K,),
    'bbox' xywh, 'area'), as COCO's evaluator computes it: for a ground truth without labelled
    keypoints the distance is to its box grown to 3x (so detections there can be ignored)."""
    out = np.zeros((len(dets), len(gts)))
    var = (2 * sigmas) ** 2
    for j, g in enumerate(gts):
        lab = np.asarray(g['labelled'], bool)
        x, y, w, h = g['bbox']
        for i, d in enumerate(dets):
            d = np.nan_to_num(np.asarray(d, float), nan=-1e6)
            if lab.any():
                dx, dy = d[:, 0] - g['keypoints'][:, 0], d[:, 1] - g['keypoints'][:, 1]
                e = (dx ** 2 + dy ** 2) / var / (g['area'] + np.spacing(1)) / 2
                out[i, j] = float(np.mean(np.exp(-e[lab])))
            else:
                x0, x1, y0, y1 = x - w, x + 2 * w, y - h, y + 2 * h
                dx = np.maximum(0, x0 - d[:, 0]) + np.maximum(0, d[:, 0] - x1)
                dy = np.maximum(0, y0 - d[:, 1]) + np.maximum(0, d[:, 1] - y1)
                e = (dx ** 2 + dy ** 2) / var / (g['area'] + np.spacing(1)) / 2
                out[i, j] = float(np.mean(np.exp(-e)))
    return out


def oks_ap(images: list, max_dets: int = 20) -> dict:
    """COCO keypoint AP (OKS thresholds 0.50:0.05:0.95, 101-point interpolated precision, all areas).

    ``images``: [(detections [(keypoints (K, 2), score)], ground truths [dict as in oks_matrix,
    'ignore' bool: crowd or no labelled keypoint])]. Returns {'AP', 'AP50', 'AP75', 'AR',
    'found' (non-ignored people matched at OKS >= 0.5), 'people'}.
    """
    thresholds = np.linspace(0.5, 0.95, 10)
    scores, tps, n_gt, found = [], [[] for _ in thresholds], 0, 0
    for dets, gts in images:
        dets = sorted(dets, key=lambda d: -d[1])[:max_dets]
        order = sorted(range(len(gts)), key=lambda j: bool(gts[j].get('ignore')))
        gts = [gts[j] for j in order]
        ign = np.array([bool(g.get('ignore')) for g in gts], bool)
        n_gt += int((~ign).sum())
        ious = oks_matrix([d[0] for d in dets], gts) if dets and gts else np.zeros((len(dets), len(gts)))
        keep = np.ones(len(dets), bool)
        per_t = []
        for ti, t in enumerate(thresholds):
            taken = np.zeros(len(gts), bool)
            tp = np.zeros(len(dets), int)      # 1 tp, 0 fp, -1 ignored
            for i in range(len(dets)):
                best, m = t, -1
                for j in range(len(gts)):
                    if taken[j]:
                        continue
                    if m > -1 and not ign[m] and ign[j]:
                        break
                    if ious[i, j] < best:
                        continue
                    best, m = ious[i, j], j
                if m >= 0:
                    taken[m] = True
                    tp[i] = -1 if ign[m] else 1
            per_t.append(tp)
            if ti == 0:
                found += int(taken[~ign].sum())
        for ti, tp in enumerate(per_t):
            tps[ti].extend(tp[keep].tolist())
        scores.extend(d[1] for d in dets)
    order = np.argsort(-np.asarray(scores, float), kind='mergesort')
    rec_pts = np.linspace(0, 1, 101)
    aps, ars = [], []
    for ti in range(len(thresholds)):
        tp = np.asarray(tps[ti], int)[order] if scores else np.zeros(0, int)
        tp = tp[tp >= 0]
        ctp, cfp = np.cumsum(tp == 1), np.cumsum(tp == 0)
        if n_gt == 0:
            aps.append(np.nan), ars.append(np.nan)
            continue
        rec = ctp / n_gt
        prec = ctp / np.maximum(ctp + cfp, np.spacing(1))
        for k in range(len(prec) - 2, -1, -1):
            prec[k] = max(prec[k], prec[k + 1])
        idx = np.searchsorted(rec, rec_pts, side='left')
        q = np.array([prec[i] if i < len(prec) else 0.0 for i in idx])
        aps.append(float(q.mean()))
        ars.append(float(rec[-1]) if len(rec) else 0.0)
    return {'AP': float(np.nanmean(aps)), 'AP50': aps[0], 'AP75': aps[5], 'AR': float(np.nanmean(ars)),
            'found': found, 'people': n_gt}
