"""``searcher: pb2``: PB2, PBT whose explore step is a GP bandit over the searched bounds
(Ray's PB2, needs scikit-learn).

PB2 chooses a copied member's new values itself; the explorer only puts vectors back on the
simplex (above their floor) and clips the temperature schedule's scalars.
"""

from __future__ import annotations

from typing import Any

from popmix.config import ConfigError, Experiment
from popmix.records.trial import CONFIG_KEY
from popmix.tune.searchers.base import (
    Searcher,
    SeedGroup,
    TunerParts,
    exploiting,
    exploits,
    initial_population,
    seed_explorers,
    with_lineage,
)


class PB2(Searcher):
    """Ray's PB2 (:func:`popmix.tune.schedulers.make_pb2`) on a grid of the members, the
    baselines and the swarm's runs, each weight bounded by [floor, 1]."""

    name = "pb2"

    def check(self, exp: Experiment) -> None:
        try:
            import sklearn  # noqa: F401
        except ImportError:
            raise ConfigError(
                "searcher pb2 needs scikit-learn: pip install scikit-learn, or use pbt"
            ) from None

    def population_parts(self, group: SeedGroup) -> TunerParts:
        from popmix.tune.schedulers import make_pb2

        explorers = seed_explorers(group, perturb=False)
        members = initial_population(group, explorers)
        space = group.space
        bounds: dict[str, Any] = {}
        for key, spec in space.vectors().items():
            bounds[key] = {n: [spec.floor, 1.0] for n in group.names}
        if space.temperature is not None:
            bounds.update({k: list(b) for k, b in space.temperature.bounds().items()})
        settings = exploiting(group, explorers)
        scheduler = make_pb2(hyperparam_bounds={CONFIG_KEY: bounds}, **settings)
        return TunerParts.grid(members + group.fixed + group.later, with_lineage(scheduler, group))

    def record(self, exp: Experiment, lineage: dict[str, Any]) -> dict[str, Any]:
        return exploits(exp, lineage)
