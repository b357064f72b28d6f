"""The answer a search ends with: the recommended mixture (or the reference's, when nothing is
resolved better, with the seeds that would resolve the closest), its round trip through
summary.json, every method's weights file, and what ``popmix export`` picks from them."""

from __future__ import annotations

import json

from popmix.cli import main
from popmix.records.summary import Recommendation, Summary
from popmix.records.table import format_answer
from popmix.records.weights import WeightsSchedule
from popmix.tune.summarize import (
    comparisons,
    method_intervals,
    recommend,
    row_schedules,
    summarize,
)

NAMES = ["a", "b"]
PRIOR = [0.8, 0.2]  # proportional: domain a is four times b
#: each method's weights: a schedule of two phases for cooldown (T 5 then 1), static otherwise
WEIGHTS = {
    "pbt": [{"step": 0, "weights": [0.3, 0.7]}, {"step": 50, "weights": [0.6, 0.4]}],
    "stratified": [{"step": 0, "weights": [0.5, 0.5]}],
    "proportional": [{"step": 0, "weights": [0.8, 0.2]}],
    "temperature": [{"step": 0, "weights": [0.667, 0.333], "temperature": 2.0}],
    "cooldown": [
        {"step": 0, "weights": [0.57, 0.43], "temperature": 5.0},
        {"step": 50, "weights": [0.8, 0.2], "temperature": 1.0},
    ],
    "best-of-n": [{"step": 0, "weights": [0.5, 0.5]}],
}


def rec(method, seed, test_ppl, objective=1.0, member=-1):
    tid = f"{method}-{seed}-{member}"
    return {
        "trial_id": tid,
        "method": method,
        "seed": seed,
        "member": member,
        "draw": 0,
        "status": "ok",
        "train_steps": 100,
        "wall_time_s": 1.0,
        "params": {},
        "metrics": {"objective": objective, "test_mean_ppl": test_ppl, "step": 100},
        "schedule": WeightsSchedule.build(domains=NAMES, total_steps=100, points=WEIGHTS[method]),
    }


def search(records, reference="stratified"):
    """The summary as write_outputs builds it, without Ray: rows, comparisons, methods and
    the recommendation."""
    s = summarize(records, "pbt")
    s["comparisons"] = comparisons(s)
    s["reference"] = reference
    s["methods"] = method_intervals(s, reference)
    s["recommendation"] = recommend(s, records, NAMES, PRIOR)
    return s


def records_of(ppl: dict[str, list[float]], objectives: dict[str, list[float]] | None = None):
    out = []
    for method, values in ppl.items():
        for seed, v in enumerate(values):
            obj = (objectives or {}).get(method, [1.0] * len(values))[seed]
            member = 0 if method == "pbt" else -1
            out.append(rec(method, seed, v, objective=obj, member=member))
    return out


def test_a_method_resolved_better_than_the_reference_and_best_of_n_is_recommended(tmp_path):
    # pbt below stratified by 0.5 +- 0.1 and below best-of-n by 0.3 +- 0.1: resolved both
    records = records_of(
        {
            "pbt": [9.0, 9.1, 9.3],
            "stratified": [9.6, 9.5, 9.8],
            "best-of-n": [9.4, 9.3, 9.6],
            "cooldown": [9.7, 9.9, 9.9],
        },
        # seed 1 is pbt's best on validation: its mixture is the one taken
        {"pbt": [2.0, 1.5, 1.8]},
    )
    s = search(records)
    r = Summary.from_dict(json.loads(json.dumps(s))).recommendation
    assert r is not None and r.method == "pbt" and r.resolved and r.seed == 1
    assert r.file == "pbt_weights-seed1.json" and r.phases == 2
    assert r.weights == {"a": 0.6, "b": 0.4} and r.first_weights == {"a": 0.3, "b": 0.7}
    assert r.prior == {"a": 0.8, "b": 0.2}
    assert r.evidence is not None and r.evidence.seeds_needed is None
    assert r.evidence.vs_reference.verdict == "better"
    assert r.evidence.vs_best_of_n.verdict == "better"
    text = format_answer(Summary.from_dict(s), "runs/x")
    assert text.startswith(
        "answer: take pbt's mixture (its seed-1 run): resolved better than "
        "stratified and best-of-n"
    )
    # the intervals as summary.json gives them: -0.5, half-width 4.303 * 0.1 / sqrt 3 = 0.248
    assert (
        "vs stratified (the reference): -0.500 [95% -0.748, -0.252] over 3 seeds: better" in text
    )
    assert "vs best-of-n: -0.300 [95% -0.548, -0.052] over 3 seeds: better" in text
    lines = text.splitlines()
    header = next(ln for ln in lines if ln.strip().startswith("domain"))
    assert header.split() == ["domain", "pbt", "step", "0", "pbt", "final", "proportional"]
    assert lines[lines.index(header) + 1].split() == ["a", "0.3000", "0.6000", "0.8000"]
    assert lines[-1].startswith(
        "next: popmix export runs/x --format hf --out mix.json   (exports pbt_weights-seed1.json"
    )


def test_nothing_resolved_recommends_the_reference_with_the_seeds_that_would_resolve_it():
    # pbt - stratified per seed: -3, -1, +1: mean -1, sd 2, half-width 4.303 * 2 / sqrt 3 = 4.969,
    # no clear difference. By hand, with t(16) = 2.120 and t(17) = 2.110: 17 seeds give a
    # half-width of 2.120 * 2 / sqrt 17 = 1.028 > 1, 18 seeds 2.110 * 2 / sqrt 18 = 0.995 < 1:
    # 18 seeds in all, 15 more.
    records = records_of(
        {"pbt": [7.0, 9.0, 11.0], "stratified": [10.0, 10.0, 10.0], "cooldown": [10.5, 10.2, 10.6]}
    )
    s = search(records)
    r = Summary.from_dict(json.loads(json.dumps(s))).recommendation
    assert r is not None and r.method == "stratified" and not r.resolved
    assert r.why == "no method is resolved better than stratified"
    assert r.file == "stratified_weights-seed0.json" and r.weights == {"a": 0.5, "b": 0.5}
    assert r.evidence is not None and r.evidence.method == "pbt"
    assert r.evidence.seeds_needed == 18 and r.evidence.vs_best_of_n is None
    text = format_answer(Summary.from_dict(s), "runs/x")
    assert text.splitlines()[0] == (
        "answer: take stratified's mixture, the reference: no method is resolved better than "
        "stratified"
    )
    assert (
        "closest: pbt, vs stratified: -1.000 [95% -5.969, +3.969] over 3 seeds: no clear" in text
    )
    assert "about 18 seeds in all (15 more) would resolve" in text and "an estimate" in text
    assert "exports stratified_weights-seed0.json" in text


def test_the_seeds_estimate_is_left_out_where_it_cannot_be_made():
    # one seed: no spread
    s = search(records_of({"pbt": [9.0], "stratified": [10.0]}))
    r = Summary.from_dict(s).recommendation
    assert r.method == "stratified" and r.evidence.seeds_needed is None
    assert "1 seed gives no spread" in format_answer(Summary.from_dict(s), "x")
    # every other method above the reference: the difference points the other way
    s = search(records_of({"cooldown": [10.5, 10.1, 10.9], "stratified": [10.0, 10.0, 10.0]}))
    text = format_answer(Summary.from_dict(s), "x")
    assert "no estimate of the seeds needed: cooldown's mean is not below stratified's" in text
    # no reference run: nothing to recommend
    s = search(records_of({"cooldown": [10.5, 10.1]}))
    assert Summary.from_dict(s).recommendation.method is None
    assert format_answer(Summary.from_dict(s), "x").startswith("answer: none; the reference")


def test_the_recommendation_round_trips_through_summary_json():
    s = search(records_of({"pbt": [7.0, 9.0, 11.0], "stratified": [10.0, 10.0, 10.0]}))
    typed = Summary.from_dict(json.loads(json.dumps(s)))
    again = Summary.from_dict(json.loads(json.dumps(s)))
    assert typed.recommendation == again.recommendation
    assert typed.recommendation == Recommendation.from_dict(s["recommendation"])
    assert Summary.from_dict({"rows": []}).recommendation is None  # a summary from before


def _write_search(folder, records):
    s = search(records)
    s["experiment_config"] = {"train": {"batch_size": 4}, "model": {"seq_len": 8}}
    folder.mkdir()
    (folder / "summary.json").write_text(json.dumps(s))
    for name, sched in row_schedules(s, records, NAMES).items():
        sched.write(folder / name)
    return s


def test_every_method_writes_its_weights_file_schedules_included(tmp_path):
    methods = ["pbt", "stratified", "proportional", "temperature", "cooldown", "best-of-n"]
    records = records_of({m: [9.0, 9.2] for m in methods})
    _write_search(tmp_path / "run", records)
    for m in methods:
        for seed in (0, 1):
            w = WeightsSchedule.read(tmp_path / "run" / f"{m}_weights-seed{seed}.json", NAMES)
            assert w.method == m and w.info["seed"] == seed
            assert [list(p.weights) for p in w.points] == [p["weights"] for p in WEIGHTS[m]]
    cool = WeightsSchedule.read(tmp_path / "run" / "cooldown_weights-seed0.json")
    assert [p.temperature for p in cool.points] == [5.0, 1.0]  # the schedule, phase by phase


def test_export_writes_the_recommended_mixture_by_default_and_any_method_on_request(
    tmp_path, capsys
):
    records = records_of(
        {"pbt": [7.0, 9.0, 11.0], "stratified": [10.0, 10.0, 10.0], "cooldown": [10.5, 10.2, 10.6]}
    )
    _write_search(tmp_path / "run", records)
    assert (
        main(
            [
                "export",
                str(tmp_path / "run"),
                "--format",
                "json",
                "--out",
                str(tmp_path / "a.json"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "stratified_weights-seed0.json" in out
    assert "exported the recommended mixture, the reference's: stratified" in out
    assert json.loads((tmp_path / "a.json").read_text())["phases"][0]["weights"] == {
        "a": 0.5,
        "b": 0.5,
    }

    assert (
        main(
            [
                "export",
                str(tmp_path / "run"),
                "--format",
                "json",
                "--method",
                "cooldown",
                "--out",
                str(tmp_path / "c.json"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "cooldown_weights-seed0.json" in out and "exported cooldown's mixture, of seed 0" in out
    phases = json.loads((tmp_path / "c.json").read_text())["phases"]
    assert [(p["start"], p["end"]) for p in phases] == [(0, 50), (50, 100)]

    assert main(["export", str(tmp_path / "run"), "--format", "json", "--method", "doge"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith(
        "--method doge: not a method of this search (its methods: pbt, cooldown, stratified)"
    )


def test_after_a_swarm_the_answer_names_the_command_that_starts_pbt_at_its_optimum():
    s = search(records_of({"pbt": [9.0, 9.5], "stratified": [10.0, 10.0]}))
    hint = "or start PBT at the swarm's optimum: popmix search --weights-from runs/x/swarm_optimum"
    assert hint not in format_answer(Summary.from_dict(s), "runs/x")
    fitted = {"surface": {"optimum": [0.5, 0.5]}}
    s["swarm"] = {"size": 5, "per_seed": {"0": {"surface": {"error": "too few runs"}}}}
    assert hint not in format_answer(Summary.from_dict(s), "runs/x")  # no optimum written
    s["swarm"]["per_seed"]["1"] = fitted
    text = format_answer(Summary.from_dict(s), "runs/x")
    assert text.splitlines()[-1].startswith(hint) and "--burn-in 0.5" in text
