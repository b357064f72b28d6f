"""Per-trial records from a search, without running one: steps, times and the summary table."""

from __future__ import annotations

from types import SimpleNamespace

from popmix.records.summary import Summary
from popmix.records.table import format_table
from popmix.tune.callbacks import StepLedger
from popmix.tune.runner import trial_records
from popmix.tune.summarize import summarize


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def trial(tid: str) -> SimpleNamespace:
    return SimpleNamespace(trial_id=tid, path=f"/runs/{tid}", config={})


def result(step: int, **kw) -> dict:
    return {"steps_this_report": 50, "time_train_s": 2.0, "step": step} | kw


def test_wall_time_is_the_trials_own_total_not_rays_time_total():
    clock = Clock()
    ledger = StepLedger(clock=clock)
    a, b = trial("a"), trial("b")
    ledger.on_trial_start(0, [], a)
    clock.now += 60
    ledger.on_trial_result(0, [], a, result(50))
    ledger.on_trial_start(0, [], b)
    clock.now += 60
    ledger.on_trial_result(0, [], a, result(100))
    # a restore after a pause or an exploit starts the trial again: the clock keeps running
    ledger.on_trial_start(0, [], a)
    clock.now += 30
    ledger.on_trial_result(0, [], b, result(50))
    ledger.on_trial_complete(0, [], a)
    assert ledger.wall_time("a") == 150.0 and ledger.wall_time("b") == 90.0
    assert ledger.steps == {"a": 100, "b": 50} and ledger.train_time["a"] == 4.0
    assert ledger.wall_time("never-started") is None


def test_records_and_table_use_the_ledgers_wall_time():
    clock = Clock()
    ledger = StepLedger(clock=clock)
    t = trial("t1")
    ledger.on_trial_start(0, [], t)
    clock.now += 185.0
    # Ray's own time_total_s: only time inside step(), and a donor's after an exploit
    metrics = {
        "trial_id": "t1",
        "objective": 1.5,
        "test_mean_ppl": 4.0,
        "test_worst_ppl": 5.0,
        "step": 100,
        "time_total_s": 0.4,
    }
    ledger.on_trial_result(0, [], t, result(100) | metrics)
    spec = {"method": "stratified", "seed": 0, "member": -1}
    grid = [
        SimpleNamespace(
            path=t.path, config={"spec": spec}, metrics=metrics, checkpoint=None, error=None
        )
    ]
    (rec,) = trial_records(grid, ledger)
    assert rec["wall_time_s"] == 185.0 and rec["status"] == "ok" and rec["train_steps"] == 50
    table = format_table(Summary.from_dict(summarize([rec], "pbt")))
    row = table.splitlines()[2]
    assert row.split()[-2:] == ["185", "ok"], table
