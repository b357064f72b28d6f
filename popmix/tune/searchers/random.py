"""``searcher: random``: static mixtures drawn around the prior, never exploited or explored: the
no-learning control beside best-of-n.

Each seed's ``search.population`` members start where PBT's do (the space's initial population,
:class:`popmix.tune.explore.Explorer`, seeded by (``search.seed``, the seed): member 0 at the
space's named start, the others drawn around it, or each from the space's Dirichlet) and keep
their values for the whole run; the best on validation is reported on test, at the cost of
every member. Beside PBT (the same draw, then exploited and explored) it measures what PBT's
search adds to its draw; beside best-of-n (n stratified runs on other seeds), what drawing
mixtures adds to drawing seeds.
"""

from __future__ import annotations

from popmix.tune.searchers import base


class Random(base.Searcher):
    """The members on a grid beside the other trials, with no scheduler: nothing copies or
    explores."""

    name = "random"

    def population_parts(self, group: base.SeedGroup) -> base.TunerParts:
        members = base.initial_population(group, base.seed_explorers(group, perturb=False))
        return base.TunerParts.grid(members + group.fixed + group.later)
