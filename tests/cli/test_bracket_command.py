"""popmix bracket end to end on a tiny model, its schedule replayed, and bad inputs."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from popmix.cli import main

TINY = [
    "--n-layer",
    "1",
    "--d-model",
    "16",
    "--n-head",
    "2",
    "--seq-len",
    "16",
    "--batch-size",
    "8",
    "--threads",
    "1",
]


def test_bracket_cli_end_to_end(tmp_path, capsys):
    out = tmp_path / "br"
    rc = main(
        [
            "bracket",
            "--tasks",
            "3",
            "--steps",
            "4",
            "--at-steps",
            "0,4",
            "--target",
            "press_reviews",
            "--validate",
            "0.001,0.1",
            "--windows",
            "2",
            "--out",
            str(out),
            *TINY,
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert "plain SGD" in printed and "sign agreement" in printed
    report = json.loads((out / "bracket.json").read_text())
    assert report["target"] == "press_reviews" and [s["step"] for s in report["steps"]] == [0, 4]
    for s in report["steps"]:
        m = np.array(s["matrix"])
        assert m.shape == (3, 3)
        np.testing.assert_allclose(m, -m.T, atol=1e-12)
        assert sorted(s["order"]) == sorted(report["domains"])
    assert (out / "bracket_step0.png").stat().st_size > 1000
    assert (out / "bracket_step4.png").is_file()
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    validation = json.loads((out / "validation.json").read_text())
    # one table per evaluated step, not only the last step's
    assert [t["step"] for t in validation["steps"]] == [0, 4]
    for table in validation["steps"]:
        assert {r["eta"] for r in table["summary"]} == {0.001, 0.1}
    # the suggested two-phase schedule runs as a popmix run starting schedule
    rc = main(
        [
            "run",
            "--weights-from",
            str(out / "bracket_schedule.json"),
            "--tasks",
            "3",
            "--steps",
            "4",
            "--eval-windows",
            "2",
            "--test-windows",
            "2",
            "--out",
            str(tmp_path / "run"),
            "--quiet",
            *TINY,
        ]
    )
    assert rc == 0


def test_bracket_from_a_run_checkpoint(tmp_path):
    rc = main(
        [
            "run",
            "--tasks",
            "2",
            "--steps",
            "3",
            "--eval-windows",
            "2",
            "--test-windows",
            "2",
            "--save-checkpoint",
            "--out",
            str(tmp_path / "run"),
            "--quiet",
            *TINY,
        ]
    )
    assert rc == 0
    rc = main(
        [
            "bracket",
            "--tasks",
            "2",
            "--steps",
            "3",
            "--windows",
            "2",
            "--checkpoint",
            str(tmp_path / "run" / "checkpoint.pt"),
            "--out",
            str(tmp_path / "br"),
            *TINY,
        ]
    )
    assert rc == 0
    report = json.loads((tmp_path / "br" / "bracket.json").read_text())
    assert report["steps"][0]["step"] == 3


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--target", "nowhere", "--tasks", "3"], "unknown domain 'nowhere'"),
        (["--tasks", "1"], "use --tasks 2 or more"),
        (["--tasks", "3", "--steps", "5", "--at-steps", "9"], "bracket.at_steps must lie in 0..5"),
        (
            ["--tasks", "3", "--checkpoint", "/no/file.pt"],
            "--checkpoint /no/file.pt: file not found",
        ),
    ],
)
def test_bracket_bad_input(args, needle, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "popmix.cli", "bracket", "--out", str(tmp_path), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and needle in proc.stderr
