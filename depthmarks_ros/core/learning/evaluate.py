"""Evaluation of landmark predictions with uncertainty (ROS-free)."""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np
import torch

from depthmarks_ros.core.learning.calibration import calibration_2d
from depthmarks_ros.core.learning.losses import covariance_from_params, full_nll


def predict_patches(model, patches: np.ndarray, batch: int = 512):
    """(offsets (N, 2), covariances (N, 2, 2), visibility (N,)) for (N, 1, S, S) patches."""
    outs = []
    with torch.no_grad():
        for i in range(0, len(patches), batch):
            mean, chol, vis = model(torch.from_numpy(patches[i:i + batch]))
            outs.append((mean.numpy(), covariance_from_params(chol).numpy(), torch.sigmoid(vis).numpy(),
                         chol.numpy()))
    return (np.concatenate([o[0] for o in outs]), np.concatenate([o[1] for o in outs]),
            np.concatenate([o[2] for o in outs]), np.concatenate([o[3] for o in outs]))


def evaluate_patches(model, patches: np.ndarray, offsets: np.ndarray, visible: np.ndarray,
                     true_sigma: Optional[np.ndarray] = None) -> Dict[str, float]:
    """Mean error (px), NLL, calibration (within 1/2/3 sigma vs 0.393/0.865/0.989), sigma-error
    Spearman, and (when known) the Spearman of predicted vs true sigma; visibility separation."""
    from scipy.stats import spearmanr
    mean, cov, vis, chol = predict_patches(model, patches)
    v = visible.astype(bool)
    err = offsets[v] - mean[v]
    nll = full_nll(torch.from_numpy(mean[v]), torch.from_numpy(chol[v]), torch.from_numpy(offsets[v])).mean().item()
    cal = calibration_2d(err, cov[v])
    out = {'mean_error_px': float(np.linalg.norm(err, axis=1).mean()), 'nll': float(nll), **cal,
           'visibility_visible_mean': float(vis[v].mean()) if v.any() else float('nan'),
           'visibility_occluded_mean': float(vis[~v].mean()) if (~v).any() else float('nan')}
    if true_sigma is not None:
        sigma = np.sqrt(np.trace(cov[v], axis1=1, axis2=2) / 2)
        out['spearman_sigma_true_sigma'] = float(spearmanr(sigma, true_sigma[v]).correlation)
    return out
