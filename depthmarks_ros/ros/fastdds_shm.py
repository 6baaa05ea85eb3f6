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
(``RobustExclusiveLock``'s check for a clean-up between its open and its lock). ``fastdds shm clean``
tests the lock, releases it, then removes the files. A segment file without its lock file is left
alone (its owner's state is not knowable). So are the ports (``fastdds_port<N>``, ``_el`` / ``_sl``,
``sem.fastdds_port<N>_mutex``): they are named by port number, so a bounded set, and Fast DDS
resets a zombie port itself when a participant opens that port again.
"""
from __future__ import annotations

import fcntl
import os
import re
from dataclasses import dataclass, field
from typing import List, Optional, Set

SHM_DIR = '/dev/shm'
SEGMENT_LOCK = re.compile(r'^fastdds_[0-9a-z]{16}_el$')   # `fastdds shm clean`'s segment pattern


@dataclass
class SegmentCleanup:
    """What :func:`remove_zombie_segments` found: the zombie segments' names (removed unless a dry
    run), the bytes their files held, and how many segments live processes hold."""
    zombies: List[str] = field(default_factory=list)
    freed_bytes: int = 0
    in_use: int = 0

    def summary(self, dry_run: bool = False) -> str:
        verb = 'would remove' if dry_run else 'removed'
        return (f'{verb} {len(self.zombies)} zombie Fast DDS segment(s) ({self.freed_bytes / 2 ** 20:.1f} MB); '
                f'{self.in_use} in use')


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


def _lock_if_free(path: str) -> Optional[int]:
    """A descriptor of ``path`` holding its exclusive flock, or None when a process holds the lock
    (or the file is gone). Never creates the file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)   # flock, as Fast DDS: a POSIX lockf never conflicts with it
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        os.close(fd)
        return None
    here = os.fstat(fd)
    if (st.st_dev, st.st_ino) != (here.st_dev, here.st_ino):   # replaced meanwhile: not the file we locked
        os.close(fd)
        return None
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


def remove_zombie_segments(shm_dir: str = SHM_DIR, dry_run: bool = False) -> SegmentCleanup:
    """Remove the Fast DDS segments in ``shm_dir`` whose lock file no live process holds (see the
    module's text); with ``dry_run`` only list them. Files it cannot remove are left, silently."""
    out = SegmentCleanup()
    try:
        names = sorted(os.listdir(shm_dir))
    except OSError:
        return out
    for lock_name in filter(SEGMENT_LOCK.match, names):
        lock_path = os.path.join(shm_dir, lock_name)
        fd = _lock_if_free(lock_path)
        if fd is None:
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
