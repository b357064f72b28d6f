"""popmix search on a real (local) Ray: PBT exploits, simplex weights, TensorBoard, Optuna."""

from __future__ import annotations

import dataclasses
import glob
import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest
from _ray_procs import training_workers
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from popmix.config import SearchSpace, VectorSpec, load_experiment, load_space
from popmix.tune.search import SearchOptions, run_search

ROOT = Path(__file__).resolve().parents[2]


def smoke(**search):
    exp = load_experiment(ROOT / "experiments" / "smoke.yaml")
    return exp.replace(search=dataclasses.replace(exp.search, **search))


def process_state() -> tuple[dict[str, str], dict[str, int]]:
    """What a search may change in this process: the environment and logger levels."""
    import logging

    names = ("ray", "ray.tune.logger", "ray.tune.analysis.experiment_analysis", "optuna")
    return dict(os.environ), {n: logging.getLogger(n).level for n in names}


def read_events(run_dir: str) -> EventAccumulator:
    ea = EventAccumulator(run_dir, size_guidance={"scalars": 0, "tensors": 0})
    ea.Reload()
    return ea


@pytest.fixture(scope="module")
def pbt_run(ray_session, tmp_path_factory):
    """4 PBT members + 2 baselines on 4 brown16 domains; PBT decides at every report."""
    out = tmp_path_factory.mktemp("pbt")
    exp = smoke(
        population=4,
        perturbation_interval=1,
        quantile_fraction=0.5,
        resample_probability=0.5,
        exploit_margin=0.0,  # Ray's plain rule: this run tests the exploit's mechanics
    )
    exp = exp.replace(train=dataclasses.replace(exp.train, steps=60))
    space = load_space(ROOT / "search_spaces" / "sampling_and_loss.yaml")
    before = process_state()
    summary = run_search(exp, space, SearchOptions(storage=str(out), name="pbt", quiet=True))
    assert process_state() == before, "the search left the environment or loggers changed"
    return out / "pbt", summary


def test_pbt_exploits_and_the_target_restores_the_donor(pbt_run):
    exp_dir, summary = pbt_run
    lineage = json.loads((exp_dir / "lineage.json").read_text())
    assert len(lineage["exploits"]) >= 1
    ex = lineage["exploits"][0]
    assert ex["trial_id"] != ex["donor"] and ex["donor_step"] is not None
    # The exploited member's own record shows it continued the donor's run: its schedule
    # starts with points written by the donor, and its lineage names the donor.
    followed = [m for m in lineage["members"].values() if m["lineage"]]
    assert followed, "no final member went through an exploit"
    for tid, m in lineage["members"].items():
        steps = [p["step"] for p in m["points"]]
        assert steps[0] == 0 and steps == sorted(set(steps))
        # lineage events are inherited with the state: ancestors' exploits come first
        for event in m["lineage"]:
            assert event["donor"] != event["trial_id"]
            assert event["step"] > 0 and event["step"] % 6 == 0  # on report boundaries
        if m["lineage"] and m["lineage"][-1]["trial_id"] == tid:
            last = m["lineage"][-1]["step"]
            # before the last exploit the state was trained by other trials, after it by us
            assert {p["trial_id"] for p in m["points"] if p["step"] >= last} <= {tid}
            assert any(p["trial_id"] != tid for p in m["points"] if p["step"] < last)
    rows = {r.method: r for r in summary.rows}
    assert set(rows) == {"pbt", "stratified", "temperature"}
    assert all(r.status == "ok" for r in rows.values())
    assert (rows["pbt"].population_train_steps or 0) >= 4 * 60


def test_every_reported_weight_vector_is_on_the_simplex(pbt_run):
    exp_dir, _ = pbt_run
    runs = glob.glob(str(exp_dir / "tensorboard" / "seed0" / "*"))
    assert len(runs) == 6
    for run in runs:
        ea = read_events(run)
        for group in ("weight", "loss_weight"):
            tags = [t for t in ea.Tags()["scalars"] if t.startswith(group + "/")]
            if group == "weight" or "pbt" in Path(run).name:
                assert len(tags) == 4, (run, group)
            if not tags:
                continue
            # the i-th event of every tag belongs to the same report (steps repeat after a
            # PBT exploit, so the step alone does not identify a report)
            series = [[ev.value for ev in ea.Scalars(tag)] for tag in tags]
            assert len({len(x) for x in series}) == 1
            by_step = dict(enumerate(np.sum(series, axis=0)))
            assert all(abs(v - 1) < 1e-5 for v in by_step.values()), (run, by_step)


def test_tensorboard_has_per_domain_tags_and_hparams_for_every_trial(pbt_run):
    exp_dir, summary = pbt_run
    for run in glob.glob(str(exp_dir / "tensorboard" / "seed0" / "*")):
        ea = read_events(run)
        scalars = set(ea.Tags()["scalars"])
        # train_loss/<d> needs d drawn at least once: certain only for the baselines
        groups = ("val_loss", "test_loss", "weight")
        if not Path(run).name.startswith("pbt"):
            groups += ("train_loss",)
        for dom in summary.domains:
            for group in groups:
                assert f"{group}/{dom}" in scalars, (run, group, dom)
        assert {"compare/objective", "compare/test_mean_ppl"} <= scalars
        assert {"grad_norm", "loss_spikes"} <= scalars
        if Path(run).name == "temperature":
            assert "temperature" in scalars
        content = ea.PluginTagToContent("hparams")
        assert "_hparams_/session_start_info" in content
        info = plugin_data_pb2.HParamsPluginData.FromString(
            content["_hparams_/session_start_info"]
        ).session_start_info
        assert info.hparams["method"].string_value == re.sub(
            r"-(member|draw)\d+$", "", Path(run).name
        )


def test_summary_and_tensorboard_compare_the_methods_across_seeds(pbt_run):
    exp_dir, summary = pbt_run
    assert summary.reference == "stratified"
    assert set(summary.methods) == {"pbt", "stratified", "temperature"}
    vs = summary.methods["pbt"].vs_reference
    assert vs is not None and vs.reference == "stratified" and vs.n == 1  # one seed: no interval
    assert summary.exploits is not None and summary.exploits.margin == 0.0
    assert summary.exploits.taken == len(
        json.loads((exp_dir / "lineage.json").read_text())["exploits"]
    )
    ea = read_events(str(exp_dir / "tensorboard" / "methods"))
    assert "comparison/text_summary" in ea.Tags()["tensors"]
    text = ea.Tensors("comparison/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "| pbt | 1 |" in text and "| stratified | 1 |" in text and "reference" in text
    for method in summary.methods:
        run = read_events(str(exp_dir / "tensorboard" / "methods" / method))
        assert "method/test_mean_ppl" in run.Tags()["scalars"]
        content = run.PluginTagToContent("hparams")
        info = plugin_data_pb2.HParamsPluginData.FromString(
            content["_hparams_/session_start_info"]
        ).session_start_info
        assert info.hparams["method"].string_value == method
        assert info.hparams["reference"].string_value == "stratified"


def test_outputs_written_and_best_schedule_replays(pbt_run, tmp_path):
    exp_dir, summary = pbt_run
    best = json.loads((exp_dir / "best_schedule.json").read_text())
    assert best["trial_id"] == summary.best_trial_id
    assert tuple(best["domains"]) == summary.domains and best["points"][0]["step"] == 0
    for p in best["points"]:
        assert abs(sum(p["weights"]) - 1) < 1e-9 and abs(sum(p["loss_weights"]) - 1) < 1e-9
    from popmix.cli import main

    rc = main(
        [
            "run",
            "--weights-from",
            str(exp_dir / "best_schedule.json"),
            "--tasks",
            "4",
            "--steps",
            "6",
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
            "--out",
            str(tmp_path),
            "--quiet",
        ]
    )
    assert rc == 0
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["method"] == "schedule"


@pytest.mark.slow  # 22 s of searching on quiet cores
def test_optuna_searcher_beside_a_baseline(ray_session, tmp_path):
    exp = smoke(searcher="optuna", population=3).replace(methods=("pbt", "stratified"))
    space = SearchSpace(sample_weights=VectorSpec(), source="inline")
    import optuna  # noqa: F401  (its first import sets its logger's level: not the search's doing)

    before = process_state()
    summary = run_search(exp, space, SearchOptions(storage=str(tmp_path), name="opt", quiet=True))
    assert process_state() == before  # Optuna's logger level included
    rows = {r.method: r for r in summary.rows}
    assert set(rows) == {"optuna", "stratified"}
    assert rows["optuna"].members == 3 and rows["optuna"].status == "ok"
    assert len({m.trial_id for m in summary.members}) == 3


def test_pb2_beside_the_baselines_keeps_weights_on_the_simplex(ray_session, tmp_path):
    pytest.importorskip("sklearn")
    # Baselines' specs carry None for every searched key: PB2 must leave them alone.
    exp = smoke(
        searcher="pb2",
        population=3,
        perturbation_interval=1,
        quantile_fraction=0.34,
        exploit_margin=0.0,
    )
    # reports every 3 steps, not 6: with 4 reports PB2 took no exploit in 2 of 5 runs (an exploit
    # waits on which member reaches a decision first); 8 decisions make one near certain
    exp = exp.replace(
        methods=("pbt", "stratified", "cooldown"),
        search=dataclasses.replace(exp.search, report_every=3),
    )
    space = load_space(ROOT / "search_spaces" / "sampling.yaml")
    summary = run_search(exp, space, SearchOptions(storage=str(tmp_path), name="pb2", quiet=True))
    rows = {r.method: r for r in summary.rows}
    assert set(rows) == {"pb2", "stratified", "cooldown"}
    assert all(r.status == "ok" for r in rows.values()), rows
    lineage = json.loads((tmp_path / "pb2" / "lineage.json").read_text())
    members = {m.trial_id for m in summary.members}
    assert len(members) == 3 and lineage["exploits"]
    for ex in lineage["exploits"]:
        assert {ex["trial_id"], ex["donor"]} <= members
    for m in lineage["members"].values():
        for p in m["points"]:
            assert abs(sum(p["weights"]) - 1) < 1e-9 and min(p["weights"]) > 0


def test_best_of_n_beside_its_stratified_draw_and_every_run_reports_its_health(
    ray_session, tmp_path
):
    exp = smoke().replace(methods=("best-of-n", "stratified"), baselines={"best-of-n": {"n": 3}})
    space = load_space(ROOT / "search_spaces" / "sampling.yaml")
    summary = run_search(exp, space, SearchOptions(storage=str(tmp_path), name="bon", quiet=True))
    rows = {r.method: r for r in summary.rows}
    best = rows["best-of-n"]
    draws = best.draws
    assert [d.draw for d in draws] == [0, 1, 2]
    assert draws[0].trial_id == rows["stratified"].trial_id
    assert len({d.run_seed for d in draws}) == 3
    assert len({d.test_mean_ppl for d in draws}) == 3  # independent initialisations
    picked = min(draws, key=lambda d: d.objective or math.inf)
    assert best.trial_id == picked.trial_id
    assert best.test_mean_ppl == picked.test_mean_ppl
    assert best.population_train_steps == 3 * exp.train.steps
    for r in draws:
        assert r.loss_spikes == 0 and (r.grad_norm_max or 0) > 0


def test_random_beside_pbt_trains_the_members_first_values_and_is_compared(ray_session, tmp_path):
    exp = smoke(population=2).replace(methods=("pbt", "random", "stratified"))
    space = load_space(ROOT / "search_spaces" / "sampling.yaml")
    summary = run_search(exp, space, SearchOptions(storage=str(tmp_path), name="rnd", quiet=True))
    (row,) = summary.rows_of("random")
    assert row.members == 2 and row.population_train_steps == 2 * exp.train.steps
    picked = min(row.draws, key=lambda d: d.objective or math.inf)
    assert row.trial_id == picked.trial_id and row.picked_draw == picked.draw
    # the picked draw trained its member's first mixture, held: one phase, that mixture
    from popmix.data import load_experiment_domains
    from popmix.tune.trials import random_specs

    domains = load_experiment_domains(exp)
    (spec,) = [
        t
        for t in random_specs(exp, space, domains.names, domains.sizes, 0)
        if t.draw == summary.rows_of("random")[0].picked_draw
    ]
    weights = json.loads((tmp_path / "rnd" / "random_weights-seed0.json").read_text())
    assert len(weights["points"]) == 1 and weights["domains"] == domains.names
    expected = [spec.params["sample_weights"][n] for n in domains.names]
    np.testing.assert_allclose(weights["points"][0]["weights"], expected, atol=1e-9)
    assert any(c.method == "pbt" and c.against == "random" for c in summary.comparisons)
    runs = {p.name for p in (tmp_path / "rnd" / "tensorboard" / "seed0").iterdir()}
    assert {"random-draw0", "random-draw1", "pbt-member0", "stratified"} <= runs


def test_fixed_weights_hold_in_every_searched_mixture_and_not_in_the_baselines(
    ray_session, tmp_path
):
    exp = smoke(population=3, perturbation_interval=1, exploit_margin=0.0)
    exp = exp.replace(
        methods=("pbt", "random", "stratified"),
        data=dataclasses.replace(exp.data, fixed_weights={"religion": 0.4}),
    )
    space = load_space(ROOT / "search_spaces" / "sampling.yaml")
    summary = run_search(exp, space, SearchOptions(storage=str(tmp_path), name="fx", quiet=True))
    folder = tmp_path / "fx"
    lineage = json.loads((folder / "lineage.json").read_text())
    for m in lineage["members"].values():
        at = m["domains"].index("religion")
        # to rounding: the mixture policy renormalises what it is given
        assert [p["weights"][at] for p in m["points"]] == pytest.approx([0.4] * len(m["points"]))
        assert m["final_weights"][at] == pytest.approx(0.4)
    for path in folder.glob("random_weights-seed*.json"):
        w = json.loads(path.read_text())
        assert w["final_weights"][w["domains"].index("religion")] == pytest.approx(0.4)
    strat = json.loads((folder / "stratified_weights-seed0.json").read_text())
    assert strat["final_weights"][0] == pytest.approx(1 / len(strat["domains"]))
    assert summary.rows_of("pbt")[0].status == "ok"


def test_diverging_trials_are_stopped_and_reported(ray_session, tmp_path):
    exp = smoke(population=2)
    exp = exp.replace(train=dataclasses.replace(exp.train, lr=1e30, grad_clip=0.0, warmup_steps=0))
    space = load_space(ROOT / "search_spaces" / "sampling.yaml")
    summary = run_search(exp, space, SearchOptions(storage=str(tmp_path), name="nan", quiet=True))
    statuses = {r.status for r in summary.rows}
    assert (
        statuses <= {"diverged", "failed"}
        and "diverged" in {m.status for m in summary.members} | statuses
    )
    assert (tmp_path / "nan" / "summary.json").is_file()
    (row,) = summary.rows_of("stratified")
    assert row.objective is not None and math.isnan(row.objective) and row.steps == 6


@pytest.mark.slow  # 31 s of searching on quiet cores
def test_doge_and_aioli_run_beside_pbt(ray_session, tmp_path):
    exp = smoke(population=2).replace(
        methods=("pbt", "doge", "aioli"),
        baselines={
            "doge": {"mu": 0.05, "target": "validation", "target_batch": 4},
            "aioli": {
                "eta": 0.5,
                "lp_rounds": 1,
                "lp_steps": 1,
                "update_steps": 12,
                "eval_windows": 2,
            },
        },
    )
    space = load_space(ROOT / "search_spaces" / "sampling.yaml")
    summary = run_search(exp, space, SearchOptions(storage=str(tmp_path), name="da", quiet=True))
    rows = {r.method: r for r in summary.rows}
    assert set(rows) == {"pbt", "doge", "aioli"}
    assert all(r.status == "ok" for r in rows.values())
    # their extra work is counted: DoGE's held-out gradients, Aioli's evaluations
    assert rows["doge"].extra_step_equivalents == pytest.approx(24 * 4 * 3 / (3 * 8))
    assert (rows["aioli"].extra_step_equivalents or 0) > 0
    assert rows["pbt"].extra_step_equivalents == 0
    # DoGE's transferable (time-averaged) weights are exported for a final run
    exported = json.loads((tmp_path / "da" / "doge_weights-seed0.json").read_text())
    assert abs(sum(exported["final_weights"]) - 1) < 1e-9 and exported["points"]
    runs = glob.glob(str(tmp_path / "da" / "tensorboard" / "seed0" / "doge"))
    assert "weight/religion" in read_events(runs[0]).Tags()["scalars"]


@pytest.mark.slow
def test_confirm_retrains_the_answer_on_fresh_seeds_at_both_scales(pbt_run, tmp_path, capsys):
    from popmix.tune.confirm import run_confirm

    exp_dir, summary = pbt_run
    # the search's outputs in a folder of their own, its experiment given a second scale
    run = tmp_path / "run"
    run.mkdir()
    (run / "best_schedule.json").write_bytes((exp_dir / "best_schedule.json").read_bytes())
    written = json.loads((exp_dir / "summary.json").read_text())
    changed = dict(written, experiment_dir=str(run))
    changed["experiment_config"] = dict(
        written["experiment_config"], confirm={"seeds": 2, "model": {"d_model": 48}, "steps": 12}
    )
    (run / "summary.json").write_text(json.dumps(changed, default=str))
    report = run_confirm(run, SearchOptions(quiet=True))
    assert json.loads((run / "confirm.json").read_text())["seeds"] == [1, 2]
    # --quiet leaves out the progress, not the result: both scales' tables are printed
    assert capsys.readouterr().out.count("vs stratified (paired by seed)") == 2
    for section, steps, width in ((report, 60, 32), (report["second_scale"], 12, 48)):
        assert section["seeds"] == [1, 2] and section["steps"] == steps
        assert section["model"]["d_model"] == width
        methods = section["methods"]
        assert set(methods) == {"best-schedule", "best-final", "stratified", "temperature"}
        for name, m in methods.items():
            assert m["test_mean_ppl"]["n"] == 2 and len(m["test_mean_ppl"]["ci95"]) == 2
            if name != "stratified":
                assert m["vs_reference"]["reference"] == "stratified"
                assert m["vs_reference"]["verdict"] in ("better", "worse", "no clear difference")
        rows = section["rows"]
        assert all(r["status"] == "ok" and r["steps"] == steps for r in rows)
        assert {r["seed"] for r in rows} == {1, 2}
        ra = section["rank_agreement"]
        # the search's pbt stands for best-schedule; best-final has no counterpart
        assert set(ra["methods"]) == {"best-schedule", "stratified", "temperature"}
        assert 0.0 <= ra["pairwise_accuracy"] <= 1.0
    assert glob.glob(str(run / "tensorboard" / "confirm" / "seed1" / "best-schedule"))
    assert glob.glob(str(run / "tensorboard" / "confirm-second" / "seed2" / "stratified"))


@pytest.mark.slow  # 18 s of searching on quiet cores
def test_results_by_group_on_multilingual_and_the_oracle_only_at_its_proxy(ray_session, tmp_path):
    exp = smoke().replace(
        data=dataclasses.replace(smoke().data, benchmark="multilingual", tasks=4),
        methods=("stratified", "proportional"),
    )
    space = load_space(ROOT / "search_spaces" / "sampling.yaml")
    summary = run_search(exp, space, SearchOptions(storage=str(tmp_path), name="ml", quiet=True))
    groups = summary.groups
    assert groups is not None
    assert groups.assignment == {"en": "high", "ka": "low", "ru": "high", "hi": "low"}
    prop = groups.methods["proportional"]["low"]
    (row,) = summary.rows_of("proportional")
    assert row.test_ppl is not None
    assert prop.test_mean_ppl.mean == pytest.approx((row.test_ppl["ka"] + row.test_ppl["hi"]) / 2)
    assert prop.vs_reference is not None and prop.vs_reference.reference == "stratified"
    assert summary.oracle is None  # multilingual has no oracle

    exp = smoke().replace(
        data=dataclasses.replace(smoke().data, benchmark="oracle16", tasks=None),
        methods=("stratified",),
    )
    summary = run_search(exp, space, SearchOptions(storage=str(tmp_path), name="o16", quiet=True))
    oracle = summary.oracle
    assert oracle is not None and not oracle.applies
    assert (oracle.why or "").startswith("model.")  # the smoke model
    assert summary.methods["stratified"].oracle_gap_closed is None
    assert summary.groups is not None
    assert set(summary.groups.members) == {"noise", "easy", "related", "rich", "tiny"}


@pytest.mark.slow
def test_a_trial_whose_worker_process_dies_is_retried_from_its_checkpoint(ray_session, tmp_path):
    import signal
    import threading
    import time

    exp = smoke().replace(methods=("stratified",))
    # long enough that the worker is still training when its first checkpoint is on disk (the
    # smoke model trains about 300 steps a second)
    steps = 3000
    exp = exp.replace(train=dataclasses.replace(exp.train, steps=steps))
    killed: list[int] = []

    def kill_first_worker() -> None:
        # kill the trial's worker once its first checkpoint is on disk
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            if glob.glob(str(tmp_path / "**" / "checkpoint_*"), recursive=True):
                for pid in training_workers("stratified_"):
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                if killed:
                    return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_first_worker, daemon=True)
    killer.start()
    space = load_space(ROOT / "search_spaces" / "sampling.yaml")
    summary = run_search(exp, space, SearchOptions(storage=str(tmp_path), name="kill", quiet=True))
    killer.join(5)
    assert killed, "the worker was never seen"
    (row,) = summary.rows
    assert row.status == "ok" and row.steps == steps
    assert row.retries == 1 and summary.retries == 1
    assert (row.train_steps or 0) >= steps  # the steps after its last checkpoint, trained again


@pytest.mark.slow
def test_a_search_over_256_domains_end_to_end(ray_session, tmp_path):
    exp = smoke(population=2, perturbation_interval=1, quantile_fraction=0.5, exploit_margin=0.0)
    exp = exp.replace(
        data=dataclasses.replace(exp.data, benchmark="synthetic", tasks=256),
        methods=("pbt", "stratified"),
    )
    space = load_space(ROOT / "search_spaces" / "sampling.yaml")
    summary = run_search(exp, space, SearchOptions(storage=str(tmp_path), name="w", quiet=True))
    assert len(summary.domains) == 256
    assert {r.method: r.status for r in summary.rows} == {"pbt": "ok", "stratified": "ok"}
    for m in summary.members:
        assert m.status == "ok"
    best = json.loads((tmp_path / "w" / "best_schedule.json").read_text())
    assert len(best["domains"]) == 256 and abs(sum(best["final_weights"]) - 1) < 1e-9
    for run in glob.glob(str(tmp_path / "w" / "tensorboard" / "seed0" / "*")):
        scalars = set(read_events(run).Tags()["scalars"])
        assert sum(t.startswith("val_loss/") for t in scalars) == 256
        assert {"compare/val_mean_ppl", "compare/val_worst_ppl", "compare/objective"} <= scalars


def test_a_search_on_a_sharded_corpus_uses_its_sizes_and_says_their_unit(ray_session, tmp_path):
    import gzip

    corpus = tmp_path / "corpus"
    rng = np.random.default_rng(0)
    for name, shards in (("web", 3), ("code", 1)):
        for k in range(shards):
            (corpus / name / f"part{k}").mkdir(parents=True)
            with gzip.open(corpus / name / f"part{k}" / "shard.jsonl.gz", "wt") as f:
                for _ in range(60):
                    words = rng.choice(["mix", "data", "def", "run", "web"], size=40)
                    f.write(json.dumps({"text": " ".join(words)}) + "\n")
    exp = smoke().replace(
        data=dataclasses.replace(smoke().data, benchmark="brown16", path=str(corpus), tasks=None),
        methods=("proportional",),
    )
    space = load_space(ROOT / "search_spaces" / "sampling.yaml")
    opts = SearchOptions(storage=str(tmp_path / "runs"), name="c", quiet=True)
    summary = run_search(exp, space, opts)
    manifest = summary.manifest
    assert manifest is not None
    assert summary.domains == ("code", "web") and summary.sizes_unit == "bytes"
    assert not summary.sizes_estimated
    for name in ("code", "web"):
        assert summary.sizes[name] == manifest["domains"][name]["bytes"]["value"]
    assert summary.sizes["web"] > 2.5 * summary.sizes["code"]  # 3 shards against 1
    from popmix.records.table import format_table

    assert "domain sizes (the priors' n_i): bytes in the corpus, exact" in format_table(summary)
