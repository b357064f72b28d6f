"""``popmix init``: the domains as the loader finds them, groups from the names, seeds from a
recorded calibration, resources, and a file that ``popmix search`` runs as written."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from popmix.cli import main
from popmix.cli._init import (
    MAX_SEEDS,
    RESOLVE_SHARE,
    UNCALIBRATED_SEEDS,
    is_language,
    seeds_for,
    suggest_groups,
)
from popmix.config import load_experiment


def corpus(folder: Path, sizes: dict[str, int], seed: int = 0) -> Path:
    """One .txt file per domain: paragraphs of words drawn from a small vocabulary of its own,
    about ``sizes[name]`` bytes each."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i, (name, size) in enumerate(sizes.items()):
        words = [f"w{i}{j}" for j in range(30)]
        paragraphs, total = [], 0
        while total < size:
            p = " ".join(rng.choice(words, size=40))
            paragraphs.append(p)
            total += len(p) + 2
        (folder / f"{name}.txt").write_text("\n\n".join(paragraphs))
    return folder


def init(tmp_path: Path, folder: Path, *extra: str) -> tuple[Path, dict]:
    out = tmp_path / "written.yaml"
    rc = main(
        ["init", "--data", str(folder), "--out", str(out), "--storage", str(tmp_path / "runs")]
        + list(extra)
    )
    assert rc == 0
    return out, yaml.safe_load(out.read_text())


# ---------------------------------------------------------------------------------------------
# names


@pytest.mark.parametrize(
    "name,expected",
    [
        ("en", True),
        ("pt-BR", True),
        ("zh_Hans", True),
        ("EN", True),
        ("news", False),
        ("en_wiki", False),  # a language prefix, not a language: grouped by prefix instead
        ("xx", False),
    ],
)
def test_is_language(name, expected):
    assert is_language(name) is expected


def test_languages_split_into_high_and_low_at_the_geometric_mean():
    names = ["de", "en", "fr", "hy", "sw"]
    sizes = [400_000, 1_600_000, 200_000, 10_000, 20_000]
    g = suggest_groups(names, sizes)
    # the geometric mean of the sizes is about 105,000
    assert g.groups == {"high": ["de", "en", "fr"], "low": ["hy", "sw"]}
    assert g.languages


def test_languages_of_similar_sizes_are_not_split():
    g = suggest_groups(["de", "en", "fr"], [100, 150, 120])
    assert g.groups == {} and g.languages


def test_shared_prefixes_are_groups():
    names = ["de_news", "de_wiki", "en_news", "en_wiki", "code"]
    g = suggest_groups(names, [1] * 5)
    assert g.groups == {"de": ["de_news", "de_wiki"], "en": ["en_news", "en_wiki"]}
    assert g.languages is False  # "code" is no language


@pytest.mark.parametrize(
    "names",
    [
        ["news", "books", "code"],  # nothing shared
        ["web_a", "web_b", "web_c"],  # one prefix shared by all: a group of everything
        ["web_a", "books_b"],  # prefixes of one name each
    ],
)
def test_no_groups_where_the_names_suggest_none(names):
    assert suggest_groups(names, [1] * len(names)).groups == {}


def test_seeds_are_the_fewest_that_resolve_one_percent():
    n, resolves = seeds_for(paired_std=0.05, mean_ppl=10.0)
    target = RESOLVE_SHARE * 10.0
    assert resolves[n] <= target and all(resolves[k] > target for k in resolves if k < n)
    assert list(resolves) == list(range(2, MAX_SEEDS + 1))
    # a noisier proxy needs more, up to the most
    assert seeds_for(0.5, 10.0)[0] == MAX_SEEDS


# ---------------------------------------------------------------------------------------------
# the written file


def test_the_file_names_the_domains_and_sizes_the_loader_finds(tmp_path, capsys):
    from popmix.data import load_experiment_domains

    folder = corpus(tmp_path / "mine", {"code": 9000, "news": 30000, "poems": 4000})
    out, data = init(tmp_path, folder)
    exp = load_experiment(out)  # the search's own reader: valid as written
    domains = load_experiment_domains(exp)
    text = out.read_text()
    listed = dict(re.findall(r"^  #   (\S+)\s+([\d,]+)$", text, flags=re.M))
    assert list(listed) == domains.names
    assert [int(v.replace(",", "")) for v in listed.values()] == domains.sizes.tolist()
    assert data["seeds"] == list(range(UNCALIBRATED_SEEDS))
    assert "popmix calibrate --experiment" in text  # no calibration yet: the note to run it
    assert data["methods"][:2] == ["pbt", "best-of-n"] and "proportional" in data["methods"]
    assert data["resources"]["cpus_per_trial"] == "auto"
    assert "data" not in data or "groups" not in data["data"]
    assert f"\n# Launch: popmix search --experiment {out}\n" in text
    prose = [ln for ln in text.splitlines() if not ln.lstrip().startswith(("# Launch", "#   "))]
    assert all(len(line) <= 99 or str(tmp_path) in line for line in prose)
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "3 domains" in printed


def test_a_multilingual_folder_gets_groups_and_the_temperature_space(tmp_path):
    sizes = {"en": 60000, "de": 30000, "hy": 3000, "sw": 2000}
    _, data = init(tmp_path, corpus(tmp_path / "langs", sizes))
    assert data["data"]["groups"] == {"high": ["de", "en"], "low": ["hy", "sw"]}
    assert data["search"]["space"] == "temperature"
    assert data["search"]["reference"] == "proportional"
    assert {"temperature", "cooldown", "proportional"} <= set(data["methods"])


def test_gpus_give_a_share_that_divides_one(tmp_path):
    from popmix.config import Resources

    folder = corpus(tmp_path / "mine", {"a": 4000, "b": 4000})
    _, data = init(tmp_path, folder, "--gpus", "2")
    share = data["resources"]["gpus_per_trial"]
    # 10 trials per seed on 2 GPUs: 5 to a GPU
    assert share == pytest.approx(0.2)
    assert Resources.gpu_share_problem(share) is None


def test_a_recorded_calibration_sizes_the_seeds(tmp_path):
    """The record popmix calibrate writes (its own functions, on made-up runs) is found for
    this proxy, and the seeds are the fewest that resolve 1% of stratified's mean."""
    from popmix.tune.calibrate import analyse_method, paired_resolution
    from popmix.tune.proxy import proxy_fingerprint, record_calibration

    folder = corpus(tmp_path / "mine", {"a": 6000, "b": 3000, "c": 1500})
    out, _ = init(tmp_path, folder)  # the proxy to calibrate
    exp = load_experiment(out)
    names = ["a", "b", "c"]
    rng = np.random.default_rng(1)
    strat = 20 + rng.normal(0, 0.05, 5)
    records = {
        m: [
            {"seed": s, "method": m, "status": "ok", "metrics": {"test_mean_ppl": v}}
            for s, v in enumerate(values)
        ]
        for m, values in (("stratified", strat), ("proportional", strat + 0.3))
    }
    records["proportional"][3]["metrics"]["test_mean_ppl"] += 0.08  # some paired spread
    paired = paired_resolution(records)
    assert paired is not None
    calibrate_json = tmp_path / "runs" / "cal" / "calibrate.json"
    calibrate_json.parent.mkdir(parents=True)
    methods = {m: analyse_method(rs) for m, rs in records.items()}
    calibrate_json.write_text(
        json.dumps({"settings": [{"label": "as given", "methods": methods, "paired": paired}]})
    )
    record_calibration(
        (tmp_path / "runs").resolve(),
        {
            "fingerprint": proxy_fingerprint(exp, names),
            "stable": True,
            "reasons": [],
            "setting": "as given",
            "calibrate_json": str(calibrate_json),
            "recommended_experiment": None,
        },
    )
    out2, data = init(tmp_path, folder, "--experiment", str(out), "--force")
    expected, _ = seeds_for(paired["paired_std"], methods["stratified"]["test_mean_ppl"]["mean"])
    assert data["seeds"] == list(range(expected))
    assert str(calibrate_json) in out2.read_text()
    assert "popmix calibrate --experiment" not in out2.read_text()


def test_budget_minutes_sizes_the_steps_from_timed_steps(tmp_path, capsys):
    folder = corpus(tmp_path / "mine", {"a": 6000, "b": 3000})
    # the smoke proxy (a 1-layer model of width 32): timed in a second
    _, data = init(tmp_path, folder, "--experiment", "smoke", "--budget-minutes", "2")
    steps = data["train"]["steps"]
    every = data["search"]["report_every"]
    # a short budget reports more often, so that PBT still ranks its members 4 times
    interval = data["search"]["perturbation_interval"]
    assert steps % every == 0 and (steps // every - 1) // interval >= 4
    assert re.search(r"a step took \d+ ms here \(cpu", capsys.readouterr().out)


def test_a_short_budget_reports_more_often_so_that_pbt_still_decides(tmp_path, capsys):
    folder = corpus(tmp_path / "mine", {"a": 6000, "b": 3000})
    # the default proxy reports every 50 steps; 6 seconds of it cannot hold 5 such reports
    _, data = init(tmp_path, folder, "--budget-minutes", "0.1")
    steps, every = data["train"]["steps"], data["search"]["report_every"]
    assert 10 <= every < 50 and steps % every == 0
    assert (steps // every - 1) // data["search"]["perturbation_interval"] >= 4
    assert f"a report every {every} steps (not 50)" in capsys.readouterr().out


def test_init_then_search_runs_the_file_unchanged(tmp_path, ray_session, monkeypatch, capsys):
    """The path a new user takes: a folder of text files, popmix init, popmix search."""
    monkeypatch.chdir(tmp_path)
    corpus(tmp_path / "my_texts", {"letters": 8000, "notes": 5000, "recipes": 3000})
    assert main(["init", "--data", "my_texts"]) == 0
    written = tmp_path / "my_texts.yaml"
    assert written.is_file()
    capsys.readouterr()
    assert main(["search", "--experiment", "my_texts.yaml", "--smoke"]) == 0
    out = capsys.readouterr().out
    found = re.search(r"wrote (\S+/summary\.json)", out)
    assert found, out[-2000:]
    summary = json.loads(Path(found.group(1)).read_text())
    assert summary["domains"] == ["letters", "notes", "recipes"]
    assert {r["method"] for r in summary["rows"]} >= {"pbt", "stratified", "proportional"}
    assert all(r["status"] == "ok" for r in summary["rows"])
