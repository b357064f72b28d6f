"""Cooldown: temperature sampling whose temperature is lowered during training."""

from __future__ import annotations

from typing import Any

import numpy as np

from popmix.policies._base import MixingPolicy, PolicyError
from popmix.policies._static import check_temperature, temperature_weights

SHAPES = ("step", "linear")


class CooldownPolicy(MixingPolicy):
    """Temperature schedule from ``t_start`` to ``t_end`` (Li et al. 2025, "Cooldown").

    ``shape="step"`` is the paper's schedule: T = t_start for steps < switch_frac·total_steps,
    then T = t_end (their runs: τ=5 for the first half, then τ=1). ``shape="linear"`` (an option
    the paper does not use) moves T linearly from t_start at step 0 to t_end at the switch
    point and holds it there.

    Args:
        t_start: temperature at the start (> 0).
        t_end: temperature after the switch (> 0).
        switch_frac: fraction of training at which T reaches t_end, in (0, 1].
        shape: ``"step"`` or ``"linear"``.
    """

    name = "cooldown"

    def __init__(
        self,
        sizes: np.ndarray,
        total_steps: int,
        seed: int = 0,
        t_start: float = 5.0,
        t_end: float = 1.0,
        switch_frac: float = 0.5,
        shape: str = "step",
    ) -> None:
        super().__init__(sizes, total_steps, seed)
        self.t_start = t_start
        self.t_end = t_end
        self.switch_frac = switch_frac
        self.shape = shape

    def validate(self) -> None:
        super().validate()
        check_temperature(self.t_start, "t_start")
        check_temperature(self.t_end, "t_end")
        if not (isinstance(self.switch_frac, (int, float)) and 0 < self.switch_frac <= 1):
            raise PolicyError(f"switch_frac must be in (0, 1], got {self.switch_frac!r}")
        if self.shape not in SHAPES:
            raise PolicyError(f"unknown cooldown shape {self.shape!r}; choose one of {SHAPES}")

    def temperature(self, step: int) -> float:
        switch = self.switch_frac * self.total_steps
        if self.shape == "step":
            return float(self.t_start if step < switch else self.t_end)
        frac = min(step / switch, 1.0)
        return float(self.t_start + frac * (self.t_end - self.t_start))

    def current_temperature(self, step: int) -> float | None:
        return self.temperature(step)

    def weights(self, step: int) -> np.ndarray:
        return temperature_weights(self.sizes, self.temperature(step))

    def hparams(self) -> dict[str, Any]:
        return {
            "t_start": float(self.t_start),
            "t_end": float(self.t_end),
            "switch_frac": float(self.switch_frac),
            "shape": self.shape,
        }
