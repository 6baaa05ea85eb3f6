"""Declarative parameter specs (ROS-free): one dataclass per parameter set, one field per parameter.

A spec is a ``@dataclass`` subclass of :class:`ParamSet` whose fields are made with :func:`param`::

    @dataclass
    class BlurParams(ParamSet):
        radius: int = param(3, 'Blur radius (px)', min=0, max=50)
        mode: str = param('box', 'Kernel', choices=('box', 'gauss'))

        def cross_check(self):            # rules between fields: a reason, or None
            if self.mode == 'gauss' and self.radius == 0:
                return 'mode gauss needs radius >= 1'

From this one declaration come: the defaults (``BlurParams()``), the validation
(:meth:`ParamSet.validate`, used by core code *and* by a node's on-set parameter callback, so a
value the core refuses is refused by the node with the same reason), the ROS parameter
descriptors (``depthmarks_ros.ros.node_base``), the ``depthmarks`` command-line options
(``depthmarks_ros.cli.options``) and the parameter tables of the docs
(``depthmarks_ros.params.markdown_table``). Specs compose by inheritance: a node's spec inherits the
core object's spec and adds the node's own fields; :meth:`ParamSet.take` builds the core object
from it, field by name, without listing them.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, TypeVar

Check = Callable[[Any], Optional[str]]
T = TypeVar('T', bound='ParamSet')

_KEY = 'depthmarks_param'


@dataclass(frozen=True)
class ParamInfo:
    """What a spec says about one parameter (besides its name and default)."""
    description: str
    min: Optional[float] = None
    max: Optional[float] = None
    step: Optional[float] = None
    choices: Optional[Tuple[Any, ...]] = None
    read_only: bool = False
    check: Optional[Check] = None     # value -> reason to refuse it, or None
    check_text: str = ''              # what ``check`` requires, in words (descriptor, docs)
    cli: bool = True                  # offered as a ``depthmarks`` option where the command uses the spec
    dynamic_typing: bool = False      # values of another type than the default's are allowed (check decides)

    def constraints(self) -> str:
        """The rules besides the range, in words (ParameterDescriptor.additional_constraints)."""
        parts = []
        if self.choices is not None:
            parts.append('one of: ' + ', '.join(str(c) for c in self.choices))
        if self.check_text:
            parts.append(self.check_text)
        return '; '.join(parts)


def param(default: Any, description: str, *, min: Optional[float] = None, max: Optional[float] = None,
          step: Optional[float] = None, choices: Optional[Sequence[Any]] = None, read_only: bool = False,
          check: Optional[Check] = None, check_text: str = '', cli: bool = True, dynamic_typing: bool = False):
    """A spec field: ``default`` plus what the parameter means and which values it takes.

    ``min``/``max`` bound numbers (inclusive), ``choices`` lists the allowed values, ``check``
    refuses values for another reason (``check_text`` says which in words), ``read_only``
    parameters are fixed once a node has started. The type is the default's type (int, float,
    bool, str or a list of floats / ints / strs) unless ``dynamic_typing`` (then ``check`` judges)."""
    info = ParamInfo(description, min, max, step, tuple(choices) if choices is not None else None,
                     read_only, check, check_text, cli, dynamic_typing)
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={_KEY: info})
    return field(default=default, metadata={_KEY: info})


def odd(value) -> Optional[str]:
    return None if value % 2 == 1 else f'must be odd, got {value}'


def multiple_of(n: int) -> Check:
    def check(value) -> Optional[str]:
        return None if value % n == 0 else f'must be a multiple of {n}, got {value}'
    return check


@dataclass(frozen=True)
class ParamField:
    name: str
    default: Any
    info: ParamInfo

    @property
    def kind(self) -> type:
        """bool, int, float, str or list."""
        return type(self.default)


def _type_error(value: Any, default: Any) -> Optional[str]:
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif isinstance(default, str):
        ok = isinstance(value, str)
    elif isinstance(default, (list, tuple)):
        ok = isinstance(value, (list, tuple))
    else:
        ok = True
    if ok:
        return None
    return f'{value!r} is a {type(value).__name__}, not a {type(default).__name__}'


@dataclass
class ParamSet:
    """Base of every parameter spec (see the module docstring)."""

    # ------------------------------------------------------------------ the spec
    @classmethod
    def param_fields(cls) -> Dict[str, ParamField]:
        """Every parameter of the spec, in declaration order (base classes first)."""
        out = {}
        for f in fields(cls):
            info = f.metadata.get(_KEY)
            if info is None:
                continue
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            out[f.name] = ParamField(f.name, default, info)
        return out

    @classmethod
    def defaults(cls) -> Dict[str, Any]:
        return {name: pf.default for name, pf in cls.param_fields().items()}

    # ------------------------------------------------------------------ validation
    @classmethod
    def check_value(cls, name: str, value: Any) -> Optional[str]:
        """Why ``value`` is not allowed for parameter ``name`` on its own (type, range, choices,
        check), or None."""
        pf = cls.param_fields().get(name)
        if pf is None:
            return f'unknown parameter {name!r}'
        info = pf.info
        error = None if info.dynamic_typing else _type_error(value, pf.default)
        if error:
            return error
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if isinstance(value, float) and math.isnan(value):
                return 'must be a number, got NaN'
            if info.min is not None and value < info.min:
                return f'{value} is below the minimum {info.min}'
            if info.max is not None and value > info.max:
                return f'{value} is above the maximum {info.max}'
        if info.choices is not None and value not in info.choices:
            return f'{value!r} is not one of {list(info.choices)}'
        if info.check is not None:
            return info.check(value)
        return None

    def cross_check(self) -> Optional[str]:
        """Override: a rule between several fields; return the reason it is broken, or None.

        Every class of a spec's hierarchy may define one; :meth:`problem` runs them all."""
        return None

    def problem(self) -> Optional[str]:
        """The first reason these values are not allowed (``'name: reason'``), or None."""
        for name in self.param_fields():
            error = self.check_value(name, getattr(self, name))
            if error:
                return f'{name}: {error}'
        for klass in reversed(type(self).__mro__):
            rule = klass.__dict__.get('cross_check')
            if rule is not None:
                error = rule(self)
                if error:
                    return error
        return None

    def validate(self: T) -> T:
        """Raise ValueError with the reason when the values are not allowed; returns self."""
        error = self.problem()
        if error:
            raise ValueError(error)
        return self

    # ------------------------------------------------------------------ building
    def replace(self: T, **changes) -> T:
        """A validated copy with ``changes``."""
        return dataclasses.replace(self, **changes).validate()

    def as_dict(self) -> Dict[str, Any]:
        return {name: getattr(self, name) for name in self.param_fields()}

    @classmethod
    def from_mapping(cls: type, values: Mapping[str, Any], strict: bool = True):
        """The spec with ``values`` over its defaults (validated). ``strict``: unknown names are an
        error (else ignored)."""
        known = cls.param_fields()
        unknown = sorted(set(values) - set(known))
        if unknown and strict:
            raise ValueError(f'unknown parameter(s) {unknown}; known: {sorted(known)}')
        return cls(**{k: v for k, v in values.items() if k in known}).validate()

    @classmethod
    def take(cls: type, source: Any):
        """This spec's object from the same-named fields of ``source`` (e.g. the core
        ``StereoParams`` out of a node's ``StereoDepthParams``), validated."""
        return cls(**{name: getattr(source, name) for name in cls.param_fields()}).validate()


def value_text(value: Any) -> str:
    """A value as it is written in a parameter YAML file and in the docs."""
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, str):
        return '""' if value == '' else value
    if isinstance(value, (list, tuple)):
        return '[' + ', '.join(value_text(v) for v in value) + ']'
    return repr(value)


def range_text(pf: ParamField) -> str:
    info = pf.info
    parts: List[str] = []
    if info.min is not None or info.max is not None:
        lo = '' if info.min is None else _num(info.min)
        hi = '' if info.max is None else _num(info.max)
        parts.append(f'{lo}..{hi}')
    if info.choices is not None:
        parts.append(', '.join(value_text(c) for c in info.choices))
    if info.check_text:
        parts.append(info.check_text)
    return '; '.join(parts)


def _num(v: float) -> str:
    if float(v).is_integer() and abs(v) >= 1e5:
        exp = int(math.log10(abs(v)))
        if abs(v) == 10 ** exp:
            return f'1e{exp}'
        if abs(v + 1) == 2 ** 31:
            return '2^31-1'
    return f'{v:g}' if isinstance(v, float) else str(v)
