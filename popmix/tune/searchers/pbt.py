"""``searcher: pbt``: population-based training, Ray's PBT over the population only.

Every member starts from the space's initial population (:class:`popmix.tune.explore.Explorer`)
and trains; every ``search.perturbation_interval`` reports the bottom ``quantile_fraction`` of
a seed's members copy a member of its top (when it leads by more than the exploit margin),
then explore: vectors are perturbed in log space by the explorer, the temperature schedule's
scalars by Ray's own mutation (then clipped by the explorer).
"""

from __future__ import annotations

import functools
from typing import Any

from popmix.config import Experiment
from popmix.records.trial import CONFIG_KEY
from popmix.tune.searchers import base


class PBT(base.Searcher):
    """Ray's PBT (:func:`popmix.tune.schedulers.make_pbt`: in synchronous rounds or Ray's
    asynchronous rule, ``search.rounds``) on a grid of the members, the baselines and the
    swarm's runs."""

    name = "pbt"

    def population_parts(self, group: base.SeedGroup) -> base.TunerParts:
        from ray import tune

        from popmix.tune.schedulers import make_pbt

        # Vectors are explored by the Explorer only; scalars by Ray, then clipped by it.
        mutations: dict[str, Any] = {}
        if group.space.temperature is not None:
            scalars = group.space.temperature.bounds().items()
            mutations = {CONFIG_KEY: {k: tune.uniform(lo, hi) for k, (lo, hi) in scalars}}
        pbt = functools.partial(
            make_pbt,
            group.exp.search.rounds,
            hyperparam_mutations=mutations,
            resample_probability=group.exp.search.resample_probability,
        )
        return base.exploiting_parts(group, perturb=True, scheduler=pbt)

    def record(self, exp: Experiment, lineage: dict[str, Any]) -> dict[str, Any]:
        return base.exploits(exp, lineage)
