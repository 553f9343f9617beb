"""The systemd suite's timings, printed at the end of the run and kept in build/nspawn/report.txt."""

from __future__ import annotations


def pytest_terminal_summary(terminalreporter):
    from tests.service import nspawn

    if not nspawn.REPORT:
        return
    lines = [f"{name}: {'-' if secs is None else f'{secs:.1f} s'} ({detail})" for name, secs, detail in nspawn.REPORT]
    terminalreporter.write_sep("-", "systemd suite (real systemd in systemd-nspawn)")
    for line in lines:
        terminalreporter.write_line(line)
    nspawn.CACHE.mkdir(parents=True, exist_ok=True)
    (nspawn.CACHE / "report.txt").write_text("\n".join(lines) + "\n")
