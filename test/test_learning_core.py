"""Uncertainty-aware landmark learning, core: losses against closed forms, gradients, numerical
safety, real learning on a synthetic heteroscedastic task, visibility, checkpoints."""
import numpy as np
import pytest
import torch

from depthmarks_ros.core.learning import data as D
from depthmarks_ros.core.learning.evaluate import evaluate_patches
from depthmarks_ros.core.learning.inference import LandmarkUncertaintyModel
from depthmarks_ros.core.learning.losses import (LOG_2PI, cholesky_factor, covariance_from_params, diagonal_nll,
                                                 full_nll, luvli_loss, spherical_nll)
from depthmarks_ros.core.learning.train import TrainConfig, train_patches

pytestmark = pytest.mark.usefixtures('one_torch_thread')


def test_full_nll_equals_multivariate_normal_up_to_the_constant():
    g = torch.Generator().manual_seed(0)
    mean = torch.randn(50, 2, generator=g, dtype=torch.float64)
    target = torch.randn(50, 2, generator=g, dtype=torch.float64)
    params = torch.randn(50, 3, generator=g, dtype=torch.float64)
    cov = covariance_from_params(params)
    ref = -torch.distributions.MultivariateNormal(mean, covariance_matrix=cov).log_prob(target)
    torch.testing.assert_close(full_nll(mean, params, target) + LOG_2PI, ref, rtol=1e-9, atol=1e-9)
    assert torch.all(torch.diagonal(cholesky_factor(params), dim1=-2, dim2=-1) > 0)


def test_spherical_and_diagonal_match_closed_forms():
    mean, target = torch.tensor([[0.0, 0.0]]), torch.tensor([[3.0, 4.0]])
    log_var = torch.tensor([np.log(4.0)], dtype=torch.float32)
    assert spherical_nll(mean, log_var, target).item() == pytest.approx(np.log(4.0) + 25 / 8)
    lv = torch.log(torch.tensor([[4.0, 9.0]]))
    ref = -torch.distributions.MultivariateNormal(mean, covariance_matrix=torch.diag(torch.tensor([4.0, 9.0]))).log_prob(target)
    assert (diagonal_nll(mean, lv, target) + LOG_2PI).item() == pytest.approx(ref.item(), rel=1e-5)


def test_gradients_and_tiny_sigma_are_safe():
    p = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    m = torch.randn(4, 2, dtype=torch.float64, requires_grad=True)
    y = torch.randn(4, 2, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda m, p: full_nll(m, p, y), (m, p))
    tiny = torch.full((5, 3), -80.0, requires_grad=True)           # softplus -> 0: floor keeps it finite
    loss = full_nll(torch.zeros(5, 2), tiny, torch.zeros(5, 2) + 1e-3).sum()
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(tiny.grad).all()
    lv = torch.full((3,), -50.0, requires_grad=True)
    s = spherical_nll(torch.zeros(3, 2), lv, torch.zeros(3, 2)).sum()
    s.backward()
    assert torch.isfinite(s) and torch.isfinite(lv.grad).all()


def test_luvli_ignores_location_of_invisible_points():
    mean = torch.zeros(2, 2)
    params = torch.zeros(2, 3)
    logit = torch.tensor([5.0, -5.0])
    far = torch.tensor([[100.0, 100.0], [100.0, 100.0]])
    only_first_visible = luvli_loss(mean, params, logit, far, torch.tensor([1.0, 0.0]))
    moved_invisible = luvli_loss(mean, params, logit, torch.tensor([[100.0, 100.0], [-50.0, 7.0]]),
                                 torch.tensor([1.0, 0.0]))
    assert only_first_visible.item() == pytest.approx(moved_invisible.item())


def test_learning_is_real_on_the_synthetic_task():
    cfg = TrainConfig(steps=300, samples=2000, batch=128)
    P, O, _s, V, _ = D.synthetic_patches(cfg.samples, cfg.patch, 0)
    model = train_patches(P, O, V, cfg)
    Pt, Ot, sig, Vt, _ = D.synthetic_patches(1500, cfg.patch, 1)
    res = evaluate_patches(model, Pt, Ot, Vt, sig)
    assert res['spearman_sigma_true_sigma'] > 0.8
    assert abs(res['within_1'] - 0.393) < 0.06 and abs(res['within_2'] - 0.865) < 0.05
    assert res['visibility_occluded_mean'] < 0.3 and res['visibility_visible_mean'] > 0.8
    untrained = evaluate_patches(train_patches(P, O, V, TrainConfig(steps=1)), Pt, Ot, Vt, sig)
    assert untrained['nll'] > res['nll'] + 0.5                     # training is what makes it good


def test_augment_flip_swaps_indices_and_occlusion_hides_points():
    from depthmarks_ros.core.face.ibug68 import FLIP_68
    rng = np.random.default_rng(0)
    img = np.zeros((100, 100, 3), np.uint8)
    pts = np.column_stack([np.linspace(20, 80, 68), np.full(68, 50.0)])
    s = D.LandmarkSample(img, pts, np.ones(68, bool))
    assert sorted(FLIP_68) == list(range(68)) and np.all(FLIP_68[FLIP_68] == np.arange(68))
    seen_hidden = False
    for _ in range(30):
        a = D.augment(s, rng, FLIP_68, occlusion_prob=1.0)
        assert a.points.shape == (68, 2)
        seen_hidden |= (~a.visible).any()
    assert seen_hidden


def test_checkpoint_round_trip_and_prediction_on_a_face(tmp_path):
    from skimage import data
    from depthmarks_ros.core.face.backends import DlibFace68
    from depthmarks_ros.core.learning.model import PatchUncertaintyNet
    m = LandmarkUncertaintyModel(PatchUncertaintyNet(32, 8), {'patch': 32, 'width': 8, 'patch_side_fraction': 0.2})
    m.save(str(tmp_path / 'ck'))
    loaded = LandmarkUncertaintyModel.load(str(tmp_path / 'ck'))
    img = data.astronaut()
    lm = DlibFace68().process(img)[0].landmarks68
    cov, vis = loaded.predict(img, lm)
    cov0, _ = m.predict(img, lm)
    assert cov.shape == (68, 2, 2) and vis.shape == (68,)
    np.testing.assert_allclose(cov, cov0, rtol=1e-5)
    assert np.all(np.linalg.eigvalsh(cov) > 0) and np.all((vis >= 0) & (vis <= 1))
    with pytest.raises(FileNotFoundError, match='config.json'):
        LandmarkUncertaintyModel.load(str(tmp_path / 'missing'))
