"""Small-sample statistics for comparisons over seeds: means with 95% intervals, paired
differences with a verdict, the smallest difference n seeds resolve, and robust outliers.

Student's t with n - 1 degrees of freedom throughout (seeds are few, their spread unknown).
NumPy only, no SciPy: the quantiles are a table for up to 10 degrees of freedom and the
Cornish-Fisher expansion beyond (within 0.001 of the exact value there).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

#: t quantile at 0.975 for 1..10 degrees of freedom
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)
_Z975 = 1.959964


def t975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom (two-sided 95%)."""
    if df < 1:
        raise ValueError(f"t quantile needs at least 1 degree of freedom, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def mean_ci(values: Sequence[float]) -> dict[str, Any]:
    """``{"mean", "std", "ci95": [lo, hi], "n"}`` of finite ``values`` (no interval below 2)."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    n = int(x.size)
    if n == 0:
        return {"mean": None, "std": None, "ci95": None, "n": 0}
    mean = float(x.mean())
    if n < 2:
        return {"mean": mean, "std": None, "ci95": None, "n": 1}
    std = float(x.std(ddof=1))
    half = t975(n - 1) * std / math.sqrt(n)
    return {"mean": mean, "std": std, "ci95": [mean - half, mean + half], "n": n}


def paired(a: Sequence[float], b: Sequence[float]) -> dict[str, Any]:
    """The paired difference ``a - b`` over seeds (equal length; a pair with a missing side is
    dropped): ``{"diff_mean", "ci95", "n", "verdict"}``, where the verdict is ``better``
    (lower: perplexities) when the whole interval lies below 0, ``worse`` above, otherwise
    ``no clear difference`` (also for a single pair)."""
    if len(a) != len(b):
        raise ValueError(f"paired needs as many values on each side, got {len(a)} and {len(b)}")
    pairs = [
        x - y
        for x, y in zip(a, b)
        if x is not None and y is not None and math.isfinite(x) and math.isfinite(y)
    ]
    s = mean_ci(pairs)
    verdict = "no clear difference"
    if s["ci95"] is not None:
        lo, hi = s["ci95"]
        verdict = "better" if hi < 0 else "worse" if lo > 0 else verdict
    return {"diff_mean": s["mean"], "ci95": s["ci95"], "n": s["n"], "verdict": verdict}


def resolvable_difference(paired_std: float, n: int) -> float:
    """The smallest true paired difference that ``n`` seeds tell from zero at 95%, read as
    the half-width of the paired interval: t(n-1) * sd / sqrt(n), with ``paired_std`` the
    standard deviation of one seed's paired difference."""
    return t975(n - 1) * paired_std / math.sqrt(n)


def robust_outliers(values: Sequence[float], k: float = 3.0) -> list[int]:
    """Indices of values more than ``k`` robust standard deviations (1.4826 x the median
    absolute deviation) from the median. The plain standard deviation would hide an outlier
    among five seeds: it is inflated by the outlier itself (no seed of five can lie more
    than 1.8 of them from the mean). Needs 4 values: the median deviation of 3 is too
    unsteady to judge by."""
    x = np.asarray(values, dtype=np.float64)
    if x.size < 4:
        return []
    median = float(np.median(x))
    robust_std = 1.4826 * float(np.median(np.abs(x - median)))
    if robust_std == 0.0:  # most values equal: judge by the plain spread instead
        robust_std = float(x.std(ddof=1))
    return [i for i, v in enumerate(x) if abs(v - median) > k * robust_std]
