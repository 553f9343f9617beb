"""How a YAML value is checked against a typed config field: the rules behind :mod:`edgecam.config.schema`.

A field's type says what it takes (``bool``, ``int``, ``float``, ``str``, a
``Literal`` of choices, a union with null, a nested section, a list of values
or of sections, a mapping of label -> number); its metadata adds a range
(``min``/``max``) and a ``check`` rule. :func:`build_section` builds a section
from a mapping and appends one line per problem (key path, the value given,
what was expected) instead of stopping at the first. A field made with
:func:`partial` takes some keys of a section (a camera's ``source:``, with
what differs from the top-level one) and keeps only those, as plain data.
"""

from __future__ import annotations

import dataclasses
import math
import reprlib
import types
import typing
from dataclasses import field
from typing import Any, Literal


def opt(default=None, *, min=None, max=None, check=None):
    """A config field's default with its rules: ``min``/``max`` for numbers, ``check`` for anything."""
    # ``check(value) -> str | None``: an extra rule for a value of the right
    # type; it returns what was expected when the value breaks it.
    meta = {"min": min, "max": max, "check": check}
    if isinstance(default, dataclasses.Field):  # a list default: its factory, with the rules
        return field(default_factory=default.default_factory, metadata=meta)
    return field(default=default, metadata=meta)


def partial(section):
    """A field that holds some keys of ``section`` (a dataclass), checked by its rules, as plain data; null: none.

    A camera's ``source: {uri: 1}`` is ``{"uri": "1"}``: only what was given, to lay over the top-level section.
    """
    return field(default=None, metadata={"partial": section})


def plain(value):
    """A config value as plain data (what a YAML file would hold): sections as mappings, internal keys left out."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)
                if not f.metadata.get("internal")}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def unique_name(name, where: str, kind: str, example: str, names: set, reported: set, problems: list) -> None:
    """The name of a list's entry (a rule, a camera): given, and not one an earlier entry has; ``names`` grows.

    A name already reported bad (``where.name`` in ``reported``) adds no second line.
    """
    if f"{where}.name" in reported:
        pass
    elif not name:
        problems.append(f"{where}.name: missing, expected a name for the {kind} (e.g. {example})")
    elif name in names:
        problems.append(f"{where}.name: {name!r} names two {kind}s; expected distinct names")
    names.add(name)


def _describe(tp) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) if isinstance(a, str) else str(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    if origin is list:
        item = typing.get_args(tp)[0]
        plural = {float: "numbers", int: "whole numbers", str: "strings"}.get(item)
        return f"a list of {plural or f'mappings of {item.__name__} keys'}"
    if origin is dict:
        return f"a mapping of label -> {_describe(typing.get_args(tp)[1])}"
    if dataclasses.is_dataclass(tp):
        return f"a mapping of {tp.__name__} keys"
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(tp, str(tp))


_QUOTE = reprlib.Repr()
_QUOTE.maxlevel, _QUOTE.maxlist, _QUOTE.maxdict, _QUOTE.maxstring, _QUOTE.maxother = 1, 4, 4, 60, 60


def quote(value) -> str:
    """``repr(value)`` kept short: an error message never prints a whole YAML structure.

    (A YAML alias bomb is a few hundred bytes that expand into billions of
    references; a plain repr of it takes minutes and gigabytes.)
    """
    return _QUOTE.repr(value)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _type_matches(value, tp, meta) -> bool:
    """Whether ``value`` is of type ``tp`` as _check_value reads it (range not considered)."""
    if typing.get_origin(tp) is Literal:
        return any(value == a and type(value) is type(a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if typing.get_origin(tp) is list:
        return isinstance(value, list)
    if typing.get_origin(tp) is dict:
        return isinstance(value, dict)
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and math.isfinite(value) and value.is_integer())
    if tp is float:
        return _is_number(value)
    if tp is str:
        return isinstance(value, str) or (bool(meta.get("int_as_str")) and isinstance(value, int)
                                          and not isinstance(value, bool))
    return False


def _check_value(value, tp, meta, path, problems) -> Any:
    """Return the converted value, or append to problems and return _BAD."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        # The member whose type the value has decides (so that a value of the
        # right type but out of range says so); with none, name them all.
        for arg in typing.get_args(tp):
            if _type_matches(value, arg, meta):
                return _check_value(value, arg, meta, path, problems)
        problems.append(f"{path}: got {quote(value)}, expected {_describe(tp)}")
        return _BAD
    if origin is Literal:
        if any(value == a and type(value) is type(a) for a in typing.get_args(tp)):
            return value
        problems.append(f"{path}: got {quote(value)}, expected one of {_describe(tp)}")
        return _BAD
    if tp is type(None):
        if value is None:
            return None
        problems.append(f"{path}: expected null")
        return _BAD
    if origin in (list, dict):
        return _check_container(value, tp, meta, path, problems)
    if dataclasses.is_dataclass(tp):
        if value is None:
            value = {}
        if not isinstance(value, dict):
            problems.append(f"{path}: got {quote(value)}, expected a mapping of {tp.__name__} keys")
            return _BAD
        return build_section(tp, value, path, problems)
    return _check_scalar(value, tp, meta, path, problems)


def _check_scalar(value, tp, meta, path, problems) -> Any:
    """A bool, int, float or str: its type, range and ``check``; the converted value or _BAD."""
    given = value  # report what the user wrote (2, not 2.0)
    if tp is str and meta.get("int_as_str") and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # source.uri: 0 is webcam 0, as in --source 0
    if tp is int and isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)  # max_bytes: 1e7, top_k: 3.0: an integer however written
    ok = (
        (tp is bool and isinstance(value, bool))
        or (tp is int and isinstance(value, int) and not isinstance(value, bool))
        or (tp is float and _is_number(value))
        or (tp is str and isinstance(value, str))
    )
    if not ok:
        problems.append(f"{path}: got {quote(given)}, expected {_describe(tp)}")
        return _BAD
    if tp is float:
        value = float(value)
    lo, hi = meta.get("min"), meta.get("max")
    if tp in (int, float):
        # NaN compares false with everything: test for it, or it slips through every range.
        finite = math.isfinite(value)
        if not finite or (lo is not None and value < lo) or (hi is not None and value > hi):
            if lo is None and hi is None:
                problems.append(f"{path}: got {quote(given)}, expected a finite number")
            else:
                rng = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
                problems.append(f"{path}: got {quote(given)}, expected a value {rng}")
            return _BAD
    check = meta.get("check")
    if check is not None:
        expected = check(value)
        if expected:
            problems.append(f"{path}: got {quote(given)}, expected {expected}")
            return _BAD
    return value


def _check_container(value, tp, meta, path, problems) -> Any:
    """A list (``regions``, ``box``) or a mapping of label -> value (``thresholds``), item by item."""
    origin = typing.get_origin(tp)
    if origin is list:
        if not isinstance(value, list):
            problems.append(f"{path}: got {quote(value)}, expected {_describe(tp)}")
            return _BAD
        item = typing.get_args(tp)[0]
        before = len(problems)
        out = [_check_value(v, item, {}, f"{path}[{i}]", problems) for i, v in enumerate(value[:1000])]
        if len(value) > 1000:
            problems.append(f"{path}: {len(value)} items, expected at most 1000")
        if any(v is _BAD for v in out) or (len(problems) > before and not dataclasses.is_dataclass(item)):
            return _BAD
        # Sections (regions) with a bad key keep their other keys, so the cross-checks see them.
    else:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            problems.append(f"{path}: got {quote(value)}, expected {_describe(tp)}")
            return _BAD
        item = typing.get_args(tp)[1]
        before = len(problems)
        out = {k: _check_value(v, item, {"min": 0.0, "max": 1.0} if item is float else {}, f"{path}.{k[:60]}",
                               problems) for k, v in value.items()}
        if len(problems) > before:
            return _BAD
    check = meta.get("check")  # a rule for the whole list (a box's order)
    if check is not None:
        expected = check(out)
        if expected:
            problems.append(f"{path}: got {quote(value)}, expected {expected}")
            return _BAD
    return out


class _Bad:
    pass


_BAD = _Bad()


def _check_partial(value, section, path, problems) -> Any:
    """Some keys of ``section`` (a :func:`partial` field's value): those given and good, as plain data."""
    if value is None:
        return None
    if not isinstance(value, dict):
        problems.append(f"{path}: got {quote(value)}, expected a mapping of {section.__name__} keys (those that "
                        "differ from the top-level section)")
        return _BAD
    return plain(_checked_keys(section, value, path, problems))


def _checked_keys(cls, data: dict, prefix: str, problems: list[str]) -> dict:
    """The keys of ``data`` that are good keys of ``cls`` with good values, converted; a line per other one."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
    kwargs = {}
    for key, value in data.items():
        name = key[:60] if isinstance(key, str) else quote(key)
        path = f"{prefix}.{name}" if prefix else name
        if key not in fields:
            known = ", ".join(sorted(fields))
            problems.append(f"{path}: unknown key (known keys here: {known})")
            continue
        meta = fields[key].metadata
        if meta.get("partial") is not None:
            out = _check_partial(value, meta["partial"], path, problems)
        else:
            out = _check_value(value, hints[key], meta, path, problems)
        if out is not _BAD:
            kwargs[key] = out
    return kwargs


def build_section(cls, data: dict, prefix: str, problems: list[str]):
    """A ``cls`` from the mapping ``data``; a bad key or value keeps its default and appends its problem line."""
    return cls(**_checked_keys(cls, data, prefix, problems))


