"""core/sharding: round-robin frame assignment and the stamp-order merge of N instances."""
import random

import pytest
from hypothesis import given, settings, strategies as st

from depthmarks_ros.core.sharding import ShardSelector, StampSequencer

MS = 1_000_000


def test_selector_round_robin_with_jitter():
    """Every frame is taken by exactly one of N instances; consecutive frames alternate."""
    rng = random.Random(3)
    for count in (1, 2, 3):
        sel = [ShardSelector(count, i, 0.1) for i in range(count)]
        owners = []
        for k in range(200):
            stamp = 1_700_000_000 * 10**9 + k * 100 * MS + rng.randint(-40, 40) * MS
            takers = [i for i, s in enumerate(sel) if s.takes(stamp)]
            assert len(takers) == 1
            owners.append(takers[0])
        assert all(owners[k] != owners[k + 1] for k in range(199)) or count == 1
        assert sorted(set(owners)) == list(range(count))


@pytest.mark.parametrize('kwargs', [dict(count=0), dict(count=2, index=2), dict(index=-1, count=1),
                                    dict(count=2, index=0, period_s=0.0)])
def test_selector_refuses_bad_settings(kwargs):
    with pytest.raises(ValueError):
        ShardSelector(**kwargs)


def _simulate(n_sources, durations, jitter, seed, max_wait=0.5, stop_source=None, stop_after=None):
    """N instances, round-robin frames at 10 Hz, each taking durations[i] +- jitter seconds per
    frame (one frame at a time, latest-only). Returns (released stamps, pushed stamps, stats)."""
    rng = random.Random(seed)
    q = StampSequencer(n_sources, max_wait=max_wait)
    busy_until = [0.0] * n_sources
    events = []          # (finish time, source, stamp)
    for k in range(100):
        t = k * 0.1
        s = k % n_sources
        if stop_source == s and t >= stop_after:
            continue
        if busy_until[s] > t:           # still busy: this frame is dropped (latest-only worker)
            continue
        finish = t + durations[s] + rng.uniform(-jitter, jitter)
        busy_until[s] = finish
        events.append((finish, s, k * 100 * MS))
    events.sort()
    released, pushed = [], []
    for finish, s, stamp in events:
        pushed.append(stamp)
        released += [st for st, _ in q.push(s, stamp, stamp, finish)]
    released += [st for st, _ in q.poll(events[-1][0] + 10)]
    return released, pushed, q.stats


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 4), base=st.floats(0.05, 0.35), jitter=st.floats(0.0, 0.15),
       seed=st.integers(0, 10**6))
def test_sequencer_releases_in_stamp_order_and_accounts_for_everything(n, base, jitter, seed):
    released, pushed, stats = _simulate(n, [base] * n, jitter, seed)
    assert released == sorted(released) and len(set(released)) == len(released)
    assert stats.released + stats.dropped_late == len(pushed)
    assert set(released) <= set(pushed)


def test_sequencer_two_instances_lose_nothing_at_steady_cost():
    """Two instances of a 150 ms node at 10 Hz: every frame comes out, in order."""
    released, pushed, stats = _simulate(2, [0.15, 0.15], 0.02, seed=1)
    assert released == pushed == sorted(pushed) and stats.dropped_late == 0
    assert len(released) == 100


def test_sequencer_keeps_going_when_an_instance_stops():
    released, pushed, stats = _simulate(2, [0.15, 0.15], 0.0, seed=2, stop_source=1, stop_after=3.0)
    assert released == sorted(released)
    late = [s for s in released if s > 4 * 10**9]
    assert late and all((s // (100 * MS)) % 2 == 0 for s in late)


def test_sequencer_timeout_bounds_waiting_for_a_source_never_heard():
    q = StampSequencer(2, max_wait=0.3)
    assert q.push(0, 100, 'a', now=0.0) == []
    assert q.poll(0.2) == []
    assert q.poll(0.31) == [(100, 'a')]
    assert q.push(0, 200, 'b', now=0.4) == [(200, 'b')]      # source 1 never heard: no wait


def test_sequencer_refuses_bad_settings():
    with pytest.raises(ValueError):
        StampSequencer(0)
    with pytest.raises(ValueError):
        StampSequencer(2, max_wait=0)
    with pytest.raises(ValueError):
        StampSequencer(2).push(2, 0, None, 0.0)
