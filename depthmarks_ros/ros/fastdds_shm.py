"""Fast DDS's shared-memory segments of dead processes in /dev/shm: find and remove them (ROS-free).

Every Fast DDS participant with a shared-memory transport makes a segment, ``/dev/shm/fastdds_<id>``
(``<id>``: 16 random hex digits; with our profiles a 16 MB one and, under LOCALHOST discovery,
rmw_fastrtps's default 512 KB one), next to its lock file ``fastdds_<id>_el``. The participant takes
an exclusive ``flock`` on the lock file before it creates the segment and keeps it while the segment
lives; closing, it removes the segment, then unlocks and removes the lock file (Fast DDS 3.x,
``SharedMemManager::Segment`` and ``utils/shared_memory/RobustExclusiveLock.hpp``). A process killed
before its participant closed (SIGKILL, ``ros/exit_deadline.py``'s ``_exit``) leaves both files; the
kernel drops its lock. Fast DDS calls that a zombie: a lock file nobody holds locked. A live process
that had opened the dead one's segment removes it (its watchdog checks the lock every 5 s), and
``fastdds shm clean`` removes every zombie; nothing else does, so on a machine whose processes are
killed the segments pile up in the RAM-backed /dev/shm.

:func:`remove_zombie_segments` uses that rule and keeps the lock while it removes the files, so a
segment in use is never removed: its owner holds the lock (our non-blocking ``flock`` fails), and a
participant that draws the same name while we hold it either fails to lock it (and draws another
name) or, locking it after we removed the file, sees the file gone and makes it again
(``RobustExclusiveLock``'s stat check after its ``flock``, Fast DDS >= 3.1.3 / 2.14.5, upstream PR
#5319; the venv has 3.2.3). Older versions lack that check: a clean-up that locks and unlinks the
lock file between a creator's ``open(O_CREAT)`` and its ``flock`` leaves a live participant holding
an unlinked lock file, so a peer's watchdog later takes it for dead and removes its live segment. So
a lock file younger than :data:`MIN_AGE_S` is never touched (nor locked): Fast DDS never writes the
file, so its mtime is its participant's start (a zombie's is older), and the window of any version
is closed. ``fastdds shm clean`` tests the lock, releases it, then removes the files: it is meant for
a machine with no running participants. A segment file without its lock file is left alone (its
owner's state is not knowable). So are the ports (``fastdds_port<N>``, ``_el`` / ``_sl``,
``sem.fastdds_port<N>_mutex``): they are named by port number, so a bounded set, and Fast DDS
resets a zombie port itself when a participant opens that port again.

The counts can be off by the processes caught mid-step: an owner between its unlock and its lock
file's removal is counted as a removed (0-byte) zombie; the files are removed either way.

Clean-ups serialise on :data:`CLEANUP_LOCK` (an exclusive ``flock``, re-entrant within a process,
:func:`cleanup_lock`): a test that makes zombies on purpose holds it from the kill to its last check,
so another test run's clean-up (or ``depthmarks shm-clean``) waits instead of removing them under it.
"""
from __future__ import annotations

import fcntl
import os
import re
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, List, Optional, Set

SHM_DIR = '/dev/shm'
SEGMENT_LOCK = re.compile(r'^fastdds_[0-9a-z]{16}_el$')   # `fastdds shm clean`'s segment pattern
MIN_AGE_S = 10.0   # a lock file younger than this (mtime: its participant's start) is never touched
CLEANUP_LOCK = os.path.join(tempfile.gettempdir(), 'depthmarks_fastdds_shm_cleanup.lock')   # stays, as a domain lock
CLEANUP_WAIT_S = 60.0   # how long a clean-up waits for another process's CLEANUP_LOCK, then skips


@dataclass
class SegmentCleanup:
    """What :func:`remove_zombie_segments` found: the zombie segments' names (removed unless a dry
    run), the bytes their files held, how many segments live processes hold, how many lock files
    were younger than :data:`MIN_AGE_S` (left to be judged later), and whether the clean-up was
    skipped because another process held :data:`CLEANUP_LOCK` throughout the wait."""
    zombies: List[str] = field(default_factory=list)
    freed_bytes: int = 0
    in_use: int = 0
    too_new: int = 0
    skipped: bool = False

    def summary(self, dry_run: bool = False) -> str:
        if self.skipped:
            return f'skipped: another process held {CLEANUP_LOCK} (a test checking its zombie segments)'
        verb = 'would remove' if dry_run else 'removed'
        return (f'{verb} {len(self.zombies)} zombie Fast DDS segment(s) ({self.freed_bytes / 2 ** 20:.1f} MB); '
                f'{self.in_use} in use, {self.too_new} younger than {MIN_AGE_S:g} s')


def _open_cleanup_lock() -> int:
    """A descriptor of CLEANUP_LOCK, made world-writable when this process creates it (users share
    it); read-only where another user made it without write access (flock needs no more)."""
    try:
        fd = os.open(CLEANUP_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except PermissionError:
        return os.open(CLEANUP_LOCK, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fchmod(fd, 0o666)
    except OSError:
        pass
    return fd


_hold_mutex = threading.Lock()
_hold_fd: Optional[int] = None
_hold_depth = 0


@contextmanager
def cleanup_lock(wait_s: float = CLEANUP_WAIT_S) -> Iterator[bool]:
    """Hold :data:`CLEANUP_LOCK` (exclusive ``flock``; re-entrant within this process): yields True,
    or False when another process held it for ``wait_s`` (then nothing is held)."""
    global _hold_fd, _hold_depth
    with _hold_mutex:
        if _hold_fd is None:
            fd = _open_cleanup_lock()
            deadline = time.monotonic() + wait_s
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        os.close(fd)
                        fd = None
                        break
                    time.sleep(0.1)
            if fd is None:
                held = False
            else:
                _hold_fd, held = fd, True
        else:
            held = True
        if held:
            _hold_depth += 1
    try:
        yield held
    finally:
        if held:
            with _hold_mutex:
                _hold_depth -= 1
                if _hold_depth == 0:
                    os.close(_hold_fd)   # releases the flock
                    _hold_fd = None


def segments_of(pid='self', shm_dir: str = SHM_DIR) -> Set[str]:
    """The names of the segments process ``pid``'s participants hold (their lock files are open there)."""
    names = set()
    fd_dir = f'/proc/{pid}/fd'
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue
        if os.path.dirname(target) == shm_dir and SEGMENT_LOCK.match(os.path.basename(target)):
            names.add(os.path.basename(target)[:-len('_el')])
    return names


_IN_USE, _TOO_NEW = 'in use', 'too new'


def _lock_if_free(path: str):
    """A descriptor of ``path`` holding its exclusive flock, or why not: ``_TOO_NEW`` when its mtime is
    younger than :data:`MIN_AGE_S` (checked before locking: a creator between its open and its flock
    is never locked out), ``_IN_USE`` when a process holds the lock (or the file is gone or was
    replaced). Never creates the file."""
    try:
        before = os.lstat(path)
    except OSError:
        return _IN_USE
    if time.time() - before.st_mtime < MIN_AGE_S:   # a clock set back makes it negative: left too
        return _TOO_NEW
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return _IN_USE
    try:
        here = os.fstat(fd)
        if (here.st_dev, here.st_ino) != (before.st_dev, before.st_ino):   # replaced since the age check
            raise FileNotFoundError(path)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)   # flock, as Fast DDS: a POSIX lockf never conflicts with it
        st = os.stat(path, follow_symlinks=False)
        if (st.st_dev, st.st_ino) != (here.st_dev, here.st_ino):   # replaced meanwhile: not the file we locked
            raise FileNotFoundError(path)
    except OSError:
        os.close(fd)
        return _IN_USE
    return fd


def _unlink_all(*paths: str) -> bool:
    """Unlink each of ``paths`` (one already gone counts as removed); False if one could not be."""
    ok = True
    for path in paths:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError:
            ok = False
    return ok


def remove_zombie_segments(shm_dir: str = SHM_DIR, dry_run: bool = False,
                           wait_s: float = CLEANUP_WAIT_S) -> SegmentCleanup:
    """Remove the Fast DDS segments in ``shm_dir`` whose lock file no live process holds and is older
    than :data:`MIN_AGE_S` (see the module's text); with ``dry_run`` only list them. Holds
    :func:`cleanup_lock` throughout (a dry run too, so it lists what a clean-up would remove), waiting
    up to ``wait_s`` for another process's; skipped when it stays held. Files it cannot remove are
    left, silently."""
    out = SegmentCleanup()
    with cleanup_lock(wait_s) as held:
        if not held:
            out.skipped = True
            return out
        try:
            names = sorted(os.listdir(shm_dir))
        except OSError:
            return out
        for lock_name in filter(SEGMENT_LOCK.match, names):
            lock_path = os.path.join(shm_dir, lock_name)
            fd = _lock_if_free(lock_path)
            if fd is _TOO_NEW:
                out.too_new += 1
                continue
            if fd is _IN_USE:
                out.in_use += 1
                continue
            try:
                segment = lock_path[:-len('_el')]
                try:
                    size = os.stat(segment, follow_symlinks=False).st_blocks * 512   # RAM it holds
                except OSError:
                    size = 0
                if not dry_run and not _unlink_all(segment, lock_path):   # the segment first, as its owner does
                    continue
                out.zombies.append(lock_name[:-len('_el')])
                out.freed_bytes += size
            finally:
                os.close(fd)
    return out
