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
