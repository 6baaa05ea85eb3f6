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

Only regular files are lock files: anything else under that name (a FIFO, a socket, a symlink:
/dev/shm is world-writable) is ignored, and a lock file is opened non-blocking and without following
links, so a planted file can neither block a clean-up nor point it elsewhere. Clean-ups running at the
same time (two test runs ending) need no coordination: each removes only files whose lock nobody
holds, and a file already gone counts as removed.
"""
from __future__ import annotations

import fcntl
import os
import re
import stat
import time
from dataclasses import dataclass, field
from typing import List, Set

SHM_DIR = '/dev/shm'
SEGMENT_LOCK = re.compile(r'^fastdds_[0-9a-z]{16}_el$')   # `fastdds shm clean`'s segment pattern
MIN_AGE_S = 10.0   # a lock file younger than this (mtime: its participant's start) is never touched


@dataclass
class SegmentCleanup:
    """What :func:`remove_zombie_segments` found: the zombie segments' names (removed unless a dry
    run), the bytes their files held, how many segments live processes hold and how many lock files
    were younger than :data:`MIN_AGE_S` (left to be judged later)."""
    zombies: List[str] = field(default_factory=list)
    freed_bytes: int = 0
    in_use: int = 0
    too_new: int = 0

    def summary(self, dry_run: bool = False) -> str:
        verb = 'would remove' if dry_run else 'removed'
        return (f'{verb} {len(self.zombies)} zombie Fast DDS segment(s) ({self.freed_bytes / 2 ** 20:.1f} MB); '
                f'{self.in_use} in use, {self.too_new} younger than {MIN_AGE_S:g} s')


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


_IN_USE, _TOO_NEW, _NOT_A_FILE = 'in use', 'too new', 'not a file'


def _lock_if_free(path: str):
    """A descriptor of ``path`` holding its exclusive flock, or why not: ``_NOT_A_FILE`` when it is not
    a regular file (a FIFO would block an open, a symlink lead elsewhere), ``_TOO_NEW`` when its mtime
    is younger than :data:`MIN_AGE_S` (checked before locking: a creator between its open and its
    flock is never locked out), ``_IN_USE`` when a process holds the lock (or the file is gone or was
    replaced). Never creates the file, never blocks."""
    try:
        before = os.lstat(path)
    except OSError:
        return _IN_USE
    if not stat.S_ISREG(before.st_mode):
        return _NOT_A_FILE
    if time.time() - before.st_mtime < MIN_AGE_S:   # an mtime in the future (clock set back): young too
        return _TOO_NEW
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
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
    """Unlink ``paths`` in order (one already gone counts as removed); False, and the later ones kept, at
    the first that could not be: a segment that stays keeps its lock file, by which a later clean-up
    finds it (a segment without one is never taken for a zombie)."""
    for path in paths:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError:
            return False
    return True


def remove_zombie_segments(shm_dir: str = SHM_DIR, dry_run: bool = False) -> SegmentCleanup:
    """Remove the Fast DDS segments in ``shm_dir`` whose lock file no live process holds and is older
    than :data:`MIN_AGE_S` (see the module's text); with ``dry_run`` only list them. Files it cannot
    remove are left, silently; a file another clean-up removed meanwhile counts as removed."""
    out = SegmentCleanup()
    try:
        names = sorted(os.listdir(shm_dir))
    except OSError:
        return out
    for lock_name in filter(SEGMENT_LOCK.match, names):
        lock_path = os.path.join(shm_dir, lock_name)
        fd = _lock_if_free(lock_path)
        if fd is _NOT_A_FILE:
            continue
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
