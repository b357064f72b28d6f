"""A method gives the same run alone (``popmix run``) and as a trial of ``popmix search``.

Same seed, same settings, one torch thread on both sides: the final weights and every domain's
test loss must agree, whether the search's report interval divides the method's rounds (Aioli's
``update_steps``, Cooldown's switch) or not. A report boundary used to change Aioli's run.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from popmix.cli import main

STEPS = 24
MODEL = {"n_layer": 1, "n_head": 2, "d_model": 32, "seq_len": 32}
TRAIN = {
    "steps": STEPS,
    "batch_size": 6,
    "lr": 0.003,
    "warmup_steps": 4,
    "eval_windows": 2,
    "test_windows": 4,
}
BASELINES = {
    "temperature": {"temperature": 3.0},
    "cooldown": {"t_start": 5.0, "t_end": 1.0, "switch_frac": 0.5},
    "doge": {"mu": 0.01, "target": "validation"},
    # rounds of 8 steps, LearnParams 3 of them
    "aioli": {"lp_rounds": 1, "lp_steps": 1, "update_steps": 8, "eval_windows": 2},
}
RUN_FLAGS = {
    "stratified": [],
    "temperature": ["--temperature", "3.0"],
    "cooldown": ["--t-start", "5.0", "--t-end", "1.0", "--switch-frac", "0.5"],
    "doge": ["--param", "mu=0.01", "--param", "target=validation"],
    "aioli": [
        "--param",
        "lp_rounds=1",
        "--param",
        "lp_steps=1",
        "--param",
        "update_steps=8",
        "--param",
        "eval_windows=2",
    ],
}


def last_result(trial_dir: Path) -> dict:
    lines = (trial_dir / "result.json").read_text().splitlines()
    return json.loads(lines[-1])


def run_alone(tmp_path: Path, name: str, flags: list[str]) -> dict:
    out = tmp_path / f"run-{name}"
    argv = [
        "run",
        "--tasks",
        "3",
        "--steps",
        str(STEPS),
        "--batch-size",
        str(TRAIN["batch_size"]),
        "--lr",
        str(TRAIN["lr"]),
        "--warmup-steps",
        str(TRAIN["warmup_steps"]),
        "--eval-windows",
        str(TRAIN["eval_windows"]),
        "--test-windows",
        str(TRAIN["test_windows"]),
        "--n-layer",
        "1",
        "--n-head",
        "2",
        "--d-model",
        "32",
        "--seq-len",
        "32",
        "--eval-interval",
        "7",  # validation points of popmix run need not match the search's reports
        "--threads",
        "1",
        "--seed",
        "0",
        "--out",
        str(out),
        "--quiet",
        *flags,
    ]
    assert main(argv) == 0
    return json.loads((out / "result.json").read_text())


# a report grid that divides the steps (4), and one that does not (5: the slow suite's)
@pytest.mark.parametrize("report_every", [4, pytest.param(5, marks=pytest.mark.slow)])
def test_every_method_alone_and_in_a_search_is_the_same_run(ray_session, tmp_path, report_every):
    exp = {
        "name": "same",
        "data": {"benchmark": "brown16", "tasks": 3},
        "model": MODEL,
        "train": TRAIN,
        # one member: nothing to exploit, so it is a fixed mixture trained like any other
        "search": {"population": 1, "report_every": report_every, "perturbation_interval": 100},
        "methods": ["pbt", "stratified", "temperature", "cooldown", "doge", "aioli"],
        "baselines": BASELINES,
        "seeds": [0],
        "resources": {"cpus_per_trial": 1},
    }
    path = tmp_path / "same.yaml"
    path.write_text(yaml.safe_dump(exp))
    storage = tmp_path / "runs"
    rc = main(
        ["search", "--experiment", str(path), "--storage", str(storage), "--name", "s", "--quiet"]
    )
    assert rc == 0
    trials = {}
    for d in (storage / "s" / "seed0").iterdir():
        if d.is_dir() and (d / "result.json").is_file():
            trials[d.name.split("_", 1)[0]] = last_result(d)
    assert set(trials) == {"pbt", *RUN_FLAGS}

    member = trials.pop("pbt")
    weights = [member["weight"][n] for n in member["test_loss"]]
    flags = {**RUN_FLAGS, "pbt": ["--method", "fixed", "--weights", ",".join(map(repr, weights))]}
    for method, result in {**trials, "pbt": member}.items():
        method_flags = flags[method] if method == "pbt" else ["--method", method, *flags[method]]
        alone = run_alone(tmp_path, method, method_flags)
        names = alone["domains"]
        final = result.get("final_weight") or result["weight"]
        np.testing.assert_allclose(
            [final[n] for n in names],
            [alone["final_weights"][n] for n in names],
            rtol=1e-6,
            err_msg=f"{method}: final weights differ (report_every {report_every})",
        )
        np.testing.assert_allclose(
            [result["test_loss"][n] for n in names],
            [alone["test_loss"][n] for n in names],
            rtol=1e-6,
            err_msg=f"{method}: test losses differ (report_every {report_every})",
        )
