"""core/threads.torch_threads: torch's process-wide thread count is set for a block and the
caller's count is back afterwards, also when the block raises."""
import pytest

torch = pytest.importorskip('torch')

from depthmarks_ros.core.threads import torch_threads  # noqa: E402


def test_sets_the_count_for_the_block_and_restores_the_callers():
    before = torch.get_num_threads()
    other = 1 if before != 1 else 2
    with torch_threads(other):
        assert torch.get_num_threads() == other
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError):
        with torch_threads(other):
            raise RuntimeError('fit failed')
    assert torch.get_num_threads() == before
    for unset in (None, 0):
        with torch_threads(unset):
            assert torch.get_num_threads() == before


def test_fits_that_choose_a_thread_count_leave_the_callers():
    """stereo's refinement training (cfg.threads) and the face sigma model (one thread) run on their
    count and give the caller's back (before: train_refine.train left the process on cfg.threads)."""
    import numpy as np
    from depthmarks_ros.core.face.sigma_model import FEATURES, LandmarkSigmaModel
    from depthmarks_ros.core.stereo.refine_net import FEATURES_V1, RefineFeaturesV1
    from depthmarks_ros.core.stereo.train_refine import TrainConfig, TrainSample, train
    before = torch.get_num_threads()
    other = 1 if before != 1 else 2
    rng = np.random.default_rng(0)
    sample = TrainSample('s', rng.random((RefineFeaturesV1.channels, 32, 64)).astype(np.float32),
                         rng.uniform(1, 20, (32, 64)).astype(np.float32), False)
    train([sample], TrainConfig(iterations=2, batch=1, crop=(16, 32), threads=other, features=FEATURES_V1),
          log=lambda *_: None)
    assert torch.get_num_threads() == before
    F = 4
    lm = rng.normal(200, 30, (F, 68, 2))
    LandmarkSigmaModel.fit(rng.normal(0, 1, (F, 68, 2)), lm, rng.random((F, 68, len(FEATURES))),
                           rng.uniform(0, 60, F), steps=2, share_scale=False)
    assert torch.get_num_threads() == before
