"""The typed trial spec at the Ray boundary: round trips, PBT's mutations, the one registry."""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest

from popmix.config import Experiment, SearchSpace, TemperatureSpec, VectorSpec
from popmix.policies import POLICIES, build_policy, learns_weights, vector_parameters
from popmix.records.trial import CONFIG_KEY, TrialSpec
from popmix.tune.explore import Explorer
from popmix.tune.spec import TrialSettings

NAMES = ["a", "b", "c"]
SIZES = np.array([300.0, 200.0, 100.0])


def member_spec() -> TrialSpec:
    return TrialSpec(
        "pbt",
        seed=2,
        member=1,
        params={
            "sample_weights": {"a": 0.5, "b": 0.3, "c": 0.2},
            "loss_weights": {"a": 0.2, "b": 0.2, "c": 0.6},
        },
    )


def test_round_trip_through_rays_config_dict():
    for spec in (member_spec(), TrialSpec("temperature", 0, params={"temperature": 2.0})):
        config = spec.to_config()
        assert set(config) == {CONFIG_KEY}
        assert TrialSpec.from_config(config) == spec
        # Ray mutates its dict in place: the spec never sees it
        config[CONFIG_KEY]["member"] = 7
        config[CONFIG_KEY].get("sample_weights", {})["a"] = 9.0
        assert TrialSpec.from_config(spec.to_config()) == spec
    assert pickle.loads(pickle.dumps(member_spec())) == member_spec()
    with pytest.raises(ValueError, match="may not be named 'seed'"):
        TrialSpec("fixed", params={"seed": 1})


def test_searched_values_sit_where_pbt_mutates_them():
    from ray import tune
    from ray.tune.schedulers.pbt import _explore

    space = SearchSpace(sample_weights=VectorSpec(), temperature=TemperatureSpec())
    explorer = Explorer(space, NAMES, SIZES, seed=0)
    spec = TrialSpec("pbt", 0, member=3, params=explorer.initial_config(3))
    bounds = space.temperature.bounds()
    mutations = {CONFIG_KEY: {k: tune.uniform(lo, hi) for k, (lo, hi) in bounds.items()}}
    new, _ = _explore(spec.to_config(), mutations, 0.0, (1.2, 0.8), explorer)
    child = TrialSpec.from_config(new)
    assert child.member == 3 and child.seed == 0 and child.method == "pbt"
    assert set(child.searched()) == {"sample_weights", "t_start", "t_end", "switch_frac"}
    assert child.searched() != spec.searched()
    for key, (lo, hi) in bounds.items():
        assert lo <= child.params[key] <= hi
    assert abs(sum(child.params["sample_weights"].values()) - 1) < 1e-12
    # a single trial searches nothing
    assert TrialSpec("stratified").searched() == {}


def test_a_member_builds_the_mixture_over_its_vectors_in_domain_order():
    spec = member_spec()
    assert spec.policy == "mixture" and spec.is_member
    policy = spec.build_policy(SIZES, ["c", "a", "b"], 10)
    np.testing.assert_array_equal(policy.weights(0), [0.2, 0.5, 0.3])
    expected = build_policy(
        "mixture",
        SIZES,
        10,
        {"sample_weights": [0.5, 0.3, 0.2], "loss_weights": [0.2, 0.2, 0.6]},
        seed=2,
    )
    np.testing.assert_array_equal(
        spec.build_policy(SIZES, NAMES, 10).loss_multipliers(0), expected.loss_multipliers(0)
    )
    temp = TrialSpec("pbt", member=0, params={"t_start": 4.0, "t_end": 1.0, "switch_frac": 0.5})
    assert temp.policy_params(NAMES, "linear")["shape"] == "linear"
    assert temp.build_policy(SIZES, NAMES, 10, "linear").hparams()["shape"] == "linear"


def test_every_registered_method_runs_as_a_single_trial_from_the_experiment():
    methods = [m for m in POLICIES if m not in ("mixture", "schedule")]
    exp = Experiment(
        methods=("pbt", *methods),
        baselines={"fixed": {"weights": [3, 1, 1]}, "temperature": {"temperature": 2.0}},
    )
    assert exp.baseline_methods() == methods
    for method in methods:
        spec = TrialSpec.single(exp, method, seed=1, names=NAMES)
        assert not spec.is_member and spec.policy == method and spec.seed == 1
        assert TrialSpec.from_config(spec.to_config()) == spec
        policy = spec.build_policy(SIZES, NAMES, 20)
        assert type(policy) is POLICIES[method]
    fixed = TrialSpec.single(exp, "fixed", 0, NAMES)
    assert fixed.params == {"weights": {"a": 3.0, "b": 1.0, "c": 1.0}}  # {domain: weight}
    np.testing.assert_allclose(fixed.build_policy(SIZES, NAMES, 20).weights(0), [0.6, 0.2, 0.2])
    # the policy's defaults, not a copy of them: a method without parameters gets none
    assert TrialSpec.single(exp, "cooldown", 0, NAMES).params == {}
    assert TrialSpec.single(exp, "temperature", 0, NAMES).params == {"temperature": 2.0}


def test_registry_helpers():
    assert vector_parameters("fixed") == ("weights",)
    assert vector_parameters("mixture") == ("sample_weights", "loss_weights")
    assert vector_parameters("temperature") == ()
    assert learns_weights("doge") and learns_weights("aioli")
    assert not any(learns_weights(m) for m in ("stratified", "temperature", "cooldown", "fixed"))


def test_settings_carry_the_experiment_and_set_each_trials_seed_and_device():
    exp = Experiment()
    exp = exp.replace(train=dataclasses.replace(exp.train, steps=40, threads=None))
    space = SearchSpace(temperature=TemperatureSpec(shape="linear"))
    settings = TrialSettings.of(exp, space, cpus_per_trial=2.5)
    assert settings.threads == 2 and settings.shape == "linear"
    assert settings.report_every == exp.search.report_every and settings.model == exp.model
    cfg = settings.train_config(seed=5, device="cpu")
    assert (cfg.seed, cfg.threads, cfg.device, cfg.steps) == (5, 2, "cpu", 40)
    assert TrialSettings.of(exp, SearchSpace(), 0.25).threads == 1
    assert pickle.loads(pickle.dumps(settings)) == settings


def test_fixed_trials_first_then_complete_member_specs():
    from ray.tune.search import Searcher

    from popmix.tune.schedulers import WithFixedTrials

    class Inner(Searcher):
        def __init__(self):
            super().__init__(metric="objective", mode="min")
            self.n = 0

        def suggest(self, trial_id):
            self.n += 1
            return {CONFIG_KEY: {"sample_weights": {"a": float(self.n), "b": 1.0, "c": 1.0}}}

        def on_trial_result(self, trial_id, result):
            self.told = [*getattr(self, "told", []), trial_id]

    temperature = TrialSpec("temperature", 3, params={"temperature": 2.0})
    baselines = [TrialSpec("stratified", 3), temperature]
    searcher = WithFixedTrials(Inner(), baselines, TrialSpec("optuna", 3, member=0))
    got = [TrialSpec.from_config(searcher.suggest(f"t{i}")) for i in range(4)]
    assert got[:2] == baselines  # complete, and without any searched key
    assert [(t.method, t.seed, t.member) for t in got[2:]] == [("optuna", 3, 0), ("optuna", 3, 1)]
    assert got[3].params == {"sample_weights": {"a": 2.0, "b": 1.0, "c": 1.0}}
    # the swarm's runs come after the population's members, not before them
    runs = [TrialSpec("swarm-run", 3, draw=i, steps=5) for i in range(3)]
    searcher = WithFixedTrials(
        Inner(), baselines, TrialSpec("optuna", 3, member=0), later=runs, members=2
    )
    got = [TrialSpec.from_config(searcher.suggest(f"t{i}")) for i in range(7)]
    assert [t.method for t in got] == ["stratified", "temperature", "optuna", "optuna"] + [
        "swarm-run"
    ] * 3
    assert [t.draw for t in got[4:]] == [0, 1, 2]
    for i in (2, 5):  # a member's result reaches Optuna, a swarm run's does not
        searcher.on_trial_result(f"t{i}", {"objective": 1.0})
    assert searcher.inner.told == ["t2"]


def test_best_of_n_draws_are_stratified_runs_with_their_own_seeds():
    base = TrialSpec("best-of-n", seed=3)
    draws = [base.replace(draw=k) for k in range(4)]
    assert [TrialSpec.from_config(d.to_config()) for d in draws] == draws
    assert draws[0].run_seed == 3  # draw 0 is the search's stratified trial of seed 3
    assert len({d.run_seed for d in draws}) == 4
    assert draws[2].run_seed == TrialSpec("best-of-n", seed=3, draw=2).run_seed  # reproducible
    assert TrialSpec("best-of-n", seed=4, draw=2).run_seed != draws[2].run_seed
    assert all(d.policy == "stratified" and not d.is_member for d in draws)
    assert draws[1].build_policy(SIZES, NAMES, 10).name == "stratified"


def test_best_of_n_trains_only_the_draws_the_stratified_trial_does_not_cover():
    from popmix.tune.trials import baseline_specs, trials_per_seed

    exp = Experiment(methods=("pbt", "best-of-n", "stratified"))
    specs = baseline_specs(exp, 0, NAMES)
    assert [(s.method, s.draw) for s in specs] == [
        ("best-of-n", 1),
        ("best-of-n", 2),
        ("best-of-n", 3),
        ("stratified", 0),
    ]
    assert trials_per_seed(exp) == 4 + 4
    alone = exp.replace(methods=("best-of-n",), baselines={"best-of-n": {"n": 3}})
    assert [s.draw for s in baseline_specs(alone, 0, NAMES)] == [0, 1, 2]
    assert trials_per_seed(alone) == 3
