"""`depthmarks params [NODE]`: a node's parameters from its spec (depthmarks_ros/params/<node>.py).

Without options: name, default, range and description of each parameter. ``--yaml``: a parameter
file of the defaults (the body of config/<node>.yaml); ``--markdown``: the table of the node's doc;
``--write-docs`` (in a source checkout): rewrite the generated table of every docs/<node>.md.
"""
from __future__ import annotations

import os
import re


def add_arguments(p) -> None:
    from depthmarks_ros.params import NODES
    p.add_argument('node', nargs='?', choices=NODES, help='node (default: list the nodes)')
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument('--yaml', action='store_true', help='the defaults as a ROS 2 parameter file')
    fmt.add_argument('--markdown', action='store_true', help='the table of the node\'s doc')
    fmt.add_argument('--write-docs', action='store_true', help='rewrite the tables in docs/*.md (checkout)')


BEGIN = '<!-- parameters: generated from depthmarks_ros/params/{node}.py (depthmarks params {node} --markdown); ' \
        'test/test_params.py checks it -->'
END = '<!-- end of generated parameters -->'


def docs_dir() -> str:
    return os.path.normpath(os.path.join(os.path.dirname(__file__), '..', '..', 'docs'))


def doc_section(node: str) -> str:
    from depthmarks_ros.params import markdown_table, spec_of
    return BEGIN.format(node=node) + '\n' + markdown_table(spec_of(node)) + END


def section_pattern(node: str):
    return re.compile(re.escape(BEGIN.format(node=node)) + r'.*?' + re.escape(END), re.S)


def run(args) -> int:
    from depthmarks_ros.core.params import range_text, value_text
    from depthmarks_ros.params import DOC_FILES, NODES, markdown_table, spec_of, yaml_text
    if args.write_docs:
        for node in NODES:
            path = os.path.join(docs_dir(), DOC_FILES[node])
            text = open(path).read()
            new, n = section_pattern(node).subn(lambda _: doc_section(node), text)
            if n != 1:
                print(f'{path}: no generated parameter section (add the two marker lines)')
                return 1
            if new != text:
                with open(path, 'w') as fh:
                    fh.write(new)
                print(f'updated {path}')
        return 0
    if not args.node:
        print('\n'.join(NODES))
        return 0
    spec = spec_of(args.node)
    if args.yaml:
        print(yaml_text(args.node), end='')
    elif args.markdown:
        print(markdown_table(spec), end='')
    else:
        for name, pf in spec.param_fields().items():
            flags = ' (read-only)' if pf.info.read_only else ''
            limits = range_text(pf)
            print(f'{name} = {value_text(pf.default)}{" [" + limits + "]" if limits else ""}{flags}: '
                  f'{pf.info.description}')
    return 0
