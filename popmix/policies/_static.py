"""Static mixtures: stratified, proportional, temperature and user-given fixed weights."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from popmix.policies._base import MixingPolicy, PolicyError, softmax


def temperature_weights(sizes: np.ndarray, temperature: float) -> np.ndarray:
    """p_i ∝ n_i^(1/T), computed in log space (T=1: proportional; T→∞: stratified)."""
    return softmax(np.log(np.asarray(sizes, dtype=np.float64)) / temperature)


def check_temperature(value: float, what: str = "temperature") -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise PolicyError(
            f"{what} must be a positive number, got {value!r} (T=1 is proportional, large T "
            "approaches stratified)"
        )


class StratifiedPolicy(MixingPolicy):
    """Uniform over domains: p_i = 1/k."""

    name = "stratified"

    def weights(self, step: int) -> np.ndarray:
        return np.full(self.n_domains, 1.0 / self.n_domains)


class ProportionalPolicy(MixingPolicy):
    """Natural mixture: p_i = n_i / Σ_j n_j (sizes in training tokens)."""

    name = "proportional"

    def weights(self, step: int) -> np.ndarray:
        return self.sizes / self.sizes.sum()


class TemperaturePolicy(MixingPolicy):
    """Temperature sampling, p_i ∝ n_i^(1/T) (Li et al. 2025, eq. 1).

    Args:
        temperature: T > 0.
    """

    name = "temperature"

    def __init__(
        self, sizes: np.ndarray, total_steps: int, seed: int = 0, temperature: float = 3.0
    ) -> None:
        super().__init__(sizes, total_steps, seed)
        self.temperature = temperature

    def validate(self) -> None:
        super().validate()
        check_temperature(self.temperature)

    def weights(self, step: int) -> np.ndarray:
        return temperature_weights(self.sizes, self.temperature)

    def current_temperature(self, step: int) -> float | None:
        return float(self.temperature)

    def hparams(self) -> dict[str, Any]:
        return {"temperature": float(self.temperature)}


class FixedPolicy(MixingPolicy):
    """User-given weights, renormalised to sum to 1 (any non-negative vector with a positive sum).

    This is also the policy PBT mutates between reports: the trainable rebuilds it with the
    explored weights, and it has no state to carry over.

    Args:
        weights: one non-negative number per domain.
    """

    name = "fixed"

    def __init__(
        self,
        sizes: np.ndarray,
        total_steps: int,
        seed: int = 0,
        weights: Sequence[float] | None = None,
    ) -> None:
        super().__init__(sizes, total_steps, seed)
        self.fixed_weights = weights

    def validate(self) -> None:
        super().validate()
        w = self.fixed_weights
        if w is None:
            raise PolicyError(
                "method 'fixed' needs weights: pass --weights w1,w2,... (one per domain)"
            )
        try:
            arr = np.asarray(w, dtype=np.float64)
        except (TypeError, ValueError):
            raise PolicyError(f"weights must be numbers, got {w!r}") from None
        if arr.ndim != 1 or arr.size != self.n_domains:
            raise PolicyError(
                f"got {arr.size} weights for {self.n_domains} domains: pass exactly one weight "
                "per domain"
            )
        if not np.all(np.isfinite(arr)) or np.any(arr < 0):
            raise PolicyError(f"weights must be finite and non-negative, got {arr.tolist()}")
        if arr.sum() <= 0:
            raise PolicyError(f"weights must sum to a positive number, got {arr.tolist()}")

    def weights(self, step: int) -> np.ndarray:
        arr = np.asarray(self.fixed_weights, dtype=np.float64)
        return arr / arr.sum()

    def hparams(self) -> dict[str, Any]:
        return {"weights": [float(x) for x in self.weights(0)]}
