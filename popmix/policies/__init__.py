"""Mixing policies: one small interface (:class:`MixingPolicy`), one module per method.

Pure NumPy: importing this package pulls in neither torch nor Ray.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from popmix.policies._aioli import AioliPolicy
from popmix.policies._base import (
    DomainSignals,
    GradientNeeds,
    LoopNeeds,
    MixingPolicy,
    PolicyError,
    effective_domains,
    normalize,
    softmax,
)
from popmix.policies._convert import loss_weights
from popmix.policies._cooldown import CooldownPolicy
from popmix.policies._doge import DoGEPolicy
from popmix.policies._mixture import MixturePolicy
from popmix.policies._schedule import SchedulePolicy
from popmix.policies._static import (
    FixedPolicy,
    ProportionalPolicy,
    StratifiedPolicy,
    TemperaturePolicy,
    temperature_weights,
)

#: registry: method name → policy class. Adding a method is one line here.
POLICIES: dict[str, type[MixingPolicy]] = {
    cls.name: cls
    for cls in (
        StratifiedPolicy,
        ProportionalPolicy,
        TemperaturePolicy,
        CooldownPolicy,
        FixedPolicy,
        MixturePolicy,
        SchedulePolicy,
        DoGEPolicy,
        AioliPolicy,
    )
}


def build_policy(
    method: str,
    sizes: np.ndarray,
    total_steps: int,
    params: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> MixingPolicy:
    """Build and validate the policy registered as ``method``.

    Raises:
        PolicyError: unknown method, unknown parameter, or a parameter out of range.
    """
    if method not in POLICIES:
        raise PolicyError(f"unknown method {method!r}; choose one of: {', '.join(POLICIES)}")
    cls = POLICIES[method]
    try:
        policy = cls(np.asarray(sizes), total_steps, seed, **dict(params or {}))
    except TypeError as e:
        raise PolicyError(f"bad parameter for method {method!r}: {e}") from None
    policy.validate()
    return policy


__all__ = [
    "POLICIES",
    "AioliPolicy",
    "DoGEPolicy",
    "CooldownPolicy",
    "DomainSignals",
    "GradientNeeds",
    "LoopNeeds",
    "FixedPolicy",
    "MixingPolicy",
    "MixturePolicy",
    "SchedulePolicy",
    "PolicyError",
    "ProportionalPolicy",
    "StratifiedPolicy",
    "TemperaturePolicy",
    "build_policy",
    "effective_domains",
    "loss_weights",
    "normalize",
    "softmax",
    "temperature_weights",
]
