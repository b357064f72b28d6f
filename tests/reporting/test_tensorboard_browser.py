"""TensorBoard as a user sees it: ``tensorboard --logdir`` on a finished smoke search, read
through the JSON its dashboards draw from, and the page in headless chromium."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from popmix.cli import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


@pytest.fixture(scope="module")
def search(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tb")
    assert main(["search", "--smoke", "--storage", str(folder), "--name", "x", "--quiet"]) == 0
    return folder / "x", json.loads((folder / "x" / "summary.json").read_text())


@pytest.fixture(scope="module")
def board(search):
    """A TensorBoard on loopback over the search's folder; stopped at the end."""
    exp_dir, _ = search
    port = _free_port()
    tb = shutil.which("tensorboard") or str(Path(sys.executable).with_name("tensorboard"))
    proc = subprocess.Popen(
        [tb, "--logdir", str(exp_dir), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                runs = _get(url + "/data/runs")
                if runs:
                    break
            except OSError:
                pass
            assert proc.poll() is None, "tensorboard exited"
            assert time.time() < deadline, "tensorboard did not serve the runs in 90 s"
            time.sleep(1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _trials(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """TensorBoard run -> the summary's row of its trial: every member, baseline and draw."""
    out = {}
    for r in summary["rows"]:
        if r["method"] != summary["population_method"] and not r.get("draws"):
            out[f"tensorboard/seed{r['seed']}/{r['method']}"] = r
        for d in r.get("draws") or []:
            # draw 0 may be the search's stratified trial, under its own name
            name = d["method"] + (f"-draw{d['draw']}" if d["draw"] else "")
            out[f"tensorboard/seed{r['seed']}/{name}"] = d
    for m in summary["members"]:
        out[f"tensorboard/seed{m['seed']}/{m['method']}-member{m['member']}"] = m
    return out


@pytest.mark.slow
def test_scalars_list_every_method_run_and_each_domain_group(search, board):
    _, summary = search
    tags = _get(board + "/data/plugin/scalars/tags")
    trial_runs = set(_trials(summary))
    assert trial_runs <= set(tags), sorted(tags)
    for run in trial_runs:
        for group in ("val_loss", "test_loss", "weight"):
            for dom in summary["domains"]:
                assert f"{group}/{dom}" in tags[run], (run, group, dom)
        # the comparison leads the Time Series view, which sorts tags by name
        first = sorted(tags[run])[:3]
        assert all(t.startswith("compare/") for t in first), first
        assert not any(t.startswith("hparam/") for t in tags[run])


@pytest.mark.slow
def test_hparams_list_every_trial_with_method_searched_values_and_final_metrics(search, board):
    _, summary = search
    experiment = _get(board + "/data/plugin/hparams/experiment", {"experimentName": ""})
    hparams = {h["name"] for h in experiment["hparamInfos"]}
    domains = summary["domains"]
    assert {"method", "seed", "member", "trial_id"} <= hparams
    assert {f"final_weight/{d}" for d in domains} <= hparams
    assert {f"sample_weights/{d}" for d in domains} <= hparams  # the members' searched values
    metrics = {m["name"]["tag"] for m in experiment["metricInfos"]}
    assert {"compare/objective", "compare/test_mean_ppl"} <= metrics
    groups = _get(
        board + "/data/plugin/hparams/session_groups",
        {
            "experimentName": "",
            "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE"],
            "colParams": [{"hparam": h} for h in sorted(hparams)]
            + [{"metric": {"tag": t, "group": ""}} for t in sorted(metrics)],
            "startIndex": 0,
            "sliceSize": 1000,
        },
    )
    sessions = {}
    for g in groups["sessionGroups"]:
        for s in g["sessions"]:
            sessions[s["name"]] = (
                g["hparams"],
                {m["name"]["tag"]: m["value"] for m in s["metricValues"]},
            )
    for run, row in _trials(summary).items():
        assert run in sessions, (run, sorted(sessions))
        values, final = sessions[run]
        assert values["trial_id"] == row["trial_id"]
        assert values["method"] == row["method"]
        assert final["compare/test_mean_ppl"] == pytest.approx(row["test_mean_ppl"], rel=1e-5)
        assert final["compare/objective"] == pytest.approx(row["objective"], rel=1e-5)


@pytest.mark.slow
@pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)"
)
def test_tensorboard_page_renders_in_chromium(board, tmp_path):
    import matplotlib.image

    shot = tmp_path / "tensorboard.png"
    subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=15000",
            "--window-size=1400,1000",
            f"--screenshot={shot}",
            board + "/#timeseries",
        ],
        capture_output=True,
        timeout=120,
    )
    assert shot.is_file(), "chromium wrote no screenshot"
    assert matplotlib.image.imread(shot).std() > 0.05, "the screenshot is blank"
