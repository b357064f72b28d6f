"""The trials of a search's Tuners beside the population: the baselines (and best-of-n's and
random's draws) and the swarm's runs of each seed group (:func:`seed_group`, what a searcher
is given), how many of a seed's trials run at once, and the Tuners' names.

NumPy only (no Ray): the searchers' tests build their groups here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from popmix.config import BEST_OF_N, RANDOM, Experiment, SearchSpace
from popmix.data.domains import DomainSet
from popmix.records.trial import TrialSpec
from popmix.tune.explore import Explorer
from popmix.tune.reference import group_methods
from popmix.tune.searchers import SeedGroup
from popmix.tune.swarm import run_specs


def baseline_specs(exp: Experiment, seed: int, names: list[str]) -> list[TrialSpec]:
    """The methods that run as single trials, with the experiment's parameters; best-of-n as
    one trial per draw it trains itself (see :meth:`Experiment.best_of_n_draws`). DoReMi is
    not among them: it runs once its seed's stratified trial has finished
    (:mod:`popmix.tune.reference`)."""
    specs = []
    for method in group_methods(exp):
        if method == RANDOM:
            continue  # its draws need the space: random_specs
        if method == BEST_OF_N:
            base = TrialSpec.single(exp, method, seed, names)
            specs += [base.replace(draw=k) for k in exp.best_of_n_draws()]
        else:
            specs.append(TrialSpec.single(exp, method, seed, names))
    return specs


def random_specs(
    exp: Experiment, space: SearchSpace, names: list[str], sizes: np.ndarray, seed: int
) -> list[TrialSpec]:
    """``random``'s draws of ``seed`` (:data:`popmix.config.RANDOM`): the population's members
    at their first values, drawn by an explorer seeded as the population's is
    (:func:`popmix.tune.searchers.base.seed_explorers`), so draw m holds what member m starts
    from; none when ``random`` is not run beside a population."""
    explorer = Explorer.of_seed(exp, space, names, sizes, seed, perturb=False)
    return [
        TrialSpec(RANDOM, seed, draw=m, params=explorer.initial_config(m))
        for m in range(exp.random_draws())
    ]


def trials_per_seed(exp: Experiment) -> int:
    """Trials of one seed that run at once in its Tuner (the swarm's: as many as it trains at
    once, ``search.swarm.parallel``)."""
    draws = [m for m in (BEST_OF_N, RANDOM) if m in group_methods(exp)]
    singles = len(group_methods(exp)) - len(draws)
    population = exp.search.population if exp.runs_population() else 0
    swarm = exp.search.swarm.concurrent(exp.search.population) if exp.runs_swarm() else 0
    return population + singles + len(exp.best_of_n_draws()) + exp.random_draws() + swarm


def seed_groups(seeds: tuple[int, ...], per_tuner: int) -> list[list[int]]:
    """The seeds in order, ``per_tuner`` to a Tuner."""
    return [list(seeds[i : i + per_tuner]) for i in range(0, len(seeds), per_tuner)]


def tuner_name(seeds: list[int]) -> str:
    """Tune's experiment folder of a Tuner: ``seed3``, or ``seed0_1_2`` for several seeds."""
    return "seed" + "_".join(str(s) for s in seeds)


def seed_group(
    exp: Experiment,
    space: SearchSpace,
    domains: DomainSet,
    seeds: list[int],
    lineage_dir: Path | None = None,
    progress: Any = None,
) -> SeedGroup:
    """The Tuner of ``seeds`` as its searcher sees it: the population's size, and the trials
    that are not the searcher's, the baselines first, the swarm's runs after them (they fill
    the slots the baselines and the population leave)."""
    names, sizes = domains.names, domains.sizes
    swarm = [r for s in seeds for r in run_specs(exp, s, names, sizes)] if exp.runs_swarm() else []
    return SeedGroup(
        exp=exp,
        space=space,
        names=names,
        sizes=sizes,
        seeds=seeds,
        population=exp.search.population if exp.runs_population() else 0,
        fixed=[
            b
            for seed in seeds
            for b in baseline_specs(exp, seed, names)
            + random_specs(exp, space, names, sizes, seed)
        ],
        later=swarm,
        lineage_dir=lineage_dir,
        on_exploit=None if progress is None else progress.exploit,
    )


__all__ = [
    "baseline_specs",
    "random_specs",
    "seed_group",
    "seed_groups",
    "trials_per_seed",
    "tuner_name",
]
