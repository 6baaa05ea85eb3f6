"""Time synchronisation policies and latest-only work (ROS-free)."""
import threading
import time

import numpy as np
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


def test_future_stamps_do_not_make_the_sync_deaf():
    """Issue 17.1: six messages stamped an hour ahead on one input, then correct input."""
    out, events = [], []
    s = ExactTimeSync(2, 5, lambda a, b: out.append((a, b)), on_event=events.append, names=['left', 'right'])
    hour = 3600 * 1000 * MS
    for i in range(6):
        s.add(1, hour + i * MS, f'R_future{i}')
    for t in (100, 200, 300):
        s.add(0, t * MS, f'L{t}')
        s.add(1, t * MS, f'R{t}')
    assert out == [('L100', 'R100'), ('L200', 'R200'), ('L300', 'R300')]
    assert s.jumps == 1 and len(events) == 1 and 'right jumped back by 3599.905 s' in events[0]
    assert '5 queued message(s) discarded' in events[0]
    assert s.pending() == 0


def test_approximate_sync_recovers_from_a_looping_bag_and_reset():
    out = []
    s = ApproximateTimeSync(2, 5, slop=0.01, callback=lambda *m: out.append(m))
    for t in (1000, 1100, 1200):
        s.add(0, t * MS, f'L{t}')
        s.add(1, t * MS + 2 * MS, f'R{t}')
    s.add(0, 1300 * MS, 'L1300')          # the bag loops: both inputs start again at 0
    for t in (0, 100):
        s.add(0, t * MS, f'L{t}')
        s.add(1, t * MS + 2 * MS, f'R{t}')
    assert out[-2:] == [('L0', 'R0'), ('L100', 'R100')] and s.jumps == 2
    s.add(0, 150 * MS, 'L150')
    s.reset('clock jumped')
    assert s.pending() == 0 and s.newest == [None, None]
    s.add(0, 5 * MS, 'L5')                # after a reset nothing is a jump
    assert s.jumps == 2


def test_small_reordering_is_not_a_jump():
    s = ExactTimeSync(2, 5, jump_tolerance=1.0)
    s.add(0, 500 * MS, 'a')
    s.add(0, 200 * MS, 'b')               # 0.3 s out of order: kept, sorted
    assert s.jumps == 0 and [t for t, _ in s.queues[0]] == [200 * MS, 500 * MS]


def test_input_health_reports_each_starvation_with_its_reason():
    from depthmarks_ros.core.sync import ERROR, OK, WARN, InputHealth
    h = InputHealth(['image', 'info'], after=2.0, now=0.0, describe_sync='exact stamps')
    assert h.status(1.0) == (OK, '')                                     # grace period
    level, reason = h.status(2.5)
    assert level == WARN and reason.startswith('no input: nothing received on image, info')
    for t in np.arange(2.5, 6.0, 0.1):                                    # info never sent
        h.seen(0, t)
    level, reason = h.status(6.0)
    assert level == ERROR and 'info: nothing received in 6.0 s' in reason
    for t in np.arange(6.0, 9.0, 0.1):                                    # info 1 ms off: never pairs
        h.seen(0, t)
        h.seen(1, t)
    level, reason = h.status(9.0, offsets=[0.0, 0.001])
    assert level == ERROR and 'never synchronise (exact stamps)' in reason and 'info +1.0 ms' in reason
    for t in np.arange(9.0, 10.0, 0.1):                                   # recovered
        h.seen(0, t)
        h.seen(1, t)
        h.paired(t)
    assert h.status(10.0) == (OK, '')
    for t in np.arange(10.0, 13.0, 0.1):                                  # info stops
        h.seen(0, t)
    level, reason = h.status(13.0)
    assert level == ERROR and 'info: no message for 3.1 s, was 10.0 Hz' in reason
    h2 = InputHealth(['image'], after=2.0, now=0.0)
    for t in np.arange(0, 3, 0.1):
        h2.seen(0, t)
        h2.paired(t)
    h2.note('stamps of image jumped back by 5.000 s', 2.9)
    assert h2.status(3.0) == (WARN, 'stamps of image jumped back by 5.000 s')   # recovered: WARN, for a while
    for t in np.arange(3.0, 5.5, 0.1):
        h2.seen(0, t)
        h2.paired(t)
    assert h2.status(5.5) == (OK, '')
