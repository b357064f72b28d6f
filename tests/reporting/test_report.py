"""``popmix report``: the page, its figures, its numbers, bad input, and the page in chromium."""

from __future__ import annotations

import base64
import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _browser import chromium, needs_chromium, probed, with_probe

from popmix.cli import main
from popmix.records.summary import OLD_NAMES, Summary, SummaryError, read_methods, read_summary
from popmix.records.table import interval
from popmix.reporting.figures import weights_series
from popmix.reporting.report import write_report
from popmix.reporting.run import read_run

DOMAINS = ["web", "code", "books"]
STEPS = 20


def _reports(rng: np.random.Generator, trial_id: str, weights: list[float]) -> list[dict]:
    out = []
    w = np.asarray(weights, float)
    for step in (5, 10, 15, 20):
        w = w * np.exp(rng.normal(0, 0.2, len(w)))
        w = w / w.sum()
        out.append(
            {
                "trial_id": trial_id,
                "step": step,
                "objective": 5.0 - 0.04 * step + rng.normal(0, 0.02),
                "weight": dict(zip(DOMAINS, w.tolist())),
            }
        )
    return out


def make_search(folder: Path, trial_folders: bool = True) -> dict[str, Any]:
    """Writes summary.json, lineage.json, best_schedule.json, confirm.json and each trial's
    seed<S>/<method>_<trial id>/result.json into ``folder``; returns the summary."""
    from popmix.tune.summarize import method_intervals, oracle_gaps, summarize

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    plan = [("pbt", 0), ("pbt", 1), ("stratified", -1), ("cooldown", -1)]
    for seed in (0, 1):
        for i, (method, member) in enumerate(plan):
            tid = f"a{seed}_{i:05d}"
            ppl = {d: 80.0 + 5 * j + 3 * i + rng.normal(0, 1) for j, d in enumerate(DOMAINS)}
            mean = float(np.mean(list(ppl.values())))
            records.append(
                {
                    "method": method,
                    "seed": seed,
                    "trial_id": tid,
                    "status": "ok",
                    "member": member,
                    "train_steps": STEPS,
                    "wall_time_s": 3.0,
                    "params": {},
                    "metrics": {
                        "objective": 4.3 + 0.01 * i + 0.01 * seed,
                        "test_mean_ppl": mean,
                        "test_worst_ppl": max(ppl.values()),
                        "test_ppl": ppl,
                        "test_mean_loss": float(np.log(mean)),
                        "step": STEPS,
                    },
                }
            )
            if trial_folders:
                d = folder / f"seed{seed}" / f"{method}_{tid}"
                d.mkdir(parents=True)
                lines = _reports(rng, tid, [0.5, 0.3, 0.2])
                (d / "result.json").write_text("".join(json.dumps(r) + "\n" for r in lines))
    summary = summarize(records, "pbt")
    summary["reference"] = "stratified"
    summary["methods"] = method_intervals(summary, "stratified")
    summary["oracle"] = {"test_mean_loss": 4.30, "seeds": [0, 1], "applies": True, "why": None}
    oracle_gaps(summary, summary["oracle"])
    summary.update(
        format="popmix-summary/1",
        experiment="fixture",
        benchmark="handmade",
        domains=DOMAINS,
        steps_per_model=STEPS,
        searcher="pbt",
        objective="mean",
        population_method="pbt",
        experiment_dir=str(folder),
    )
    (folder / "summary.json").write_text(json.dumps(summary))
    schedule = {
        "format": "popmix-weights/1",
        "method": "pbt",
        "domains": DOMAINS,
        "total_steps": STEPS,
        "points": [
            {"step": 0, "weights": [0.6, 0.2, 0.2]},
            {"step": 10, "weights": [0.2, 0.5, 0.3]},
        ],
        "final_weights": [0.2, 0.5, 0.3],
        "info": {"seed": 0, "trial_id": "a0_00000"},
    }
    (folder / "best_schedule.json").write_text(json.dumps(schedule))
    exploit = {"time": 1.0, "seed": 0, "trial_id": "a0_00001", "donor": "a0_00000"}
    lineage = {
        "exploits": [
            exploit | {"step_before": 10, "donor_step": 10, "gain": 0.05, "margin": 0.01}
        ],
        "skipped_within_noise": [
            {
                "time": 2.0,
                "seed": 1,
                "trial_id": "a1_00001",
                "donor": "a1_00000",
                "step_before": 10,
                "donor_step": 10,
                "gain": 0.001,
                "margin": 0.01,
                "skipped_within_noise": True,
            }
        ],
        "members": {"a0_00000": schedule, "a0_00001": schedule | {"info": {"member": 1}}},
    }
    (folder / "lineage.json").write_text(json.dumps(lineage))
    confirm = {
        "seeds": [1000, 1001],
        "steps": STEPS,
        "reference": "stratified",
        "methods": summary["methods"],
        "rank_agreement": {"kendall_tau": 1.0},
    }
    (folder / "confirm.json").write_text(json.dumps(confirm))
    return summary


def make_bracket(folder: Path) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    m = [[0.0, -0.2, 0.1], [0.2, 0.0, 0.05], [-0.1, -0.05, 0.0]]
    bracket = {
        "domains": DOMAINS,
        "target": "web",
        "complete": True,
        "steps": [
            {
                "step": s,
                "matrix": m,
                "scores": {"web": 0.1, "code": -0.25, "books": 0.15},
                "order": ["books", "web", "code"],
            }
            for s in (10, 20)
        ],
    }
    (folder / "bracket.json").write_text(json.dumps(bracket))
    return bracket


def open_in_browser(page: Path, tmp: Path) -> tuple[dict[str, int], list[str], np.ndarray]:
    """(the probe's counts, the console lines chromium logged, the screenshot's pixels) of
    ``page`` loaded from file:// in headless chromium."""
    import matplotlib.image

    copy = tmp / f"probed-{page.name}"
    copy.write_text(with_probe(page.read_text()))
    counts, console = probed(copy.as_uri(), tmp)
    shot = tmp / f"{page.stem}.png"
    chromium(f"--screenshot={shot}", "--window-size=1200,2000", page.as_uri(), tmp=tmp)
    assert shot.is_file(), "chromium wrote no screenshot"
    return counts, console, matplotlib.image.imread(shot)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """A search folder with a bracket beside it (every section), its report written once."""
    folder = tmp_path_factory.mktemp("report") / "run"
    summary = make_search(folder)
    make_bracket(folder)
    page, pngs = write_report(folder)
    return folder, summary, page, pngs


def test_report_writes_a_self_contained_page_and_its_pngs(written):
    folder, summary, page, pngs = written
    assert page == folder / "report" / "report.html"
    assert {p.stem for p in pngs} == {
        "comparison",
        "domain_ppl",
        "weights",
        "lineage",
        "objective",
        "confirm",
        "oracle",
        "bracket",
    }
    text = page.read_text()
    # offline: nothing fetched, every image inline and byte for byte the PNG beside the page
    assert not re.search(r"(src|href)=\"(?!data:)", text)
    assert "<script" not in text and "<link" not in text
    embedded = re.findall(r'src="data:image/png;base64,([^"]+)"', text)
    assert sorted(base64.b64decode(e) for e in embedded) == sorted(p.read_bytes() for p in pngs)
    for p in pngs:
        import matplotlib.image

        pixels = matplotlib.image.imread(p)
        assert pixels.shape[0] > 100 and pixels.std() > 0.02, f"{p.name} is blank"
    # the table's numbers are the summary's intervals, as the printed table writes them
    for method, entry in read_methods(summary["methods"]).items():
        assert f"<td>{method}</td>" in text
        assert interval(entry.test_mean_ppl) in text
        assert interval(entry.test_worst_ppl) in text
    # the lineage table names the copier and the donor of the exploit, and the skipped one
    assert re.search(r"<td>0</td><td>a0_00001</td><td>a0_00000</td>.*?taken", text)
    assert "skipped (within noise)" in text
    assert "Oracle gap" in text and "Confirmation on fresh seeds" in text


def _old_names(x: Any) -> Any:
    """A summary as popmix wrote it before its format key: mean_test_ppl, worst_test_ppl and
    mean_test_loss outside the rows."""
    if isinstance(x, dict):
        return {
            {v: k for k, v in OLD_NAMES.items()}.get(k, k): _old_names(v) for k, v in x.items()
        }
    return [_old_names(v) for v in x] if isinstance(x, list) else x


def test_a_summary_written_before_its_format_reads_the_same(written, tmp_path):
    folder, summary, page, _ = written
    sections = ("methods", "groups", "oracle")
    old = {k: _old_names(v) if k in sections else v for k, v in summary.items() if k != "format"}
    assert "mean_test_ppl" in old["methods"]["pbt"] and "mean_test_loss" in old["oracle"]
    (tmp_path / "summary.json").write_text(json.dumps(old))
    new = Summary.from_dict(summary)
    assert Summary.from_dict(old) == dataclasses.replace(new, format="popmix-summary/0")
    assert read_summary(tmp_path).methods == read_summary(folder).methods


@pytest.mark.parametrize(
    "content,needle",
    [
        ({"format": "popmix-summary/9", "rows": []}, "format 'popmix-summary/9', which this"),
        ({"rows": "none"}, "not a popmix search summary"),
        ({"format": "popmix-summary/1", "rows": [{"seed": 0}]}, "a damaged summary"),
    ],
)
def test_a_summary_popmix_cannot_read_is_one_line_naming_the_file(tmp_path, content, needle):
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(content))
    with pytest.raises(SummaryError) as info:
        read_summary(tmp_path)
    assert needle in str(info.value) and str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_a_swarm_searchs_report_shows_each_seeds_surface_and_a_failed_fit(tmp_path):
    from popmix.analysis.swarm_fit import fit_surface

    rng = np.random.default_rng(1)
    w = rng.dirichlet(np.ones(3), size=12)
    y = 2.0 + np.exp(-3 * w) + rng.normal(0, 0.005, (12, 3))
    surface = fit_surface(w, y, DOMAINS, n_boot=5, seed=0).to_dict()
    folder = tmp_path / "run"
    make_search(folder)
    error = "seed 1: only 3 swarm runs finished, the fit needs 5"
    doc = {"objective": "mean", "domains": DOMAINS, "seeds": {"0": surface, "1": {"error": error}}}
    (folder / "surface.json").write_text(json.dumps(doc))
    page, pngs = write_report(folder)
    names = {p.stem for p in pngs}
    assert {"surface_sensitivity-seed0", "surface_slices-seed0"} <= names
    assert not any("seed1" in n for n in names)
    text = page.read_text()
    assert "The swarm&#x27;s fitted surface, seed 0" in text
    assert f"no surface: {error}" in text
    # the table is surface.json's own numbers, each domain's with its interval
    lo, hi = surface["optimum_ci"][0]
    assert (
        f'<td>{DOMAINS[0]}</td><td class="num">{surface["optimum"][0]:.4f} [{lo:.4f}, {hi:.4f}]'
        in text
    )
    assert (folder / "report" / "surface_slices-seed0.png").read_bytes()[:4] == b"\x89PNG"


def test_report_command_with_out(tmp_path, capsys):
    make_bracket(tmp_path / "run")
    assert main(["report", str(tmp_path / "run"), "--out", str(tmp_path / "elsewhere")]) == 0
    assert (tmp_path / "elsewhere" / "report.html").is_file()
    assert "report.html" in capsys.readouterr().out


def test_weights_come_from_the_reports_else_the_recorded_schedule(tmp_path):
    make_search(tmp_path / "run")
    run = read_run(tmp_path / "run")
    steps, w, source = weights_series(run, "a0_00000", DOMAINS)
    reports = run.reports["a0_00000"]
    assert source == "reports" and steps.tolist() == [r["step"] for r in reports]
    np.testing.assert_allclose(w[-1], [reports[-1]["weight"][d] for d in DOMAINS])
    # without the trials' folders: the member's schedule from lineage.json, as steps
    make_search(tmp_path / "bare", trial_folders=False)
    steps, w, source = weights_series(read_run(tmp_path / "bare"), "a0_00000", DOMAINS)
    assert source == "schedule"
    assert steps.tolist() == [0, 10, 10, 20]
    np.testing.assert_allclose(w[0], [0.6, 0.2, 0.2])
    np.testing.assert_allclose(w[-1], [0.2, 0.5, 0.3])
    np.testing.assert_allclose(w.sum(axis=1), 1.0)


def test_report_of_a_bracket_folder(tmp_path):
    make_bracket(tmp_path / "b")
    page, pngs = write_report(tmp_path / "b")
    assert [p.stem for p in pngs] == ["bracket"]
    text = page.read_text()
    assert "order effects" in text.lower() and "<td>books</td>" in text


@pytest.mark.parametrize(
    "setup,message",
    [
        (lambda p: None, "no such folder"),
        (lambda p: p.mkdir(), "not a popmix search or bracket folder"),
        (lambda p: (p.mkdir(), (p / "summary.json").write_text("{not json")), "cannot read"),
        (lambda p: (p.mkdir(), (p / "summary.json").write_text("[1]")), "not a popmix search"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, setup, message):
    target = tmp_path / "x"
    setup(target)
    assert main(["report", str(target)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err


@needs_chromium
def test_the_browser_check_catches_a_broken_page(tmp_path):
    """The probe itself: a missing image and a script error are seen (else the next test
    could pass on a page it never really looked at)."""
    bad = tmp_path / "bad.html"
    bad.write_text(
        "<!DOCTYPE html><html><head><title>t</title></head><body><p>x</p>"
        '<img src="missing.png"><script>undefinedFunction();</script></body></html>'
    )
    counts, console, _ = open_in_browser(bad, tmp_path)
    assert counts["images"] == 1 and counts["decoded"] == 0
    assert counts["errors"] >= 2 and console


@needs_chromium
def test_report_in_chromium(written, tmp_path):
    _, _, page, pngs = written
    counts, console, pixels = open_in_browser(page, tmp_path)
    assert counts == {"decoded": len(pngs), "images": len(pngs), "errors": 0}
    assert console == []
    assert pixels.std() > 0.05, "the screenshot is blank"


@pytest.mark.slow
@needs_chromium
def test_report_of_a_smoke_search_in_chromium(tmp_path):
    assert main(["search", "--smoke", "--storage", str(tmp_path), "--name", "x", "--quiet"]) == 0
    assert main(["report", str(tmp_path / "x")]) == 0
    page = tmp_path / "x" / "report" / "report.html"
    pngs = sorted(page.parent.glob("*.png"))
    assert {p.stem for p in pngs} >= {"comparison", "domain_ppl", "weights", "objective"}
    counts, console, pixels = open_in_browser(page, tmp_path)
    assert counts == {"decoded": len(pngs), "images": len(pngs), "errors": 0}
    assert console == []
    assert pixels.std() > 0.05, "the screenshot is blank"
