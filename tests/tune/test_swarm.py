"""The swarm (``--searcher swarm``, ``methods: [swarm]``): its draws, its budget, its rows, and
a search end to end on a real local Ray whose optimum trial trains the fitted optimum."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from popmix.cli import main
from popmix.config import SWARM, SWARM_RUN, SwarmSpec, load_experiment, load_space
from popmix.records.trial import TrialSpec
from popmix.records.weights import WeightsSchedule
from popmix.tune.spec import TrialSettings
from popmix.tune.summarize import comparisons, summarize, swarm_section
from popmix.tune.swarm import draw_mixtures, prior, run_specs, surfaces_for

ROOT = Path(__file__).resolve().parents[2]
SIZES = np.array([1000.0, 2000.0, 5000.0])


# -- drawing ---------------------------------------------------------------------------------


def test_the_priors_are_uniform_proportional_and_tempered():
    assert np.allclose(prior(SwarmSpec(), SIZES), [1 / 3] * 3)
    assert np.allclose(prior(SwarmSpec(prior="proportional"), SIZES), SIZES / SIZES.sum())
    hot = SIZES ** (1 / 4)
    assert np.allclose(prior(SwarmSpec(prior="temperature:4"), SIZES), hot / hot.sum())


def test_draws_centre_on_the_prior_with_the_concentration_setting_their_spread():
    spec = SwarmSpec(size=4000, prior="proportional", concentration=1.0, floor=0.0)
    loose = draw_mixtures(spec, SIZES, search_seed=0, seed=0)
    tight = draw_mixtures(dataclasses.replace(spec, concentration=30.0), SIZES, 0, 0)
    p = SIZES / SIZES.sum()
    assert np.allclose(loose.sum(axis=1), 1.0)
    # Dirichlet(c k p): mean p, variance p(1-p)/(c k + 1)
    assert np.abs(loose.mean(axis=0) - p).max() < 0.02
    assert np.abs(tight.mean(axis=0) - p).max() < 0.01
    var = p * (1 - p) / (1.0 * 3 + 1)
    assert np.allclose(loose.var(axis=0), var, rtol=0.15)
    assert (tight.std(axis=0) < loose.std(axis=0) / 2).all()


def test_draws_keep_the_floor_and_repeat_with_the_seeds():
    spec = SwarmSpec(size=200, concentration=0.05, floor=0.02)  # mass piles on corners
    w = draw_mixtures(spec, SIZES, 0, 1)
    assert w.min() >= 0.02 - 1e-12 and np.allclose(w.sum(axis=1), 1.0)
    assert np.array_equal(w, draw_mixtures(spec, SIZES, 0, 1))
    assert not np.allclose(w, draw_mixtures(spec, SIZES, 0, 2))  # another seed, another swarm
    assert not np.allclose(w, draw_mixtures(spec, SIZES, 1, 1))  # another search seed


def test_the_default_budget_equals_the_populations():
    # size * steps + the optimum's full run <= population * train.steps, within one run's step
    spec = SwarmSpec()
    steps = spec.run_steps(1000, 4)
    assert steps == 3000 // 32 == 93
    assert 4000 - spec.size <= spec.size * steps + 1000 <= 4000
    assert SwarmSpec(steps=250).run_steps(1000, 4) == 250


def test_swarm_runs_train_their_mixture_for_the_short_budget_on_the_seed_itself():
    exp = load_experiment(ROOT / "experiments" / "smoke.yaml")
    exp = exp.replace(
        search=dataclasses.replace(exp.search, swarm=SwarmSpec(size=5, steps=7)), seeds=(3,)
    )
    names = ["a", "b", "c"]
    specs = run_specs(exp, 3, names, SIZES)
    assert [s.draw for s in specs] == list(range(5))
    for s in specs:
        back = TrialSpec.from_config(s.to_config())
        assert back == s and back.method == SWARM_RUN and back.policy == "fixed"
        assert back.run_seed == 3 and back.steps == 7
        policy = back.build_policy(SIZES, names, 7)
        assert np.allclose(policy.weights(0), [s.params["weights"][n] for n in names])
    settings = TrialSettings.of(exp, None, 1)
    assert settings.train_config(3, "cpu", specs[0].steps).steps == 7
    assert settings.train_config(3, "cpu").steps == exp.train.steps
    # a warm-up given in steps keeps its share of a short run (else the run ends inside it)
    warm = exp.replace(train=dataclasses.replace(exp.train, steps=1000, warmup_steps=100))
    short = TrialSettings.of(warm, None, 1).train_config(3, "cpu", 93)
    assert (short.steps, short.warmup_steps, short.warmup) == (93, 9, 9)
    assert TrialSettings.of(warm, None, 1).train_config(3, "cpu").warmup_steps == 100


# -- the table ---------------------------------------------------------------------------------


def _record(method, seed, ppl, steps, draw=0, weights=None, trial_id=None):
    names = ["a", "b"]
    w = weights or [0.5, 0.5]
    return {
        "trial_id": trial_id or f"{method}-{seed}-{draw}",
        "method": method,
        "seed": seed,
        "member": -1,
        "draw": draw,
        "status": "ok",
        "train_steps": steps,
        "params": {"weights": dict(zip(names, w))} if method in (SWARM, SWARM_RUN) else {},
        "metrics": {
            "objective": float(np.log(ppl)),
            "test_mean_ppl": ppl,
            "test_worst_ppl": ppl + 1,
            "val_loss": {"a": 1.0 + draw, "b": 2.0},
        },
    }


def test_the_swarm_row_costs_the_whole_swarm_and_is_paired_like_pbt():
    records = []
    for seed, (opt, strat) in enumerate([(10.0, 11.0), (10.5, 11.0), (9.8, 10.6)]):
        records += [_record(SWARM_RUN, seed, 20.0, 30, draw=i) for i in range(4)]
        records.append(_record(SWARM, seed, opt, 100))
        records.append(_record("stratified", seed, strat, 100))
    summary = summarize(records, "swarm")
    rows = [r for r in summary["rows"] if r["method"] == SWARM]
    assert [r["population_train_steps"] for r in rows] == [4 * 30 + 100] * 3
    assert [r["members"] for r in rows] == [4, 4, 4]
    assert {r["method"] for r in summary["rows"]} == {SWARM, "stratified"}  # no run rows
    (c,) = comparisons(summary)
    assert (c["method"], c["against"]) == (SWARM, "stratified")
    assert np.allclose(c["per_seed"], [-1.0, -0.5, -0.8])


def test_beside_pbt_the_swarm_is_compared_with_it_and_a_failed_fit_is_a_failed_row():
    records = [_record(SWARM_RUN, 0, 20.0, 30, draw=i) for i in range(3)]
    records += [_record("stratified", 0, 11.0, 100)]
    member = _record("stratified", 0, 10.0, 100, trial_id="m0") | {"method": "pbt", "member": 0}
    summary = summarize([*records, member], "pbt")
    (row,) = [r for r in summary["rows"] if r["method"] == SWARM]
    assert row["status"] == "failed" and row["test_mean_ppl"] is None
    assert row["population_train_steps"] == 90
    # nothing of swarm run 0 stands for the optimum that never ran
    assert row["trial_id"] is None and row["params"] == {} and row["train_steps"] is None
    stopped = [r | {"status": "interrupted"} if r["draw"] == 2 else r for r in records]
    (row,) = [r for r in summarize(stopped, "stratified")["rows"] if r["method"] == SWARM]
    assert row["status"] == "interrupted"
    against = {(c["method"], c["against"]) for c in comparisons(summary)}
    assert {("pbt", "stratified"), (SWARM, "pbt"), (SWARM, "stratified")} <= against


def test_the_summary_keeps_every_swarm_runs_weights_and_losses():
    exp = load_experiment(ROOT / "experiments" / "smoke.yaml")
    records = [
        _record(SWARM_RUN, 0, 20.0, 30, draw=i, weights=[0.1 * i, 1 - 0.1 * i]) for i in (2, 0, 1)
    ]
    section = swarm_section(
        records, {0: {"optimum": [0.3, 0.7], "predicted": 1.5}}, ["a", "b"], exp
    )
    runs = section["per_seed"]["0"]["runs"]
    assert [r["draw"] for r in runs] == [0, 1, 2]
    assert runs[2]["weights"] == [pytest.approx(0.2), pytest.approx(0.8)]
    assert runs[1]["val_loss"] == {"a": 2.0, "b": 2.0}
    assert section["per_seed"]["0"]["surface"] == {"optimum": [0.3, 0.7], "predicted": 1.5}


def test_a_saved_surface_is_used_again_only_for_the_runs_it_was_fitted_on(tmp_path):
    exp = load_experiment(
        ROOT / "experiments" / "smoke.yaml", ["search.swarm.n_boot=4", "search.objective=mean"]
    )
    names = ["a", "b"]

    def runs(prefix, n=8):
        out = []
        for i in range(n):
            wa = 0.1 + 0.8 * i / (n - 1)
            r = _record(SWARM_RUN, 0, 20.0, 30, draw=i, weights=[wa, 1 - wa])
            r["trial_id"] = f"{prefix}{i}"
            r["metrics"]["val_loss"] = {"a": 3 - np.log(wa), "b": 3 - 0.5 * np.log(1 - wa)}
            out.append(r)
        return out

    first = surfaces_for(exp, runs("x"), [0], names, tmp_path)[0]
    assert first["run_trial_ids"] == [f"x{i}" for i in range(8)] and "refitted" not in first
    saved = (tmp_path / "swarm-seed0.json").read_text()
    # a resume where more runs have finished since (one retried): the saved surface stands
    more = runs("x", 9)
    for r in more:
        r["metrics"]["val_loss"] = {"a": 9.0 - r["draw"], "b": 1.0}
    assert surfaces_for(exp, more, [0], names, tmp_path)[0] == first
    # runs the saved surface never saw (the seed group's Tuner was rebuilt): fitted again
    other = runs("y")
    for r in other:
        r["metrics"]["val_loss"]["a"] += r["draw"]
    again = surfaces_for(exp, other, [0], names, tmp_path)[0]
    assert again["refitted"] is True and again["run_trial_ids"][0] == "y0"
    assert again["optimum"] != first["optimum"]
    rewritten = json.loads((tmp_path / "swarm-seed0.json").read_text())
    assert rewritten != json.loads(saved) and "refitted" not in rewritten
    assert surfaces_for(exp, other, [0], names, tmp_path)[0] == rewritten  # and now stands


# -- bad input -----------------------------------------------------------------------------------

BAD = [
    ("--searcher swarm --swarm-concentration 0", "search.swarm.concentration must be > 0"),
    ("--searcher swarm --swarm-prior warm", "unknown search.swarm.prior 'warm'"),
    ("--searcher swarm search.swarm.prior=temperature:-1", "temperature:<T> with T > 0"),
    ("--searcher swarm --swarm-size 3 --tasks 3", "search.swarm.size=5 or more"),
    ("--searcher swarm search.swarm.n_boot=0", "search.swarm.n_boot must be at least 1"),
    ("--searcher swarm search.swarm.floor=0.5 --tasks 3", "below 1/3"),
]


@pytest.mark.parametrize("line,needle", BAD, ids=[b[0] for b in BAD])
def test_bad_swarm_settings_are_one_line_and_exit_2(line, needle, tmp_path, capsys):
    args = ["search", *line.split(), "--storage", str(tmp_path / "runs")]
    try:
        assert main(args) == 2
    except SystemExit as e:
        assert e.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


# -- end to end ----------------------------------------------------------------------------------


def _swarm_experiment(methods, searcher, size=6):
    exp = load_experiment(ROOT / "experiments" / "smoke.yaml")
    return exp.replace(
        data=dataclasses.replace(exp.data, tasks=3),
        methods=methods,
        search=dataclasses.replace(
            exp.search,
            searcher=searcher,
            swarm=dataclasses.replace(exp.search.swarm, size=size, n_boot=4),
        ),
    )


# A real search on a local Ray: about 40 s on 2 idle cores (Ray's start, 9 trials, the fit),
# minutes on loaded ones, so the slow suite's.
@pytest.fixture(scope="module")
def swarm_run(ray_session, tmp_path_factory):
    from popmix.tune.search import SearchOptions, run_search

    pytest.importorskip("sklearn")
    out = tmp_path_factory.mktemp("swarm")
    exp = _swarm_experiment(("pbt", "stratified"), "swarm")  # pbt's entry is the swarm
    space = load_space(ROOT / "search_spaces" / "sampling.yaml")
    summary = run_search(exp, space, SearchOptions(storage=str(out), name="sw", quiet=True))
    return out / "sw", summary, exp


@pytest.mark.slow
def test_a_swarm_search_fits_its_surface_and_trains_the_predicted_optimum(swarm_run):
    folder, summary, exp = swarm_run
    names = list(summary.domains)
    assert summary.swarm is not None
    runs = summary.swarm["per_seed"]["0"]["runs"]
    assert len(runs) == 6 and all(r["status"] == "ok" for r in runs)
    steps = exp.search.swarm.run_steps(exp.train.steps, exp.search.population)
    assert [r["train_steps"] for r in runs] == [steps] * 6
    doc = json.loads((folder / "surface.json").read_text())
    surface = doc["seeds"]["0"]
    from popmix.records.surface import Surface

    Surface.from_dict(surface)  # a valid surface
    assert surface["runs"] == 6 and np.isclose(sum(surface["optimum"]), 1.0)
    assert len(surface["optimum_ci"]) == 3 and "r2" in json.dumps(surface["quality"])
    # the optimum trial trained on exactly the predicted weights, for the full budget
    (trial,) = [p for p in (folder / "seed0-swarm").iterdir() if p.name.startswith("swarm_")]
    last = sorted(trial.glob("checkpoint_*"))[-1]
    trained = WeightsSchedule.read(last / "schedule.json", names)
    assert all(p.weights == tuple(surface["optimum"]) for p in trained.points)
    assert trained.total_steps == exp.train.steps
    rows = {r.method: r for r in summary.rows}
    assert set(rows) == {SWARM, "stratified"}
    assert rows[SWARM].status == "ok" and rows[SWARM].steps == exp.train.steps
    assert rows[SWARM].population_train_steps == 6 * steps + exp.train.steps
    assert summary.comparisons[0].against == "stratified"
    assert list((folder / "surface" / "seed0").glob("*.png"))
    assert list((folder / "tensorboard" / "surface").glob("events.out.tfevents.*"))


@pytest.mark.slow
def test_the_swarm_optimum_is_a_weights_file_popmix_run_trains(swarm_run, tmp_path):
    folder, summary, _ = swarm_run
    optimum = json.loads((folder / "surface.json").read_text())["seeds"]["0"]["optimum"]
    sched = WeightsSchedule.read(folder / "swarm_optimum.json", list(summary.domains))
    assert sched.method == SWARM and sched.final_weights == tuple(optimum)
    from popmix.tune.explore import weights_from_file  # what --init-weights starts PBT from

    from_file = weights_from_file(str(folder / "swarm_optimum.json"), list(summary.domains))
    assert from_file.tolist() == optimum
    tiny = "--steps 2 --eval-windows 2 --test-windows 2 --n-layer 1 --d-model 16 --n-head 2"
    args = ["run", "--weights-from", str(folder / "swarm_optimum.json"), *tiny.split()]
    assert main([*args, "--seq-len", "16", "--quiet", "--out", str(tmp_path / "run")]) == 0
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert np.allclose(list(result["final_weights"].values()), optimum)


@pytest.mark.slow
def test_a_finished_swarm_search_resumes_as_finished(swarm_run, capsys):
    from popmix.tune.search import SearchOptions, resume_search

    folder, summary, _ = swarm_run
    again, _, resumed = resume_search(folder, SearchOptions(quiet=True))
    assert not resumed and "finished already" in capsys.readouterr().out
    assert again == summary


def test_confirm_retrains_the_swarm_optimum_like_pbts_answer():
    from popmix.tune.confirm import confirm_methods, confirm_specs

    names = ["a", "b", "c"]
    both = _swarm_experiment(("pbt", "swarm", "stratified"), "pbt")
    assert confirm_methods(both) == ["best-schedule", "best-final", SWARM, "stratified"]
    exp = _swarm_experiment(("pbt", "stratified"), "swarm")
    optimum = WeightsSchedule.build(names, 24, final_weights=[0.2, 0.3, 0.5], method=SWARM)
    specs = confirm_specs(exp, None, names, [7, 8], optimum)
    assert [(s.method, s.seed) for s in specs] == [
        (SWARM, 7),
        ("stratified", 7),
        (SWARM, 8),
        ("stratified", 8),
    ]
    assert specs[0].params == {"weights": {"a": 0.2, "b": 0.3, "c": 0.5}}
    assert specs[0].policy == "fixed" and specs[0].steps is None  # the full budget


@pytest.mark.slow
def test_confirm_of_a_swarm_search_retrains_its_optimum(swarm_run, ray_session):
    from popmix.tune.cluster import SearchOptions
    from popmix.tune.confirm import run_confirm

    folder, _, _ = swarm_run
    report = run_confirm(folder, SearchOptions(quiet=True), n_seeds=1)
    assert set(report["methods"]) == {SWARM, "stratified"}
    assert SWARM in report["rank_agreement"]["methods"]


@pytest.mark.slow
def test_pbt_and_the_swarm_in_one_search_and_a_resume_before_the_optimum(ray_session, tmp_path):
    """Both paradigms on the same data and budget; a search stopped after its swarm ran but
    before the optimum trained resumes, refits the same surface and trains that optimum."""
    import shutil

    from popmix.tune.search import SearchOptions, resume_search, run_search

    pytest.importorskip("sklearn")
    exp = _swarm_experiment(("pbt", "swarm", "stratified"), "pbt", size=5)
    space = load_space(ROOT / "search_spaces" / "sampling.yaml")
    summary = run_search(exp, space, SearchOptions(storage=str(tmp_path), name="b", quiet=True))
    rows = {r.method: r for r in summary.rows}
    assert set(rows) == {"pbt", SWARM, "stratified"}
    assert rows["pbt"].members == exp.search.population
    against = {(c.method, c.against) for c in summary.comparisons}
    assert {("pbt", "stratified"), (SWARM, "pbt"), (SWARM, "stratified")} <= against
    folder = tmp_path / "b"
    optimum = json.loads((folder / "surface.json").read_text())["seeds"]["0"]["optimum"]
    # as if the driver died after the first Tuner: no optimum trial, no surface, no summary
    for name in ("seed0-swarm", "ledger-seed0-swarm.json", "swarm-seed0.json", "summary.json"):
        path = folder / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    again, _, resumed = resume_search(folder, SearchOptions(quiet=True))
    assert resumed  # it ran
    refit = json.loads((folder / "surface.json").read_text())["seeds"]["0"]["optimum"]
    assert refit == optimum  # the fit is seeded: the same runs give the same surface
    (row,) = again.rows_of(SWARM)
    assert row.status == "ok"
    assert row.population_train_steps == rows[SWARM].population_train_steps
    (trial,) = [p for p in (folder / "seed0-swarm").iterdir() if p.name.startswith("swarm_")]
    last = sorted(trial.glob("checkpoint_*"))[-1]
    assert WeightsSchedule.read(last / "schedule.json").final_weights == tuple(optimum)
