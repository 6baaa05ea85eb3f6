"""Time synchronisation policies and latest-only work (ROS-free)."""
import threading
import time

import pytest

from depthmarks_ros.core.sync import ApproximateTimeSync, ExactTimeSync, make_sync
from depthmarks_ros.ros.stats import ProcessingStats
from depthmarks_ros.ros.worker import LatestWorker

MS = 1_000_000


def test_exact_sync_pairs_equal_stamps_and_drops_older():
    out = []
    s = ExactTimeSync(2, 5, lambda a, b: out.append((a, b)))
    s.add(0, 1 * MS, 'L1')
    s.add(0, 2 * MS, 'L2')
    s.add(1, 2 * MS, 'R2')
    assert out == [('L2', 'R2')]
    assert s.pending() == 0 and s.dropped == 1  # L1 can never match now
    s.add(1, 3 * MS, 'R3')
    assert out == [('L2', 'R2')]


def test_exact_sync_queue_is_bounded():
    s = ExactTimeSync(2, 3)
    for i in range(100):
        s.add(0, i * MS, i)
    assert len(s.queues[0]) == 3 and s.dropped == 97


def test_approximate_sync_respects_slop():
    out = []
    s = ApproximateTimeSync(3, 5, slop=0.01, callback=lambda *m: out.append(m))
    s.add(0, 100 * MS, 'a')
    s.add(1, 104 * MS, 'b')
    s.add(2, 130 * MS, 'c_far')
    assert out == []
    s.add(2, 107 * MS, 'c')
    assert out == [('a', 'b', 'c')]


def test_approximate_sync_prefers_newest_tuple_and_out_of_order():
    out = []
    s = ApproximateTimeSync(2, 10, slop=0.005, callback=lambda *m: out.append(m))
    for t in (10, 20, 30):
        s.add(0, t * MS, f'L{t}')
    s.add(1, 31 * MS, 'R31')
    assert out == [('L30', 'R31')]
    s.add(1, 19 * MS, 'R19')  # older than what was emitted: cannot produce a stale pair
    assert out == [('L30', 'R31')]


def test_make_sync_rejects_unknown_policy():
    with pytest.raises(ValueError, match='unknown sync policy'):
        make_sync('fuzzy', 2, 5)
    assert isinstance(make_sync('approximate', 2, 5, 0.1), ApproximateTimeSync)


def test_latest_worker_drops_old_items_under_load():
    seen = []
    gate = threading.Event()

    def slow(item):
        gate.wait(2)
        seen.append(item)
    w = LatestWorker(slow)
    w.submit(0)
    time.sleep(0.05)
    for i in range(1, 20):
        w.submit(i)
    gate.set()
    assert w.wait_idle(5)
    w.stop()
    assert seen == [0, 19]
    assert w.dropped == 18


def test_latest_worker_survives_errors():
    errors, seen = [], []

    def fn(x):
        if x == 1:
            raise RuntimeError('bad frame')
        seen.append(x)
    w = LatestWorker(fn, on_error=errors.append)
    for x in (1, 2):
        w.submit(x)
        assert w.wait_idle(2)
    w.stop()
    assert seen == [2] and len(errors) == 1


def test_stats_rate_and_latency():
    s = ProcessingStats(window_s=10)
    for _ in range(5):
        s.output(0.010, 0.005)
        time.sleep(0.02)
    snap = s.snapshot()
    assert 20 < snap['rate_hz'] < 60
    assert snap['latency_ms_median'] == pytest.approx(10.0)
    assert snap['frames_out'] == 5
