#!/usr/bin/env python3
"""Give launch_ros the package's executables where it looks for them: PREFIX/lib/depthmarks_ros/.

`pip install .` puts console scripts into PREFIX/bin (colcon's setup.cfg `install_scripts` applies
to `setup.py install` only); launch_ros and `ros2 run` look in PREFIX/lib/<package>/. This links
every console script of the installed distribution there (relative links into ../../bin) and
removes links to scripts the distribution no longer has. Run by scripts/setup.sh.

    python scripts/link_executables.py PREFIX
"""
import os
import sys
from importlib.metadata import distribution

PACKAGE = 'depthmarks_ros'


def main(prefix: str) -> int:
    names = sorted(ep.name for ep in distribution(PACKAGE).entry_points if ep.group == 'console_scripts')
    lib = os.path.join(prefix, 'lib', PACKAGE)
    os.makedirs(lib, exist_ok=True)
    for old in os.listdir(lib):
        if old not in names and os.path.islink(os.path.join(lib, old)):
            os.remove(os.path.join(lib, old))
    for name in names:
        target = os.path.join(prefix, 'bin', name)
        if not os.path.exists(target):
            print(f'link_executables: {target} is missing', file=sys.stderr)
            return 1
        link = os.path.join(lib, name)
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(os.path.relpath(target, lib), link)
    print(f'link_executables: {len(names)} executables in {lib}')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else sys.prefix))
