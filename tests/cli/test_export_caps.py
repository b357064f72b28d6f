"""``popmix export --target-tokens N [--max-epochs E] [--cap]``: repetition at the user's
budget, one line per domain over its cap, and the capped mixture, against hand numbers."""

from __future__ import annotations

import json

import pytest

from popmix.cli import main

DOMAINS = ["news", "code", "poems"]
SIZES = {"news": 1_000_000, "code": 100_000, "poems": 10_000}


@pytest.fixture
def run_dir(tmp_path):
    """A ``popmix run --out`` folder: a static mixture and the result with the sizes."""
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "weights.json").write_text(
        json.dumps(
            {
                "format": "popmix-weights/1",
                "method": "fixed",
                "domains": DOMAINS,
                "total_steps": 100,
                "points": [{"step": 0, "weights": [0.6, 0.3, 0.1]}],
                "final_weights": [0.6, 0.3, 0.1],
            }
        )
    )
    (folder / "result.json").write_text(json.dumps({"sizes": SIZES}))
    return folder


def test_one_line_per_domain_over_its_cap(run_dir, capsys):
    # 1e6 tokens: news 0.6 epochs, code 3, poems 10; cap 4: poems only
    args = ["export", str(run_dir), "--format", "json", "--target-tokens", "1000000"]
    assert main([*args, "--max-epochs", "4"]) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "repetition:" in line]
    assert len(lines) == 1 and "poems: 10 epochs" in lines[0] and "cap of 4" in lines[0]
    # without --max-epochs: 1 epoch allowed, code and poems reported
    assert main(args) == 0
    err = capsys.readouterr().err
    assert [line.split(":")[1].strip() for line in err.splitlines() if "repetition:" in line] == [
        "code",
        "poems",
    ]


def test_cap_moves_the_mixture_and_json_records_it(run_dir, tmp_path, capsys):
    out = tmp_path / "capped.json"
    args = ["export", str(run_dir), "--format", "json", "--out", str(out)]
    assert main([*args, "--target-tokens", "1000000", "--max-epochs", "4", "--cap"]) == 0
    text = capsys.readouterr().out
    # poems at its cap 4 * 1e4 / 1e6 = 0.04; news and code up by one common 0.03
    assert (
        "--cap moved the final weights: news 0.6 -> 0.63, code 0.3 -> 0.33, poems 0.1 -> 0.04"
        in text
    )
    data = json.loads(out.read_text())
    assert data["final_weights"] == pytest.approx({"news": 0.63, "code": 0.33, "poems": 0.04})
    assert data["phases"][0]["weights"] == pytest.approx(data["final_weights"])
    rep = data["repetition"]
    assert rep["target_tokens"] == 1_000_000 and rep["max_epochs"]["poems"] == 4
    assert rep["epochs_before"]["poems"] == pytest.approx(10)
    assert rep["epochs_after"]["poems"] == pytest.approx(4)
    assert rep["final_weights_before"] == pytest.approx({"news": 0.6, "code": 0.3, "poems": 0.1})


@pytest.mark.parametrize(
    "extra,match",
    [
        (["--cap"], "--cap and --max-epochs need --target-tokens N"),
        (["--target-tokens", "10", "--max-epochs", "0"], "--max-epochs must be > 0"),
        (["--target-tokens", "100000000", "--cap"], "more passes over the data"),
    ],
)
def test_bad_input_is_one_line_exit_2(run_dir, extra, match, capsys):
    assert main(["export", str(run_dir), "--format", "json", *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and match in err and "Traceback" not in err


def test_sizes_not_recorded_is_one_line(run_dir, capsys):
    (run_dir / "result.json").unlink()
    assert main(["export", str(run_dir), "--format", "json", "--target-tokens", "10"]) == 2
    assert "size of domain 'news' is not recorded" in capsys.readouterr().err
