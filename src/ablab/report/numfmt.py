"""One number format per table column, chosen from the column's numbers.

Written here rather than taken from a library: the rule is a reporting convention, not a
numeric algorithm (babel/humanize format single numbers; none chooses one format for a
column from its spread). The rule, for a column of means with their standard deviations:

- **counts** (every mean an integer and every std zero or missing, e.g. parameter counts):
  no decimals, thousands separators (``205,000``); when the largest is a million or more,
  each value with an SI suffix and three significant digits (``12.3M``, ``850k``, ``512``);
- **measurements**: the std carries two significant digits, and the column's median positive
  std decides the decimals, so ``0.8123 ± 0.0042`` rather than ``0.81234567 ± 0.0042``; the
  mean, its std, its interval and its delta all get the same decimals, so a std never shows
  more digits than its mean. With one run per variant (n = 1: no std) the scale of the means
  decides: four significant digits of the largest;
- numbers of 1,000 and more get thousands separators; columns whose decimals would exceed
  six (values below 1e-4) use scientific notation with the same mantissa digits down the
  column.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

DASH = "—"
SI = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))
MAX_DECIMALS = 6


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


@dataclass(frozen=True)
class NumFormat:
    """How every number of one column is printed (see the module docstring)."""

    kind: str = "fixed"  # "fixed" | "si" | "sci"
    decimals: int = 4
    count: bool = False  # every mean an integer that does not vary over seeds

    def __call__(self, x: Any, sign: bool = False, dash: str = DASH) -> str:
        if not _finite(x):
            return dash
        x = float(x)
        plus = "+" if sign and x > 0 else ""
        if self.kind == "si":
            return plus + si(x)
        if self.kind == "sci":
            return f"{plus}{x:.{self.decimals}e}"
        if round(x, self.decimals) == 0:
            x, plus = 0.0, ""  # never "-0.000" or "+0.000"
        return f"{plus}{x:,.{self.decimals}f}"

    def pm(self, mean: Any, std: Any, sep: str = " ± ") -> str:
        """``mean ± std`` (the mean alone without a std; a dash without a mean)."""
        if not _finite(mean):
            return DASH
        if not _finite(std) or (std == 0 and self.count):
            return self(mean)  # a count that does not vary: no "± 0"
        return f"{self(mean)}{sep}{self(std)}"

    def interval(self, lo: Any, hi: Any) -> str:
        if not (_finite(lo) and _finite(hi)):
            return DASH
        return f"[{self(lo)}, {self(hi)}]"


def si(x: float) -> str:
    """``x`` with an SI suffix and three significant digits: 12.3M, 850k, 512."""
    for size, suffix in SI:
        if abs(x) >= size * 0.9995:
            v = float(f"{x / size:.3g}")
            return f"{v:.{_decimals_for(v, 3)}f}{suffix}"
    return f"{x:.0f}" if float(x).is_integer() else f"{x:.3g}"


def _decimals_for(x: float, significant: int) -> int:
    """Decimals that show ``x`` with ``significant`` significant digits."""
    return max(0, significant - 1 - math.floor(math.log10(abs(x))))


def column_format(means: Iterable[Any], stds: Iterable[Any] = ()) -> NumFormat:
    """The one format for a column of ``means`` with their ``stds`` (module docstring)."""
    ms = [float(x) for x in means if _finite(x)]
    ss = [float(x) for x in stds if _finite(x)]
    if not ms:
        return NumFormat("fixed", 0)
    big = max(abs(x) for x in ms)
    if all(x.is_integer() for x in ms) and all(s == 0 for s in ss):
        return NumFormat("si" if big >= 1e6 else "fixed", 0, count=True)
    positive = [s for s in ss if s > 0]
    if positive:
        decimals = _decimals_for(statistics.median(positive), 2)
    elif big > 0:
        decimals = _decimals_for(big, 4)
    else:
        decimals = 0
    if decimals > MAX_DECIMALS:
        mantissa = decimals + math.floor(math.log10(big)) if big > 0 else 2
        return NumFormat("sci", min(max(mantissa, 1), 4))
    return NumFormat("fixed", decimals)


def metric_format(result: Any, metric: str) -> NumFormat:
    """The column format of ``metric`` over the result's variants (means and stds)."""
    summaries = [v.get("metrics", {}).get(metric, {}) for v in result.get("variants", [])]
    return column_format([s.get("mean") for s in summaries], [s.get("std") for s in summaries])


def anova_formats(effects: Any) -> tuple[NumFormat, NumFormat]:
    """One format for the ANOVA's sum-of-squares column and one for its F column."""
    rows = effects.get("anova") or []
    return column_format([r.get("sum_sq") for r in rows]), column_format([r.get("F") for r in rows])


def fixed(x: Any, decimals: int, sign: bool = False) -> str:
    """A plain statistic (effect size, probability) with a fixed number of decimals."""
    return NumFormat("fixed", decimals)(x, sign=sign)
