"""One suite every registered searcher must pass (as ``tests/policies/test_conformance.py`` is for
the policies): the Tuner parts it builds for a seed group, without Ray running.

A searcher is run here the way a search runs it (:func:`popmix.tune.trials.seed_group`, then
:meth:`Searcher.tuner_parts`), and its trials are read off what Tune would read: the grid of
the param space, or the search algorithm's suggestions. Adding a searcher to the registry adds
it to every test below.
"""

from __future__ import annotations

import numpy as np
import pytest
from ray import cloudpickle

from popmix.config import (
    Experiment,
    SearchSpace,
    SearchSpec,
    SwarmSpec,
    TemperatureSpec,
    VectorSpec,
)
from popmix.records.trial import CONFIG_KEY, TrialSpec
from popmix.tune.searchers import SEARCHERS, Searcher, TunerParts, searcher_for
from popmix.tune.trials import seed_group

NAMES = ["a", "b", "c", "d"]


class _Domains:
    names = NAMES
    sizes = np.array([4000.0, 2000.0, 1000.0, 500.0])


def experiment(name: str, seeds: tuple[int, ...] = (0, 1)) -> Experiment:
    exp = Experiment(
        methods=("pbt", "best-of-n", "stratified", "temperature", "swarm"),
        baselines={"temperature": {"temperature": 2.0}, "best-of-n": {"n": 3}},
        seeds=seeds,
        search=SearchSpec(searcher=name, population=3, swarm=SwarmSpec(size=5)),
    )
    exp.validate()
    return exp


SPACE = SearchSpace(loss_weights=VectorSpec(), temperature=TemperatureSpec())


def handed_out(parts: TunerParts) -> list[TrialSpec]:
    """The trials Tune would create from ``parts``, in order."""
    if parts.search_alg is None:
        grid = parts.param_space[CONFIG_KEY]["grid_search"]
        return [TrialSpec.from_config({CONFIG_KEY: spec}) for spec in grid] * parts.num_samples
    alg = parts.search_alg
    alg.set_search_properties("objective", "min", parts.param_space)
    return [TrialSpec.from_config(alg.suggest(f"t{i}")) for i in range(parts.num_samples)]


def build(name: str, with_population: bool = True):
    searcher = SEARCHERS[name]
    exp = experiment(name, seeds=(0,) if searcher.seeds_per_tuner(2) == 1 else (0, 1))
    if not with_population:
        exp = exp.replace(methods=("stratified", "temperature", "swarm"))
    group = seed_group(exp, SPACE, _Domains(), list(exp.seeds), lineage_dir=None)
    return searcher, group, searcher.tuner_parts(group)


@pytest.fixture(params=sorted(SEARCHERS))
def name(request) -> str:
    return request.param


def test_the_registry_names_each_searcher_by_its_own_name(name):
    searcher = SEARCHERS[name]
    assert isinstance(searcher, Searcher) and searcher.name == name
    assert searcher_for(experiment(name)) is searcher


def test_every_other_trial_is_handed_out_once_baselines_first_swarm_runs_last(name):
    _, group, parts = build(name)
    trials = handed_out(parts)
    others = [t for t in trials if not t.is_member]
    assert others == group.fixed + group.later
    assert len(trials) == len(group.fixed) + len(group.later) + group.population * len(group.seeds)


def test_members_are_numbered_per_seed_under_the_searchers_name_and_build_their_policy(name):
    _, group, parts = build(name)
    members = [t for t in handed_out(parts) if t.is_member]
    for seed in group.seeds:
        mine = [t for t in members if t.seed == seed]
        assert sorted(t.member for t in mine) == list(range(group.population))
        assert {t.method for t in mine} <= {name}  # none for the swarm: it has no members
    for t in members:
        policy = t.build_policy(_Domains.sizes, NAMES, 100)
        assert policy.name == "mixture" and policy.weights(0).shape == (len(NAMES),)


def test_without_a_population_only_the_other_trials_run_on_a_grid(name):
    _, group, parts = build(name, with_population=False)
    assert group.population == 0
    assert (parts.scheduler, parts.search_alg, parts.num_samples) == (None, None, 1)
    assert handed_out(parts) == group.fixed + group.later


def test_what_tune_saves_for_a_resume_pickles(name):
    # Tune keeps the scheduler and the search algorithm in tuner.pkl (popmix search --resume)
    _, _, parts = build(name)
    for part in (parts.scheduler, parts.search_alg):
        if part is not None:
            assert cloudpickle.loads(cloudpickle.dumps(part)) is not None


def test_hooks_answer_within_their_contract(name):
    searcher = SEARCHERS[name]
    exp = experiment(name)
    searcher.check(exp)  # the test environment has every optional library
    assert all(1 <= searcher.seeds_per_tuner(n) <= n for n in (1, 2, 5))
    assert all(isinstance(level, int) for level in searcher.logger_levels().values())
    recorded = searcher.record(exp, {"exploits": [], "skipped_within_noise": [], "members": {}})
    assert isinstance(recorded, dict)
    assert not set(recorded) & {"rows", "methods", "members", "searcher", "format"}
