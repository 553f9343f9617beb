"""One parser for every whole number that comes from outside: ids, offsets, limits, Content-Length, CLI counts.

``int()`` alone is not enough for text a stranger wrote: it accepts digits of
any script (``int("٣")`` is 3), ``str.isdigit()`` accepts characters ``int()``
refuses (``"²"``), and SQLite refuses integers over 2**63 - 1 with an
OverflowError. :func:`bounded_int` takes ASCII digits only, checks the range,
and raises :class:`BadNumber` (a ValueError) with one line saying what was
expected; the HTTP layer answers it with 400 (or 404 for an id), the command
line with exit 2.
"""

from __future__ import annotations

import argparse
import re

#: The largest integer SQLite stores (ids, offsets and limits end up in queries).
MAX_SQL_INT = 2**63 - 1

_DIGITS = re.compile(r"[0-9]{1,40}")  # [0-9] is ASCII only, unlike \d; 40 digits bounds the work int() does


class BadNumber(ValueError):
    """Text that is not a whole number in the range expected (the message is one line)."""


def bounded_int(text, what: str, low: int = 0, high: int = MAX_SQL_INT) -> int:
    """``text`` as an int in ``low..high``: ASCII digits only (no sign, no spaces); BadNumber if not."""
    if isinstance(text, bytes):
        text = text.decode("latin-1")
    if not isinstance(text, str) or not _DIGITS.fullmatch(text):
        shown = repr(text) if len(str(text)) <= 40 else repr(str(text)[:40]) + "..."
        raise BadNumber(f"{what}: expected a whole number {low}..{high} (digits 0-9), got {shown}")
    value = int(text)
    if not low <= value <= high:
        raise BadNumber(f"{what}: expected {low}..{high}, got {value if value < 10**24 else text[:24] + '...'}")
    return value


def arg_type(what: str, low: int = 0, high: int = MAX_SQL_INT):
    """An argparse ``type=`` that parses with :func:`bounded_int` (argparse turns the error into exit 2)."""
    def parse(text: str) -> int:
        try:
            return bounded_int(text, what, low, high)
        except BadNumber as e:  # argparse names the argument itself: "argument --limit: expected ..."
            raise argparse.ArgumentTypeError(str(e).removeprefix(f"{what}: ")) from None

    parse.__name__ = what  # argparse names the type in some messages
    return parse
