"""PBT in synchronous rounds (``search.rounds: sync``), driven without a cluster: real Tune
trials, a stand-in for Tune's controller that does what Tune does with each decision (a PAUSE
saves the trial's checkpoint, then marks it paused), and the scheduler's own hooks."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
from ray.train._internal.session import _TrainingResult
from ray.tune import Checkpoint
from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler

from popmix.config import EXPLOIT_Z
from popmix.records.trial import TrialSpec
from popmix.tune.schedulers import RoundsPBT, exploit_margin

INTERVAL = 2  # reports between decisions


class Controller:
    """What the scheduler sees of Tune's controller."""

    search_alg = None

    def __init__(self, trials: list[Trial]) -> None:
        self.trials = trials

    def get_trials(self) -> list[Trial]:
        return self.trials

    def get_live_trials(self) -> list[Trial]:
        return [t for t in self.trials if not t.is_finished()]

    def _set_trial_status(self, trial: Trial, status: str) -> None:
        trial.set_status(status)


def member(seed: int, m: int) -> Trial:
    spec = TrialSpec("pbt", seed, member=m, params={"sample_weights": {"a": 0.1 * (m + 1)}})
    return Trial("__fake", config=spec.to_config(), stub=True, trial_id=f"s{seed}m{m}")


def baseline(seed: int) -> Trial:
    spec = TrialSpec("stratified", seed)
    return Trial("__fake", config=spec.to_config(), stub=True, trial_id=f"s{seed}strat")


def save(trial: Trial, it: int) -> None:
    trial.run_metadata.checkpoint_manager.register_checkpoint(
        _TrainingResult(
            checkpoint=Checkpoint(f"/ck/{trial.trial_id}/{it}"),
            metrics={"training_iteration": it},
        )
    )


def report(sched, ctrl, trial: Trial, it: int, objective: float, windows=None) -> str:
    """One report as Tune handles it: the scheduler decides, the result is kept, a PAUSE
    saves the checkpoint and then pauses."""
    trial.set_status(Trial.RUNNING)
    result = {
        "training_iteration": it,
        "objective": objective,
        "objective_se": 0.01,
        "step": 10 * it,
    }
    for d, w in (windows or {}).items():
        result[f"val_window_loss/{d}"] = list(w)
    decision = sched.on_trial_result(ctrl, trial, dict(result))
    trial.update_last_result(result)
    if decision == TrialScheduler.PAUSE:
        save(trial, it)
        trial.set_status(Trial.PAUSED)
    return decision


def scheduler(tmp_path, margin=0.0, quantile=0.25, **kw) -> RoundsPBT:
    sched = RoundsPBT(
        time_attr="training_iteration",
        metric="objective",
        mode="min",
        perturbation_interval=INTERVAL,
        quantile_fraction=quantile,
        custom_explore_fn=lambda c: c,
        log_config=False,
    )
    sched.lineage_dir = tmp_path
    sched.margin_setting = margin
    for key, value in kw.items():
        setattr(sched, key, value)
    return sched


def setup(tmp_path, n=4, seeds=(0,), **kw):
    sched = scheduler(tmp_path, **kw)
    trials = [member(s, m) for s in seeds for m in range(n)] + [baseline(s) for s in seeds]
    ctrl = Controller(trials)
    for t in trials:
        sched.on_trial_add(ctrl, t)
        t.set_status(Trial.RUNNING)  # Tune starts every trial: the cluster holds them all
    return sched, ctrl, trials


def rows(tmp_path, name):
    path = tmp_path / name
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def test_a_round_is_decided_only_once_every_member_of_its_seed_is_paused(tmp_path):
    sched, ctrl, trials = setup(tmp_path)
    members, strat = trials[:4], trials[4]
    for m in members:
        assert report(sched, ctrl, m, 1, 3.0) == TrialScheduler.CONTINUE  # off the grid
    assert report(sched, ctrl, strat, 1, 3.0) == TrialScheduler.CONTINUE
    objectives = [3.0, 2.9, 2.8, 4.0]  # member 3 clearly worse
    for m, obj in zip(members[:3], objectives):
        assert report(sched, ctrl, m, 2, obj) == TrialScheduler.PAUSE
        # a waiting member is never handed back to run, and nothing is decided yet
        assert sched.choose_trial_to_run(ctrl) is None
    assert report(sched, ctrl, strat, 2, 3.0) == TrialScheduler.CONTINUE  # never waits
    assert rows(tmp_path, "rounds-seed0.jsonl") == []
    # the last member reports, but is still saving (RUNNING): the round waits for its save
    members[3].set_status(Trial.RUNNING)
    assert sched.on_trial_result(ctrl, members[3], {"training_iteration": 2, "objective": 4.0})
    members[3].update_last_result({"training_iteration": 2, "objective": 4.0, "step": 20})
    assert sched.choose_trial_to_run(ctrl) is None
    assert rows(tmp_path, "rounds-seed0.jsonl") == []
    save(members[3], 2)
    members[3].set_status(Trial.PAUSED)
    chosen = sched.choose_trial_to_run(ctrl)
    (round_row,) = rows(tmp_path, "rounds-seed0.jsonl")
    assert round_row["round"] == 1 and round_row["time"] == 2 and round_row["step"] == 20
    assert [r["member"] for r in round_row["ranking"]] == [2, 1, 0, 3]
    assert round_row["decisions"] == round_row["taken"] == 1  # ceil(4 x 0.25)
    (exploit,) = rows(tmp_path, "lineage-seed0.jsonl")
    assert exploit["trial_id"] == "s0m3" and exploit["donor"] == "s0m2"
    assert exploit["round"] == 1 and exploit["checkpoint"] == "/ck/s0m2/2"
    # the bottom member continues from the donor's round checkpoint, in its own slot
    assert members[3].checkpoint.path == "/ck/s0m2/2"
    assert TrialSpec.from_config(members[3].config).member == 3
    # every member is handed back to run, one per scheduling step
    assert chosen in members
    handed = {chosen.trial_id}
    chosen.set_status(Trial.RUNNING)
    while (t := sched.choose_trial_to_run(ctrl)) is not None:
        handed.add(t.trial_id)
        t.set_status(Trial.RUNNING)
    assert handed == {m.trial_id for m in members}
    # the next perturbation point is two reports later
    assert report(sched, ctrl, members[0], 3, 2.5) == TrialScheduler.CONTINUE
    assert report(sched, ctrl, members[0], 4, 2.4) == TrialScheduler.PAUSE


def test_each_seed_decides_its_own_rounds_and_never_waits_for_another(tmp_path):
    sched, ctrl, trials = setup(tmp_path, seeds=(0, 1))
    seed0, seed1 = trials[:4], trials[4:8]
    for m, obj in zip(seed0, (3.0, 2.9, 2.8, 4.0)):
        report(sched, ctrl, m, 2, obj)
    report(sched, ctrl, seed1[0], 2, 1.0)  # seed 1 is better everywhere, and not all in
    assert sched.choose_trial_to_run(ctrl) in seed0
    assert len(rows(tmp_path, "rounds-seed0.jsonl")) == 1
    assert rows(tmp_path, "rounds-seed1.jsonl") == []
    (exploit,) = rows(tmp_path, "lineage-seed0.jsonl")
    assert exploit["donor"].startswith("s0")  # copied within its own seed
    assert not sched._waiting(seed0[0]) and sched._waiting(seed1[0])


def test_a_member_that_failed_for_good_leaves_the_round(tmp_path):
    sched, ctrl, trials = setup(tmp_path)
    members = trials[:4]
    for m, obj in zip(members[:3], (3.0, 2.9, 2.8)):
        report(sched, ctrl, m, 2, obj)
    assert sched.choose_trial_to_run(ctrl) is None
    members[3].set_status(Trial.ERROR)
    assert sched.choose_trial_to_run(ctrl) is not None
    (round_row,) = rows(tmp_path, "rounds-seed0.jsonl")
    assert len(round_row["ranking"]) == 3 and round_row["decisions"] == 1


@pytest.mark.parametrize(("n", "quantile"), [(4, 0.25), (6, 0.25), (6, 0.5), (8, 0.25)])
def test_every_round_decides_ceil_population_times_quantile_exploits(tmp_path, n, quantile):
    sched, ctrl, trials = setup(tmp_path, n=n, quantile=quantile)
    members = trials[:n]
    for r in range(1, 4):
        for i, m in enumerate(members):
            report(sched, ctrl, m, 2 * r, 3.0 - 0.1 * i)
        while (t := sched.choose_trial_to_run(ctrl)) is not None:
            t.set_status(Trial.RUNNING)
    rounds = rows(tmp_path, "rounds-seed0.jsonl")
    assert [r["round"] for r in rounds] == [1, 2, 3]
    assert all(r["decisions"] == math.ceil(n * quantile) for r in rounds)
    assert len(rows(tmp_path, "lineage-seed0.jsonl")) == 3 * math.ceil(n * quantile)


def test_a_restored_member_waits_again_for_an_undecided_round_and_a_decided_one_is_not_redone(
    tmp_path,
):
    sched, ctrl, trials = setup(tmp_path)
    members = trials[:4]
    for m, obj in zip(members, (3.0, 2.9, 2.8, 4.0)):
        report(sched, ctrl, m, 2, obj)
    sched.choose_trial_to_run(ctrl)  # round 1 decided
    for m, obj in zip(members[:2], (2.7, 2.6)):
        m.set_status(Trial.RUNNING)
        report(sched, ctrl, m, 4, obj)  # two members wait at round 2 when the driver dies
    # Tune.restore: the same trials, PENDING, into a scheduler created anew
    fresh = scheduler(tmp_path)
    for m in members:
        m.set_status(Trial.PENDING)
    for m in members:
        fresh.on_trial_add(ctrl, m)
    assert [m.status for m in members] == ["PAUSED", "PAUSED", "PENDING", "PENDING"]
    assert fresh._waiting(members[0]) and not fresh._waiting(members[2])
    # a member restored from the round-1 checkpoint trains round 1's last steps again
    members[2].set_status(Trial.RUNNING)
    assert fresh.on_trial_result(ctrl, members[2], {"training_iteration": 2, "objective": 3}) == (
        TrialScheduler.CONTINUE
    )
    for m, obj in zip(members[2:], (2.5, 2.4)):
        report(fresh, ctrl, m, 4, obj)
    fresh.choose_trial_to_run(ctrl)
    assert [r["round"] for r in rows(tmp_path, "rounds-seed0.jsonl")] == [1, 2]


def retry(sched, ctrl, trial: Trial) -> None:
    """What Tune does with a trial whose worker died: it requeues it, pending, and adds it
    to the scheduler again (Ray's PBT resets its state); it restarts from its latest
    checkpoint."""
    trial.set_status(Trial.PENDING)
    sched.on_trial_error(ctrl, trial)
    sched.on_trial_add(ctrl, trial)


def test_a_member_retried_from_the_previous_round_s_checkpoint_rejoins_its_round(tmp_path):
    sched, ctrl, trials = setup(tmp_path)
    members = trials[:4]
    for m, obj in zip(members, (3.0, 2.9, 2.8, 4.0)):
        report(sched, ctrl, m, 2, obj)
    sched.choose_trial_to_run(ctrl)  # round 1 decided
    for m, obj in zip(members[:3], (2.7, 2.6, 2.5)):
        m.set_status(Trial.RUNNING)
        report(sched, ctrl, m, 4, obj)  # paused, waiting for round 2
    # member 3 reports round 2's point, then its worker dies before the pause's save lands
    members[3].set_status(Trial.RUNNING)
    assert sched.on_trial_result(ctrl, members[3], {"training_iteration": 4, "objective": 2.4})
    members[3].update_last_result({"training_iteration": 4, "objective": 2.4, "step": 40})
    retry(sched, ctrl, members[3])
    # nothing decided while it trains round 2 again from its round-1 checkpoint
    assert sched.choose_trial_to_run(ctrl) is members[3]
    assert [r["round"] for r in rows(tmp_path, "rounds-seed0.jsonl")] == [1]
    members[3].set_status(Trial.RUNNING)
    assert report(sched, ctrl, members[3], 3, 2.45) == TrialScheduler.CONTINUE
    # it reaches round 2 again: it waits there, and the round decides with all four
    assert report(sched, ctrl, members[3], 4, 2.4) == TrialScheduler.PAUSE
    sched.choose_trial_to_run(ctrl)
    decided = rows(tmp_path, "rounds-seed0.jsonl")
    assert [r["round"] for r in decided] == [1, 2]
    assert len(decided[1]["ranking"]) == 4
    # its fitness reads each step once: the one trained again replaces the first
    assert [r["time"] for r in sched._reads_of(members[3])] == [2, 3, 4]


def test_a_member_retried_from_its_round_s_own_checkpoint_waits_paused(tmp_path):
    sched, ctrl, trials = setup(tmp_path)
    members = trials[:4]
    for m, obj in zip(members[:3], (3.0, 2.9, 2.8)):
        report(sched, ctrl, m, 2, obj)
    # member 3's pause checkpoint is saved, then its worker dies before it is marked paused
    members[3].set_status(Trial.RUNNING)
    sched.on_trial_result(ctrl, members[3], {"training_iteration": 2, "objective": 4.0})
    members[3].update_last_result({"training_iteration": 2, "objective": 4.0, "step": 20})
    save(members[3], 2)
    retry(sched, ctrl, members[3])
    assert members[3].status == Trial.PAUSED and sched._waiting(members[3])
    sched.choose_trial_to_run(ctrl)
    (decided,) = rows(tmp_path, "rounds-seed0.jsonl")
    assert decided["round"] == 1 and decided["ranking"][-1]["member"] == 3


def test_an_exploit_the_saved_state_missed_is_applied_again_on_a_resume(tmp_path):
    sched, ctrl, trials = setup(tmp_path)
    members = trials[:4]
    old_config = dict(members[3].config)
    for m, obj in zip(members, (3.0, 2.9, 2.8, 4.0)):
        report(sched, ctrl, m, 2, obj)
    old_checkpoint = members[3].run_metadata.checkpoint_manager.latest_checkpoint_result
    sched.choose_trial_to_run(ctrl)
    new_config = dict(members[3].config)
    assert new_config != old_config
    # the driver dies before Tune saves its state: the trial comes back as it was saved
    members[3].set_config(old_config)
    members[3].run_metadata.checkpoint_manager._latest_checkpoint_result = old_checkpoint
    for m in members:
        m.set_status(Trial.PENDING)
    fresh = scheduler(tmp_path)
    for m in members:
        fresh.on_trial_add(ctrl, m)
    assert members[3].config == new_config
    assert members[3].checkpoint.path == "/ck/s0m2/2"
    assert all(m.status == "PENDING" for m in members)  # the round was decided: all run


def test_the_paired_margin_comes_from_per_window_differences(tmp_path):
    sched, ctrl, trials = setup(tmp_path, margin="auto")
    members = trials[:4]
    # two domains of 4 windows; member 3 is worse by 0.10 + noise shared with the others
    base = {"a": [2.0, 3.0, 4.0, 5.0], "b": [1.0, 1.5, 2.0, 2.5]}
    shift = {"a": [0.10, 0.12, 0.08, 0.10], "b": [0.10, 0.10, 0.10, 0.10]}
    for i, m in enumerate(members):
        w = {
            d: [x + (shift[d][j] if i == 3 else 0.0) for j, x in enumerate(v)]
            for d, v in base.items()
        }
        mean = sum(sum(v) / len(v) for v in w.values()) / 2
        report(sched, ctrl, m, 2, mean - 0.001 * i * (i != 3), windows=w)
    sched.choose_trial_to_run(ctrl)
    (exploit,) = rows(tmp_path, "lineage-seed0.jsonl")
    # hand-computed: d_a = [.10 .12 .08 .10] + member 2's offset 0 -> sd 0.016330, se 0.008165;
    # d_b = [.1]*4 -> se 0; paired se of the mean over 2 domains = 0.008165 / 2
    assert exploit["margin_paired"] == pytest.approx(EXPLOIT_Z * 0.0081650 / 2, rel=1e-4)
    assert exploit["margin_unpaired"] == pytest.approx(EXPLOIT_Z * math.sqrt(2) * 0.01)
    assert exploit["margin"] == exploit["margin_paired"]
    assert "skipped_within_noise" not in exploit  # 0.102 ahead, far beyond 0.008


def test_margin_auto_prefers_the_paired_standard_error():
    assert exploit_margin("auto", 0.03, 0.04, paired_se=0.01) == pytest.approx(EXPLOIT_Z * 0.01)
    assert exploit_margin("auto", 0.03, 0.04) == pytest.approx(EXPLOIT_Z * 0.05)
    assert exploit_margin(0.2, 0.03, 0.04, paired_se=0.01) == 0.2


def first_round(tmp_path, sched, ctrl, members, reads):
    """Each member reports its two ``reads`` (steps 10 and 20); the round decides. Returns
    each member's fitness in the round's row and the members from best to worst."""
    for m, (first, second) in zip(members, reads):
        report(sched, ctrl, m, 1, first)
        report(sched, ctrl, m, 2, second)
    sched.choose_trial_to_run(ctrl)
    (round_row,) = rows(tmp_path, "rounds-seed0.jsonl")
    ranking = [r["member"] for r in round_row["ranking"]]
    return {r["member"]: r["fitness"] for r in round_row["ranking"]}, ranking


def test_fitness_average_ranks_on_the_mean_of_the_last_reads(tmp_path):
    sched, ctrl, trials = setup(tmp_path, fitness="average", fitness_reads=2)
    members = trials[:4]
    # member 0 had a lucky last read (2.0 after 3.4); member 1 is steady at 2.6
    reads = [(3.4, 2.0), (2.6, 2.6), (2.7, 2.7), (2.8, 2.8)]
    fitness, ranking = first_round(tmp_path, sched, ctrl, members, reads)
    assert fitness == pytest.approx({0: 2.7, 1: 2.6, 2: 2.7, 3: 2.8})
    assert ranking[0] == 1


def test_fitness_forecast_ranks_on_the_reads_extrapolated_to_the_last_step(tmp_path):
    sched, ctrl, trials = setup(tmp_path, fitness="forecast", fitness_horizon=1000)
    members = trials[:4]
    # reads at steps 10 and 20 (report() steps 10 per report); member 3 reads worst at step
    # 20 but falls fastest
    reads = [(2.80, 2.70), (2.85, 2.72), (2.90, 2.74), (3.40, 2.76)]
    fitness, ranking = first_round(tmp_path, sched, ctrl, members, reads)
    # hand-computed: L = a + b / sqrt(t) through both reads, at t = 1000:
    # weight on the first read (1000**-.5 - 20**-.5) / (10**-.5 - 20**-.5) = -2.0731
    w1 = (1000**-0.5 - 20**-0.5) / (10**-0.5 - 20**-0.5)
    expected = {i: w1 * a + (1 - w1) * b for i, (a, b) in enumerate(reads)}
    assert fitness == pytest.approx(expected)
    assert ranking[0] == 3


@pytest.mark.parametrize("fitness", ["average", "forecast"])
def test_a_resumed_search_ranks_on_the_reads_it_had_before_the_stop(tmp_path, fitness):
    sched, ctrl, trials = setup(tmp_path, fitness=fitness, fitness_horizon=100)
    members = trials[:4]
    for it, objectives in ((1, (3.1, 3.0, 2.9, 4.2)), (2, (3.0, 2.9, 2.8, 4.0))):
        for m, obj in zip(members, objectives):
            report(sched, ctrl, m, it, obj)
    sched.choose_trial_to_run(ctrl)  # round 1: member 3 copies member 2 and its reads
    (exploit,) = [r for r in rows(tmp_path, "lineage-seed0.jsonl") if "new_config" in r]
    assert exploit["trial_id"] == "s0m3" and exploit["donor"] == "s0m2"
    for m, obj in zip(members, (2.95, 2.85, 2.75, 2.7)):
        report(sched, ctrl, m, 3, obj)
    before = {m.trial_id: sched._reads_of(m) for m in members}
    assert [r["objective"] for r in before["s0m3"]] == [2.9, 2.8, 2.7]
    # the driver dies; Tune restores the scheduler empty and adds the trials again
    for m in members:
        save(m, 3)
        m.set_status(Trial.PENDING)
    fresh = scheduler(tmp_path, fitness=fitness, fitness_horizon=100)
    for m in members:
        fresh.on_trial_add(ctrl, m)
    assert {m.trial_id: fresh._reads_of(m) for m in members} == before


def test_no_round_is_decided_before_the_burn_in(tmp_path):
    # a burn-in of 5 reports, a decision every 2: as in Ray's rule, the first round is at the
    # first report at or past the burn-in (5), not at 2 or 4; the next 2 reports later
    sched, ctrl, trials = setup(tmp_path, _burn_in_period=5)
    members = trials[:4]
    for it in range(1, 5):
        for i, m in enumerate(members):
            assert report(sched, ctrl, m, it, 3.0 + i) == TrialScheduler.CONTINUE
    assert sched.choose_trial_to_run(ctrl) is None and rows(tmp_path, "rounds-seed0.jsonl") == []
    for it in (5, 7):
        for i, m in enumerate(members):
            assert report(sched, ctrl, m, it, 3.0 + i) == TrialScheduler.PAUSE
        while (t := sched.choose_trial_to_run(ctrl)) is not None:
            t.set_status(Trial.RUNNING)
        if it == 5:
            assert report(sched, ctrl, members[0], 6, 3.0) == TrialScheduler.CONTINUE
            members[0].set_status(Trial.RUNNING)
    assert [(r["time"], r["decisions"]) for r in rows(tmp_path, "rounds-seed0.jsonl")] == [
        (5, 1),
        (7, 1),
    ]


@pytest.mark.parametrize(("burn_in", "reports"), [(0.0, 0), (0.25, 3), (1 / 3, 4), (0.3, 4)])
def test_burn_in_is_a_share_of_a_member_s_reports_rounded_up(burn_in, reports):
    from popmix.config import Experiment, SearchSpec, TrainConfig
    from popmix.tune.searchers.base import burn_in_reports

    exp = Experiment(
        train=TrainConfig(steps=600), search=SearchSpec(report_every=50, burn_in=burn_in)
    )
    assert burn_in_reports(exp) == reports


def _donors(folder, draws_between: int, draw_seed: int = 0) -> list[tuple]:
    """Two rounds of 8 members, the bottom half copying a donor drawn from the top half,
    with ``draws_between`` draws from the global generators before each round."""
    folder.mkdir()
    sched, ctrl, trials = setup(folder, n=8, quantile=0.5, draw_seed=draw_seed)
    for r in range(1, 3):
        for _ in range(draws_between):
            random.random()
            np.random.random()
        for i, m in enumerate(trials[:8]):
            report(sched, ctrl, m, 2 * r, 3.0 - 0.1 * i)
        before = random.getstate(), np.random.get_state()[1].tolist()
        while (t := sched.choose_trial_to_run(ctrl)) is not None:
            t.set_status(Trial.RUNNING)
        # a decision gives the driver's generators back as it found them
        assert (random.getstate(), np.random.get_state()[1].tolist()) == before
    return [(r["round"], r["trial_id"], r["donor"]) for r in rows(folder, "lineage-seed0.jsonl")]


def test_a_round_draws_its_donors_by_which_round_it_is_not_by_what_was_drawn_before(tmp_path):
    # Ray draws the donor with random.choice: from the process's generator, these would
    # depend on every draw before them (another seed's rounds, a resume's fresh start)
    alike = _donors(tmp_path / "a", 0)
    assert len(alike) == 8
    assert _donors(tmp_path / "b", 7) == alike
    # the draws are the search's (search.seed): another search seed draws other donors
    assert _donors(tmp_path / "c", 0, draw_seed=1) != alike
