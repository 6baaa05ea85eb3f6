"""One parameter spec per node (ROS-free): ``depthmarks_ros/params/<node>.py``.

Each spec is a :class:`~depthmarks_ros.core.params.ParamSet` dataclass; the node declares it
(``PARAMS = ...`` in ``depthmarks_ros/nodes/<node>.py``), the ``depthmarks`` commands take their
options and defaults from it (``depthmarks_ros.cli.options``), ``config/<node>.yaml`` holds its
defaults (checked by test/test_params.py) and each node's doc carries the table
:func:`markdown_table` writes (``depthmarks params NODE --markdown``; checked by the same test).
"""
from __future__ import annotations

import importlib
from typing import Dict, List, Type

from depthmarks_ros.core.params import ParamSet, range_text, value_text
from depthmarks_ros.params.base import BASE_PARAMETERS, NodeParams
from depthmarks_ros.pipeline.graph import NODES as _GRAPH_NODES

# the nodes are the node graph's (pipeline/graph.py NODES); node <name>'s spec is the class
# <Name>Params (e.g. stereo_depth: StereoDepthParams) of depthmarks_ros/params/<name>.py, imported on first use
NODES = tuple(_GRAPH_NODES)

# the parameter file of each node in config/ (the graph's NodeSpec.params_file; sim_rig's is not
# sim_rig.yaml: that is the rig folder), which the launch files and `depthmarks run` load; test_params checks them
CONFIG_FILES = {node: spec.params_file for node, spec in _GRAPH_NODES.items()}
# the doc holding each node's parameter table
DOC_FILES = {node: f'{node}.md' for node in NODES}
DOC_FILES['stamp_merge'] = 'multihost.md'


def spec_of(node: str) -> Type[ParamSet]:
    """The parameter spec of a node of the graph: <Name>Params of depthmarks_ros/params/<name>.py."""
    if node not in _GRAPH_NODES:
        raise KeyError(f'no parameter spec for node {node!r}; nodes: {", ".join(NODES)}')
    module = importlib.import_module(f'depthmarks_ros.params.{node}')
    return getattr(module, spec_class_name(node))


def spec_class_name(node: str) -> str:
    """stereo_depth -> StereoDepthParams (each word's first letter upper-cased, the rest kept)."""
    return ''.join(w[:1].upper() + w[1:] for w in node.split('_')) + 'Params'


def all_specs() -> Dict[str, Type[ParamSet]]:
    return {node: spec_of(node) for node in NODES}


def markdown_table(spec: Type[ParamSet], include_base: bool = False) -> str:
    """The parameter table of a node's doc (name, default, range / choices, description)."""
    rows: List[str] = ['| name | default | range | description |', '|---|---|---|---|']
    for name, pf in spec.param_fields().items():
        if name in BASE_PARAMETERS and not include_base:
            continue
        desc = (pf.info.description + (' (read-only)' if pf.info.read_only else '')).replace('|', '\\|')
        rows.append(f'| `{name}` | {value_text(pf.default)} | {range_text(pf)} | {desc} |')
    return '\n'.join(rows) + '\n'


def yaml_text(node: str) -> str:
    """``config/<node>.yaml`` body for the spec's defaults (without comments)."""
    import json

    import yaml
    lines = ['/**:', '  ros__parameters:']
    for name, pf in spec_of(node).param_fields().items():
        if name not in BASE_PARAMETERS:
            text = value_text(pf.default)
            if yaml.safe_load(text) != pf.default:   # e.g. the string "0": quote it
                text = json.dumps(pf.default)
            lines.append(f'    {name}: {text}')
    return '\n'.join(lines) + '\n'


__all__ = ['NODES', 'CONFIG_FILES', 'DOC_FILES', 'NodeParams', 'spec_of', 'all_specs', 'markdown_table', 'yaml_text']
