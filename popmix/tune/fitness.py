"""What a PBT member is ranked on at a decision: a weighted sum of its validation reads.

Every rule is linear in the reads, so the same weights applied to each read's per-window
losses give the fitness's own windows, and the paired exploit margin is the standard error of
the fitness, not of one read.

- ``last``: the read at the decision (Ray's rule).
- ``average``: the mean of the last ``fitness_reads`` reads.
- ``forecast``: the member's objective extrapolated to the last step of the run. A least
  squares fit of ``L(t) = a + b * t**-FORECAST_EXPONENT`` over all of the member's reads (its
  own, and after an exploit its donor's before it), evaluated at ``t = horizon``. This is the
  idea of FIRE-PBT (Dalibard & Jaderberg, arXiv 2109.13800: rank on where a member is heading,
  not on where it is) without its separate evaluator workers: popmix's members are small
  enough that each member's own curve is read at every report. A mixture that puts weight on
  what is slow to learn reads worse than stratified early and better at the end; its curve
  falls faster, which the forecast sees and the present read does not. The exponent is fixed
  rather than fitted: with two or three reads a fitted exponent is noise, and on stored
  oracle16 runs 0.3, 0.5 and 1.0 rank static mixtures alike
  (``benchmarks/fitness_forecast.py``, docs/benchmarks/oracle16.md#forecast).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: the power law's exponent in steps of the ``forecast`` fitness
FORECAST_EXPONENT = 0.5

#: the fitness rules, in the order the docs and the CLI name them
FITNESS_RULES = ("last", "average", "forecast")


def read_weights(
    rule: str, steps: Sequence[float], horizon: float, fitness_reads: int = 3
) -> np.ndarray:
    """The weight of each read (oldest first, at optimizer ``steps``) in the fitness ``rule``;
    ``horizon``: the run's last step (for ``forecast``). The weights sum to 1, so a member
    whose reads are all equal has that value as its fitness."""
    n = len(steps)
    if n == 0:
        raise ValueError("a fitness needs at least one read")
    w = np.zeros(n)
    if rule == "last" or n == 1:
        w[-1] = 1.0
    elif rule == "average":
        k = min(n, max(1, int(fitness_reads)))
        w[-k:] = 1.0 / k
    elif rule == "forecast":
        t = np.asarray(steps, dtype=float)
        if np.any(t <= 0) or len(set(t.tolist())) < n:
            raise ValueError(f"forecast needs distinct positive steps, got {list(steps)}")
        x = np.stack([np.ones(n), t**-FORECAST_EXPONENT], axis=1)
        at = np.array([1.0, float(horizon) ** -FORECAST_EXPONENT])
        # prediction at the horizon = at @ (X^T X)^-1 X^T y: a fixed weight per read
        w = at @ np.linalg.pinv(x)
    else:
        raise ValueError(f"unknown fitness {rule!r}; use one of {', '.join(FITNESS_RULES)}")
    return w


def fitness_of(
    rule: str,
    steps: Sequence[float],
    values: Sequence[float],
    horizon: float,
    fitness_reads: int = 3,
) -> float:
    """The fitness of reads ``values`` taken at ``steps`` (oldest first)."""
    return float(read_weights(rule, steps, horizon, fitness_reads) @ np.asarray(values, float))


__all__ = ["FITNESS_RULES", "FORECAST_EXPONENT", "fitness_of", "read_weights"]
