"""``searcher: swarm``: the swarm in the population's place.

Config reads the population's entry of ``methods`` as the swarm under this searcher
(:meth:`popmix.config.Experiment.runs_swarm`), so the search runs no members: the seed
group's trials are the baselines and the swarm's short runs, on a grid, and the swarm's
fitted optimum trains in a second Tuner (:mod:`popmix.tune.swarm`), as it does beside any
other searcher (``methods: [pbt, swarm]``).
"""

from __future__ import annotations

from popmix.tune.searchers.base import Searcher, SeedGroup, TunerParts


class Swarm(Searcher):
    """No members of its own: the swarm's runs are the group's later trials."""

    name = "swarm"

    def population_parts(self, group: SeedGroup) -> TunerParts:
        return TunerParts.grid(group.fixed + group.later)
