"""Flags over an experiment file change only what the user gave (no search is run here)."""

from __future__ import annotations

from pathlib import Path

import pytest

import popmix.tune.search as search_module
from popmix.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def captured(monkeypatch):
    """Replace run_search: keep the experiment the CLI resolved, run nothing."""
    seen = {}

    def fake(exp, space, opts):
        seen["exp"] = exp
        return {"rows": [{}]}

    monkeypatch.setattr(search_module, "run_search", fake)
    return seen


def test_tasks_alone_keeps_the_experiment_benchmark(captured):
    experiment = str(ROOT / "experiments" / "synthetic64.yaml")
    rc = main(["search", "--experiment", experiment, "--tasks", "8"])
    assert rc == 0
    data = captured["exp"].data
    assert (data.benchmark, data.tasks, data.path) == ("synthetic", 8, None)


def test_benchmark_flag_replaces_it(captured):
    assert main(["search", "--benchmark", "synthetic"]) == 0
    assert captured["exp"].data.benchmark == "synthetic"
    assert captured["exp"].data.tasks == 16  # the default experiment's


def test_a_data_folder_means_all_its_domains(captured, tmp_path):
    for i in range(6):
        (tmp_path / f"d{i}.txt").write_text("some text\n" * 50)
    assert main(["search", "--data", str(tmp_path)]) == 0
    data = captured["exp"].data
    assert (data.path, data.tasks) == (str(tmp_path), None)
    assert main(["search", "--data", str(tmp_path), "--tasks", "4"]) == 0
    assert captured["exp"].data.tasks == 4
