"""Synchronous rounds on a real Ray: every round decides, the bad member goes first, a
search stopped mid-way and resumed decides each round once, and a seed decides alike alone
and beside another seed."""

from __future__ import annotations

import json
import math
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from _ray_procs import training_workers

from popmix.records.weights import WeightsSchedule

ROUNDS = 3
STEPS, REPORT, INTERVAL = 40, 10, 1  # 4 reports: decisions after reports 1, 2 and 3


def corpus(folder: Path) -> Path:
    """Two domains the model must learn both of: letters and digits."""
    rng = np.random.default_rng(0)
    data = folder / "data"
    data.mkdir()
    for name, alphabet in (("digits", "0123456789 "), ("letters", "abcdefghij ")):
        (data / f"{name}.txt").write_text("".join(rng.choice(list(alphabet), 60_000)))
    return data


def space(folder: Path, population: int) -> Path:
    """Every member uniform but the last, which puts 0.999 on the digits (scored on both)."""
    broken = folder / "broken.json"
    WeightsSchedule.build(
        domains=["digits", "letters"],
        total_steps=STEPS,
        points=[{"step": 0, "weights": [0.999, 0.001]}],
        final_weights=[0.999, 0.001],
        method="fixed",
    ).write(broken)
    anchors = ", ".join(["stratified"] * (population - 1) + ["file"])
    path = folder / "space.yaml"
    path.write_text(
        f"sample_weights: {{init: anchors, anchors: [{anchors}], init_file: {broken}, "
        "sigma: 0.0, resample_concentration: 5.0, floor: 0.001}\n"
    )
    return path


def args(folder: Path, population: int, *more: str) -> list[str]:
    return [
        "search", "--data", str(corpus(folder)), "--space", str(space(folder, population)),
        "--n-layer", "1", "--d-model", "32", "--n-head", "2", "--seq-len", "32",
        "--batch-size", "8", "--steps", str(STEPS), "--report-every", str(REPORT),
        "--population", str(population), "--methods", "pbt,stratified",
        "--eval-windows", "8", "--test-windows", "2", "--rounds", "sync",
        "search.perturbation_interval=1", "search.quantile_fraction=0.25",
        "search.resample_probability=0.0", *more,
    ]  # fmt: skip


def rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def check_rounds(exp_dir: Path, population: int) -> None:
    rounds = rows(exp_dir / "rounds-seed0.jsonl")
    assert [r["round"] for r in rounds] == list(range(1, ROUNDS + 1))
    assert [r["step"] for r in rounds] == [REPORT * r for r in range(1, ROUNDS + 1)]
    per_round = math.ceil(population * 0.25)
    assert all(r["decisions"] == per_round for r in rounds), rounds
    lineage = json.loads((exp_dir / "lineage.json").read_text())
    decided = lineage["exploits"] + lineage["skipped_within_noise"]
    assert len(decided) == ROUNDS * per_round
    # the broken member (the last) ranks last in round 1 and copies a uniform one
    assert rounds[0]["ranking"][-1]["member"] == population - 1
    first = [r for r in lineage["exploits"] if r["round"] == 1]
    assert any(r["trial_id"] == rounds[0]["ranking"][-1]["trial_id"] for r in first)
    assert all(r["gain"] > r["margin"] for r in first)


@pytest.mark.slow
@pytest.mark.parametrize("population", [4, 6])
def test_every_round_decides_and_the_bad_member_is_replaced_first(
    ray_session, tmp_path, population
):
    from popmix.cli import main

    out = tmp_path / "runs"
    assert main([*args(tmp_path, population), "--storage", str(out), "--name", "r", "--quiet",
                 "--cpus-per-trial", "0.25"]) == 0  # fmt: skip
    check_rounds(out / "r", population)
    summary = json.loads((out / "r" / "summary.json").read_text())
    pbt = next(r for r in summary["rows"] if r["method"] == "pbt")
    # members wait for one another but never train a step twice: no replay in sync rounds
    assert pbt["members_finished"] == population
    assert pbt["population_train_steps"] == population * STEPS


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "sigkill"])
def test_a_search_stopped_mid_round_resumes_and_decides_every_round_once(
    tmp_path, how, popmix_process
):
    exp_dir = tmp_path / "runs" / "stopped"
    argv = [*args(tmp_path, 4), "--storage", str(tmp_path / "runs"), "--name", "stopped",
            "--quiet", "--cpus", "2", "--cpus-per-trial", "0.4"]  # fmt: skip
    proc = popmix_process(argv, start_new_session=True)
    rounds = exp_dir / "rounds-seed0.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if rounds.is_file() and rows(rounds):
            break  # round 1 decided: stop it while round 2 is under way
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()[0][-2000:]
    os.killpg(proc.pid, how)
    proc.communicate(timeout=120)
    resumed = popmix_process(["search", "--resume", str(exp_dir), "--cpus", "2", "--quiet"])
    out, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    check_rounds(exp_dir, 4)
    summary = json.loads((exp_dir / "summary.json").read_text())
    assert all(r["status"] == "ok" and r["steps"] == STEPS for r in summary["rows"])


@pytest.mark.slow
def test_a_member_whose_worker_dies_mid_round_is_retried_and_the_round_still_decides(
    ray_session, tmp_path
):
    import threading

    from popmix.cli import main

    out = tmp_path / "runs"
    killed: list[int] = []

    def kill_a_member() -> None:
        # once round 1 is decided, kill a member's worker while it trains round 2
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not killed:
            if (out / "r" / "rounds-seed0.jsonl").exists():
                for pid in training_workers("pbt_")[:1]:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        continue  # that worker has gone already: try again
                    killed.append(pid)
                    return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_a_member, daemon=True)
    killer.start()
    assert main([*args(tmp_path, 4), "--storage", str(out), "--name", "r", "--quiet",
                 "--cpus-per-trial", "0.25"]) == 0  # fmt: skip
    killer.join(5)
    assert killed, "no member's worker was seen"
    check_rounds(out / "r", 4)
    summary = json.loads((out / "r" / "summary.json").read_text())
    assert summary["retries"] >= 1
    assert all(r["status"] == "ok" and r["steps"] == STEPS for r in summary["rows"])


@pytest.mark.slow
def test_no_round_is_decided_before_the_burn_in(ray_session, tmp_path):
    from popmix.cli import main

    out = tmp_path / "runs"
    # 4 reports, half of them burn-in: rounds after reports 2 and 3 only
    assert main([*args(tmp_path, 4), "--burn-in", "0.5", "--storage", str(out), "--name", "b",
                 "--quiet", "--cpus-per-trial", "0.25"]) == 0  # fmt: skip
    rounds = rows(out / "b" / "rounds-seed0.jsonl")
    assert [(r["step"], r["decisions"]) for r in rounds] == [(2 * REPORT, 1), (3 * REPORT, 1)]


def _decisions(exp_dir: Path, seed: int) -> list[tuple]:
    """A seed's decisions by member (trial ids differ between searches)."""
    ranking = [e for r in rows(exp_dir / f"rounds-seed{seed}.jsonl") for e in r["ranking"]]
    member = {e["trial_id"]: e["member"] for e in ranking}
    return [
        (r["round"], member[r["trial_id"]], member[r["donor"]], r.get("new_config"))
        for r in rows(exp_dir / f"lineage-seed{seed}.jsonl")
    ]


@pytest.mark.slow
def test_a_seed_decides_alike_alone_and_beside_another_seed(ray_session, tmp_path):
    # The temperature space: Ray mutates its scalars and draws the donor among the top half
    # from the driver's generators, which two seeds in one Tuner used to share in whatever
    # order their rounds came.
    from popmix.cli import main

    data = corpus(tmp_path)
    out = tmp_path / "runs"
    common = [
        "search", "--data", str(data), "--space", "temperature.yaml",
        "--n-layer", "1", "--d-model", "32", "--n-head", "2", "--seq-len", "32",
        "--batch-size", "8", "--steps", str(STEPS), "--report-every", str(REPORT),
        "--population", "4", "--methods", "pbt", "--eval-windows", "8", "--test-windows", "2",
        "--rounds", "sync", "search.perturbation_interval=1", "search.quantile_fraction=0.5",
        "search.exploit_margin=0", "--storage", str(out), "--quiet", "--cpus-per-trial", "0.25",
    ]  # fmt: skip
    assert main([*common, "--seeds", "0,1", "--name", "pair"]) == 0
    assert main([*common, "--seed", "1", "--name", "alone"]) == 0
    alone = _decisions(out / "alone", 1)
    assert len(alone) == ROUNDS * 2  # every round: the bottom 2 of 4 copy and explore
    assert any(new for _, _, _, new in alone)
    assert _decisions(out / "pair", 1) == alone
