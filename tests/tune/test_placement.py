"""Trials on GPUs, checked on a CPU machine: a local Ray that declares GPUs it does not have.

Ray's scheduling and its ``CUDA_VISIBLE_DEVICES`` per trial are real here; CUDA is not, so a
trial's device is decided by :func:`popmix.train.device.choose_device` from what it would see
(the GPU count that CUDA_VISIBLE_DEVICES leaves). Each test runs in a subprocess so that its
Ray, with GPUs, never meets the session's Ray.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_script(script: str, storage: Path, timeout: int) -> dict:
    """Run ``script`` in a subprocess (its own Ray); returns the JSON it prints after RESULT."""
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    proc = subprocess.run(
        [sys.executable, "-c", script, str(storage)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**env, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"},
    )
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert line, proc.stdout[-2000:] + proc.stderr[-4000:]
    return json.loads(line[len("RESULT ") :])


PACK_SCRIPT = r"""
import json, logging, os, sys, time
import ray
from ray import tune
from popmix.train.device import CudaState, choose_device

storage = sys.argv[1]
arrived = os.path.join(storage, "arrived")
os.makedirs(arrived)
N = 5  # at 0.25 GPU each on 2 GPUs: four on one GPU (Ray fills one first), one on the other

def trial(config):
    ids = [str(i) for i in ray.get_gpu_ids()]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    # what torch would see in this process: the devices Ray's CUDA_VISIBLE_DEVICES lists
    cuda = CudaState("test", "12.4", True, len(visible.split(",")) if visible else 0, visible)
    device = choose_device("auto", cuda, ids, gpus_asked=0.25)
    # A barrier: each trial waits until all have started, so they can only all finish in
    # time if Ray ran them at once (packed), not one after another.
    open(os.path.join(arrived, str(config["i"])), "w").close()
    deadline = time.time() + 60
    while len(os.listdir(arrived)) < N and time.time() < deadline:
        time.sleep(0.02)
    tune.report({"ids": ids, "visible": visible, "device": device,
                 "together": len(os.listdir(arrived))})

ray.init(address="local", num_cpus=2, num_gpus=2, include_dashboard=False,
         log_to_driver=False, logging_level=logging.WARNING, object_store_memory=128 * 2**20)
try:
    grid = tune.Tuner(
        tune.with_resources(trial, {"cpu": 0.25, "gpu": 0.25}),
        param_space={"i": tune.grid_search(list(range(N)))},
        tune_config=tune.TuneConfig(reuse_actors=False),
        run_config=tune.RunConfig(storage_path=storage, name="pack", verbose=0),
    ).fit()
    keys = ("ids", "visible", "device", "together")
    print("RESULT " + json.dumps({
        "trials": [{k: r.metrics.get(k) for k in keys} for r in grid],
        "errors": [str(r.error) for r in grid if r.error is not None],
    }))
finally:
    ray.shutdown()
"""

REAL_SCRIPT = r"""
import json, logging, sys
import ray
from ray import tune
from popmix.config import Resources, load_experiment, load_space
from popmix.data import load_domains
from popmix.records.trial import TrialSpec
from popmix.tune.spec import TrialSettings
from popmix.tune.trainable import MixtureTrainable

storage = sys.argv[1]
ray.init(address="local", num_cpus=2, num_gpus=1, include_dashboard=False,
         log_to_driver=False, logging_level=logging.WARNING, object_store_memory=128 * 2**20)
try:
    exp = load_experiment("experiments/smoke.yaml")
    domains = load_domains("synthetic", tasks=2)
    settings = TrialSettings.of(exp, None, 0.5)
    spec = TrialSpec.single(exp, "stratified", 0, domains.names)
    trainable = tune.with_resources(
        tune.with_parameters(MixtureTrainable, domains=domains, settings=settings),
        {"cpu": 0.5, "gpu": 0.25},
    )
    grid = tune.Tuner(
        trainable, param_space=spec.to_config(),
        run_config=tune.RunConfig(storage_path=storage, name="real", verbose=0,
                                  failure_config=tune.FailureConfig(max_failures=0)),
    ).fit()
    (r,) = list(grid)
    print("RESULT " + json.dumps({"error": str(r.error), "metrics": r.metrics or {}},
                                 default=str))
finally:
    ray.shutdown()
"""


@pytest.mark.slow  # 13 s on an idle 2-core machine (Ray's start, five actors), 50 s loaded
def test_quarter_gpu_trials_pack_four_to_a_gpu_each_on_its_logical_device(tmp_path):
    result = run_script(PACK_SCRIPT, tmp_path, timeout=240)
    assert result["errors"] == []
    trials = result["trials"]
    assert len(trials) == 5
    assert all(t["together"] == 5 for t in trials)  # all five ran at once
    per_gpu = collections.Counter(t["ids"][0] for t in trials)
    assert sorted(per_gpu.values()) == [1, 4] and set(per_gpu) == {"0", "1"}
    for t in trials:
        assert len(t["ids"]) == 1 and t["visible"] == t["ids"][0]  # Ray's physical id...
        assert t["device"] == "cuda:0"  # ...is this process's only device, cuda:0


@pytest.mark.slow  # about 30 s: Ray's start and a worker that imports torch
def test_the_real_trainable_given_a_gpu_with_cpu_only_torch_stops_naming_the_cause(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = run_script(REAL_SCRIPT, tmp_path, timeout=240)
    assert "DeviceError: this trial was given GPU 0 by Ray, but torch" in result["error"]
    assert "CPU-only build; install a CUDA build of torch" in result["error"]
    assert "objective" not in result["metrics"]  # it never trained on the CPU instead
