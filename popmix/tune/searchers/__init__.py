"""The population searchers, one module each, and their one registry (:data:`SEARCHERS`).

The registry is the only list of searcher names: ``search.searcher``'s allowed values
(:func:`searcher_for`, which every command that runs or checks a search calls) and the CLI's
``--searcher`` choices come from it, and ``tests/tune/searchers/test_conformance.py`` runs
over it. Adding a searcher is its module (a :class:`Searcher`, see
:mod:`popmix.tune.searchers.base`) and its line here.

Why config holds no copy of the names: config is popmix's bottom layer and cannot import
this one, which builds on the tune layer's explorer and schedulers. A list of names in config
would be a second registry to keep in step; a hook installed from here would make config's
answer depend on what had been imported. So config types ``search.searcher`` as a string and
checks everything else about the experiment, and :func:`searcher_for`, here, refuses an
unknown name in one line, before Ray starts.
"""

from __future__ import annotations

from popmix.config import ConfigError, Experiment
from popmix.tune.searchers.base import Searcher, SeedGroup, TunerParts
from popmix.tune.searchers.optuna import Optuna
from popmix.tune.searchers.pb2 import PB2
from popmix.tune.searchers.pbt import PBT
from popmix.tune.searchers.random import Random
from popmix.tune.searchers.swarm import Swarm

#: registry: ``search.searcher`` → its searcher
SEARCHERS: dict[str, Searcher] = {s.name: s for s in (PBT(), PB2(), Optuna(), Swarm(), Random())}


def searcher_for(exp: Experiment) -> Searcher:
    """The experiment's searcher.

    Raises:
        ConfigError: ``search.searcher`` names no registered searcher.
    """
    name = exp.search.searcher
    if name not in SEARCHERS:
        where = exp.source or "experiment"
        raise ConfigError(
            f"{where}: unknown search.searcher {name!r}; choose one of {', '.join(SEARCHERS)}"
        )
    return SEARCHERS[name]


__all__ = ["SEARCHERS", "SeedGroup", "Searcher", "TunerParts", "searcher_for"]
