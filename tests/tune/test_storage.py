"""Remote storage (``--storage s3://...``): popmix's checkpoint retention, one-line errors, and
(slow) a search on an S3-compatible server on loopback (moto), stopped and resumed from the URI
on a machine that has none of its local files."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pyarrow.fs as pafs
import pytest

from popmix.config import ConfigError
from popmix.tune.storage import KEEP_NEWEST, KEEP_YOUNGER_S, RemoteStorage, in_use, prune


def test_retention_keeps_the_newest_and_the_young_checkpoints(tmp_path):
    now = time.time()
    for i in range(9):
        d = tmp_path / f"checkpoint_{i:06d}"
        d.mkdir()
        (d / "state.pt").write_text("x")
        age = 1000 - 100 * i  # checkpoint 9 would be the youngest; 8 is 200 s old
        os.utime(d, (now - age, now - age))
    (tmp_path / "result.json").write_text("{}")
    young = tmp_path / "checkpoint_000007"
    os.utime(young, (now - KEEP_YOUNGER_S / 2,) * 2)
    deleted = prune(pafs.LocalFileSystem(), str(tmp_path), now=now)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert [p.rsplit("/", 1)[1] for p in deleted] == [f"checkpoint_{i:06d}" for i in range(5)]
    assert left == [f"checkpoint_{i:06d}" for i in range(5, 9)] + ["result.json"]
    assert len(left) - 1 == KEEP_NEWEST
    os.utime(tmp_path / "checkpoint_000005", (now,) * 2)  # young: kept though not newest
    (tmp_path / "checkpoint_000009").mkdir()
    assert prune(pafs.LocalFileSystem(), str(tmp_path), now=now) == []


def test_retention_keeps_the_checkpoints_pbt_and_the_trials_still_use(tmp_path):
    # PBT's donor checkpoint is the one saved at the donor's last perturbation decision: under
    # load it is older than the newest KEEP_NEWEST and than KEEP_YOUNGER_S, and was deleted
    # before an exploit of it (a 3-seed search on 2 loaded cores failed its member trials)
    from types import SimpleNamespace

    from ray.tune import Checkpoint

    now = time.time()
    for i in range(9):
        d = tmp_path / f"checkpoint_{i:06d}"
        d.mkdir()
        os.utime(d, (now - 1000, now - 1000))
    donor = Checkpoint(str(tmp_path / "checkpoint_000002"))
    exploited = Checkpoint(str(tmp_path / "checkpoint_000003") + "/")  # a member's copy of it
    scheduler = SimpleNamespace(
        _trial_state={
            "a": SimpleNamespace(last_checkpoint=donor),
            "b": SimpleNamespace(last_checkpoint=None),
        }
    )
    trials = [SimpleNamespace(checkpoint=exploited), SimpleNamespace(checkpoint=None)]
    keep = in_use(trials, scheduler)
    assert keep == {donor.path, exploited.path.rstrip("/")}
    assert in_use(trials) == {exploited.path.rstrip("/")}  # no PBT: the trials' own
    deleted = prune(pafs.LocalFileSystem(), str(tmp_path), now=now, keep=keep)
    names = [p.rsplit("/", 1)[1] for p in deleted]
    assert names == [f"checkpoint_{i:06d}" for i in (0, 1, 4)]
    assert (tmp_path / "checkpoint_000002").is_dir() and (tmp_path / "checkpoint_000003").is_dir()


def test_a_uri_pyarrow_cannot_open_is_one_line():
    with pytest.raises(ConfigError) as info:
        RemoteStorage.open("bogus://bucket/runs")
    assert "\n" not in str(info.value) and "--storage bogus://bucket/runs: cannot open" in str(
        info.value
    )


SEARCH = [
    "--tasks", "3", "--n-layer", "1", "--d-model", "32", "--n-head", "2", "--seq-len", "32",
    "--batch-size", "8", "--steps", "300", "--report-every", "20", "--population", "2",
    "--methods", "pbt,stratified", "--eval-windows", "2", "--test-windows", "2",
    "--cpus-per-trial", "1", "--cpus", "2", "--quiet",
]  # fmt: skip


@pytest.mark.slow
def test_a_search_on_s3_stops_and_resumes_from_the_uri_elsewhere(tmp_path):
    boto3 = pytest.importorskip("boto3")
    server_mod = pytest.importorskip("moto.server")
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        creds = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        s3 = boto3.client("s3", endpoint_url=endpoint, **_boto(creds))
        s3.create_bucket(Bucket="runs")
        storage = f"s3://runs/team?endpoint_override={endpoint}"
        env = {
            **os.environ,
            **creds,
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
            "RAY_AUTH_MODE": "disabled",
            "RAY_USAGE_STATS_ENABLED": "0",
        }
        here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
        here.mkdir()
        elsewhere.mkdir()
        cmd = [sys.executable, "-m", "popmix.cli", "search", *SEARCH, "--storage", storage]
        proc = subprocess.Popen(
            [*cmd, "--name", "s3run"],
            cwd=here,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        ledger = here / "runs" / "s3run" / "ledger-seed0.json"
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            if ledger.is_file():
                steps = json.loads(ledger.read_text())["steps"]
                if len(steps) == 3 and min(steps.values()) >= 60:
                    break
            time.sleep(0.5)
        assert proc.poll() is None, proc.communicate()[0][-2000:]
        os.killpg(proc.pid, signal.SIGINT)
        out = proc.communicate(timeout=120)[0]
        assert proc.returncode == 130, out[-2000:]
        keys = {o["Key"] for o in s3.list_objects_v2(Bucket="runs")["Contents"]}
        assert {"team/s3run/search.json", "team/s3run/ledger-seed0.json"} <= keys
        assert any(k.startswith("team/s3run/seed0/") and "checkpoint_" in k for k in keys)
        shutil.rmtree(here)  # the first machine is gone

        uri = f"s3://runs/team/s3run?endpoint_override={endpoint}"
        resumed = subprocess.run(
            [sys.executable, "-m", "popmix.cli", "search", "--resume", uri, "--quiet"],
            cwd=elsewhere,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]
        assert "Traceback" not in resumed.stderr, resumed.stderr[-3000:]
        summary = json.loads((elsewhere / "runs" / "s3run" / "summary.json").read_text())
        assert not summary["interrupted"] and set(summary["methods"]) == {"pbt", "stratified"}
        assert all(r["status"] == "ok" and r["steps"] == 300 for r in summary["rows"])
        body = s3.get_object(Bucket="runs", Key="team/s3run/summary.json")["Body"].read()
        assert json.loads(body)["rows"] == summary["rows"]  # mirrored back to the storage
    finally:
        server.stop()


def _boto(creds: dict[str, str]) -> dict[str, str]:
    return {
        "aws_access_key_id": creds["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": creds["AWS_SECRET_ACCESS_KEY"],
        "region_name": creds["AWS_DEFAULT_REGION"],
    }


def test_retention_on_an_object_store_uses_when_it_saw_each_checkpoint(tmp_path):
    """S3's "folders" have no modification time: the age is when this process saw the
    checkpoint written, and one it never saw (before a resume) is old."""
    now = time.time()

    class NoMtime:
        def __init__(self, fs):
            self.fs, self.deleted = fs, []

        def get_file_info(self, selector):
            infos = self.fs.get_file_info(selector)
            return [pafs.FileInfo(i.path, i.type) for i in infos]  # no mtime

        def delete_dir(self, path):
            self.deleted.append(path.rsplit("/", 1)[1])

    for i in range(7):
        (tmp_path / f"checkpoint_{i:06d}").mkdir()
    seen = {str(tmp_path / "checkpoint_000002"): now - 10}  # young, seen by this process
    fs = NoMtime(pafs.LocalFileSystem())
    prune(fs, str(tmp_path), now=now, seen=seen)
    assert fs.deleted == ["checkpoint_000000", "checkpoint_000001"]
