"""A search on a simulated two-node cluster: trials land on both nodes, results reach storage.

Runs in a subprocess so its cluster never meets the session's local Ray.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import dataclasses, json, logging, sys
import ray
from ray.cluster_utils import Cluster
from popmix.config import Resources, load_experiment, load_space
from popmix.tune.search import SearchOptions, run_search

storage = sys.argv[1]
cluster = Cluster(initialize_head=True, connect=False,
                  head_node_args={"num_cpus": 1, "include_dashboard": False,
                                  "object_store_memory": 128 * 2**20})
cluster.add_node(num_cpus=1, object_store_memory=128 * 2**20)
cluster.wait_for_nodes()
try:
    ray.init(address=cluster.address, log_to_driver=False, logging_level=logging.WARNING)
    node_ids = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
    exp = load_experiment("experiments/smoke.yaml")
    # One whole CPU per trial: each node (1 CPU) runs one trial at a time. No PBT decision
    # pauses a trial (a paused trial frees its actor at once, and with actor reuse the next
    # trial would take it on the same node), and trials run long enough that a second actor
    # starts, on the other node.
    exp = exp.replace(methods=("pbt", "stratified", "proportional"),
                      resources=Resources(cpus_per_trial=1.0),
                      search=dataclasses.replace(exp.search, perturbation_interval=1000),
                      train=dataclasses.replace(exp.train, steps=600, eval_windows=1))
    space = load_space("search_spaces/sampling.yaml")
    summary = run_search(exp, space, SearchOptions(address=cluster.address, storage=storage,
                                                   name="multi", quiet=True))
    print("RESULT " + json.dumps({"nodes": node_ids,
                                  "members": [dataclasses.asdict(m) for m in summary.members],
                                  "rows": [dataclasses.asdict(r) for r in summary.rows]},
                                 default=str))
finally:
    ray.shutdown()
    cluster.shutdown()
"""


def run_cluster_script(script: str, storage: Path, timeout: int) -> dict:
    """Run ``script`` (it builds its own simulated cluster) in a subprocess, so its cluster
    never meets the session's Ray; returns the JSON it prints after ``RESULT``."""
    env = {
        **os.environ,
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_AUTH_MODE": "disabled",
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    proc = subprocess.run(
        [sys.executable, "-c", script, str(storage)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env,
    )
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert line, proc.stdout[-2000:] + proc.stderr[-4000:]
    return json.loads(line[len("RESULT ") :])


@pytest.mark.slow
def test_search_on_a_two_node_cluster(tmp_path):
    result = run_cluster_script(SCRIPT, tmp_path, timeout=300)
    assert len(result["nodes"]) == 2
    # every result names the node it came from; both nodes got work
    used = set()
    for f in (tmp_path / "multi" / "seed0").glob("*/result.json"):
        used |= {json.loads(x)["node"] for x in f.read_text().splitlines() if x.strip()}
    assert used == set(result["nodes"]), used
    assert (tmp_path / "multi" / "summary.json").is_file()
    trial_dirs = list((tmp_path / "multi" / "seed0").glob("*_*"))
    assert len([d for d in trial_dirs if d.is_dir()]) == 4
    assert all(r["status"] == "ok" for r in result["rows"])


# ------------------------------------------------------------------------------------------------
# A trial that no node can hold fails before any trial starts.

GIB = 2.0**30
CPU_NODE = {"CPU": 8.0, "memory": 16 * GIB}
GPU_NODE = {"CPU": 1.0, "GPU": 4.0, "memory": 8 * GIB}


def test_a_trial_must_fit_on_one_node_not_only_in_the_cluster_total():
    from popmix.config import ConfigError
    from popmix.tune.cluster import check_trial_fits

    assert check_trial_fits({"CPU": 1.0, "GPU": 1.0}, [CPU_NODE, GPU_NODE], None) is None
    # 9 CPUs and 4 GPUs in all, but no node has 2 CPUs and a GPU
    with pytest.raises(ConfigError) as e:
        check_trial_fits({"CPU": 2.0, "GPU": 1.0}, [CPU_NODE, GPU_NODE], None, "exp.yaml")
    msg = str(e.value)
    assert "each trial asks for 2 CPUs, 1 GPU" in msg
    assert "1 with 8 CPUs, 0 GPUs" in msg and "1 with 1 CPU, 4 GPUs" in msg
    assert "change resources: in exp.yaml or pass --cpus-per-trial/--gpus-per-trial" in msg
    with pytest.raises(ConfigError, match=r"32.0 GiB memory.*nodes: 1 with 16.0 GiB memory"):
        check_trial_fits({"memory": 32 * GIB}, [CPU_NODE], None)
    with pytest.raises(ConfigError, match="pass --cpus-per-trial 8 --gpus-per-trial 0$"):
        check_trial_fits({"CPU": 12.0, "GPU": 0.5}, [CPU_NODE, CPU_NODE], None)


def test_an_autoscaling_cluster_waits_for_a_node_that_can_hold_a_trial():
    from popmix.config import ConfigError
    from popmix.tune.cluster import check_trial_fits

    request = {"CPU": 2.0, "GPU": 0.25}
    note = check_trial_fits(
        request, [CPU_NODE], {"cpu": CPU_NODE, "gpu-worker": GPU_NODE | {"CPU": 4.0}}
    )
    assert note and "waiting for the autoscaler to add a node of type gpu-worker" in note
    # the cluster autoscales but does not say its node types: wait
    note = check_trial_fits(request, [CPU_NODE], {})
    assert note and "waiting for the autoscaler" in note
    # none of the node types it can add holds a trial: fail
    with pytest.raises(ConfigError, match="the autoscaler can add only cpu with 8 CPUs, 0 GPUs"):
        check_trial_fits(request, [CPU_NODE], {"cpu": CPU_NODE})


def test_autoscaler_node_types_are_read_from_the_cluster(ray_session):
    """The autoscaler (v2, KubeRay) publishes its node types in the GCS; popmix reads them."""
    from ray._raylet import GCS_AUTOSCALER_CLUSTER_CONFIG_KEY, GCS_AUTOSCALER_STATE_NAMESPACE
    from ray.core.generated import autoscaler_pb2
    from ray.experimental.internal_kv import _internal_kv_del, _internal_kv_put

    from popmix.tune.cluster import autoscaler_node_types

    assert autoscaler_node_types() is None  # a local Ray does not autoscale
    config = autoscaler_pb2.ClusterConfig()
    gpu = config.node_group_configs.add(name="gpu-worker", min_count=0, max_count=4)
    gpu.resources.update({"CPU": 8, "GPU": 1})
    full = config.node_group_configs.add(name="fixed", min_count=2, max_count=2)
    full.resources.update({"CPU": 64})
    key, ns = GCS_AUTOSCALER_CLUSTER_CONFIG_KEY, GCS_AUTOSCALER_STATE_NAMESPACE
    _internal_kv_put(key, config.SerializeToString(), namespace=ns)
    try:
        assert autoscaler_node_types() == {"gpu-worker": {"CPU": 8.0, "GPU": 1.0}}
    finally:
        _internal_kv_del(key, namespace=ns)


def test_a_gpu_trial_on_a_cpu_only_local_ray_fails_in_seconds(ray_session, tmp_path, capsys):
    from popmix.cli import main

    if ray_session.cluster_resources().get("GPU"):
        pytest.skip("this machine's Ray has GPUs")
    start = time.monotonic()
    rc = main(
        [
            "search",
            "--experiment",
            str(ROOT / "experiments" / "smoke.yaml"),
            "--gpus-per-trial",
            "1",
            "--storage",
            str(tmp_path),
            "--name",
            "gpu",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and time.monotonic() - start < 20
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("popmix search: error: each trial asks for 0.5 CPUs, 1 GPU, but no node")
    assert "(nodes: 1 with 2 CPUs, 0 GPUs)" in err
    assert err.rstrip().endswith(
        f"in {ROOT / 'experiments' / 'smoke.yaml'} or pass --gpus-per-trial 0"
    )
    assert not (tmp_path / "gpu").exists()  # nothing started, nothing written


@pytest.mark.slow
def test_the_gpu_cluster_experiment_fails_fast_from_the_shell(tmp_path):
    """The issue's case as a user types it: it used to wait forever on a CPU-only Ray."""
    import shutil

    if shutil.which("nvidia-smi"):
        pytest.skip("this machine may have GPUs")
    start = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "popmix.cli",
            "search",
            "--experiment",
            "experiments/gpu_cluster16.yaml",
            "--steps",
            "4",
            "--cpus",
            "2",
            "--storage",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "RAY_ADDRESS": ""},
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert time.monotonic() - start < 60
    (line,) = proc.stderr.strip().splitlines()
    assert "asks for 2 CPUs, 0.25 GPUs" in line and "--gpus-per-trial 0" in line


# ------------------------------------------------------------------------------------------------
# A node that leaves mid-search: its trial restarts from its last checkpoint elsewhere.

REPORT_EVERY = 6  # experiments/smoke.yaml's search.report_every

REMOVE_SCRIPT = r"""
import dataclasses, glob, json, logging, sys, threading, time
import ray
from ray.cluster_utils import Cluster
from popmix.config import Resources, load_experiment, load_space
from popmix.tune.search import SearchOptions, run_search

storage = sys.argv[1]
cluster = Cluster(initialize_head=True, connect=False,
                  head_node_args={"num_cpus": 1, "include_dashboard": False,
                                  "object_store_memory": 128 * 2**20})
worker = cluster.add_node(num_cpus=1, object_store_memory=128 * 2**20)
cluster.wait_for_nodes()
removed = []

def remove_worker_after_its_first_report():
    target = worker.node_id
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        for f in glob.glob(storage + "/**/result.json", recursive=True):
            for line in open(f).read().splitlines():
                try:  # a line may still be being written
                    node = json.loads(line).get("node")
                except ValueError:
                    continue
                if node == target:
                    removed.append(target)
                    cluster.remove_node(worker)  # the head's CPU takes its trial over
                    return
        time.sleep(0.05)

try:
    ray.init(address=cluster.address, log_to_driver=False, logging_level=logging.WARNING)
    exp = load_experiment("experiments/smoke.yaml")
    exp = exp.replace(methods=("stratified", "proportional"),
                      resources=Resources(cpus_per_trial=1.0),
                      train=dataclasses.replace(exp.train, steps=2400, eval_windows=1))
    space = load_space("search_spaces/sampling.yaml")
    thread = threading.Thread(target=remove_worker_after_its_first_report, daemon=True)
    thread.start()
    summary = run_search(exp, space, SearchOptions(address=cluster.address, storage=storage,
                                                   name="leave", quiet=True))
    print("RESULT " + json.dumps({"removed": removed,
                                  "rows": [dataclasses.asdict(r) for r in summary.rows],
                                  "retries": summary.retries}, default=str))
finally:
    ray.shutdown()
    cluster.shutdown()
"""


@pytest.mark.slow
def test_a_trial_on_a_node_that_leaves_restarts_from_its_checkpoint(tmp_path):
    result = run_cluster_script(REMOVE_SCRIPT, tmp_path, timeout=400)
    assert result["removed"], f"no trial reported from the worker node: {result}"
    assert result["retries"] >= 1
    for row in result["rows"]:
        assert row["status"] == "ok" and row["steps"] == 2400, row
    (moved,) = [r for r in result["rows"] if r["retries"]]
    # restarted from its last checkpoint (one per report), not from step 0: at most the steps
    # since that checkpoint, and the report being trained when the node left, are repeated
    assert 2400 <= moved["train_steps"] <= 2400 + 2 * REPORT_EVERY, moved["train_steps"]
