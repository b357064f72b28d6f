"""Replay a piecewise-constant weight schedule (PBT's best member, DoGE's averaged weights)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from popmix.policies._base import MixingPolicy, PolicyError, normalize
from popmix.policies._mixture import check_vector


class SchedulePolicy(MixingPolicy):
    """Weights that change at given steps: at step t, the last point with ``step <= t`` applies.

    This is how ``popmix run --weights-from best_schedule.json`` replays what a search found.
    Steps are in the replaying run's own steps; a schedule learned over a different number of
    steps is rescaled by the caller.

    Args:
        points: ``[{"step": int, "weights": [...], "loss_weights": [...] (optional)}, ...]``
            in increasing step order; the first point applies from step 0.
    """

    name = "schedule"

    def __init__(
        self,
        sizes: np.ndarray,
        total_steps: int,
        seed: int = 0,
        points: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        super().__init__(sizes, total_steps, seed)
        self.points: Sequence[Mapping[str, Any]] = points or ()

    def validate(self) -> None:
        super().validate()
        if not self.points:
            raise PolicyError("a schedule needs at least one point {step, weights}")
        last = -1
        for p in self.points:
            if not isinstance(p, Mapping) or "step" not in p or "weights" not in p:
                raise PolicyError(f"schedule points need 'step' and 'weights', got {p!r}")
            if not isinstance(p["step"], int) or p["step"] <= last:
                raise PolicyError(
                    f"schedule steps must be increasing whole numbers >= 0, got {p['step']!r}"
                )
            last = p["step"]
            check_vector(p["weights"], self.n_domains, "weights")
            if p.get("loss_weights") is not None:
                check_vector(p["loss_weights"], self.n_domains, "loss_weights")

    def _point(self, step: int) -> Mapping[str, Any]:
        steps = [p["step"] for p in self.points]
        i = max(0, int(np.searchsorted(steps, step, side="right")) - 1)
        return self.points[i]

    def weights(self, step: int) -> np.ndarray:
        return normalize(self._point(step)["weights"])

    def loss_multipliers(self, step: int) -> np.ndarray | None:
        lw = self._point(step).get("loss_weights")
        return None if lw is None else self.n_domains * normalize(lw)

    def hparams(self) -> dict[str, Any]:
        return {"n_points": len(self.points)}
