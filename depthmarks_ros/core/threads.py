"""Running torch work on a chosen number of threads without changing the process for the caller
(ROS-free).

torch's thread count is process-wide: a fit that sets it and returns leaves every later torch call
(a node's network, another fit) on that count. :func:`torch_threads` sets it for a block and puts
the caller's back, as the fits and the tests use it.
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Optional


@contextlib.contextmanager
def torch_threads(n: Optional[int]) -> Iterator[None]:
    """Run the block with torch on ``n`` intra-op threads (None or < 1: leave it as it is), then
    restore the caller's count."""
    import torch
    before = torch.get_num_threads()
    if n is not None and n >= 1:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)
