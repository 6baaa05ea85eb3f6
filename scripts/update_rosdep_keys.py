#!/usr/bin/env python3
"""Pin the rosdep keys and ROS package names that resolve for Jazzy and Kilted (Ubuntu Noble), from a
ros/rosdistro checkout, into test/data/rosdistro/ (read by test/test_rosdep_keys.py, which checks that
every key of package.xml resolves; no network at test time).

    git clone --depth 1 https://github.com/ros/rosdistro /tmp/rosdistro
    python scripts/update_rosdep_keys.py /tmp/rosdistro

A rosdep key (rosdep/base.yaml, rosdep/python.yaml) counts when it has a rule for Ubuntu Noble (an
apt or pip rule for ubuntu, 'noble' or '*') or a platform-independent pip rule ('*': {pip: ...}); a
ROS package counts when <distro>/distribution.yaml releases it.
"""
import os
import subprocess
import sys

import yaml

DISTROS = ('jazzy', 'kilted')
PLATFORM = ('ubuntu', 'noble')
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'data', 'rosdistro')


def _resolves(rule) -> bool:
    if not isinstance(rule, dict):
        return False
    if '*' in rule and isinstance(rule['*'], dict) and 'pip' in rule['*']:
        return True
    os_rule = rule.get(PLATFORM[0])
    if isinstance(os_rule, list) or (isinstance(os_rule, dict) and ('pip' in os_rule or 'packages' in os_rule)):
        return bool(os_rule)
    if isinstance(os_rule, dict):
        version = os_rule.get(PLATFORM[1], os_rule.get('*'))
        return bool(version) and version is not None
    return False


def main(checkout: str) -> int:
    commit = subprocess.run(['git', '-C', checkout, 'rev-parse', 'HEAD'], capture_output=True, text=True,
                            check=True).stdout.strip()
    os.makedirs(OUT, exist_ok=True)
    header = f'# from ros/rosdistro {commit} by scripts/update_rosdep_keys.py\n'
    for name in ('base', 'python'):
        with open(os.path.join(checkout, 'rosdep', f'{name}.yaml')) as f:
            data = yaml.safe_load(f)
        keys = sorted(k for k, rule in data.items() if _resolves(rule))
        with open(os.path.join(OUT, f'rosdep_{name}.txt'), 'w') as f:
            f.write(header + f'# keys of rosdep/{name}.yaml with a rule for {":".join(PLATFORM)}\n')
            f.write('\n'.join(keys) + '\n')
    for distro in DISTROS:
        with open(os.path.join(checkout, distro, 'distribution.yaml')) as f:
            data = yaml.safe_load(f)
        names = set()
        for repo, entry in (data.get('repositories') or {}).items():
            release = entry.get('release')
            if release:
                names |= set(release.get('packages') or [repo])
        with open(os.path.join(OUT, f'{distro}_packages.txt'), 'w') as f:
            f.write(header + f'# packages released in {distro}/distribution.yaml\n')
            f.write('\n'.join(sorted(names)) + '\n')
    print(f'update_rosdep_keys: wrote {OUT} from {commit}')
    return 0


if __name__ == '__main__':
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
