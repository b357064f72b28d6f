"""A search on a simulated two-node cluster: trials land on both nodes, results reach storage.

Runs in a subprocess so its cluster never meets the session's local Ray.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import dataclasses, json, logging, sys
import ray
from ray.cluster_utils import Cluster
from popmix.tune.config import Resources, load_experiment, load_space
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
    # one whole CPU per trial: each node (1 CPU) runs one trial at a time, so both are used
    # Long enough that trials overlap (with actor reuse, back-to-back trials share a node).
    exp = exp.replace(methods=("pbt", "stratified", "proportional"),
                      resources=Resources(cpus_per_trial=1.0),
                      train=dataclasses.replace(exp.train, steps=120))
    space = load_space("search_spaces/sampling.yaml")
    summary = run_search(exp, space, SearchOptions(address=cluster.address, storage=storage,
                                                   name="multi", quiet=True))
    print("RESULT " + json.dumps({"nodes": node_ids, "members": summary["members"],
                                  "rows": summary["rows"]}, default=str))
finally:
    ray.shutdown()
    cluster.shutdown()
"""


@pytest.mark.slow
def test_search_on_a_two_node_cluster(tmp_path):
    env = {
        **os.environ,
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_AUTH_MODE": "disabled",
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env=env,
    )
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert line, proc.stdout[-2000:] + proc.stderr[-4000:]
    result = json.loads(line[len("RESULT ") :])
    assert len(result["nodes"]) == 2
    # every trial reports the node it ran on; both nodes got work
    used = {r["node"] for r in result["rows"] + result["members"] if r.get("node")}
    assert used == set(result["nodes"]), used
    assert (tmp_path / "multi" / "summary.json").is_file()
    trial_dirs = list((tmp_path / "multi" / "seed0").glob("*_*"))
    assert len([d for d in trial_dirs if d.is_dir()]) == 4
    assert all(r["status"] == "ok" for r in result["rows"])
