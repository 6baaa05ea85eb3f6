"""`depthmarks shm-clean`: remove the shared-memory segments that Fast DDS participants of killed
processes left in /dev/shm (a segment whose lock file no live process holds and is older than
MIN_AGE_S; ros/fastdds_shm.py). Segments in use stay, so it is safe while other ROS 2 processes run,
and so is a test run's clean-up at the same time. Exits 0.
(`fastdds shm clean`, in the venv's bin/, also removes dead processes' ports, but it is meant for a
machine with no running participants: it releases a lock before removing the files.)"""
from __future__ import annotations


def add_arguments(p) -> None:
    p.add_argument('--dry-run', action='store_true', help='list the zombie segments, remove nothing')


def run(args) -> int:
    from depthmarks_ros.ros.fastdds_shm import remove_zombie_segments
    done = remove_zombie_segments(dry_run=args.dry_run)
    for name in done.zombies:
        print(name)
    print(done.summary(dry_run=args.dry_run))
    return 0
