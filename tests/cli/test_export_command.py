"""``popmix export`` as a user runs it: files written, refused, and the hf export's draws.

The key check: the ``hf`` export's own snippet, run over small JSONL files of the user's (one a
domain, written here), draws each domain at the exported frequency: within a binomial
4-sigma bound, ``|n_i - N p_i| <= 4 sqrt(N p_i (1 - p_i))`` over N draws (a false alarm about
once in 16,000 per domain).
"""

from __future__ import annotations

import json
import math
import runpy
from collections import Counter
from itertools import islice

import pytest

from popmix.cli import main

DOMAINS = ["news", "code", "poems"]
POINTS = [
    {"step": 0, "weights": [0.2, 0.3, 0.5]},
    {"step": 600, "weights": [0.6, 0.0, 0.4]},
]


@pytest.fixture
def run_dir(tmp_path):
    folder = tmp_path / "search"
    folder.mkdir()
    (folder / "best_schedule.json").write_text(
        json.dumps(
            {
                "format": "popmix-weights/1",
                "method": "pbt",
                "domains": DOMAINS,
                "total_steps": 1000,
                "points": POINTS,
                "final_weights": [0.6, 0.0, 0.4],
                "seed": 0,
            }
        )
    )
    return folder


@pytest.fixture
def user_files(tmp_path):
    """The user's own data: one JSONL file a domain, 3000 tiny records each, and the map."""
    data = tmp_path / "data"
    data.mkdir()
    lines = []
    for name in DOMAINS:
        path = data / f"{name}.jsonl"
        path.write_text("".join(json.dumps({"text": f"{name} {i}"}) + "\n" for i in range(3000)))
        lines.append(f"{name}: {path}")
    m = tmp_path / "domains.yaml"
    m.write_text("\n".join(lines) + "\n")
    return m


def within_bound(counts: Counter, probabilities: dict[str, float], n: int) -> list[str]:
    """The domains whose count is outside the 4-sigma binomial bound (a domain at 0: any)."""
    bad = []
    for name, p in probabilities.items():
        slack = 4 * math.sqrt(n * p * (1 - p))
        if abs(counts[name] - n * p) > slack or (p == 0 and counts[name]):
            bad.append(f"{name}: {counts[name]} of {n}, expected {n * p:.0f} ± {slack:.0f}")
    return bad


def test_hf_export_draws_each_domain_at_its_frequency(run_dir, user_files, tmp_path, capsys):
    out = tmp_path / "mix.json"
    assert main(["export", str(run_dir), "--format", "hf", "--map", str(user_files),
                 "--out", str(out)]) == 0  # fmt: skip
    assert f"wrote {out} and {out.with_suffix('.py')}" in capsys.readouterr().out
    config = json.loads(out.read_text())
    assert config["probabilities"] == [0.6, 0.0, 0.4]
    snippet = runpy.run_path(str(out.with_suffix(".py")))  # the file a user would import
    n = 4000
    phases = snippet["phase_mixtures"]()
    assert [(s, e) for s, e, _ in phases] == [(0, 600), (600, 1000)]
    for (_, _, ds), phase in zip(phases, config["phases"]):
        expected = dict(zip(DOMAINS, phase["probabilities"]))
        counts = Counter(r["text"].split()[0] for r in islice(ds, n))
        assert sum(counts.values()) == n
        assert not within_bound(counts, expected, n), within_bound(counts, expected, n)
    static = Counter(r["text"].split()[0] for r in islice(snippet["mixture"](snippet["FINAL"]), n))
    assert not within_bound(static, dict(zip(DOMAINS, config["probabilities"])), n)


def test_the_bound_rejects_a_wrong_frequency():
    """The check above can fail: 4000 draws at 0.2 counted as if exported at 0.25."""
    counts = Counter({"news": 800, "code": 3200})
    assert within_bound(counts, {"news": 0.25, "code": 0.75}, 4000)
    assert not within_bound(counts, {"news": 0.2, "code": 0.8}, 4000)


def test_megatron_to_stdout_and_the_source_named(run_dir, capsys):
    assert main(["export", str(run_dir), "--format", "megatron", "--unit", "tokens",
                 "--tokens-per-step", "1024", "--total", "2000"]) == 0  # fmt: skip
    captured = capsys.readouterr()
    assert f"{run_dir / 'best_schedule.json'} (pbt, 3 domains, 2 phase(s)" in captured.err
    assert "data from domain names" in captured.err
    assert captured.out.splitlines()[3:] == [
        "# phase 0: tokens [0, 1200)",
        "0.2 news 0.3 code 0.5 poems",
        "# phase 1: tokens [1200, 2000)",
        "0.6 news 0.4 poems",
    ]


def test_out_is_never_overwritten_without_force(run_dir, tmp_path, capsys):
    out = tmp_path / "mix.csv"
    out.write_text("mine")
    argv = ["export", str(run_dir), "--format", "csv", "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "exists; give another --out, or --force" in err
    assert out.read_text() == "mine"
    assert main([*argv, "--force"]) == 0 and out.read_text().startswith("phase,start")
    # hf writes the snippet too: an existing snippet is refused the same way
    (tmp_path / "mix.py").write_text("mine")
    hf = ["export", str(run_dir), "--format", "hf", "--out", str(tmp_path / "mix.json")]
    assert main(hf) == 2
    assert "mix.py exists" in capsys.readouterr().err and not (tmp_path / "mix.json").exists()


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda d: d / "nothing", "no such file or folder"),
        (lambda d: d, "holds no weights file"),
        (lambda d: (d / "w.json").write_text("[1, 2]") and d / "w.json", "not a popmix weights"),
        (
            lambda d: (
                (d / "w.json").write_text(
                    json.dumps({"domains": ["a", "b"], "final_weights": [0.2, 0.2]})
                )
                and d / "w.json"
            ),
            "sum to 0.4, not 1",
        ),
    ],
)
def test_bad_input_is_one_line_exit_2(make, match, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    assert main(["export", str(make(folder)), "--format", "json"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and match in err and "Traceback" not in err
    assert err.startswith("popmix export: error: ")


def test_a_map_missing_a_domain_is_one_line(run_dir, tmp_path, capsys):
    m = tmp_path / "m.yaml"
    m.write_text("news: /d/news\ncode: /d/code\n")
    assert main(["export", str(run_dir), "--format", "megatron", "--map", str(m)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no entry for domain 'poems'; add a line `poems:" in err
