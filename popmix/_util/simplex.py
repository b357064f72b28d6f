"""Projections onto the probability simplex, with a floor and per-domain caps (NumPy only;
used by the sampler, explore, the swarm and the export)."""

from __future__ import annotations

import numpy as np


def project_simplex(v: np.ndarray, total: float = 1.0) -> np.ndarray:
    """The Euclidean projection of ``v`` onto {x >= 0, Σ x = total}: x = max(v − θ, 0).

    Entries are shifted by one common θ, so a vector already on the set is returned as it is
    and a large entry is never rescaled away (sort-based algorithm, O(k log k)).
    """
    v = np.asarray(v, dtype=np.float64)
    u = np.sort(v)[::-1]
    excess = np.cumsum(u) - total
    ranks = np.arange(1, v.size + 1)
    support = u - excess / ranks > 0
    rho = ranks[support][-1]
    theta = excess[support][-1] / rho
    return np.maximum(v - theta, 0.0)


def project_box_simplex(v: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """The Euclidean projection of ``v`` onto {lower <= x <= upper, Σ x = 1}: x = clip(v − θ,
    lower, upper) for the one θ that makes the sum 1 (exact: the sum is piecewise linear in θ,
    with breakpoints v − lower and v − upper, so θ is interpolated on the segment that crosses
    1). ``upper`` may hold ``inf`` (no cap).

    Raises:
        ValueError: the set is empty (Σ lower > 1, Σ upper < 1, or some lower above its upper).
    """
    v = np.asarray(v, dtype=np.float64)
    lo = np.broadcast_to(np.asarray(lower, dtype=np.float64), v.shape)
    hi = np.broadcast_to(np.asarray(upper, dtype=np.float64), v.shape)
    if np.any(lo > hi) or lo.sum() > 1.0 + 1e-12 or hi.sum() < 1.0 - 1e-12:
        raise ValueError(
            f"no mixture has every weight in its bounds and sums to 1 (lower bounds sum to "
            f"{lo.sum():.6g}, upper to {hi.sum():.6g})"
        )
    finite_hi = np.isfinite(hi)
    points = np.concatenate([v - lo, (v - hi)[finite_hi]])
    # below every breakpoint each entry is at its upper bound or above lower + 1: sum >= 1
    points = np.sort(np.append(points, points.min() - 1.0))

    def total(theta: np.ndarray) -> np.ndarray:
        return np.clip(v[None, :] - theta[:, None], lo, hi).sum(axis=1)

    sums = total(points)  # non-increasing in theta
    j = int(np.nonzero(sums >= 1.0)[0][-1])
    if j == points.size - 1 or sums[j] == 1.0:
        theta = points[j]
    else:
        a, b, sa, sb = points[j], points[j + 1], sums[j], sums[j + 1]
        theta = a + (sa - 1.0) * (b - a) / (sa - sb)
    return np.clip(v - theta, lo, hi)


def epoch_caps(sizes: np.ndarray, budget_tokens: float, max_epochs: np.ndarray) -> np.ndarray:
    """The largest weight each domain may take so that a run of ``budget_tokens`` tokens
    passes over it at most ``max_epochs`` times: max_epochs_i · n_i / budget (``inf`` where
    ``max_epochs`` is ``inf``: no cap)."""
    sizes = np.asarray(sizes, dtype=np.float64)
    epochs = np.broadcast_to(np.asarray(max_epochs, dtype=np.float64), sizes.shape)
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(epochs), epochs * sizes / float(budget_tokens), np.inf)


def floor_project(
    w: np.ndarray, floor: float, caps: np.ndarray | None = None, fixed: np.ndarray | None = None
) -> np.ndarray:
    """Put ``w`` on the simplex with every entry at least ``floor`` (< 1/k), moving it least.

    Non-finite and negative entries count as 0, and ``w`` is first normalised to sum 1 (a
    perturbed weight vector is only defined up to scale). A vector that then meets the floor
    is returned unchanged (bit for bit when it already summed to 1); otherwise the smallest
    Euclidean move restores the floor: the entries below it are raised to it and the others
    lowered by one common amount. It never mixes with uniform, so repeated use does not pull a
    mixture toward stratified.

    With ``caps`` (the largest weight per domain, ``inf`` for none; see :func:`epoch_caps`)
    the set is {w >= floor, w <= caps, Σ w = 1} and a vector outside it moves to its nearest
    point there (:func:`project_box_simplex`). A domain whose cap is below the floor gets its
    cap as its floor: the cap is the hard limit.

    With ``fixed`` (a weight per domain, ``nan`` where the domain is searched; see
    :meth:`popmix.config.Experiment.weight_fixed`) each fixed domain's bounds are its weight,
    so it comes out at exactly that and the others share the rest, by the same projection.

    Raises:
        ValueError: the caps sum to less than 1 (the budget needs more repetition than they
            allow).
    """
    w = np.asarray(w, dtype=np.float64)
    w = np.where(np.isfinite(w) & (w > 0), w, 0.0)
    k = w.size
    if w.sum() <= 0:
        w = np.full(k, 1.0 / k)
    if abs(w.sum() - 1.0) > 1e-12:
        w = w / w.sum()
    pinned = np.zeros(k, dtype=bool) if fixed is None else np.isfinite(fixed)
    if (caps is None or not np.any(np.isfinite(caps))) and not pinned.any():
        if np.all(w >= floor):
            return w
        return floor + project_simplex(w - floor, 1.0 - floor * k)
    upper = np.full(k, np.inf) if caps is None else np.asarray(caps, dtype=np.float64)
    lower = np.minimum(floor, upper)
    if fixed is not None:
        upper = np.where(pinned, fixed, upper)
        lower = np.where(pinned, fixed, lower)
    if np.all(w >= lower) and np.all(w <= upper):
        return w
    return project_box_simplex(w, lower, upper)
