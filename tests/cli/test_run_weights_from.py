"""``popmix run --weights-from FILE`` without --tasks/--benchmark/--data trains on the file's
domains; with them, the command line decides (and a mismatch is one line)."""

from __future__ import annotations

import json

import pytest

from popmix.cli import main
from popmix.records.weights import WeightsSchedule

TINY = [
    "--steps",
    "2",
    "--eval-windows",
    "2",
    "--test-windows",
    "2",
    "--quiet",
    "--n-layer",
    "1",
    "--d-model",
    "16",
    "--n-head",
    "2",
    "--seq-len",
    "16",
    "--batch-size",
    "4",
    "--threads",
    "1",
]


def _file(tmp_path, domains, **info):
    k = len(domains)
    return WeightsSchedule.build(
        domains=domains,
        total_steps=10,
        points=[{"step": 0, "weights": [1.0] * k}, {"step": 5, "weights": list(range(1, k + 1))}],
        method="pbt",
        **info,
    ).write(tmp_path / "best_schedule.json")


def _run(tmp_path, *args):
    rc = main(["run", *args, "--out", str(tmp_path / "run"), *TINY])
    result = json.loads((tmp_path / "run" / "result.json").read_text()) if rc == 0 else None
    return rc, result


@pytest.mark.parametrize(
    "domains,benchmark",
    [
        # a 4-domain search on brown16, in another order than the benchmark's
        (["press_reviews", "press_reportage", "religion", "press_editorial"], "brown16"),
        (["syn000", "syn001", "syn002"], "synthetic"),
    ],
)
def test_replay_trains_on_the_files_domains(tmp_path, domains, benchmark):
    path = _file(tmp_path, domains)
    rc, result = _run(tmp_path, "--weights-from", str(path))
    assert rc == 0
    assert result["benchmark"] == benchmark and sorted(result["domains"]) == sorted(domains)


def test_a_recorded_benchmark_is_tried_first(tmp_path):
    # the first two domains of multilingual, recorded as such (bracket_schedule.json does)
    path = _file(tmp_path, ["en", "ka"], benchmark="multilingual")
    rc, result = _run(tmp_path, "--weights-from", str(path))
    assert rc == 0 and result["benchmark"] == "multilingual"


def test_the_command_line_still_decides(tmp_path, capsys):
    path = _file(tmp_path, ["press_reportage", "press_editorial"])
    rc, _ = _run(tmp_path, "--weights-from", str(path), "--tasks", "3")
    err = capsys.readouterr().err
    assert rc == 2 and "its domains differ from the 3 in use" in err


def test_domains_of_no_known_set_are_one_line(tmp_path, capsys):
    # brown16's 3rd and 4th domains: no run keeps those without the first two
    path = _file(tmp_path, ["press_reviews", "religion"])
    rc, _ = _run(tmp_path, "--weights-from", str(path))
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert "its 2 domains (press_reviews, religion) are not the first 2 of brown16" in err
