"""`depthmarks shm-clean`: remove the shared-memory segments that Fast DDS participants of killed
processes left in /dev/shm (a segment whose lock file no live process holds; ros/fastdds_shm.py).
Segments in use stay, so it is safe while other ROS 2 processes run; `fastdds shm clean` (in the venv's
bin/) removes the same segments and also the ports of dead processes."""
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
