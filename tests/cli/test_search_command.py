"""popmix search from the command line: the smoke experiment end to end, and bad inputs."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from popmix.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_search_cli_on_the_smoke_experiment(ray_session, tmp_path, capsys):
    rc = main(
        [
            "search",
            "--experiment",
            str(ROOT / "experiments" / "smoke.yaml"),
            "--storage",
            str(tmp_path),
            "--name",
            "cli",
            "--methods",
            "pbt,proportional",
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "mean test ppl" in out and "proportional" in out
    assert f"tensorboard --logdir {tmp_path / 'cli'}" in out
    assert "step" in out  # progress lines
    summary = json.loads((tmp_path / "cli" / "summary.json").read_text())
    assert {r["method"] for r in summary["rows"]} == {"pbt", "proportional"}
    assert (tmp_path / "cli" / "best_schedule.json").is_file()
    assert (tmp_path / "cli" / "lineage.json").is_file()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_cli(*args: str, tmp: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "popmix.cli", "search", "--storage", str(tmp), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--methods", "pbt,magic"], "unknown method 'magic'"),
        (["--experiment", "{bad}"], "malformed YAML at line"),
        (["--experiment", "{unknown}"], "unknown key 'populaton'"),
        (["--experiment", "/no/such/file.yaml"], "file not found: /no/such/file.yaml"),
        (["--space", "/no/such/space.yaml"], "search space '/no/such/space.yaml' not found"),
        (["--tasks", "0"], "argument --tasks: must be at least 1, got 0"),
        (["--seeds", "x"], "argument --seeds: expected a count"),
        (["--objective", "domain:nowhere", "--tasks", "2"], "unknown domain 'nowhere'"),
        (["--address", "127.0.0.1:{port}"], "cannot reach a Ray cluster at --address"),
    ],
)
def test_bad_search_input_is_one_line_exit_2(args, needle, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("# x\nsearch: {populaton: 4}\n")
    args = [
        a.replace("{bad}", str(bad))
        .replace("{unknown}", str(unknown))
        .replace("{port}", str(_free_port()))
        for a in args
    ]
    proc = run_cli(
        *args,
        tmp=tmp_path / "runs",
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert needle in lines[0] and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_ctrl_c_stops_the_whole_search_and_writes_what_finished(tmp_path):
    """Ctrl-C (SIGINT to the process group, as a terminal sends it) during the second of three
    seeds: no third seed starts, the first seed's results are written, exit code 130."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "popmix.cli",
            "search",
            "--experiment",
            str(ROOT / "experiments" / "smoke.yaml"),
            "--seeds",
            "3",
            "--steps",
            "36",  # seed 1 still has 5 reports to go when the first one arrives
            "--cpus",
            "2",
            "--cpus-per-trial",
            "1",
            "--storage",
            str(tmp_path),
            "--name",
            "int",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        start_new_session=True,
    )
    out, sent_at = [], None
    try:
        in_seed_1 = False
        for line in proc.stdout:
            out.append(line)
            in_seed_1 = in_seed_1 or "seed 1 (2 of 3)" in line
            if in_seed_1 and " step " in line:  # a trial of seed 1 is training
                sent_at = time.monotonic()
                os.killpg(proc.pid, signal.SIGINT)
                break
        rest, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    out_text = "".join(out) + rest
    assert sent_at is not None, out_text + err
    assert proc.returncode == 130, out_text + err
    assert time.monotonic() - sent_at < 60
    assert "seed 2 (3 of 3)" not in out_text
    assert err.strip().splitlines()[-1] == (
        f"popmix search: interrupted; wrote what finished to {tmp_path / 'int' / 'summary.json'}"
        f"; continue it with popmix search --resume {tmp_path / 'int'}"
    )
    assert "Traceback" not in err
    summary = json.loads((tmp_path / "int" / "summary.json").read_text())
    assert summary["interrupted"] is True
    by_seed = {}
    for r in summary["rows"]:
        by_seed.setdefault(r["seed"], {})[r["method"]] = r["status"]
    assert by_seed[0] == {"pbt": "ok", "stratified": "ok", "temperature": "ok"}
    assert set(by_seed) == {0, 1} and "interrupted" in by_seed[1].values()
    assert (tmp_path / "int" / "best_schedule.json").is_file()
    assert "mean test ppl" in out_text  # the table of what finished
