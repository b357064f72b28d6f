"""``popmix search --resume``: what popmix saves beside Tune (search.json, the step ledger,
TensorBoard's last steps, PBT's per-trial state) and, end to end (slow), a search whose driver
is killed with SIGKILL, or stopped with Ctrl-C, and then resumed."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest

from popmix.cli import main
from popmix.config import (
    SearchSpace,
    VectorSpec,
    load_experiment,
    load_space,
    resolve_space_path,
)
from popmix.records.trial import TrialSpec
from popmix.tune.callbacks import StepLedger
from popmix.tune.resume import SEARCH_FILE, read_search_file, write_search_file
from popmix.tune.schedulers import PopulationPBT
from popmix.tune.tensorboard import TensorBoardLogger


def test_search_file_gives_back_the_experiment_and_space(tmp_path):
    exp = load_experiment(None, [("train.steps", 77), ("seeds", [3, 4])])
    space = load_space(resolve_space_path("search_spaces/temperature.yaml", None))
    write_search_file(tmp_path, exp, space, tmp_path / "out")
    saved = read_search_file(tmp_path)
    assert saved.exp.replace(source=None) == exp.replace(source=None)
    assert saved.space == space and saved.out == tmp_path / "out"


def test_search_file_keeps_a_file_anchor_reachable_from_another_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("w.json").write_text("{}")  # only its path matters here
    vec = VectorSpec(anchors=("stratified", "file:w.json"))
    write_search_file(tmp_path, load_experiment(None), SearchSpace(sample_weights=vec), tmp_path)
    monkeypatch.chdir("/")  # a --resume from elsewhere still finds the file
    saved = read_search_file(tmp_path).space.sample_weights
    assert saved.anchors == ("stratified", f"file:{tmp_path.resolve() / 'w.json'}")


def one_line_exit_2(args, capsys) -> str:
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


def test_resume_refuses_what_is_not_a_search_in_one_line(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    assert "no such folder" in one_line_exit_2(["search", "--resume", str(missing)], capsys)
    (tmp_path / "seed0").mkdir()
    err = one_line_exit_2(["search", "--resume", str(tmp_path / "seed0")], capsys)
    assert "not a popmix search folder (no search.json)" in err
    (tmp_path / SEARCH_FILE).write_text(json.dumps({"format": 99}))
    assert "is format 99" in one_line_exit_2(["search", "--resume", str(tmp_path)], capsys)
    err = one_line_exit_2(["search", "--resume", str(tmp_path), "--steps", "5", "a.b=1"], capsys)
    assert "drop --steps, a.b" in err


def test_resuming_a_finished_search_says_so_and_runs_nothing(tmp_path, capsys):
    exp = load_experiment(None)
    space = load_space(resolve_space_path(exp.search.space, None))
    write_search_file(tmp_path, exp, space, tmp_path)
    summary = {"rows": [{"method": "stratified", "seed": 0, "status": "ok"}], "interrupted": False}
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    assert main(["search", "--resume", str(tmp_path)]) == 0
    assert "finished already" in capsys.readouterr().out
    assert json.loads((tmp_path / "summary.json").read_text()) == summary  # untouched


class FakeTrial(SimpleNamespace):
    __hash__ = object.__hash__  # a scheduler keys its state by trial


def fake_trial(tid: str, step: int = 0, **result) -> SimpleNamespace:
    config = TrialSpec("pbt", seed=0, member=int(tid[-1])).to_config()
    return FakeTrial(
        trial_id=tid,
        path=f"/runs/{tid}",
        config=config,
        experiment_tag=tid,
        checkpoint=f"checkpoint-of-{tid}",
        last_result={"step": step, **result} if result else None,
        run_metadata=SimpleNamespace(
            checkpoint_manager=SimpleNamespace(checkpoint_config=SimpleNamespace(num_to_keep=4))
        ),
    )


def test_the_ledger_is_kept_in_its_file_and_continues_in_another_process(tmp_path):
    path = tmp_path / "ledger-seed0.json"
    first = StepLedger(path)
    t = fake_trial("t0")
    first.on_trial_start(0, [], t)
    first.on_trial_result(0, [], t, {"steps_this_report": 20, "time_train_s": 1.5})
    first.on_trial_recover(0, [], t)
    # the resumed Tuner's copy, unpickled from tuner.pkl as it was when the search began
    second = StepLedger(path)
    second.setup()
    second.on_trial_result(0, [], t, {"steps_this_report": 20, "time_train_s": 1.0})
    assert second.steps == {"t0": 40} and second.train_time == {"t0": 2.5}
    assert second.retries == {"t0": 1} and second.trials["/runs/t0"][0] == "t0"
    driver = StepLedger(path)  # the driver reads what the Tuner's copy counted
    assert driver.steps == {"t0": 40} and driver.wall_time("t0") is not None


def test_tensorboard_adds_no_point_twice_across_processes(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    t = fake_trial("abc_00000")
    before = TensorBoardLogger(tmp_path)
    for step in (20, 40, 60):
        before.on_trial_result(0, [], t, {"step": step, "objective": 1.0 / step})
    before._writers.pop(t.trial_id).close()  # the driver is killed: no on_trial_complete
    after = TensorBoardLogger(tmp_path)  # the resumed search replays from step 20
    # ... and, within one process, writes every point, also one that goes back (an
    # asynchronous exploit copies a donor at an earlier step: 60 after 80)
    for step in (40, 60, 80, 60):
        after.on_trial_result(0, [], t, {"step": step, "objective": 1.0 / step})
    after._writers.pop(t.trial_id).close()
    ea = EventAccumulator(str(tmp_path / "seed0" / "pbt-member0"))
    ea.Reload()
    steps = [e.step for e in ea.Scalars("compare/objective")]
    assert sorted(steps) == [20, 40, 60, 60, 80]  # the reader orders the two files


def test_pbt_state_of_a_restored_trial_comes_from_its_last_result():
    pbt = PopulationPBT(
        time_attr="training_iteration",
        metric="objective",
        mode="min",
        perturbation_interval=4,
        hyperparam_mutations={"spec": {"t_start": [1.0, 2.0]}},
    )
    controller = SimpleNamespace(search_alg=None)
    fresh = fake_trial("t0")
    restored = fake_trial("t1", step=140, training_iteration=7, objective=2.5)
    pbt.on_trial_add(controller, fresh)
    pbt.on_trial_add(controller, restored)
    assert pbt._trial_state[fresh].last_score is None  # a new trial: Ray's own start
    state = pbt._trial_state[restored]
    # on the perturbation grid (every 4 reports), scored (minimised: negated), a donor
    assert state.last_perturbation_time == 4 and state.last_train_time == 7
    assert state.last_score == -2.5 and state.last_checkpoint == "checkpoint-of-t1"
    # a baseline restored with a result is never scored, so never a donor
    baseline = fake_trial("s2", step=140, training_iteration=7, objective=1.0)
    baseline.config = TrialSpec("stratified", seed=0, member=-1).to_config()
    pbt.on_trial_add(controller, baseline)
    assert pbt._trial_state[baseline].last_score is None


SEARCH = [
    "--tasks", "3", "--n-layer", "1", "--d-model", "32", "--n-head", "2", "--seq-len", "32",
    "--batch-size", "8", "--steps", "400", "--report-every", "20", "--population", "2",
    "--methods", "pbt,stratified", "--eval-windows", "2", "--test-windows", "2",
    "--cpus-per-trial", "1", "--cpus", "2", "--quiet",
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(
    "how", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM], ids=["sigkill", "ctrl-c", "sigterm"]
)
def test_a_stopped_search_resumes_and_finishes(tmp_path, how, popmix_process):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    exp_dir = tmp_path / "runs" / "killed"
    args = ["search", *SEARCH, "--storage", str(tmp_path / "runs"), "--name", "killed"]
    proc = popmix_process(
        args, start_new_session=True
    )  # its own process group, Ray's daemons in it
    ledger = exp_dir / "ledger-seed0.json"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if ledger.is_file():
            steps = json.loads(ledger.read_text())["steps"]
            # every trial has reported, none has finished: kill the driver mid-run
            if len(steps) == 3 and min(steps.values()) >= 60:
                break
        time.sleep(0.5)
    assert proc.poll() is None, proc.communicate()[0][-2000:]
    if how == signal.SIGTERM:
        os.kill(proc.pid, how)  # the driver alone, as `kill PID` sends it
    else:
        os.killpg(proc.pid, how)  # the process group, as a terminal sends Ctrl-C
    stopped = proc.communicate(timeout=120)[0]
    if how == signal.SIGKILL:
        assert not (exp_dir / "summary.json").exists()
    else:  # what finished is written, marked interrupted, and the way on
        assert proc.returncode == 128 + how, stopped[-2000:]
        assert f"popmix search --resume {exp_dir}" in stopped
        assert json.loads((exp_dir / "summary.json").read_text())["interrupted"]

    resumed = popmix_process(["search", "--resume", str(exp_dir), "--cpus", "2", "--quiet"])
    out, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    summary = json.loads((exp_dir / "summary.json").read_text())
    assert not summary["interrupted"]
    assert set(summary["methods"]) == {"pbt", "stratified"}
    assert len(summary["rows"]) == 2  # the population's row and stratified's
    for row in summary["rows"]:
        assert row["status"] == "ok" and row["steps"] == 400, row
        # steps after a trial's last checkpoint are trained again, and counted
        assert (row.get("population_train_steps") or row["train_steps"]) >= 400 * (
            row.get("members") or 1
        )
    pbt = next(r for r in summary["rows"] if r["method"] == "pbt")
    assert pbt["members_finished"] == pbt["members"] == 2
    for run in (exp_dir / "tensorboard" / "seed0").iterdir():
        ea = EventAccumulator(str(run))
        ea.Reload()
        steps = [e.step for e in ea.Scalars("compare/objective")]
        assert steps == list(range(20, 401, 20)), (run.name, Counter(steps))
    again = popmix_process(["search", "--resume", str(exp_dir), "--quiet"])
    assert "finished already" in again.communicate(timeout=120)[0]
    assert Path(exp_dir / "summary.json").read_text() == json.dumps(summary, indent=2)
