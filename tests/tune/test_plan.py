"""The plan before a search (``popmix search --dry-run``) and the aggregate progress line
during one: counts by hand, the wall time from a step's pace, nothing written; no Ray."""

from __future__ import annotations

import io
import sys
from types import SimpleNamespace

import pytest

from popmix._util.progress import StepsProgress
from popmix.cli import main
from popmix.config import load_experiment, resolve_experiment_path, with_overrides
from popmix.records.trial import CONFIG_KEY
from popmix.tune import plan as plan_module
from popmix.tune.plan import plan_search, trial_counts


def default_experiment():
    return load_experiment(resolve_experiment_path("default"))


def test_trial_counts_by_hand():
    exp = default_experiment()
    # pbt (population 4), best-of-4 (draw 0 is the stratified trial: 3 draws of its own),
    # stratified, cooldown; 1000 steps each
    trials, steps = trial_counts(exp)
    assert trials == {"pbt": 4, "stratified": 1, "cooldown": 1, "best-of-n draws": 3}
    assert steps == 9 * 1000
    swarm = with_overrides(exp, [("methods", ["swarm", "stratified"]), ("search.swarm.size", 6)])
    trials, steps = trial_counts(swarm)
    # 6 runs of the equal budget ((4 - 1) x 1000 // 6 = 500 steps) and the optimum's 1000
    assert trials == {"stratified": 1, "swarm runs and optimum": 7}
    assert steps == 1000 + 6 * 500 + 1000


def test_the_plan_on_this_machine(monkeypatch):
    monkeypatch.setattr(plan_module, "usable_cpus", lambda: 2)
    monkeypatch.setattr(plan_module, "seconds_per_step", lambda exp, device, threads: 0.05)
    exp = with_overrides(default_experiment(), [("seeds", [0, 1, 2])])
    plan = plan_search(exp, at_once=9)
    assert plan.total_steps == 27_000 and plan.seeds_at_once == 1
    # auto: 2 CPUs shared by 9 trials, 0.22 each, 1 thread: 2 trials step at once
    assert plan.cpus_per_trial == 0.22 and plan.misfit is None and plan.lanes == 2
    assert plan.wall_s == pytest.approx(27_000 * 0.05 / 2)
    # a trial that asks for more CPUs than the machine has does not fit
    big = with_overrides(exp, [("resources.cpus_per_trial", 4)])
    assert "no node of the Ray cluster can hold that" in plan_search(big, at_once=9).misfit


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(plan_module, "usable_cpus", lambda: 2)
    argv = ["search", "--experiment", "smoke", "--seeds", "3", "--dry-run"]
    assert main([*argv, "--storage", str(tmp_path / "st")]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "popmix search --dry-run: the plan; nothing started, nothing written"
    # smoke: pbt (population 2), stratified, temperature; 24 steps; 3 seeds
    assert lines[1].startswith("  trials per seed: 4 (2 pbt, 1 stratified, 1 temperature)")
    assert lines[2].startswith("  optimizer steps: 96 per seed, 288 in all")
    assert lines[3].endswith("each trial asks for 0.5 CPU(s) and 0 GPU(s): fits")
    assert "ms here on cpu, 1 thread(s) (8 steps of the proxy timed after 2 untimed" in out
    assert "estimated wall time: about " in out and "an estimate" in out
    assert not (tmp_path / "st").exists() and list(tmp_path.iterdir()) == []


def test_the_aggregate_progress_line_beside_the_trial_lines(monkeypatch):
    from popmix.tune.callbacks import ProgressPrinter

    # the clock's reads: the start, then each result's "is a line due?" and the line's own
    clock = iter([0.0, 5.0, 20.0, 20.0])
    overall = StepsProgress(400, clock=lambda: next(clock))
    printer = ProgressPrinter(24, overall=overall, group="seed 0 (1 of 2)", overall_every_s=15)
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    trial = SimpleNamespace(
        trial_id="t1", config={CONFIG_KEY: {"method": "stratified", "seed": 0}}, last_result={}
    )
    printer.on_trial_result(0, [], trial, {"step": 100, "steps_this_report": 100, "objective": 1})
    printer.on_trial_result(0, [], trial, {"step": 200, "steps_this_report": 100, "objective": 1})
    lines = out.getvalue().splitlines()
    # 5 s after the start no line is due yet; at 20 s: 200 of 400 steps in 20 s, 200 left: 20 s
    assert len(lines) == 3 and "step    200/24" in lines[1]
    assert lines[2].endswith(
        "all              seed 0 (1 of 2): 50% of all 400 optimizer steps done, about 0:20 left"
    )


def test_trial_counts_with_random_beside_the_population():
    exp = with_overrides(default_experiment(), [("methods", ["pbt", "random", "stratified"])])
    trials, steps = trial_counts(exp)
    assert trials == {"pbt": 4, "stratified": 1, "random draws": 4}
    assert steps == 9 * 1000
    # under searcher: random the name is the population itself: no draws beside it
    alone = with_overrides(exp, [("search.searcher", "random")])
    assert trial_counts(alone)[0] == {"random": 4, "stratified": 1}
