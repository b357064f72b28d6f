"""Sampling weights ↔ loss weights."""

from __future__ import annotations

import numpy as np


def loss_weights(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Loss weights w_i = p_i / q_i that make batches drawn from ``q`` train on mixture ``p``.

    With examples drawn from q and each example's loss multiplied by w_{domain}, the expected
    batch loss is Σ_i q_i w_i E[ℓ_i] = Σ_i p_i E[ℓ_i], the same objective (and the same expected
    gradient) as drawing from p directly (Li et al. 2025, Theorem 1). The variance is not the
    same: it grows with Σ_i p_i²/q_i (their Theorem 2).

    Args:
        p: target mixture, shape (n_domains,).
        q: sampling distribution of the batches, shape (n_domains,), positive wherever p is.
    """
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if p.shape != q.shape:
        raise ValueError(f"p and q must have the same shape, got {p.shape} and {q.shape}")
    if np.any((q <= 0) & (p > 0)):
        raise ValueError("q must be positive wherever p is: that domain would never be drawn")
    return np.divide(p, q, out=np.zeros_like(p), where=q > 0)
