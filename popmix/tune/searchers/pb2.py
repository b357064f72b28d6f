"""``searcher: pb2``: PB2, PBT whose explore step is a GP bandit over the searched bounds
(Ray's PB2, needs scikit-learn).

PB2 chooses a copied member's new values itself; the explorer only puts vectors back on the
simplex (above their floor) and clips the temperature schedule's scalars.
"""

from __future__ import annotations

import functools
from typing import Any

from popmix.config import ConfigError, Experiment
from popmix.records.trial import CONFIG_KEY
from popmix.tune.searchers import base


class PB2(base.Searcher):
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

    def population_parts(self, group: base.SeedGroup) -> base.TunerParts:
        from popmix.tune.schedulers import make_pb2

        space = group.space
        bounds: dict[str, Any] = {}
        for key, spec in space.vectors().items():
            bounds[key] = {n: [spec.floor, 1.0] for n in group.names}
        if space.temperature is not None:
            bounds.update({k: list(b) for k, b in space.temperature.bounds().items()})
        pb2 = functools.partial(
            make_pb2, group.exp.search.rounds, hyperparam_bounds={CONFIG_KEY: bounds}
        )
        return base.exploiting_parts(group, perturb=False, scheduler=pb2)

    def record(self, exp: Experiment, lineage: dict[str, Any]) -> dict[str, Any]:
        return base.exploits(exp, lineage)
