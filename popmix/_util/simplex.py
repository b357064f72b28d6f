"""Projections onto the probability simplex (NumPy only; used by the sampler and by explore)."""

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


def floor_project(w: np.ndarray, floor: float) -> np.ndarray:
    """Put ``w`` on the simplex with every entry at least ``floor`` (< 1/k), moving it least.

    Non-finite and negative entries count as 0, and ``w`` is first normalised to sum 1 (a
    perturbed weight vector is only defined up to scale). A vector that then meets the floor
    is returned unchanged (bit for bit when it already summed to 1); otherwise the smallest
    Euclidean move restores the floor: the entries below it are raised to it and the others
    lowered by one common amount. It never mixes with uniform, so repeated use does not pull a
    mixture toward stratified.
    """
    w = np.asarray(w, dtype=np.float64)
    w = np.where(np.isfinite(w) & (w > 0), w, 0.0)
    k = w.size
    if w.sum() <= 0:
        return np.full(k, 1.0 / k)
    if abs(w.sum() - 1.0) > 1e-12:
        w = w / w.sum()
    if np.all(w >= floor):
        return w
    return floor + project_simplex(w - floor, 1.0 - floor * k)
