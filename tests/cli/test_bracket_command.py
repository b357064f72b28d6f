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
    captured = capsys.readouterr()
    printed = captured.out
    assert "plain SGD" in printed and "sign agreement" in printed
    # each step's results as soon as they exist, then the progress of the next step's work
    assert printed.index("step 0: 3x3 matrix") < printed.index("step 4: 3x3 matrix")
    for bar in ("matrix at step 0:", "validation at step 0:", "training to step 4:"):
        assert bar in captured.err
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
        # 3 domains: 3 pairs, under the default sample of 24; the target is 2 windows (the
        # --windows cap) of press_reviews, so every effect has a standard error
        assert table["pairs_validated"] == 3 and table["target_windows"] == 2
        assert all(r["se"] > 0 and "within_noise" in r for r in table["pairs"])
    assert report["complete"] and report["at_steps"] == [0, 4]
    assert json.loads((out / "bracket_schedule.json").read_text())["benchmark"] == "brown16"
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


def _bracket(tmp_path, *extra):
    return main(
        [
            "bracket",
            "--tasks",
            "4",
            "--steps",
            "4",
            "--at-steps",
            "0,4",
            "--windows",
            "2",
            "--validate",
            "0.001",
            "--out",
            str(tmp_path),
            *extra,
            *TINY,
        ]
    )


def test_bracket_validates_a_seeded_sample_or_all_pairs(tmp_path):
    def validated(out):
        tables = json.loads((out / "validation.json").read_text())["steps"]
        return [[(r["a"], r["b"]) for r in t["pairs"]] for t in tables]

    assert _bracket(tmp_path / "a", "--max-pairs", "2", "--seed", "3") == 0
    assert _bracket(tmp_path / "b", "--max-pairs", "2", "--seed", "3") == 0
    assert _bracket(tmp_path / "all", "--max-pairs", "all", "--seed", "3") == 0
    sample = validated(tmp_path / "a")
    assert [len(t) for t in sample] == [2, 2] and sample == validated(tmp_path / "b")
    assert [len(t) for t in validated(tmp_path / "all")] == [6, 6]


def test_an_interrupted_bracket_keeps_the_steps_it_finished(tmp_path, monkeypatch, capsys):
    import popmix.analysis.bracket_model as bm

    real = bm.window_target
    calls = []

    def stop_at_the_second_step(model, domains, target, windows):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(model, domains, target, windows)

    monkeypatch.setattr(bm, "window_target", stop_at_the_second_step)
    assert _bracket(tmp_path) == 130
    assert "interrupted; kept steps 0, 4" in capsys.readouterr().err
    report = json.loads((tmp_path / "bracket.json").read_text())
    # step 4's matrix was done, its validation was not
    assert [s["step"] for s in report["steps"]] == [0, 4] and not report["complete"]
    validation = json.loads((tmp_path / "validation.json").read_text())
    assert [t["step"] for t in validation["steps"]] == [0]
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize(
    "value,needle",
    [("0", "must be at least 1 (or all), got 0"), ("-3", "got -3"), ("some", "or all")],
)
def test_bracket_max_pairs_bad_value_is_one_line(value, needle, capsys):
    with pytest.raises(SystemExit) as e:
        main(["bracket", "--max-pairs", value])
    err = capsys.readouterr().err
    assert e.value.code == 2 and len(err.strip().splitlines()) == 1 and needle in err
