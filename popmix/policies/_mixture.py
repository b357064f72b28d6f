"""The mixture a search member follows: what PBT, PB2 and Optuna mutate between reports."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from popmix.policies._base import MixingPolicy, PolicyError, normalize
from popmix.policies._cooldown import CooldownPolicy


def check_vector(value: Any, n_domains: int, what: str) -> np.ndarray:
    """A non-negative, finite vector of one entry per domain with a positive sum."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise PolicyError(f"{what} must be numbers, got {value!r}") from None
    if arr.ndim != 1 or arr.size != n_domains:
        raise PolicyError(
            f"got {arr.size} {what} for {n_domains} domains: pass exactly one per domain"
        )
    if not np.all(np.isfinite(arr)) or np.any(arr < 0) or arr.sum() <= 0:
        raise PolicyError(f"{what} must be finite, >= 0 and sum to a positive number: {value!r}")
    return arr


class MixturePolicy(MixingPolicy):
    """Sampling weights or a temperature schedule, plus optional per-domain loss weights.

    Every value is a hyperparameter (PBT changes them between reports by rebuilding the policy),
    so there is no state. Sampling follows ``sample_weights`` when given, else the temperature
    schedule t_start → t_end (Cooldown's form) when ``t_start`` is given, else stratified.
    ``loss_weights`` (renormalised to the simplex) scale each domain's loss by k · λ_i, so
    uniform loss weights leave the loss unchanged.

    Args:
        sample_weights: non-negative sampling weights, one per domain (renormalised).
        loss_weights: non-negative loss weights, one per domain (renormalised).
        t_start, t_end, switch_frac, shape: the temperature schedule (see CooldownPolicy);
            ``t_end`` defaults to ``t_start`` (a constant temperature).
    """

    name = "mixture"

    def __init__(
        self,
        sizes: np.ndarray,
        total_steps: int,
        seed: int = 0,
        sample_weights: Sequence[float] | None = None,
        loss_weights: Sequence[float] | None = None,
        t_start: float | None = None,
        t_end: float | None = None,
        switch_frac: float = 0.5,
        shape: str = "step",
    ) -> None:
        super().__init__(sizes, total_steps, seed)
        self.sample_weights = sample_weights
        self.loss_weights = loss_weights
        self.t_start = t_start
        self.t_end = t_end
        self.switch_frac = switch_frac
        self.shape = shape

    def validate(self) -> None:
        super().validate()
        if self.sample_weights is not None:
            if self.t_start is not None:
                raise PolicyError(
                    "give either sample_weights or a temperature schedule (t_start), not both"
                )
            check_vector(self.sample_weights, self.n_domains, "sample_weights")
        if self.loss_weights is not None:
            check_vector(self.loss_weights, self.n_domains, "loss_weights")
        if self.t_start is not None:
            self._schedule().validate()  # the schedule is Cooldown's; so are its checks

    def _schedule(self) -> CooldownPolicy:
        assert self.t_start is not None  # only called for a temperature schedule
        t_end = self.t_start if self.t_end is None else self.t_end
        return CooldownPolicy(
            self.sizes,
            self.total_steps,
            self.seed,
            self.t_start,
            t_end,
            self.switch_frac,
            self.shape,
        )

    def weights(self, step: int) -> np.ndarray:
        if self.sample_weights is not None:
            return normalize(self.sample_weights)
        if self.t_start is not None:
            return self._schedule().weights(step)
        return np.full(self.n_domains, 1.0 / self.n_domains)

    def loss_multipliers(self, step: int) -> np.ndarray | None:
        if self.loss_weights is None:
            return None
        return self.n_domains * normalize(self.loss_weights)

    def current_temperature(self, step: int) -> float | None:
        if self.sample_weights is None and self.t_start is not None:
            return self._schedule().temperature(step)
        return None

    def hparams(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.sample_weights is not None:
            out["sample_weights"] = normalize(self.sample_weights).tolist()
        if self.loss_weights is not None:
            out["loss_weights"] = normalize(self.loss_weights).tolist()
        if self.t_start is not None:
            out.update(
                t_start=float(self.t_start),
                switch_frac=float(self.switch_frac),
                t_end=float(self.t_start if self.t_end is None else self.t_end),
                shape=self.shape,
            )
        return out
