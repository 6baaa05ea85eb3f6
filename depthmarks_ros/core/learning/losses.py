"""Negative log-likelihood losses for landmarks with uncertainty (PyTorch, ROS-free).

For a landmark with mean h, covariance Sigma and true position y (all in the same units):
    NLL = 1/2 log|Sigma| + 1/2 (y - h)^T Sigma^-1 (y - h)       (+ log(2 pi), dropped)
* spherical: Sigma = sigma^2 I, parameterised by log sigma^2 -> log sigma^2 + ||y - h||^2 / (2 sigma^2)
* diagonal: Sigma = diag(s_x^2, s_y^2) from two log-variances
* full: Sigma = L L^T, L = [[l11, 0], [l21, l22]] with l11 = softplus(a) + eps, l22 = softplus(c) + eps
  (positive diagonal, so Sigma is positive definite), l21 = b
LUVLi (Kumar et al., CVPR 2020): a Bernoulli likelihood of the visibility v in {0, 1} for every
landmark, plus the location term for visible landmarks only:
    L = sum_i [ BCE(v_hat_i, v_i) + v_i * NLL_i ].
Shapes: means/targets (..., 2); the parameters have matching leading dimensions.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

EPS = 1e-3   # floor of the Cholesky diagonal (in the units of the coordinates)


def spherical_nll(mean: torch.Tensor, log_var: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per landmark: log sigma^2 + ||y - h||^2 / (2 sigma^2) (the 2D NLL minus log 2 pi). log_var (...,)."""
    sq = ((target - mean) ** 2).sum(-1)
    return log_var + 0.5 * sq * torch.exp(-log_var)


def diagonal_nll(mean: torch.Tensor, log_var: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per landmark, log_var (..., 2) for x and y."""
    return 0.5 * (log_var + (target - mean) ** 2 * torch.exp(-log_var)).sum(-1)


def cholesky_factor(params: torch.Tensor) -> torch.Tensor:
    """(..., 3) unconstrained (a, b, c) -> (..., 2, 2) lower-triangular L with positive diagonal."""
    l11 = F.softplus(params[..., 0]) + EPS
    l21 = params[..., 1]
    l22 = F.softplus(params[..., 2]) + EPS
    zero = torch.zeros_like(l11)
    return torch.stack([torch.stack([l11, zero], -1), torch.stack([l21, l22], -1)], -2)


def covariance_from_params(params: torch.Tensor) -> torch.Tensor:
    L = cholesky_factor(params)
    return L @ L.transpose(-1, -2)


def full_nll(mean: torch.Tensor, chol_params: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per landmark NLL with Sigma = L L^T (without the log 2 pi constant)."""
    L = cholesky_factor(chol_params)
    r = (target - mean).unsqueeze(-1)                               # (..., 2, 1)
    z = torch.linalg.solve_triangular(L, r, upper=False).squeeze(-1)  # L z = r
    log_det = 2.0 * (torch.log(L[..., 0, 0]) + torch.log(L[..., 1, 1]))
    return 0.5 * log_det + 0.5 * (z ** 2).sum(-1)


def luvli_loss(mean: torch.Tensor, chol_params: torch.Tensor, vis_logit: torch.Tensor, target: torch.Tensor,
               visible: torch.Tensor) -> torch.Tensor:
    """Mean over landmarks of BCE(visibility) + visible * full NLL. visible (...,) in {0, 1}."""
    vis = visible.to(mean.dtype)
    bce = F.binary_cross_entropy_with_logits(vis_logit, vis, reduction='none')
    nll = full_nll(mean, chol_params, torch.where(vis[..., None] > 0, target, mean.detach()))
    return (bce + vis * nll).mean()


LOG_2PI = math.log(2 * math.pi)


def gaussian_nll_cov(error: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    """Per landmark 2D NLL 1/2 log|Sigma| + 1/2 e^T Sigma^-1 e for a given covariance (..., 2, 2)
    (without the log 2 pi constant); e = target - mean (..., 2)."""
    a, b, d = cov[..., 0, 0], cov[..., 0, 1], cov[..., 1, 1]
    det = a * d - b * b
    ex, ey = error[..., 0], error[..., 1]
    m2 = (d * ex * ex - 2 * b * ex * ey + a * ey * ey) / det
    return 0.5 * torch.log(det) + 0.5 * m2
