"""Calibration of 2D Gaussian predictions (ROS-free; used by core/learning and core/face)."""
from __future__ import annotations

from typing import Dict

import numpy as np


def calibration_2d(errors: np.ndarray, covs: np.ndarray) -> Dict[str, float]:
    """errors (N, 2) px, covs (N, 2, 2): share of Mahalanobis radii within 1, 2, 3 (2D Gaussian:
    0.393, 0.865, 0.989) and the Spearman correlation of sigma (sqrt of mean variance) with |error|."""
    import warnings
    from scipy.stats import spearmanr
    inv = np.linalg.inv(covs)
    m2 = np.einsum('ni,nij,nj->n', errors, inv, errors)
    r = np.sqrt(m2)
    sigma = np.sqrt(np.trace(covs, axis1=1, axis2=2) / 2)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # constant sigma: correlation undefined (NaN)
        rho = spearmanr(sigma, np.linalg.norm(errors, axis=1)).correlation
    return {'within_1': float(np.mean(r <= 1)), 'within_2': float(np.mean(r <= 2)),
            'within_3': float(np.mean(r <= 3)),
            'spearman_sigma_error': float(rho)}
