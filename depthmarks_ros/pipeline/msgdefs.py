"""ROS 2 message definitions as MCAP 'ros2msg' schemas (the .msg text plus its dependencies).

The .msg files come from each package's share/<pkg>/msg folder (ament index, or this Python
prefix's share/ where the PyPI wheels put them). tf2_msgs is not on PyPI: its TFMessage definition
(one line, unchanged since ROS 2 Ardent) is written here, its dependencies come from geometry_msgs.
"""
from __future__ import annotations

import os
import re
import sys
from typing import Dict, List

PRIMITIVES = {'bool', 'byte', 'char', 'float32', 'float64', 'int8', 'uint8', 'int16', 'uint16', 'int32',
              'uint32', 'int64', 'uint64', 'string', 'wstring'}
SEPARATOR = '=' * 80


def _share_dirs(pkg: str) -> List[str]:
    dirs = []
    try:
        from ament_index_python.packages import get_package_share_directory
        dirs.append(get_package_share_directory(pkg))
    except Exception:  # noqa: BLE001 - not on the ament index: try this prefix
        pass
    dirs.append(os.path.join(sys.prefix, 'share', pkg))
    return dirs


# definitions of messages whose package may be missing (text as in the package's .msg file)
EMBEDDED = {
    'tf2_msgs/msg/TFMessage': 'geometry_msgs/TransformStamped[] transforms\n',
}


def msg_text(type_name: str) -> str:
    pkg, _, name = type_name.replace('/msg/', '/').partition('/')
    full = f'{pkg}/msg/{name}'
    if full in EMBEDDED:
        return EMBEDDED[full]
    for d in _share_dirs(pkg):
        path = os.path.join(d, 'msg', f'{name}.msg')
        if os.path.isfile(path):
            with open(path, encoding='utf-8') as f:
                return f.read()
    raise FileNotFoundError(f'message definition {type_name} not found (looked in share/{pkg}/msg)')


def _dependencies(pkg: str, text: str) -> List[str]:
    deps = []
    for line in text.splitlines():
        line = line.split('#', 1)[0].strip()
        if not line:
            continue
        typ = line.split()[0]
        if '=' in line.split(None, 1)[-1] and len(line.split()) >= 2 and '=' in line:
            # constant definitions (TYPE NAME=VALUE) have primitive types only
            if typ in PRIMITIVES:
                continue
        base = re.sub(r'(\[.*\]|<=\d+)$', '', typ)
        base = re.sub(r'<=\d+$', '', base)
        if base in PRIMITIVES or base.startswith('string<=') or base.startswith('wstring<='):
            continue
        full = base if '/' in base else f'{pkg}/{base}'
        if full not in deps:
            deps.append(full)
    return deps


def schema_text(type_name: str) -> str:
    """Full ros2msg schema: the main definition, then every dependency once (depth first)."""
    pkg = type_name.split('/')[0]
    main = msg_text(type_name)
    seen: Dict[str, str] = {}

    def visit(p: str, text: str) -> None:
        for dep in _dependencies(p, text):
            if dep in seen:
                continue
            dep_text = msg_text(dep)
            seen[dep] = dep_text
            visit(dep.split('/')[0], dep_text)
    visit(pkg, main)
    parts = [main.rstrip('\n')]
    for dep, text in seen.items():
        parts.append(f'{SEPARATOR}\nMSG: {dep.replace("/msg/", "/")}\n{text.rstrip()}')
    return '\n'.join(parts) + '\n'
