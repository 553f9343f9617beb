"""Small measuring helpers shared by ``bench``, ``threads: auto`` and ``models compare``.

Pure standard library (no NumPy), so that :mod:`edgecam.measure.model_probe` can
measure a model's memory without loading anything else.
"""

from __future__ import annotations

import resource


def percentile(values, q: float) -> float:
    """The ``q``-th percentile of ``values`` with linear interpolation (NumPy's default); 0.0 when empty."""
    s = sorted(values)
    if not s:
        return 0.0
    k = (len(s) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return float(s[lo] + (s[hi] - s[lo]) * (k - lo))


def cpu_seconds() -> float:
    """CPU time (user + system) this process has used so far, all threads."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB (``ru_maxrss``: it only ever grows)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
