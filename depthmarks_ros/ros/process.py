"""Process-wide settings of a node process and of `depthmarks run`, made once at start-up.

:func:`keep_large_buffers`: glibc's malloc hands large blocks (above ``M_MMAP_THRESHOLD``, 128 KB
at first, raised on the fly as large blocks are freed) to ``mmap`` and gives the top of its heaps
back to the kernel once more than ``M_TRIM_THRESHOLD`` is free there. Every 640x480 image a
process receives over DDS passes through several such blocks (Fast DDS puts the fragments together,
rmw takes the sample into a C message, rclpy copies it into an ``array.array``), allocated and
freed in different threads; in a node process the heap top went back to the kernel after nearly
every message, and the next message faulted its pages in again, zero-filled by the kernel:
a subscriber of three 640x480 float32 topics at 10 Hz took ~520,000 minor page faults in 10 s
(~870 per message, about 3.5 MB of fresh pages), 1.3-1.5 s of CPU (1.0-1.1 s in the kernel) and
15-27 ms median delivery latency, against ~3,000 faults, 0.3 s and 3.5-4.3 ms with fixed
thresholds (issue 21, docs/pipeline.md "Multi-process"). Whether a process fell into that pattern
depended on the order of its first allocations (runs of the same command were bimodal), so fixing
the thresholds makes it deterministic. Both are needed: a fixed mmap threshold alone still trimmed
(340,000 faults), a trim threshold alone still mapped every image (540,000).

``DEPTHMARKS_MALLOPT=0`` turns it off; glibc's own ``MALLOC_MMAP_THRESHOLD_`` /
``MALLOC_TRIM_THRESHOLD_`` environment variables, when set, win over it. Elsewhere than glibc
(musl, macOS) it does nothing.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from typing import Dict

ENV = 'DEPTHMARKS_MALLOPT'
M_TRIM_THRESHOLD = -1      # glibc malloc.h
M_MMAP_THRESHOLD = -3
#: blocks up to this size come from the heap (glibc's largest allowed value on 64-bit): a
#: 1920x1080 float32 image is 8.3 MB, a 100k-point cloud of 32-byte points 3.2 MB
MMAP_THRESHOLD = 32 << 20
#: free memory kept at the top of a heap before it goes back to the kernel (a node's working
#: set of a few frames; glibc's per-thread heaps are 64 MB at most, so those are never trimmed)
TRIM_THRESHOLD = 256 << 20
_GLIBC_ENV = {M_MMAP_THRESHOLD: 'MALLOC_MMAP_THRESHOLD_', M_TRIM_THRESHOLD: 'MALLOC_TRIM_THRESHOLD_'}


def keep_large_buffers() -> Dict[str, int]:
    """Fix glibc malloc's mmap and trim thresholds (see the module docstring) for this process.

    Returns ``{option: value}`` of what was set (empty where turned off, already set through
    glibc's environment variables, or not glibc)."""
    if os.environ.get(ENV, '1').strip().lower() in ('0', 'false', 'no', 'off'):
        return {}
    if not sys.platform.startswith('linux'):
        return {}
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return {}
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    done = {}
    for option, value in ((M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, TRIM_THRESHOLD)):
        name = _GLIBC_ENV[option]
        if os.environ.get(name):
            continue
        if mallopt(option, value) == 1:
            done[name.strip('_')] = value
    return done
