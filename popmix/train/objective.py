"""The scalar a search minimises, its evaluation noise, and the noise of a difference between
two members scored on the same validation windows.

A validation read is, per domain, the mean loss over a fixed set of windows; every member of a
seed (every method, in fact) is scored on the same windows. So the difference between two
members' reads has a *paired* standard error, from the per-window differences, which is
smaller than the independent-reads formula sqrt(se_a^2 + se_b^2) whenever the two members find
the same windows hard (they do: a window's difficulty is mostly the text in it).

NumPy only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def objective_of(val_loss: np.ndarray, names: Sequence[str], objective: str) -> float:
    """The scalar a search minimises: mean, worst or one domain's validation loss."""
    if objective == "mean":
        return float(np.mean(val_loss))
    if objective == "worst":
        return float(np.max(val_loss))
    return float(val_loss[list(names).index(objective.split(":", 1)[1])])


def objective_standard_error(
    val_loss: np.ndarray, val_se: np.ndarray, names: Sequence[str], objective: str
) -> float:
    """The standard error of :func:`objective_of` from each domain's standard error over its
    validation windows: sqrt(sum se_i^2) / k for the mean (domains' windows are independent);
    the worst domain's own for ``worst`` (its choice taken as fixed); the domain's for
    ``domain:<name>``."""
    if objective == "mean":
        return float(np.sqrt(np.sum(np.square(val_se))) / len(val_se))
    if objective == "worst":
        return float(val_se[int(np.argmax(val_loss))])
    return float(val_se[list(names).index(objective.split(":", 1)[1])])


def _se_of_mean(x: np.ndarray) -> float:
    return float(x.std(ddof=1) / np.sqrt(x.size)) if x.size > 1 else 0.0


def paired_standard_error(
    own: Mapping[str, Sequence[float]],
    other: Mapping[str, Sequence[float]],
    names: Sequence[str],
    objective: str,
) -> float | None:
    """The standard error of ``objective(own) - objective(other)`` from per-window differences.

    Args:
        own, other: each domain's validation loss per window (the same windows, in the same
            order, for both: what :func:`popmix.train.run.eval_record` reports as
            ``val_window_loss``).
        names: the domains, in the objective's order.
        objective: ``mean``, ``worst`` or ``domain:<name>``.

    Returns:
        For ``mean``: sqrt(sum_i se(d_i)^2) / k, with se(d_i) the standard error of the mean of
        domain i's per-window differences (domains' windows are independent of each other).
        For ``worst``: se(d) on ``own``'s worst domain (its choice taken as fixed, as
        :func:`objective_standard_error` does). For ``domain:<name>``: that domain's. None when
        either side lacks a domain's windows or their counts differ (no pairing possible).
    """
    diffs = []
    for n in names:
        a, b = own.get(n), other.get(n)
        if a is None or b is None or len(a) != len(b) or len(a) == 0:
            return None
        diffs.append(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))
    if objective == "mean":
        return float(np.sqrt(sum(_se_of_mean(d) ** 2 for d in diffs)) / len(diffs))
    if objective == "worst":
        worst = int(np.argmax([np.mean(own[n]) for n in names]))
        return _se_of_mean(diffs[worst])
    return _se_of_mean(diffs[list(names).index(objective.split(":", 1)[1])])


__all__ = ["objective_of", "objective_standard_error", "paired_standard_error"]
