"""A trial's spec: which method, seed and population slot, and the method's parameters.

The spec is a document: Tune writes it as each trial's config (``params.json``, and beside
every report in ``result.json``), and popmix reads it back from there (the report's labels,
TensorBoard's run folders) without Tune. A trial's config in Ray is
``{"spec": {"method": ..., "seed": ..., "member": ..., **params}}``: the method's parameters
sit next to the fixed keys, so PBT's ``hyperparam_mutations``, PB2's bounds and popmix's
explore step change a searched value where Ray expects it (``config["spec"][key]``).
:meth:`TrialSpec.to_config` and :meth:`TrialSpec.from_config` convert; nothing else reads or
writes that dict. A per-domain vector is ``{domain: weight}`` (so PB2 can
bound each weight and TensorBoard's HParams shows it) and becomes a list in the domains' order
only when the policy is built.

Every trial builds its policy through the one registry (:func:`popmix.policies.build_policy`):
a baseline is the policy registered under its method, a population member the ``mixture``
policy over its searched values. NumPy only (no torch, no Ray).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from popmix.config import (
    BEST_OF_N,
    BEST_OF_N_POLICY,
    CONFIRM_FINAL,
    CONFIRM_SCHEDULE,
    RANDOM,
    SWARM,
    SWARM_RUN,
    Experiment,
)
from popmix.policies import MixingPolicy, build_policy, vector_parameters

#: the trial config's one top-level key.
CONFIG_KEY = "spec"
#: the spec's own keys in the config; every other key is one of the method's parameters.
FIXED_KEYS = ("method", "seed", "member", "draw", "steps", "reference")
#: the policy every population member runs, whatever the searcher.
MEMBER_POLICY = "mixture"
#: methods whose label is not their policy's name: best-of-n's runs, and ``popmix confirm``'s
#: replays of the best member (its schedule step by step, its final weights held static)
METHOD_POLICIES = {
    BEST_OF_N: BEST_OF_N_POLICY,
    CONFIRM_SCHEDULE: "schedule",
    CONFIRM_FINAL: "fixed",
    # the swarm's runs and its predicted optimum: static mixtures (popmix.tune.swarm)
    SWARM_RUN: "fixed",
    SWARM: "fixed",
    # random's draws: a population member's first values, held (never exploited)
    RANDOM: MEMBER_POLICY,
}


@dataclass(frozen=True)
class TrialSpec:
    """One trial: which method, seed and population slot, and the method's parameters.

    Args:
        method: a registered policy for a single trial (a baseline); for a population member
            the searcher's name (``pbt``, ``pb2``, ``optuna``), its label in every output.
        seed: the run's seed (model initialisation, sampler, the policy's own randomness).
        member: the population slot, or -1 for a single trial.
        draw: which of best-of-n's runs (0 trains with ``seed`` itself, like the search's
            stratified trial; draw k > 0 with an independent seed derived from both); for a
            ``swarm-run``, its place in the swarm (every swarm run trains with ``seed``).
        steps: the trial's own ``train.steps`` (a swarm run's short budget); None: the
            experiment's.
        reference: the checkpoint of the frozen reference model a DoReMi trial scores its
            batches against (its seed's stratified trial), relative to the experiment
            folder; None for every other trial.
        params: a baseline's parameters (those the experiment gives; the rest are the policy's
            defaults), or a member's searched values (``sample_weights``, ``loss_weights``,
            ``t_start``, ``t_end``, ``switch_frac``); per-domain vectors as ``{domain: weight}``.
    """

    method: str
    seed: int = 0
    member: int = -1
    params: Mapping[str, Any] = field(default_factory=dict)
    draw: int = 0
    steps: int | None = None
    reference: str | None = None

    def __post_init__(self) -> None:
        params = copy.deepcopy(dict(self.params or {}))  # a copy: no caller's dict leaks in
        clash = [k for k in params if k in FIXED_KEYS]
        if clash:
            raise ValueError(f"a trial parameter may not be named {clash[0]!r}")
        object.__setattr__(self, "params", params)
        object.__setattr__(self, "seed", int(self.seed))
        object.__setattr__(self, "member", int(self.member))
        object.__setattr__(self, "draw", int(self.draw))
        if self.steps is not None:
            object.__setattr__(self, "steps", int(self.steps))

    # -- Ray's config dict ----------------------------------------------------------------------
    def to_config(self) -> dict[str, Any]:
        """Ray's trial config (a fresh dict: Ray mutates it)."""
        spec = {"method": self.method, "seed": self.seed, "member": self.member}
        if self.draw:
            spec["draw"] = self.draw
        if self.steps is not None:
            spec["steps"] = self.steps
        if self.reference is not None:
            spec["reference"] = self.reference
        return {CONFIG_KEY: {**spec, **copy.deepcopy(dict(self.params))}}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> TrialSpec:
        """The spec of a trial config, as Ray (and PBT's mutations) left it."""
        spec = dict(config[CONFIG_KEY])
        return cls(
            method=spec.pop("method"),
            seed=spec.pop("seed", 0),
            member=spec.pop("member", -1),
            draw=spec.pop("draw", 0),
            steps=spec.pop("steps", None),
            reference=spec.pop("reference", None),
            params=spec,
        )

    # -- meaning ------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The trial's one name within its seed, in every output (its TensorBoard run folder
        under ``seed<S>/``, the progress lines, the report's legends): ``<method>`` for a
        baseline, ``<method>-member<M>`` for a population member, ``best-of-n-draw<D>`` for
        best-of-n's runs (draw 0 too: it runs where stratified does not) and ``random``'s,
        ``swarm-run<D>`` for the swarm's runs."""
        if self.is_member:
            return f"{self.method}-member{self.member}"
        if self.method in (BEST_OF_N, RANDOM):
            return f"{self.method}-draw{self.draw}"
        if self.method == SWARM_RUN:
            return f"{self.method}{self.draw}"
        return self.method

    @property
    def is_member(self) -> bool:
        """A population member (searched, exploited) rather than a single trial."""
        return self.member >= 0

    @property
    def policy(self) -> str:
        """The registered policy this trial runs."""
        if self.is_member:
            return MEMBER_POLICY
        return METHOD_POLICIES.get(self.method, self.method)

    @property
    def run_seed(self) -> int:
        """The seed the run trains with: ``seed``, or for best-of-n's draw k > 0 one derived
        from (seed, k), so each draw has its own model initialisation and batches while the
        validation and test windows (fixed by the data) stay those of every method. Every
        swarm run trains with ``seed``: the swarm's mixtures are compared on one model
        initialisation, as its optimum is trained, and so does each of ``random``'s draws, as
        the population member whose first values it holds does."""
        if self.draw == 0 or self.method in (SWARM_RUN, RANDOM):
            return self.seed
        return int(np.random.SeedSequence([self.seed, self.draw]).generate_state(1)[0] >> 1)

    def searched(self) -> dict[str, Any]:
        """A member's searched values (what an exploit changes); empty for a single trial."""
        return copy.deepcopy(dict(self.params)) if self.is_member else {}

    def policy_params(self, names: Sequence[str], shape: str = "step") -> dict[str, Any]:
        """The policy's keyword arguments: vectors as lists in ``names``' order; a member's
        (or a ``random`` draw's) temperature schedule gets the search space's ``shape``."""
        vectors = vector_parameters(self.policy)
        out: dict[str, Any] = {}
        for key, value in self.params.items():
            if key in vectors and isinstance(value, Mapping):
                out[key] = [float(value[n]) for n in names]
            else:
                out[key] = value
        if self.policy == MEMBER_POLICY and out.get("t_start") is not None:
            out["shape"] = shape
        return out

    def build_policy(
        self, sizes: np.ndarray, names: Sequence[str], total_steps: int, shape: str = "step"
    ) -> MixingPolicy:
        """The trial's policy, through the one registry.

        Raises:
            PolicyError: a parameter the policy rejects.
        """
        return build_policy(
            self.policy, sizes, total_steps, self.policy_params(names, shape), self.run_seed
        )

    def replace(self, **changes: Any) -> TrialSpec:
        return dataclasses.replace(self, **changes)

    # -- from an experiment ---------------------------------------------------------------------
    @classmethod
    def single(cls, exp: Experiment, method: str, seed: int, names: Sequence[str]) -> TrialSpec:
        """A method run as a single trial (a baseline) with the experiment's parameters; a
        per-domain vector parameter (``fixed``'s ``weights``) becomes ``{domain: weight}``."""
        params = exp.method_params(method)
        for key in vector_parameters(METHOD_POLICIES.get(method, method)):
            value = params.get(key)
            if isinstance(value, (list, tuple)) and len(value) == len(names):
                params[key] = {n: float(v) for n, v in zip(names, value)}
        return cls(method=method, seed=seed, member=-1, params=params)


__all__ = ["CONFIG_KEY", "FIXED_KEYS", "MEMBER_POLICY", "METHOD_POLICIES", "TrialSpec"]
