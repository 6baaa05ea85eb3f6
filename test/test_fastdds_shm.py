"""Fast DDS's shared-memory segments of killed processes (ros/fastdds_shm.py, test/conftest.py's
session-finish clean-up): a zombie (lock file nobody holds, older than MIN_AGE_S) is removed, a segment
in use never, and a file that is not a regular file is left alone.

The tests on /dev/shm make their zombies in a domain of their own (no watchdog removes them) and hold
live segments of this process (lock files back-dated, so only the lock keeps them). Another test run's
clean-up may remove the zombies meanwhile: they check that the zombies are gone after a clean-up and
that the live segments are still there, not which clean-up removed what."""
import fcntl
import os
import subprocess
import sys
import threading
import time

import pytest

from depthmarks_ros.ros.fastdds_shm import MIN_AGE_S, SHM_DIR, remove_zombie_segments, segments_of
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


def _kept(live):
    """Every segment of ``live`` (this process's, from :func:`live_segments`) is still there and held."""
    return all(map(_exists, live)) and segments_of() == live


def _mapped(name):
    """This process has segment ``name`` mapped (a participant here opened it)."""
    with open('/proc/self/maps') as f:
        return any(line.rstrip().endswith(os.path.join(SHM_DIR, name)) for line in f)


@pytest.fixture
def live_segments(rclpy_context):
    """The segments of a participant alive in this process, their lock files back-dated past
    MIN_AGE_S: only the held lock keeps them through a clean-up."""
    import rclpy
    node = rclpy.create_node('shm_live_%d' % os.getpid())
    try:
        mine = segments_of()
        assert mine and all(map(_exists, mine)), 'this process has no shared-memory segment to keep'
        then = time.time() - 2 * MIN_AGE_S
        for name in mine:
            os.utime(os.path.join(SHM_DIR, name + '_el'), (then, then))
        yield mine
    finally:
        node.destroy_node()


def test_only_segments_whose_lock_nobody_holds_are_removed(tmp_path):
    """The rule itself, on files named as Fast DDS names them (all but one older than MIN_AGE_S): a held
    lock (another open file description holds the flock, as a live participant does) keeps its
    segment; a lock file younger than MIN_AGE_S is left unlocked even when nobody holds it (a creator
    between its open and its flock; here its mtime is an hour ahead, a negative age, so no slow machine
    ages it); ports, semaphores and a segment without its lock file are never touched; a dry run
    removes nothing."""
    old = 2 * MIN_AGE_S
    dead, live, young = 'fastdds_0123456789abcdef', 'fastdds_fedcba9876543210', 'fastdds_00000000000000bb'
    orphan = 'fastdds_00000000000000aa'
    others = ['fastdds_port7411', 'fastdds_port7411_el', 'fastdds_port7411_sl', 'sem.fastdds_port7411_mutex',
              orphan, 'fastdds_0123456789abcdef_sl', 'fastdds_01234_el']
    for name in [dead, dead + '_el', live, live + '_el', young, *others]:
        _touch(tmp_path / name, 8192 if name in (dead, live, young) else 0, age=old)
    _touch(tmp_path / (young + '_el'), 0, age=-3600)   # in the future: young however long the test takes
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


def test_a_fifo_or_symlink_named_like_a_lock_file_is_left_alone(tmp_path):
    """/dev/shm is world-writable: a FIFO named like a lock file (an open of it for reading would wait
    for a writer, hanging every test run's clean-up) and a symlink to another file are no lock files.
    The clean-up returns (a writer is opened only to free it if it hangs), removes neither them nor
    their segments nor the link's target, and counts them neither as zombies nor as in use."""
    fifo, link = 'fastdds_00000000000000f1', 'fastdds_00000000000000f2'
    os.mkfifo(tmp_path / (fifo + '_el'))
    target = tmp_path / 'target'
    _touch(target, 0, age=2 * MIN_AGE_S)
    os.symlink(target, tmp_path / (link + '_el'))
    for name in (fifo, link):
        _touch(tmp_path / name, 8192, age=2 * MIN_AGE_S)
    then = time.time() - 2 * MIN_AGE_S
    for name in (fifo, link):
        os.utime(tmp_path / (name + '_el'), (then, then), follow_symlinks=False)
    got = []
    worker = threading.Thread(target=lambda: got.append(remove_zombie_segments(str(tmp_path))), daemon=True)
    worker.start()
    worker.join(60)
    if worker.is_alive():   # blocked in open(): a writer frees it, then fail
        os.close(os.open(tmp_path / (fifo + '_el'), os.O_WRONLY | os.O_NONBLOCK))
        worker.join(10)
    assert got, 'the clean-up blocked on the FIFO'
    assert got[0].zombies == [] and got[0].in_use == 0 and got[0].too_new == 0
    assert sorted(os.listdir(tmp_path)) == sorted([fifo, fifo + '_el', link, link + '_el', 'target'])


@pytest.mark.dds
def test_a_killed_participants_segments_go_and_a_live_ones_stay(live_segments):
    """A participant alive in this process keeps its segments through the clean-up (its lock is held);
    one killed with SIGKILL (in a domain of its own: this process never opened its segment) has left
    its segments and they are gone after the clean-up."""
    dead = killed_participant_segments()
    assert dead, 'SIGKILL left no segment: nothing to clean up'
    assert not any(map(_mapped, dead)), 'this process opened the dead segment (its watchdog removes it)'
    done = remove_zombie_segments()
    assert not live_segments & set(done.zombies) and _kept(live_segments), 'a live segment was removed'
    assert all(map(_gone, dead)), 'a zombie segment stayed'


@pytest.mark.dds
def test_a_test_run_removes_the_segments_of_the_processes_it_killed(tmp_path, live_segments):
    """test/conftest.py's session-finish hook: a pytest run whose test killed a participant says it
    cleaned up (its summary line), leaves none of the killed one's segments in /dev/shm and keeps the
    live ones of this process."""
    names_file = tmp_path / 'names.txt'
    (tmp_path / 'test_kill.py').write_text(
        'from depthmarks_ros.testing.ros_harness import killed_participant_segments\n'
        'def test_kill():\n'
        f'    open({str(names_file)!r}, "w").write(" ".join(killed_participant_segments()))\n')
    out = _pytest(tmp_path, 'test_kill.py')
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    names = names_file.read_text().split()
    assert names, 'SIGKILL left no segment: nothing to clean up'
    assert '/dev/shm: removed ' in out.stdout, out.stdout[-2000:]
    assert all(map(_gone, names)), out.stdout[-2000:]
    assert _kept(live_segments), 'a live segment was removed'


def test_a_failing_clean_up_does_not_fail_the_test_run(tmp_path):
    """A clean-up that raises is reported in one line; the run's exit status stays its tests' own."""
    (tmp_path / 'test_pass.py').write_text(
        'from depthmarks_ros.ros import fastdds_shm\n'
        'def boom(*a, **k):\n'
        '    raise PermissionError("planted")\n'
        'fastdds_shm.remove_zombie_segments = boom\n'
        'def test_pass():\n'
        '    pass\n')
    out = _pytest(tmp_path, 'test_pass.py')
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert '/dev/shm: clean-up failed (PermissionError: planted)' in out.stdout, out.stdout[-2000:]


def _pytest(folder, test_file):
    """Run pytest with this suite's conftest on ``folder/test_file`` in a child process."""
    return subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', '-p', 'conftest',
                           '--rootdir', str(folder), str(folder / test_file)],
                          capture_output=True, text=True, timeout=180, cwd=str(folder),
                          env=dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(ROOT, 'test'), ROOT])))


@pytest.mark.dds
def test_shm_clean_lists_a_killed_participants_segments_then_removes_them(capsys, live_segments):
    """`depthmarks shm-clean --dry-run` names the zombie segments and keeps them; without it they go and
    the live ones stay. A listed zombie gone after the dry run was removed by it or by another test
    run's clean-up: the check is made again with new zombies, up to 3 times (a dry run that removes
    fails all 3)."""
    from depthmarks_ros.cli.main import main
    for _attempt in range(3):
        dead = killed_participant_segments()
        assert dead, 'SIGKILL left no segment: nothing to clean up'
        assert main(['shm-clean', '--dry-run']) == 0
        listed = capsys.readouterr().out
        assert 'would remove' in listed
        kept = [n for n in dead if n in listed.split() and _exists(n)]
        if kept == dead:
            break
    assert kept == dead, 'the dry run removed a zombie it listed (or another clean-up raced it 3 times)'
    assert main(['shm-clean']) == 0
    assert 'removed' in capsys.readouterr().out and all(map(_gone, dead))
    assert _kept(live_segments), 'a live segment was removed'


def test_a_segment_that_cannot_be_removed_keeps_its_lock_file(tmp_path):
    """The segment goes first; where it cannot be unlinked (here: a folder in its place) its lock file
    stays, so a later clean-up still finds the zombie by it (a segment without one is never taken)."""
    from depthmarks_ros.ros.fastdds_shm import _unlink_all
    segment, lock = tmp_path / 'fastdds_0123456789abcdef', tmp_path / 'fastdds_0123456789abcdef_el'
    segment.mkdir()
    lock.write_text('')
    assert _unlink_all(str(segment), str(lock)) is False
    assert lock.exists()
    segment.rmdir()
    segment.write_text('')
    assert _unlink_all(str(segment), str(lock)) is True and not lock.exists() and not segment.exists()
    assert _unlink_all(str(segment), str(lock)) is True        # already gone: counts as removed
