"""popmix search from the command line: the smoke experiment end to end, and bad inputs."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
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
        (["--tasks", "0"], "--tasks must be at least 1, got 0"),
        (["--seeds", "x"], "--seeds expects a count"),
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
