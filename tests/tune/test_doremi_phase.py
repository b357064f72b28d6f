"""DoReMi's phase of a search, without Ray: the seed group's Tuner runs without it, then a
Tuner of its own per group (``seed<S>-doremi``) runs each seed's DoReMi trial naming that
seed's stratified checkpoint, relative to the experiment folder, read through the trial
settings' root; a seed without a finished stratified trial gets none."""

from __future__ import annotations

from pathlib import Path

import pytest

from popmix.config import ConfigError, Experiment
from popmix.data import load_domains
from popmix.records.trial import TrialSpec
from popmix.tune import phases
from popmix.tune.reference import check_reference, doremi_specs, reference_checkpoint
from popmix.tune.resolved import ResolvedSearch
from popmix.tune.spec import TrialSettings
from popmix.tune.trials import baseline_specs, trials_per_seed

NAMES = ["a", "b", "c"]


def rec(method, seed, status="ok", checkpoint="/x/seed0/stratified_1/checkpoint_000002"):
    return {
        "method": method,
        "seed": seed,
        "member": -1,
        "status": status,
        "checkpoint": checkpoint,
    }


def test_the_seed_group_runs_without_doremi_which_waits_for_it():
    exp = Experiment(methods=("stratified", "doremi", "proportional"))
    assert [s.method for s in baseline_specs(exp, 0, NAMES)] == ["stratified", "proportional"]
    assert trials_per_seed(exp) == 2


def test_each_seed_gets_its_own_stratified_checkpoint_relative_to_the_folder():
    exp = Experiment(methods=("stratified", "doremi"), seeds=(0, 1, 2))
    records = [
        rec("stratified", 0, checkpoint="/x/seed0_1_2/stratified_a/checkpoint_000002"),
        rec("stratified", 1, checkpoint="/x/seed0_1_2/stratified_b/checkpoint_000002"),
        rec("stratified", 2, status="error"),
        rec("proportional", 2),
    ]
    specs, missing = doremi_specs(exp, [0, 1, 2], NAMES, records, "/x")
    assert [(s.method, s.seed) for s in specs] == [("doremi", 0), ("doremi", 1)]
    assert specs[0].reference == "seed0_1_2/stratified_a/checkpoint_000002/state.pt"
    assert missing == [2]
    # the reference travels in the trial's config, beside the method's parameters
    config = specs[1].to_config()
    assert config["spec"]["reference"] == "seed0_1_2/stratified_b/checkpoint_000002/state.pt"
    assert TrialSpec.from_config(config) == specs[1]
    assert TrialSpec.from_config(config).policy_params(NAMES) == specs[1].params
    assert reference_checkpoint(records, 0, "/elsewhere").startswith("/x/seed0_1_2")


def test_doremi_needs_stratified_beside_it_and_a_local_folder():
    with pytest.raises(ConfigError, match="add stratified to --methods"):
        check_reference(Experiment(methods=("pbt", "doremi")))
    with pytest.raises(ConfigError, match="--storage URI"):
        check_reference(Experiment(methods=("stratified", "doremi")), remote=True)
    check_reference(Experiment(methods=("stratified", "doremi")))


def test_the_phase_is_a_tuner_of_its_own_after_the_group_with_the_checkpoint(
    tmp_path, monkeypatch
):
    exp = Experiment(methods=("stratified", "doremi"), seeds=(3,))
    domains = load_domains("synthetic", 3)
    plan = ResolvedSearch(
        exp,
        None,
        None,
        domains,
        "demo",
        tmp_path,
        tmp_path,  # type: ignore[arg-type]
    )
    ran = []
    monkeypatch.setattr(phases, "resolve_cpus", lambda exp, n: 2.0)
    monkeypatch.setattr(phases, "trainable_for", lambda plan, settings, cpus: settings)
    monkeypatch.setattr(
        phases,
        "run_tuner",
        lambda trainable, run, interrupted, resume: ran.append((trainable, run, resume)) or [],
    )
    group = [rec("stratified", 3, checkpoint=str(tmp_path / "seed3/stratified_x/checkpoint_1"))]
    settings = TrialSettings(exp.model, exp.train, 10)
    phases.doremi_phase(plan, [3], group, settings, None, None, True, lambda *a: None)
    ((settings_used, run, resume),) = ran
    assert run.name == "seed3-doremi" and resume
    assert settings_used.reference_root == str(tmp_path) and settings_used.threads == 2
    (config,) = run.parts.param_space["spec"]["grid_search"]
    assert config["method"] == "doremi" and config["seed"] == 3
    assert Path(config["reference"]) == Path("seed3/stratified_x/checkpoint_1/state.pt")


def test_no_finished_reference_no_doremi_tuner(tmp_path, monkeypatch, capsys):
    exp = Experiment(methods=("stratified", "doremi"), seeds=(0,))
    plan = ResolvedSearch(
        exp,
        None,
        None,
        load_domains("synthetic", 3),
        "d",
        tmp_path,
        tmp_path,  # type: ignore
    )
    monkeypatch.setattr(phases, "run_tuner", lambda *a, **k: pytest.fail("no Tuner expected"))
    settings = TrialSettings(exp.model, exp.train, 10)
    out = phases.doremi_phase(
        plan, [0], [rec("stratified", 0, "error")], settings, None, None, False, print
    )
    assert out == []
    assert "no finished stratified run (its reference) for seed(s) [0]" in capsys.readouterr().err


@pytest.mark.slow  # a search and its confirmation: 45 s on quiet cores
def test_confirm_trains_doremi_after_the_stratified_run_of_each_fresh_seed(
    ray_session, tmp_path, capsys
):
    import json

    from popmix.cli import main

    argv = ["--smoke", "--methods", "stratified,doremi"]
    assert main(["search", *argv, "--storage", str(tmp_path), "--name", "d"]) == 0
    folder = tmp_path / "d"
    assert main(["confirm", str(folder), "--seeds", "1"]) == 0
    out = capsys.readouterr()
    report = json.loads((folder / "confirm.json").read_text())
    rows = {r["method"]: r for r in report["rows"]}
    assert set(rows) == {"stratified", "doremi"} and report["seeds"] == [1]
    assert rows["doremi"]["status"] == "ok" and "doremi" in out.out
    # its reference: the confirmation's own stratified trial of seed 1, not the search's
    params = json.loads(next((folder / "confirm-doremi").glob("*/params.json")).read_text())
    assert params["spec"]["reference"].startswith("confirm/") and params["spec"]["seed"] == 1
    assert rows["stratified"]["trial_id"] in params["spec"]["reference"]
