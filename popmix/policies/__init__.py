"""Mixing policies: one small interface (:class:`MixingPolicy`), one module per method.

Pure NumPy: importing this package pulls in neither torch nor Ray.
"""

from __future__ import annotations

import inspect
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
from popmix.policies._doremi import DoReMiPolicy
from popmix.policies._mixture import MixturePolicy
from popmix.policies._schedule import SchedulePolicy
from popmix.policies._static import (
    FixedPolicy,
    ProportionalPolicy,
    StratifiedPolicy,
    TemperaturePolicy,
    temperature_weights,
)
from popmix.policies._unimax import UniMaxPolicy, unimax_allocation

#: registry: method name → policy class. Adding a method is one line here; ``popmix run`` and
#: ``popmix search`` (a trial's spec, its parameters, its exported weights) read it alone.
POLICIES: dict[str, type[MixingPolicy]] = {
    cls.name: cls
    for cls in (
        StratifiedPolicy,
        ProportionalPolicy,
        TemperaturePolicy,
        UniMaxPolicy,
        CooldownPolicy,
        FixedPolicy,
        MixturePolicy,
        SchedulePolicy,
        DoGEPolicy,
        AioliPolicy,
        DoReMiPolicy,
    )
}


def _policy_class(method: str) -> type[MixingPolicy]:
    if method not in POLICIES:
        raise PolicyError(f"unknown method {method!r}; choose one of: {', '.join(POLICIES)}")
    return POLICIES[method]


def vector_parameters(method: str) -> tuple[str, ...]:
    """The parameters of ``method`` that hold one number per domain (annotated
    ``Sequence[float]``, e.g. ``fixed``'s ``weights``): a search's trial spec keeps them as
    ``{domain: value}``."""
    cls = _policy_class(method)
    params = inspect.signature(cls.__init__).parameters
    return tuple(
        n for n in cls.parameter_names() if "Sequence[float]" in str(params[n].annotation)
    )


def learns_weights(method: str) -> bool:
    """Whether ``method`` learns its weights from what the loop measures (it overrides
    :meth:`MixingPolicy.update`): a search exports such a method's weights for a final run."""
    return _policy_class(method).update is not MixingPolicy.update


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
    cls = _policy_class(method)
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
    "DoReMiPolicy",
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
    "UniMaxPolicy",
    "build_policy",
    "effective_domains",
    "learns_weights",
    "loss_weights",
    "normalize",
    "softmax",
    "temperature_weights",
    "unimax_allocation",
    "vector_parameters",
]
