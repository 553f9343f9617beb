"""How much a measured accuracy can be trusted: intervals and a paired test.

Accuracy over a few hundred photos is an estimate, and two settings measured
on the same photos differ by chance too. This module gives the numbers a user
needs to tell a real difference from noise:

* :func:`wilson_interval`: the 95% interval of a proportion (top-1 or top-5
  accuracy). Wilson's score interval keeps its coverage near 95% even for
  proportions near 0 or 1 and small samples, where the textbook
  ``p +- 1.96 sqrt(p(1-p)/n)`` (Wald) interval is too narrow or leaves [0, 1]
  (Newcombe 1998, "Two-sided confidence intervals for the single proportion").
* :func:`mcnemar`: whether two settings that classified the *same* photos
  differ. Only the photos on which they disagree carry information (b: A right
  and B wrong, c: the reverse); under "no difference" each of those goes
  either way with probability 1/2. With fewer than :data:`EXACT_BELOW`
  discordant photos the two-sided exact binomial test is used, else the
  chi-square statistic with continuity correction.
* :func:`paired_difference_interval`: the 95% interval of the difference in
  accuracy between the two settings, from the same paired counts (Newcombe's
  square-and-add method 10 for paired data, 1998).

Pure standard-library maths, no SciPy: a Pi install stays small.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from edgecam.model.interval import Z95, wilson_interval  # noqa: F401 (here since the start; learning uses it too)

#: Below this many discordant pairs McNemar's test is the exact binomial test.
EXACT_BELOW = 25
#: The significance level used for "is the difference real".
ALPHA = 0.05


@dataclass(frozen=True)
class McNemar:
    """The outcome of McNemar's test on paired right/wrong results.

    ``b``: photos A got right and B got wrong; ``c``: B right, A wrong.
    ``method`` is ``"exact"`` (two-sided binomial) or ``"chi2"`` (with
    continuity correction; ``statistic`` is the chi-square value).
    """

    b: int
    c: int
    p_value: float
    method: str
    statistic: float | None = None

    @property
    def discordant(self) -> int:
        return self.b + self.c

    @property
    def significant(self) -> bool:
        """True when the difference is unlikely to be chance (p < 0.05)."""
        return self.p_value < ALPHA


def binomial_two_sided(k: int, n: int) -> float:
    """Two-sided exact p-value of ``k`` successes in ``n`` fair coin flips.

    Twice the smaller tail, capped at 1 (the tails are symmetric at p = 1/2).
    Exact integer arithmetic: no underflow for large ``n``.
    """
    if n == 0:
        return 1.0
    k = min(k, n - k)
    tail = sum(math.comb(n, i) for i in range(k + 1))
    return min(1.0, 2 * tail / 2**n)


def chi2_1df_sf(x: float) -> float:
    """P(X >= x) for a chi-square variable with one degree of freedom."""
    return math.erfc(math.sqrt(max(x, 0.0) / 2))


def mcnemar(b: int, c: int) -> McNemar:
    """McNemar's test of ``b`` (A right, B wrong) against ``c`` (B right, A wrong)."""
    if b < 0 or c < 0:
        raise ValueError(f"counts must be >= 0, got b={b}, c={c}")
    n = b + c
    if n < EXACT_BELOW:
        return McNemar(b, c, binomial_two_sided(b, n), "exact")
    stat = (abs(b - c) - 1) ** 2 / n
    return McNemar(b, c, chi2_1df_sf(stat), "chi2", stat)


def paired_difference_interval(both: int, a_only: int, b_only: int, neither: int,
                               z: float = Z95) -> tuple[float, float]:
    """95% interval of accuracy(A) - accuracy(B) for paired results.

    The four counts are the photos both settings got right, only A, only B,
    and neither. Newcombe's method 10 (square-and-add of the two Wilson
    intervals, corrected for the correlation between the paired results).
    """
    n = both + a_only + b_only + neither
    if n == 0:
        return -1.0, 1.0
    ra, rb = both + a_only, both + b_only  # right answers of A and of B
    pa, pb = ra / n, rb / n
    la, ua = wilson_interval(ra, n, z)
    lb, ub = wilson_interval(rb, n, z)
    # phi: the correlation of the paired results, with Newcombe's correction
    # towards 0 (set to 0 when any margin is empty).
    margins = ra * (n - ra) * rb * (n - rb)
    phi = 0.0
    if margins > 0:
        cross = both * neither - a_only * b_only
        if cross > n / 2:
            phi = (cross - n / 2) / math.sqrt(margins)
        elif cross < 0:
            phi = cross / math.sqrt(margins)
    d = pa - pb
    lo = d - math.sqrt(max(0.0, (pa - la) ** 2 - 2 * phi * (pa - la) * (ub - pb) + (ub - pb) ** 2))
    hi = d + math.sqrt(max(0.0, (pb - lb) ** 2 - 2 * phi * (pb - lb) * (ua - pa) + (ua - pa) ** 2))
    return max(-1.0, lo), min(1.0, hi)
