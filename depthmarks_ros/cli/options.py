"""`depthmarks` options made from a node's parameter spec: same names (``--kebab-case``), defaults,
choices and help as the node's parameters, and the same validation (the spec's).

    add_spec_options(parser, FaceLandmarksParams)          # every field with cli=True
    ...
    params = spec_from_args(FaceLandmarksParams, args)     # validated spec instance, or ValueError
"""
from __future__ import annotations

import argparse
from typing import Dict, Iterable, Optional, Sequence, Type

from depthmarks_ros.core.params import ParamSet, range_text, value_text


def option_name(name: str) -> str:
    return '--' + name.replace('_', '-')


def add_spec_options(parser: argparse.ArgumentParser, spec: Type[ParamSet],
                     names: Optional[Iterable[str]] = None,
                     aliases: Optional[Dict[str, Sequence[str]]] = None) -> None:
    """Add one option per spec field (``names``, or every field marked ``cli=True``).

    ``aliases`` gives extra option strings (``{'correlation_window_size': ['--window']}``). Booleans
    get ``--name/--no-name``. Each action remembers its field (``action.spec_field``), so a test can
    check that a command's defaults are the node's."""
    aliases = aliases or {}
    fields = spec.param_fields()
    wanted = list(names) if names is not None else [n for n, pf in fields.items() if pf.info.cli]
    group = parser.add_argument_group(f'parameters (as the node\'s, from {spec.__name__})')
    for name in wanted:
        pf = fields[name]
        info = pf.info
        limits = range_text(pf)
        text = info.description + (f' [{limits}]' if limits else '') + f' (default: {value_text(pf.default)})'
        kw = dict(dest=name, default=pf.default, help=text.replace('%', '%%'))
        if pf.kind is bool:
            kw['action'] = argparse.BooleanOptionalAction
        elif pf.kind is list:
            kw.update(nargs='+', type=type(pf.default[0]) if pf.default else float, metavar='X')
        else:
            kw['type'] = pf.kind
            if info.choices is not None:
                kw['choices'] = info.choices
            else:
                kw['metavar'] = {int: 'N', float: 'X'}.get(pf.kind, 'TEXT')
        action = group.add_argument(option_name(name), *aliases.get(name, ()), **kw)
        action.spec_field = name


def spec_from_args(spec: Type[ParamSet], args: argparse.Namespace, **extra):
    """The spec's values from parsed ``args`` (fields absent from ``args`` keep the spec default)
    plus ``extra``, validated by the spec: ValueError with the node's reason when refused."""
    values = {name: getattr(args, name) for name in spec.param_fields() if hasattr(args, name)}
    values.update(extra)
    return spec.from_mapping(values)
