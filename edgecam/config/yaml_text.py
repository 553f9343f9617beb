"""YAML as edgecam reads it (config files, the model registry).

PyYAML's ``safe_load`` with one fix, and the position of a syntax error.
"""

from __future__ import annotations

import functools
import re

import yaml

# YAML 1.2 reads 1e2 as a number; PyYAML follows YAML 1.1, whose floats need
# a dot and a signed exponent (1.0e+2), and would hand us the string '1e2'.
_EXP_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")


@functools.cache
def _loader():
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver("tag:yaml.org,2002:float", _EXP_FLOAT, list("-+0123456789."))
    return Loader


def parse_yaml(text: str):
    """``yaml.safe_load`` that also reads exponent numbers (``fps: 1e2``) as YAML 1.2 does.

    Quoted scalars stay strings: only plain ``1e2`` becomes a number.
    """
    return yaml.load(text, Loader=_loader())


def yaml_problem(e: Exception) -> tuple[int | None, int | None, str]:
    """(line, column, problem) of a ``yaml.YAMLError``, 1-based; line and column None when unknown."""
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    if mark is None:
        return None, None, problem
    return mark.line + 1, mark.column + 1, problem
