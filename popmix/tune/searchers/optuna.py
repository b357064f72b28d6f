"""``searcher: optuna``: independent static runs whose values Optuna's TPE suggests, one after
another as trials finish (Ray's ``OptunaSearch``), optionally stopped early by ASHA.

TPE models one population, so an Optuna search runs one seed per Tuner. The baselines are
handed out first and the swarm's runs after the members (:class:`popmix.tune.schedulers.
WithFixedTrials`); none of their results reach TPE.
"""

from __future__ import annotations

import logging
from typing import Any

from popmix.records.trial import CONFIG_KEY, TrialSpec
from popmix.tune.searchers.base import Searcher, SeedGroup, TunerParts


class Optuna(Searcher):
    """Optuna's TPE over the space's vectors (log-uniform per weight, from the floor) and
    temperature bounds, one suggestion per member."""

    name = "optuna"

    def seeds_per_tuner(self, fit: int) -> int:
        return 1  # TPE models one population

    def logger_levels(self) -> dict[str, int]:
        # Optuna sets its own level when first imported: import it before ours is set.
        import optuna  # noqa: F401

        # It logs each study it creates at INFO; popmix prints its own progress.
        return {"optuna": logging.WARNING}

    def population_parts(self, group: SeedGroup) -> TunerParts:
        from ray import tune
        from ray.tune.search.optuna import OptunaSearch  # imports optuna: only when used

        from popmix.tune.schedulers import PopulationASHA, WithFixedTrials

        if len(group.seeds) != 1:
            raise ValueError("an Optuna search runs one seed per Tuner")
        (seed,) = group.seeds
        exp, space, s = group.exp, group.space, group.exp.search
        searched: dict[str, Any] = {}
        for key, spec in space.vectors().items():
            low = max(spec.floor, 1e-4)
            searched[key] = {n: tune.loguniform(low, 1.0) for n in group.names}
        if space.temperature is not None:
            for key, (lo, hi) in space.temperature.bounds().items():
                searched[key] = tune.uniform(lo, hi)
        optuna_space: Any = {CONFIG_KEY: searched}  # Tune's domains, which OptunaSearch takes
        optuna_search = OptunaSearch(
            space=optuna_space, metric="objective", mode="min", seed=s.seed * 1000 + seed
        )
        member = TrialSpec(exp.population_method, seed, member=0)
        searcher = WithFixedTrials(
            optuna_search, group.fixed, member, later=group.later, members=group.population
        )
        asha = None
        if s.asha:
            n_reports = exp.reports()
            asha = PopulationASHA(
                time_attr="training_iteration",
                max_t=n_reports,
                grace_period=max(1, n_reports // 4),
                reduction_factor=2,
            )
        # the searcher holds the space (see WithFixedTrials): the Tuner's is empty
        total = len(group.fixed) + len(group.later) + group.population
        return TunerParts({}, asha, searcher, total)
