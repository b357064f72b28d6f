"""Each searcher's wiring, without Ray running: what its Tuner is given, and the one registry
from which ``search.searcher`` and ``--searcher`` take their names."""

from __future__ import annotations

import logging
import re
import sys

import numpy as np
import pytest

from popmix.cli import main
from popmix.config import (
    ConfigError,
    Experiment,
    SearchSpace,
    SearchSpec,
    TemperatureSpec,
    VectorSpec,
    load_experiment,
    packaged_dir,
)
from popmix.records.summary import read_summary
from popmix.records.trial import CONFIG_KEY, TrialSpec
from popmix.tune.explore import Explorer
from popmix.tune.searchers import SEARCHERS, searcher_for
from popmix.tune.trials import seed_group

NAMES = ["a", "b", "c"]


class _Domains:
    names = NAMES
    sizes = np.array([3000.0, 2000.0, 1000.0])


def group_of(searcher: str, space: SearchSpace, seeds=(0, 1), **search):
    exp = Experiment(
        methods=("pbt", "stratified"),
        seeds=tuple(seeds),
        search=SearchSpec(searcher=searcher, population=3, **search),
    )
    return seed_group(exp, space, _Domains(), list(seeds), lineage_dir=None)


def grid(parts) -> list[TrialSpec]:
    specs = parts.param_space[CONFIG_KEY]["grid_search"]
    return [TrialSpec.from_config({CONFIG_KEY: s}) for s in specs]


def test_config_and_the_cli_take_the_searchers_from_the_registry():
    from popmix.cli._search import SearchCommand

    (flag,) = [f for f in SearchCommand.flags if f.flag == "--searcher"]
    assert tuple(flag.choices or ()) == tuple(SEARCHERS)
    exp = load_experiment(None, ["search.searcher=pb2", "methods=[pb2,stratified]"])
    assert exp.runs_population() and exp.baseline_methods() == ["stratified"]
    with pytest.raises(ConfigError) as info:
        searcher_for(load_experiment(None, ["search.searcher=grid"]))
    assert "unknown search.searcher 'grid'; choose one of pbt, pb2" in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "argv",
    [
        ["check", str(packaged_dir("experiments") / "smoke.yaml"), "search.searcher=grid"],
        ["search", "--smoke", "--tasks", "3", "search.searcher=grid"],
    ],
    ids=["check", "search"],
)
def test_an_unknown_searcher_is_one_line_and_exit_2_before_ray(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown search.searcher 'grid'" in err and "\n" not in err


def test_pbt_runs_its_members_first_under_rays_pbt_with_its_lineage_and_margin():
    from popmix.tune.schedulers import PopulationPBT, RoundsPBT

    space = SearchSpace(loss_weights=VectorSpec(), temperature=TemperatureSpec())
    group = group_of("pbt", space, exploit_margin=0.05, perturbation_interval=2)
    parts = SEARCHERS["pbt"].tuner_parts(group)
    trials = grid(parts)
    assert [(t.seed, t.member) for t in trials[:6]] == [(s, m) for s in (0, 1) for m in range(3)]
    assert trials[6:] == group.fixed
    # each seed's members are its own explorer's first draws, whatever Tuner they are in
    for seed in (0, 1):
        explorer = Explorer(space, NAMES, _Domains.sizes, seed=seed)  # search.seed 0
        expected = [explorer.initial_config(m) for m in range(3)]
        assert [t.params for t in trials if t.is_member and t.seed == seed] == expected
    pbt = parts.scheduler
    # synchronous rounds are the default; Ray's asynchronous rule is one setting away
    assert isinstance(pbt, RoundsPBT) and parts.search_alg is None
    asynchronous = SEARCHERS["pbt"].tuner_parts(group_of("pbt", space, rounds="async"))
    assert isinstance(asynchronous.scheduler, PopulationPBT)
    assert not isinstance(asynchronous.scheduler, RoundsPBT)
    assert pbt.margin_setting == 0.05 and pbt._perturbation_interval == 2
    assert set(pbt._hyperparam_mutations[CONFIG_KEY]) == {"t_start", "t_end", "switch_frac"}
    assert pbt._custom_explore_fn.by_seed[1].perturb  # PBT perturbs the vectors itself
    recorded = SEARCHERS["pbt"].record(group.exp, {"exploits": [{"seed": 0}]})
    assert recorded["exploits"]["taken"] == 1


def test_pb2_bounds_every_weight_and_lets_its_model_choose():
    space = SearchSpace(sample_weights=VectorSpec(floor=0.01))
    parts = SEARCHERS["pb2"].tuner_parts(group_of("pb2", space))
    pb2 = parts.scheduler
    assert type(pb2).__name__ == "RoundsPB2"
    asynchronous = SEARCHERS["pb2"].tuner_parts(group_of("pb2", space, rounds="async"))
    assert type(asynchronous.scheduler).__name__ == "PopulationPB2"
    assert pb2._hyperparam_bounds[CONFIG_KEY]["sample_weights"] == {n: [0.01, 1.0] for n in NAMES}
    assert not pb2._custom_explore_fn.by_seed[0].perturb  # PB2's values, put back on the simplex


@pytest.mark.parametrize("searcher", ["pbt", "pb2"])
@pytest.mark.parametrize("rounds", ["sync", "async"])
def test_the_burn_in_reaches_ray_s_scheduler_in_reports(searcher, rounds):
    # the default experiment's 1000 steps, a report every 50: 20 reports, a third is 7
    space = SearchSpace(sample_weights=VectorSpec())
    parts = SEARCHERS[searcher].tuner_parts(
        group_of(searcher, space, rounds=rounds, burn_in=1 / 3)
    )
    assert parts.scheduler._burn_in_period == 7


def test_pb2_without_scikit_learn_is_refused_in_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    with pytest.raises(ConfigError, match="searcher pb2 needs scikit-learn"):
        SEARCHERS["pb2"].check(Experiment())


def test_optuna_runs_one_seed_per_tuner_baselines_first_and_quietens_optuna():
    from popmix.tune.schedulers import PopulationASHA, WithFixedTrials

    optuna = SEARCHERS["optuna"]
    assert optuna.seeds_per_tuner(4) == 1
    assert optuna.logger_levels() == {"optuna": logging.WARNING}
    space = SearchSpace(sample_weights=VectorSpec())
    group = group_of("optuna", space, seeds=(2,), asha=True)
    parts = optuna.tuner_parts(group)
    assert isinstance(parts.search_alg, WithFixedTrials) and parts.param_space == {}
    assert isinstance(parts.scheduler, PopulationASHA)
    assert parts.num_samples == len(group.fixed) + 3
    assert parts.search_alg.fixed == group.fixed
    with pytest.raises(ValueError, match="one seed per Tuner"):
        optuna.tuner_parts(group_of("optuna", space, seeds=(0, 1)))
    assert optuna.record(group.exp, {}) == {}


def test_the_swarm_in_the_populations_place_runs_no_members():
    exp = Experiment(methods=("pbt", "stratified"), search=SearchSpec(searcher="swarm"))
    assert exp.runs_swarm() and not exp.runs_population()
    group = seed_group(exp, SearchSpace(sample_weights=VectorSpec()), _Domains(), [0])
    parts = SEARCHERS["swarm"].tuner_parts(group)
    assert parts.scheduler is None and grid(parts) == group.fixed + group.later
    assert [t.method for t in group.later] == ["swarm-run"] * exp.search.swarm.size


def test_random_runs_pbts_first_draw_as_static_members_beside_the_baselines():
    space = SearchSpace(sample_weights=VectorSpec(init="temperature"))
    random_parts = SEARCHERS["random"].tuner_parts(group_of("random", space))
    pbt_parts = SEARCHERS["pbt"].tuner_parts(group_of("pbt", space))
    assert random_parts.scheduler is None and random_parts.search_alg is None  # nothing copies
    members = [t for t in grid(random_parts) if t.is_member]
    pbt_members = [t for t in grid(pbt_parts) if t.is_member]
    assert [t.params for t in members] == [t.params for t in pbt_members]  # the same draw
    assert {t.name for t in members if t.seed == 0} == {f"random-member{m}" for m in range(3)}
    # member 0 at the prior (temperature 3 of the sizes), the others drawn around it
    first = members[0].build_policy(_Domains.sizes, NAMES, 10).weights(0)
    expected = _Domains.sizes ** (1 / 3)
    np.testing.assert_allclose(first, expected / expected.sum(), atol=1e-3)
    assert SEARCHERS["random"].record(Experiment(), {"exploits": []}) == {}


def test_random_beside_pbt_holds_each_members_first_values_as_a_static_draw():
    space = SearchSpace(sample_weights=VectorSpec(init="temperature"))
    exp = Experiment(
        methods=("pbt", "random", "stratified"),
        seeds=(0, 1),
        search=SearchSpec(searcher="pbt", population=3),
    )
    group = seed_group(exp, space, _Domains(), [0, 1], lineage_dir=None)
    members = [t for t in grid(SEARCHERS["pbt"].tuner_parts(group)) if t.is_member]
    draws = [t for t in group.fixed if t.method == "random"]
    assert [(t.seed, t.draw) for t in draws] == [(s, m) for s in (0, 1) for m in range(3)]
    assert [t.params for t in draws] == [t.params for t in members]  # member m's first values
    assert {t.name for t in draws} == {f"random-draw{m}" for m in range(3)}
    # each draw trains as its member does: the mixture policy, on the seed itself
    assert all(t.policy == "mixture" and t.run_seed == t.seed and not t.is_member for t in draws)
    # under searcher: random, the name is the population: no draws beside it
    alone = seed_group(
        exp.replace(search=SearchSpec(searcher="random", population=3)), space, _Domains(), [0]
    )
    assert not [t for t in alone.fixed if t.method == "random"]


@pytest.mark.slow
def test_a_random_search_reports_random_in_every_output(ray_session, tmp_path, capsys):
    from popmix.reporting.report import write_report

    argv = ["search", "--smoke", "--searcher", "random", "--storage", str(tmp_path)]
    assert main([*argv, "--name", "r"]) == 0
    table = capsys.readouterr().out
    assert re.search(r"^random\s+0\s", table, flags=re.M) and "exploits:" not in table
    summary = read_summary(tmp_path / "r")
    (row,) = summary.rows_of("random")
    assert summary.searcher == "random" and row.members == 2 and summary.exploits is None
    assert {m.member for m in summary.members} == {0, 1} and "random" in summary.methods
    runs = {p.name for p in (tmp_path / "r" / "tensorboard" / "seed0").iterdir()}
    assert {"random-member0", "random-member1"} <= runs
    page, _ = write_report(tmp_path / "r")
    assert "<td>random</td>" in page.read_text()
