"""``popmix run`` end to end on a tiny budget, and every bad input as a one-line exit-2 error."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from popmix.cli import main

TINY = [
    "--steps",
    "6",
    "--eval-interval",
    "3",
    "--n-layer",
    "1",
    "--d-model",
    "32",
    "--n-head",
    "2",
    "--seq-len",
    "32",
    "--batch-size",
    "8",
    "--eval-windows",
    "2",
    "--test-windows",
    "2",
    "--threads",
    "1",
]


def test_run_end_to_end_on_brown16(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(
        [
            "run",
            "--method",
            "temperature",
            "--temperature",
            "3",
            "--tasks",
            "16",
            "--out",
            str(out),
            *TINY,
        ]
    )
    assert rc == 0
    result = json.loads((out / "result.json").read_text())
    assert len(result["domains"]) == 16 and result["domains"][-1] == "code"
    for key in ("sizes", "test_loss", "test_ppl", "weights"):
        assert set(result[key]) == set(result["domains"])
    assert result["steps"] == 6 and result["tokens_seen"] == 6 * 8 * 32
    assert result["test_mean_ppl"] > 1 and result["test_worst_ppl"] >= result["test_mean_ppl"]
    assert abs(sum(result["weights"].values()) - 1) < 1e-9
    printed = capsys.readouterr().out
    assert "science_fiction" in printed and "mean test ppl" in printed


def test_fixed_weights_and_loss_mode_on_synthetic(tmp_path):
    out = tmp_path / "fixed"
    rc = main(
        [
            "run",
            "--benchmark",
            "synthetic",
            "--tasks",
            "3",
            "--method",
            "fixed",
            "--weights",
            "2,1,1",
            "--apply",
            "loss",
            "--out",
            str(out),
            "--quiet",
            *TINY,
        ]
    )
    assert rc == 0
    result = json.loads((out / "result.json").read_text())
    assert list(result["weights"].values()) == [0.5, 0.25, 0.25]
    assert result["entropy_rate"] is not None


@pytest.mark.parametrize(
    "args,needle",
    [
        (
            ["--method", "temperature", "--temperature", "-1"],
            "temperature must be a positive number, got -1.0",
        ),
        (["--method", "temperature", "--temperature", "0"], "got 0.0"),
        (["--method", "fixed", "--weights", "1,2", "--tasks", "3"], "got 2 weights for 3 domains"),
        (["--method", "fixed", "--weights", "0,0,0", "--tasks", "3"], "sum to a positive number"),
        (
            ["--method", "fixed", "--weights", "a,b", "--tasks", "2"],
            "expected comma-separated numbers",
        ),
        (["--method", "fixed", "--tasks", "2"], "needs --weights"),
        (["--method", "magic"], "unknown method 'magic'"),
        (["--method", "best-of-n"], "best-of-n picks the best of n runs, so it runs in a search"),
        (["--method", "random"], "random picks the best of n runs, so it runs in a search"),
        (["--benchmark", "wiki"], "unknown benchmark 'wiki'"),
        (["--tasks", "0"], "argument --tasks: must be at least 1, got 0"),
        (["--tasks", "17"], "--tasks 17 asks for more domains than 'brown16' has (16)"),
        (["--data", "/nonexistent/popmix-data"], "/nonexistent/popmix-data"),
        (["--apply", "both"], "invalid choice: 'both'"),
        (["--steps", "0"], "must be at least 1, got 0"),
        (["--d-model", "30", "--n-head", "4"], "must be a multiple of model.n_head"),
        (
            ["--method", "doge", "--tasks", "3", "--param", "target=domain:nowhere"],
            "no domain 'nowhere'",
        ),
        (
            ["--method", "doge", "--tasks", "3", "--param", "target_batch=2"],
            "target_batch 2 is below the 3 domains",
        ),
    ],
)
def test_bad_input_is_one_line_exit_2(args, needle, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "popmix.cli", "run", "--out", str(tmp_path / "x"), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert needle in lines[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "x").exists()  # nothing written


def test_empty_domain_file_is_a_clear_error(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.txt").write_text("hello world. " * 400)
    (data / "b.txt").write_text("")
    proc = subprocess.run(
        [sys.executable, "-m", "popmix.cli", "run", "--data", str(data), *TINY],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "b.txt" in proc.stderr and "empty" in proc.stderr


def test_smoke_replaces_the_budget_of_run_and_bracket(tmp_path):
    rc = main(
        [
            "run",
            "--tasks",
            "2",
            "--steps",
            "3000",
            "--d-model",
            "256",
            "--smoke",
            "--out",
            str(tmp_path / "run"),
            "--quiet",
        ]
    )
    assert rc == 0
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["steps"] == 6 and result["tokens_seen"] == 6 * 8 * 32
    rc = main(
        [
            "bracket",
            "--tasks",
            "3",
            "--steps",
            "300",
            "--at-steps",
            "0,150,300",
            "--validate",
            "0.01",
            "--smoke",
            "--out",
            str(tmp_path / "b"),
        ]
    )
    assert rc == 0
    report = json.loads((tmp_path / "b" / "bracket.json").read_text())
    assert [s["step"] for s in report["steps"]] == [0, 3, 6]  # --at-steps rescaled to 6 steps


@pytest.mark.parametrize(
    "args,needle",
    [
        (["confirm", "{tmp}/nothing"], "no such folder"),
        (["confirm", "{tmp}"], "not a popmix search folder (no summary.json)"),
        (["confirm", "{tmp}", "--seeds", "0"], "argument --seeds: must be at least 1"),
        (["search", "--exploit-margin", "-1"], "argument --exploit-margin: must be >= 0"),
        (["search", "--exploit-margin", "soon"], "expected auto or a number, got 'soon'"),
        (["search", "--reference", "magic"], "unknown search.reference 'magic'"),
        (["search", "--reference", "doge"], "search.reference 'doge' is not among the methods"),
        (["search", "confirm.model.width=2"], "confirm.model.width: not a model setting"),
        (["search", "--max-failures", "-1"], "resources.max_failures must be 0 or more"),
    ],
)
def test_confirm_and_search_bad_input_is_one_line_exit_2(args, needle, tmp_path):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    proc = subprocess.run(
        [sys.executable, "-m", "popmix.cli", *args, "--storage", str(tmp_path / "runs")]
        if args[0] == "search"
        else [sys.executable, "-m", "popmix.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert needle in lines[0]
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_run_at_256_synthetic_domains(tmp_path, capsys):
    from popmix.cli import main

    rc = main(
        ["run", "--benchmark", "synthetic", "--tasks", "256", "--smoke", "--quiet"]
        + ["--out", str(tmp_path)]
    )
    assert rc == 0
    result = json.loads((tmp_path / "result.json").read_text())
    assert len(result["domains"]) == 256 and len(result["test_loss"]) == 256
    assert sum(result["final_weights"].values()) == pytest.approx(1.0)
    assert "syn255" in capsys.readouterr().out


def test_a_search_never_overwrites_an_earlier_run_of_the_same_name(tmp_path):
    earlier = tmp_path / "runs" / "taken"
    earlier.mkdir(parents=True)
    (earlier / "summary.json").write_text('{"rows": []}')
    proc = subprocess.run(
        [sys.executable, "-m", "popmix.cli", "search", "--smoke", "--name", "taken"]
        + ["--storage", str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "--name taken" in proc.stderr and "already holds a run" in proc.stderr
    assert (earlier / "summary.json").read_text() == '{"rows": []}'
    assert sorted(p.name for p in earlier.iterdir()) == ["summary.json"]


def test_run_on_a_pretokenized_corpus_takes_its_vocabulary(tmp_path, capsys):
    data = tmp_path / "tokens"
    data.mkdir()
    rng = np.random.default_rng(0)
    web = rng.integers(0, 700, 6_000).astype(np.uint16)
    np.save(data / "web.npy", web)
    np.save(data / "code.npy", rng.integers(0, 300, 2_000).astype(np.uint16))
    out = tmp_path / "run"
    whole = "data.sample_tokens=10000"  # both read whole: the vocabulary is known exactly
    rc = main(
        ["run", "--data", str(data), "--method", "proportional", "--out", str(out), *TINY, whole]
    )
    assert rc == 0
    result = json.loads((out / "result.json").read_text())
    vocab = result["model_config"]["vocab_size"]
    assert vocab == int(web.max()) + 1  # the data's largest id, plus one
    assert result["sizes"] == {"code": 2_000, "web": 6_000}
    # an untrained model of ~700 ids is near log(700) nats a token, far above log(256)
    assert np.log(256) < result["test_mean_loss"] < np.log(vocab) + 1
    assert f"{vocab} token ids" in capsys.readouterr().out
    rc = main(
        ["run", "--data", str(data), "--out", str(tmp_path / "x"), *TINY, "model.vocab_size=256"]
    )
    assert rc == 2 and not (tmp_path / "x").exists()
    assert f"use model.vocab_size={vocab} or more" in capsys.readouterr().err


def test_whole_numbers_may_be_written_as_1e9_but_not_as_fractions():
    import argparse

    from popmix.cli._base import non_negative_int, positive_int

    assert positive_int("1e9") == 1_000_000_000 and positive_int("1_000") == 1000
    assert non_negative_int("0") == 0
    for bad in ("1.5", "2.5e0", "inf", "nan", "ten"):
        with pytest.raises(argparse.ArgumentTypeError, match="expected a whole number"):
            positive_int(bad)


def test_a_reader_that_goes_away_is_not_a_traceback(popmix_process, tmp_path):
    # popmix search --dry-run | head -1: the reader closes before popmix writes
    import subprocess

    proc = popmix_process(["search", "--smoke", "--dry-run"], stderr=subprocess.PIPE, cwd=tmp_path)
    proc.stdout.close()
    assert proc.wait(timeout=120) == 0
    assert "Traceback" not in proc.stderr.read()
