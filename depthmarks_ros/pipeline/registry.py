"""Loading what the node graph names: node classes and message classes, at run time.

Which nodes exist, their parameter files and outputs are in :mod:`depthmarks_ros.pipeline.graph`
(re-exported here for the callers that load them).
"""
from __future__ import annotations

import importlib
from typing import Optional, Tuple

from depthmarks_ros.pipeline.graph import ALIASES, NODES, NodeSpec, resolve  # noqa: F401 - re-exported


def load_node_class(name: str) -> Tuple[Optional[type], str]:
    """(NODE_CLASS or None, reason when it cannot be loaded)."""
    spec = NODES[name]
    try:
        mod = importlib.import_module(spec.module)
    except ImportError as exc:   # a missing module, shared library or symbol: named, the others start
        return None, f'{name} is not available ({type(exc).__name__}: {exc})'
    cls = getattr(mod, 'NODE_CLASS', None)
    if cls is None:
        return None, f'{spec.module} defines no NODE_CLASS'
    return cls, ''


def message_class(type_name: str):
    """'sensor_msgs/msg/Image' -> the Python message class."""
    pkg, _, cls = type_name.split('/')
    return getattr(importlib.import_module(f'{pkg}.msg'), cls)
