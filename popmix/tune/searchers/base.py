"""The searcher seam: what a population searcher gives a search, and what it shares.

A searcher decides how a seed group's population is searched, and nothing else: the search
(:mod:`popmix.tune.search`) resolves the experiment, builds each seed group's other trials
(the baselines, the swarm's runs), runs the Tuner (:func:`popmix.tune.runner.run_tuner`) and
writes the outputs. A :class:`Searcher` answers four questions:

- what it checks before Ray starts (:meth:`Searcher.check`: a library it needs);
- how it builds its Tuner's parts (:meth:`Searcher.population_parts`, the one abstract
  method: scheduler, search algorithm, param space and number of samples);
- how many seeds share a Tuner (:meth:`Searcher.seeds_per_tuner`);
- what it records in ``summary.json`` (:meth:`Searcher.record`), and which loggers it quietens
  (:meth:`Searcher.logger_levels`).

Importing this module (and the registry, :mod:`popmix.tune.searchers`) pulls in neither Ray
nor torch: ``popmix check`` and the CLI's ``--searcher`` choices read the registry. Ray's
schedulers and searchers are imported when a searcher builds its parts.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from popmix.config import Experiment, SearchSpace
from popmix.records.trial import CONFIG_KEY, TrialSpec
from popmix.tune.explore import Explorer
from popmix.tune.summarize import exploit_counts


@dataclass(frozen=True)
class TunerParts:
    """What a seed group's Tuner is given: its ``param_space``, and ``TuneConfig``'s
    ``scheduler``, ``search_alg`` and ``num_samples``."""

    param_space: dict[str, Any]
    scheduler: Any = None
    search_alg: Any = None
    num_samples: int = 1

    @classmethod
    def grid(cls, trials: Sequence[TrialSpec], scheduler: Any = None) -> TunerParts:
        """One grid point per trial, each a complete spec, in the order given (every trial
        exists from the start, as PBT needs for its population)."""
        from ray import tune

        specs = [t.to_config()[CONFIG_KEY] for t in trials]
        return cls({CONFIG_KEY: tune.grid_search(specs)}, scheduler)


@dataclass(frozen=True)
class SeedGroup:
    """One Tuner's seeds and the trials the searcher runs its population beside.

    Args:
        exp: the experiment.
        space: the searched space.
        names: the domains, in order.
        sizes: each domain's size (the priors' n_i).
        seeds: the seeds this Tuner runs.
        population: members per seed (0: this search runs no population).
        fixed: the baselines (and best-of-n's draws): they start with the population.
        later: the swarm's runs: they fill the slots the other trials leave.
        lineage_dir: the folder of ``lineage-seed<S>.jsonl`` (exploit decisions).
        on_exploit: told each exploit decision (the progress line), or None.
    """

    exp: Experiment
    space: SearchSpace
    names: list[str]
    sizes: np.ndarray
    seeds: list[int]
    population: int
    fixed: list[TrialSpec] = field(default_factory=list)
    later: list[TrialSpec] = field(default_factory=list)
    lineage_dir: Path | None = None
    on_exploit: Callable[[dict[str, Any]], None] | None = None


class Searcher(abc.ABC):
    """How a search's population is searched; one instance per registered name.

    Subclasses set :attr:`name` (the ``search.searcher`` value, the population's method label
    in every output) and implement :meth:`population_parts`; the other hooks have defaults.
    """

    #: ``search.searcher``'s value, and the population's method label (``pbt-member0``)
    name: ClassVar[str]

    def check(self, exp: Experiment) -> None:
        """Fail in one line, before Ray starts, on what this searcher cannot run (default:
        nothing to check).

        Raises:
            ConfigError: what is missing, and the fix.
        """
        return None

    def tuner_parts(self, group: SeedGroup) -> TunerParts:
        """The Tuner's parts for ``group``: without a population, its other trials on a grid
        (no searcher is involved); else :meth:`population_parts`."""
        if not group.population:
            return TunerParts.grid(group.fixed + group.later)
        return self.population_parts(group)

    @abc.abstractmethod
    def population_parts(self, group: SeedGroup) -> TunerParts:
        """The parts of a Tuner that runs ``group.population`` members per seed beside the
        group's fixed trials (first) and later trials (last): every one of them, once."""

    def seeds_per_tuner(self, fit: int) -> int:
        """How many seeds share a Tuner when ``fit`` seeds' trials fit the cluster at once
        (default: all that fit)."""
        return fit

    def record(self, exp: Experiment, lineage: dict[str, Any]) -> dict[str, Any]:
        """What this searcher adds to ``summary.json``, from the search's ``lineage.json``
        content (default: nothing)."""
        return {}

    def logger_levels(self) -> dict[str, int]:
        """Loggers quietened while the search runs (logger name -> level; default: none)."""
        return {}


def seed_explorers(group: SeedGroup, perturb: bool) -> dict[int, Explorer]:
    """Each seed's :class:`Explorer` (its initial population and its explore step), seeded by
    (``search.seed``, the seed): a seed draws the same values in any Tuner."""
    return {
        seed: Explorer.of_seed(group.exp, group.space, group.names, group.sizes, seed, perturb)
        for seed in group.seeds
    }


def initial_population(group: SeedGroup, explorers: dict[int, Explorer]) -> list[TrialSpec]:
    """Each seed's members at their first configuration, seed by seed."""
    method = group.exp.population_method
    return [
        TrialSpec(method, seed, member=m, params=explorers[seed].initial_config(m))
        for seed in group.seeds
        for m in range(group.population)
    ]


class SeedExplorers:
    """PBT's explore step for a Tuner that runs several seeds: each seed's members are
    explored by that seed's own :class:`Explorer` (and so draw the same values as in a Tuner
    of their own)."""

    def __init__(self, by_seed: dict[int, Explorer]) -> None:
        self.by_seed = by_seed

    def __call__(self, config: dict[str, Any]) -> dict[str, Any]:
        return self.by_seed[int(config[CONFIG_KEY]["seed"])](config)

    def reseed(self, seed: int, key: list[int]) -> None:
        """Seed ``seed``'s explorer for one decision (:meth:`Explorer.reseed`)."""
        if seed in self.by_seed:
            self.by_seed[seed].reseed(key)


def exploiting_parts(group: SeedGroup, perturb: bool, scheduler: Callable[..., Any]) -> TunerParts:
    """PBT's and PB2's parts: each seed's initial population first on the grid, then the
    group's other trials, under ``scheduler(**settings)`` (Ray's PBT or PB2 given the settings
    they share: when members are compared, who copies whom, how a copy is explored by each
    seed's explorer, ``perturb``: whether it perturbs vectors itself); its exploit decisions
    logged (``lineage-seed<S>.jsonl``), made only beyond ``search.exploit_margin``, and told to
    ``group.on_exploit``."""
    explorers = seed_explorers(group, perturb)
    members = initial_population(group, explorers)
    s = group.exp.search
    made = scheduler(
        time_attr="training_iteration",
        perturbation_interval=s.perturbation_interval,
        burn_in_period=burn_in_reports(group.exp),
        quantile_fraction=s.quantile_fraction,
        custom_explore_fn=SeedExplorers(explorers),
    )
    made.lineage_dir = group.lineage_dir
    made.draw_seed = s.seed
    made.margin_setting = s.exploit_margin
    made.on_exploit = group.on_exploit
    made.objective = s.objective
    made.fitness = s.fitness
    made.fitness_reads = s.fitness_reads
    made.fitness_horizon = group.exp.train.steps
    return TunerParts.grid(members + group.fixed + group.later, made)


def burn_in_reports(exp: Experiment) -> int:
    """Reports before PBT's first decision: ``search.burn_in`` of a member's reports, rounded
    up."""
    return math.ceil(exp.search.burn_in * exp.reports() - 1e-9)


def exploits(exp: Experiment, lineage: dict[str, Any]) -> dict[str, Any]:
    """``summary.json``'s ``exploits``: the exploits taken and those skipped as within the
    noise (what PBT and PB2 record)."""
    return {"exploits": exploit_counts(lineage, exp.search.exploit_margin)}


__all__ = [
    "SeedExplorers",
    "burn_in_reports",
    "SeedGroup",
    "Searcher",
    "TunerParts",
    "exploiting_parts",
    "exploits",
    "initial_population",
    "seed_explorers",
]
