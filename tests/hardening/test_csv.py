"""``edgecam events export --csv`` with labels a spreadsheet would run as formulas (issue 24, item 6)."""

from __future__ import annotations

import csv
import io

import pytest

from edgecam.events.history import History
from edgecam.events.rules import Event
from tests.commands.test_learn import command

HOSTILE = ["=HYPERLINK(\"http://x\",\"y\")", "+1+2", "-1+2", "@SUM(A1)", "\tcat", "\rcat", "cat", "ta=b"]


@pytest.mark.parametrize("subcommand", [["export"], ["list", "--csv"]])
def test_formula_like_labels_are_text_in_the_csv(tmp_path, capsys, subcommand):
    h = History(tmp_path)
    h.open()
    try:
        for i, label in enumerate(HOSTILE):
            event = Event("r", label, None, 1000.0 + i, 0, 0.9)
            h.start_event(event)
            event.end = 1000.5 + i
            h.end_event(event)
        assert h.flush()
    finally:
        h.close()
    assert command(["events", *subcommand, "--dir", str(tmp_path)]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out, newline="")))
    got = sorted(r["label"] for r in rows)
    want = sorted("'" + x if x[0] in "=+-@\t\r" else x for x in HOSTILE)
    assert got == want
    assert all(not r[k].startswith(("=", "+", "-", "@", "\t", "\r")) for r in rows for k in r)
    assert {r["peak_score"] for r in rows} == {"0.9"}  # numbers stay numbers


def test_spreadsheet_safe_leaves_numbers_and_nulls():
    from edgecam.commands.events import spreadsheet_safe

    assert spreadsheet_safe(-1.5) == -1.5 and spreadsheet_safe(None) is None and spreadsheet_safe("-x") == "'-x"
