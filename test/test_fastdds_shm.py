"""Fast DDS's shared-memory segments of killed processes (ros/fastdds_shm.py, test/conftest.py's
session-finish clean-up): a zombie (lock file nobody holds, older than MIN_AGE_S) is removed, a segment
in use never. The tests on /dev/shm hold the clean-up lock from the kill to their last check (another
test run's clean-up waits meanwhile) and their zombies are in a domain of their own (no watchdog)."""
import fcntl
import os
import subprocess
import sys
import time

import pytest

from depthmarks_ros.ros.fastdds_shm import (CLEANUP_LOCK, MIN_AGE_S, SHM_DIR, cleanup_lock,
                                            remove_zombie_segments, segments_of)
from depthmarks_ros.testing.ros_harness import killed_participant_segments

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), '..'))


def _exists(name):
    """Both files of segment ``name`` are in /dev/shm."""
    return os.path.exists(os.path.join(SHM_DIR, name)) and os.path.exists(os.path.join(SHM_DIR, name + '_el'))


def _gone(name):
    return not os.path.exists(os.path.join(SHM_DIR, name)) and not os.path.exists(os.path.join(SHM_DIR, name + '_el'))


def _touch(path, size=0, age=0.0):
    with open(path, 'wb') as f:
        f.write(b'\1' * size)
    then = time.time() - age
    os.utime(path, (then, then))


def _mapped(name):
    """This process has segment ``name`` mapped (a participant here opened it)."""
    with open('/proc/self/maps') as f:
        return any(line.rstrip().endswith(os.path.join(SHM_DIR, name)) for line in f)


def test_only_segments_whose_lock_nobody_holds_are_removed(tmp_path):
    """The rule itself, on files named as Fast DDS names them (all but one older than MIN_AGE_S): a held
    lock (another open file description holds the flock, as a live participant does) keeps its
    segment; a lock file younger than MIN_AGE_S is left unlocked even when nobody holds it (a creator
    between its open and its flock); ports, semaphores and a segment without its lock file are never
    touched; a dry run removes nothing."""
    old = 2 * MIN_AGE_S
    dead, live, young = 'fastdds_0123456789abcdef', 'fastdds_fedcba9876543210', 'fastdds_00000000000000bb'
    orphan = 'fastdds_00000000000000aa'
    others = ['fastdds_port7411', 'fastdds_port7411_el', 'fastdds_port7411_sl', 'sem.fastdds_port7411_mutex',
              orphan, 'fastdds_0123456789abcdef_sl', 'fastdds_01234_el']
    for name in [dead, dead + '_el', live, live + '_el', young, *others]:
        _touch(tmp_path / name, 8192 if name in (dead, live, young) else 0, age=old)
    _touch(tmp_path / (young + '_el'), 0, age=0)
    holder = open(tmp_path / (live + '_el'), 'rb')
    fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        dry = remove_zombie_segments(str(tmp_path), dry_run=True)
        assert dry.zombies == [dead] and dry.in_use == 1 and dry.too_new == 1 and dry.freed_bytes >= 8192
        assert (tmp_path / dead).exists() and (tmp_path / (dead + '_el')).exists()
        done = remove_zombie_segments(str(tmp_path))
        assert done.zombies == [dead] and done.in_use == 1 and done.too_new == 1
        assert sorted(os.listdir(tmp_path)) == sorted([live, live + '_el', young, young + '_el', *others])
        holder_ino = os.fstat(holder.fileno()).st_ino
        assert os.stat(tmp_path / (live + '_el')).st_ino == holder_ino   # its owner's lock file, not a new one
    finally:
        holder.close()
    _touch(tmp_path / (young + '_el'), 0, age=old)   # the same files once older: a zombie like any other
    assert remove_zombie_segments(str(tmp_path)).zombies == [young, live]


def test_a_clean_up_waits_for_the_clean_up_lock_of_another_process_then_skips(tmp_path):
    """While another process (here: another open file description) holds CLEANUP_LOCK, as a test
    checking its zombies does, a clean-up removes nothing and says it skipped; once released, it runs."""
    dead = 'fastdds_0123456789abcdef'
    for name in (dead, dead + '_el'):
        _touch(tmp_path / name, 0, age=2 * MIN_AGE_S)
    other = os.open(CLEANUP_LOCK, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        fcntl.flock(other, fcntl.LOCK_EX)   # blocks only while another run's clean-up runs
        skipped = remove_zombie_segments(str(tmp_path), wait_s=0.2)
        assert skipped.skipped and not skipped.zombies and 'skipped' in skipped.summary()
        assert sorted(os.listdir(tmp_path)) == [dead, dead + '_el']
    finally:
        os.close(other)
    done = remove_zombie_segments(str(tmp_path))
    assert not done.skipped and done.zombies == [dead] and os.listdir(tmp_path) == []


@pytest.mark.dds
def test_a_killed_participants_segments_go_and_a_live_ones_stay(rclpy_context):
    """A participant alive in this process keeps its segments through the clean-up (its lock is held;
    its lock files are back-dated so the age rule does not keep them); one killed with SIGKILL (in a
    domain of its own: this process never opened its segment) has left its segments and they are removed."""
    import rclpy
    node = rclpy.create_node('shm_live_%d' % os.getpid())
    try:
        mine = segments_of()
        assert mine and all(map(_exists, mine)), 'this process has no shared-memory segment to keep'
        then = time.time() - 2 * MIN_AGE_S
        for name in mine:
            os.utime(os.path.join(SHM_DIR, name + '_el'), (then, then))
        with cleanup_lock() as held:
            assert held
            dead = killed_participant_segments()
            assert dead and all(map(_exists, dead)), 'SIGKILL left no segment: nothing to clean up'
            assert not any(map(_mapped, dead)), 'this process opened the dead segment (its watchdog removes it)'
            done = remove_zombie_segments()
            assert set(dead) <= set(done.zombies) and not mine & set(done.zombies)
            assert all(map(_gone, dead)), 'a zombie segment stayed'
        assert all(map(_exists, mine)) and segments_of() == mine, 'a live segment was removed'
    finally:
        node.destroy_node()


@pytest.mark.dds
def test_a_test_run_removes_the_segments_of_the_processes_it_killed(tmp_path):
    """test/conftest.py's session-finish hook: a pytest run whose test killed a participant leaves
    none of its segments in /dev/shm, and says so (its test holds the clean-up lock until the run
    ends, so the run's own hook is what removed them)."""
    names_file = tmp_path / 'names.txt'
    (tmp_path / 'test_kill.py').write_text(
        'import contextlib\n'
        'from depthmarks_ros.ros.fastdds_shm import cleanup_lock\n'
        'from depthmarks_ros.testing.ros_harness import killed_participant_segments\n'
        'HOLD = contextlib.ExitStack()   # held until the process ends: through the session-finish hook\n'
        'def test_kill():\n'
        '    assert HOLD.enter_context(cleanup_lock())\n'
        f'    open({str(names_file)!r}, "w").write(" ".join(killed_participant_segments()))\n')
    out = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', '-p', 'conftest',
                          '--rootdir', str(tmp_path), str(tmp_path / 'test_kill.py')],
                         capture_output=True, text=True, timeout=180, cwd=str(tmp_path),
                         env=dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(ROOT, 'test'), ROOT])))
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    names = names_file.read_text().split()
    assert names and all(map(_gone, names)), out.stdout[-2000:]
    assert 'removed' in out.stdout and 'zombie Fast DDS segment' in out.stdout


@pytest.mark.dds
def test_shm_clean_lists_a_killed_participants_segments_then_removes_them(capsys):
    """`depthmarks shm-clean --dry-run` names the zombie segments and keeps them; without it they go."""
    from depthmarks_ros.cli.main import main
    with cleanup_lock() as held:
        assert held
        dead = killed_participant_segments()
        assert dead and all(map(_exists, dead))
        assert main(['shm-clean', '--dry-run']) == 0
        listed = capsys.readouterr().out
        assert all(n in listed.split() for n in dead) and 'would remove' in listed and all(map(_exists, dead))
        assert main(['shm-clean']) == 0
        assert 'removed' in capsys.readouterr().out and all(map(_gone, dead))
