"""Summary rows: the best member is chosen on validation and reported on test."""

from __future__ import annotations

import pytest

from popmix.records.summary import Summary, read_methods
from popmix.records.table import format_table
from popmix.records.weights import WeightsSchedule
from popmix.tune.summarize import best_schedule, summarize


def rec(method, member, objective, test_ppl, status="ok", seed=0, steps=100):
    return {
        "trial_id": f"{method}{member}",
        "method": method,
        "seed": seed,
        "member": member,
        "status": status,
        "train_steps": steps,
        "wall_time_s": 1.0,
        "params": {},
        "metrics": {
            "objective": objective,
            "test_mean_ppl": test_ppl,
            "test_worst_ppl": None if test_ppl is None else test_ppl + 1,
            "step": 100,
            "timesteps_total": 1000,
            "test_loss": {"a": 1.0},
        },
        "schedule": WeightsSchedule.build(
            domains=["a", "b"],
            total_steps=100,
            final_weights=[0.5, 0.5],
            points=[{"step": 0, "weights": [0.5, 0.5], "trial_id": f"{method}{member}"}],
        ),
    }


def test_best_member_by_validation_not_test():
    records = [
        rec("pbt", 0, objective=2.0, test_ppl=9.0),
        rec("pbt", 1, objective=1.9, test_ppl=9.5),  # better on validation, worse on test
        rec("pbt", 2, objective=float("nan"), test_ppl=None, status="diverged"),
        rec("stratified", -1, objective=2.1, test_ppl=9.9),
    ]
    s = summarize(records, "pbt")
    pbt = next(r for r in s["rows"] if r["method"] == "pbt")
    assert pbt["trial_id"] == "pbt1" and pbt["test_mean_ppl"] == 9.5
    assert pbt["members"] == 3 and pbt["members_finished"] == 2
    assert pbt["population_train_steps"] == 300
    assert {r["method"] for r in s["rows"]} == {"pbt", "stratified"}
    best = best_schedule(records, ["a", "b"])
    assert best is not None and best.info["trial_id"] == "pbt1" and best.method == "pbt"
    assert best.info["objective"] == 1.9 and best.info["test_mean_ppl"] == 9.5
    table = format_table(Summary.from_dict(s))
    assert "pbt" in table and "9.500" in table and "stratified" in table


def test_rows_per_seed_and_failed_population():
    records = [rec("pbt", 0, 2.0, 9.0, seed=0), rec("pbt", 0, 2.0, None, status="error", seed=1)]
    s = summarize(records, "pbt")
    assert [(r["seed"], r["status"]) for r in s["rows"]] == [(0, "ok"), (1, "failed")]


def test_best_of_n_picks_its_best_draw_on_validation_and_counts_every_draw():
    draw1 = rec("best-of-n", -1, objective=1.8, test_ppl=9.9) | {"draw": 1, "trial_id": "b1"}
    draw2 = rec("best-of-n", -1, objective=2.2, test_ppl=8.0) | {"draw": 2, "trial_id": "b2"}
    records = [
        rec("pbt", 0, objective=1.9, test_ppl=9.0),
        rec("pbt", 1, objective=2.0, test_ppl=9.2),
        rec("stratified", -1, objective=2.1, test_ppl=9.4),  # draw 0: trained once, used twice
        draw1,
        draw2,
    ]
    summary = summarize(records, "pbt")
    rows = {r["method"]: r for r in summary["rows"]}
    best = rows["best-of-n"]
    assert best["trial_id"] == "b1" and best["picked_draw"] == 1  # best validation, not test
    assert best["test_mean_ppl"] == 9.9
    assert best["members"] == 3 and best["population_train_steps"] == 300
    assert [d["draw"] for d in best["draws"]] == [0, 1, 2]
    assert rows["stratified"]["test_mean_ppl"] == 9.4  # still its own row
    assert sum(r["method"] == "best-of-n" for r in summary["rows"]) == 1


def test_comparisons_pair_the_population_with_best_of_n_and_stratified_by_seed():
    records = []
    for seed, (p, b, s) in enumerate([(9.0, 9.5, 9.6), (9.1, 9.4, 9.5), (9.0, 9.6, 9.7)]):
        records += [
            rec("pbt", 0, 1.0, p, seed=seed),
            rec("best-of-n", -1, 0.9, b, seed=seed) | {"draw": 1},
            rec("stratified", -1, 1.0, s, seed=seed),
        ]
    summary = summarize(records, "pbt")
    from popmix.tune.summarize import comparisons

    summary["comparisons"] = out = comparisons(summary)
    by = {c["against"]: c for c in out}
    assert by["best-of-n"]["per_seed"] == pytest.approx([-0.5, -0.3, -0.6])
    assert by["best-of-n"]["verdict"] == "better" and by["best-of-n"]["n"] == 3
    assert by["stratified"]["per_seed"] == pytest.approx([-0.6, -0.4, -0.7])
    table = format_table(Summary.from_dict(summary))
    assert "pbt - best-of-n (mean test ppl, paired by seed): -0.467, 95% interval" in table


def test_methods_section_gives_intervals_and_the_paired_verdict_against_the_reference():
    from popmix.tune.summarize import method_intervals

    records = []
    # cooldown is 0.2 / 0.3 / 0.1 above stratified on the same seeds; pbt below by 0.5 +- 0.1
    for seed, (p, c, s) in enumerate([(9.0, 9.7, 9.5), (9.1, 9.9, 9.6), (9.3, 9.9, 9.8)]):
        records += [
            rec("pbt", 0, 1.0, p, seed=seed),
            rec("cooldown", -1, 1.0, c, seed=seed),
            rec("stratified", -1, 1.0, s, seed=seed),
        ]
    summary = summarize(records, "pbt")
    summary["reference"] = "stratified"
    summary["methods"] = methods = method_intervals(summary, "stratified")
    strat = methods["stratified"]["test_mean_ppl"]
    assert strat["n"] == 3 and strat["mean"] == pytest.approx(9.633333333)
    # by hand: std of 9.5, 9.6, 9.8 is 0.152753; t(2) = 4.303; half-width 4.303 * 0.152753 / sqrt 3
    half = 4.303 * 0.1527525 / 3**0.5
    assert strat["ci95"] == pytest.approx([9.633333 - half, 9.633333 + half], abs=1e-5)
    assert methods["stratified"]["test_worst_ppl"]["mean"] == pytest.approx(10.633333333)
    assert methods["stratified"]["vs_reference"] is None
    vs = methods["pbt"]["vs_reference"]
    assert vs["reference"] == "stratified" and vs["n"] == 3
    assert vs["diff_mean"] == pytest.approx(-0.5) and vs["verdict"] == "better"
    # diffs 0.2, 0.3, 0.1: mean 0.2, std 0.1, half-width 4.303 * 0.1 / sqrt 3 = 0.248 > 0.2
    cool = methods["cooldown"]["vs_reference"]
    assert cool["diff_mean"] == pytest.approx(0.2)
    assert cool["ci95"] == pytest.approx([0.2 - 0.24843, 0.2 + 0.24843], abs=1e-4)
    assert cool["verdict"] == "no clear difference"
    table = format_table(Summary.from_dict(summary))
    assert "vs stratified (paired by seed)" in table
    assert "+0.200 [-0.048, +0.448] no clear difference" in table
    assert "-0.500 [" in table and "better" in table


def test_methods_section_without_the_reference_and_on_one_seed():
    from popmix.records.table import format_methods
    from popmix.tune.summarize import method_intervals

    summary = summarize([rec("pbt", 0, 1.0, 9.0), rec("cooldown", -1, 1.0, 9.5)], "pbt")
    methods = method_intervals(summary, "stratified")
    assert methods["pbt"]["vs_reference"] is None  # stratified did not run
    assert methods["pbt"]["test_mean_ppl"]["ci95"] is None
    assert format_methods(read_methods(methods), "stratified") == []  # no interval on one seed
    assert len(format_methods(read_methods(methods), "stratified", always=True)) == 4


def test_exploit_counts_taken_and_skipped_per_seed():
    from popmix.tune.summarize import exploit_counts

    lineage = {
        "exploits": [{"seed": 0}, {"seed": 1}, {"seed": 1}],
        "skipped_within_noise": [{"seed": 0, "skipped_within_noise": True}],
    }
    c = exploit_counts(lineage, "auto")
    assert (c["taken"], c["skipped_within_noise"], c["margin"]) == (3, 1, "auto")
    assert c["per_seed"] == {
        "0": {"taken": 1, "skipped_within_noise": 1},
        "1": {"taken": 2, "skipped_within_noise": 0},
    }


def test_exploit_counts_give_each_synchronous_round_and_the_paired_margins_ratio():
    from popmix.records.summary import Exploits
    from popmix.records.table import exploits_line
    from popmix.tune.summarize import exploit_counts

    def decision(seed, skipped=False, paired=0.01, unpaired=0.04):
        row = {"seed": seed, "margin_paired": paired, "margin_unpaired": unpaired}
        return row | ({"skipped_within_noise": True} if skipped else {})

    lineage = {
        "exploits": [decision(0), decision(1, paired=0.02)],
        "skipped_within_noise": [decision(0, skipped=True, paired=0.03)],
        "rounds": [
            {"seed": 0, "round": 2, "step": 200, "decisions": 1, "taken": 0,
             "skipped_within_noise": 1, "ranking": []},
            {"seed": 0, "round": 1, "step": 100, "decisions": 1, "taken": 1,
             "skipped_within_noise": 0, "ranking": []},
            {"seed": 1, "round": 1, "step": 100, "decisions": 1, "taken": 1,
             "skipped_within_noise": 0, "ranking": []},
        ],
    }  # fmt: skip
    c = exploit_counts(lineage, "auto")
    assert c["per_seed"]["0"]["rounds"] == 2 and c["per_seed"]["1"]["rounds"] == 1
    assert [(r["seed"], r["round"]) for r in c["rounds"]] == [(0, 1), (0, 2), (1, 1)]
    assert "ranking" not in c["rounds"][0]
    assert c["paired_margin_ratio_median"] == pytest.approx(0.5)  # of 0.25, 0.5, 0.75
    ex = Exploits.from_dict(c)
    assert ex.per_round() == [(1, 2, 2, 0), (2, 1, 0, 1)]
    line = exploits_line(ex)
    assert "3 rounds decided over 2 seed(s)" in line and "1: 2/2/0, 2: 1/0/1" in line
    # asynchronous PBT: no rounds, one line as before
    assert "\n" not in exploits_line(Exploits.from_dict(exploit_counts({"exploits": []}, 0)))


def test_groups_give_each_method_the_mean_over_a_groups_domains_paired_by_seed():
    from popmix.tune.summarize import group_intervals

    records = []
    # per-domain test ppl (hi1, hi2, lo): temperature is worse on high by 1.0 +- 0.5 per seed
    # and better on low by 2.0 exactly
    for seed, base in enumerate([10.0, 11.0, 12.0]):
        for method, ppl in (
            ("stratified", {"hi1": base, "hi2": base + 2, "lo": 30.0 + seed}),
            (
                "temperature",
                {"hi1": base + 1.0 + 0.5 * (seed - 1), "hi2": base + 3.0, "lo": 28.0 + seed},
            ),
        ):
            r = rec(method, -1, 1.0, 20.0, seed=seed)
            r["metrics"]["test_ppl"] = ppl
            records.append(r)
    summary = summarize(records, "pbt")
    summary["reference"] = "stratified"
    groups = group_intervals(summary, {"hi1": "high", "hi2": "high", "lo": "low"}, "stratified")
    summary["groups"] = groups
    assert groups["members"] == {"high": ["hi1", "hi2"], "low": ["lo"]}
    strat_high = groups["methods"]["stratified"]["high"]["test_mean_ppl"]
    assert strat_high["mean"] == pytest.approx(12.0) and strat_high["n"] == 3  # (b + b+2)/2
    assert groups["methods"]["stratified"]["low"]["vs_reference"] is None
    # high: temperature - stratified per seed = (1 + 0.5(s-1) + 1) / 2 = 0.75, 1.0, 1.25
    high = groups["methods"]["temperature"]["high"]["vs_reference"]
    assert high["diff_mean"] == pytest.approx(1.0) and high["verdict"] == "worse"
    low = groups["methods"]["temperature"]["low"]["vs_reference"]
    assert low["diff_mean"] == pytest.approx(-2.0) and low["n"] == 3
    table = format_table(Summary.from_dict(summary))
    assert "high (2 domains)" in table and "low (1 domains)" in table
    assert "-2.000 [-2.000, -2.000]" in table
    assert group_intervals(summary, {}, "stratified") is None


def test_domain_groups_come_from_the_experiment_or_the_benchmark(tiny_domains):
    from popmix.data import DataError
    from popmix.data.domains import domain_groups

    a, b = tiny_domains.names[:2]
    assert domain_groups(tiny_domains) == {}
    assert domain_groups(tiny_domains, {"x": [b], "y": [a]}) == {a: "y", b: "x"}
    with pytest.raises(DataError, match="unknown domain 'nope'"):
        domain_groups(tiny_domains, {"x": ["nope"]})
    with pytest.raises(DataError, match="in both 'x' and 'y'"):
        domain_groups(tiny_domains, {"x": [a], "y": [a]})
    from popmix.data.multilingual import load_multilingual

    four = load_multilingual().first(4)
    assert domain_groups(four) == {"en": "high", "ka": "low", "ru": "high", "hi": "low"}


def test_oracle_gap_closed_is_each_seeds_share_of_the_stratified_to_oracle_gap():
    from popmix.records.table import format_oracle
    from popmix.tune.summarize import method_intervals, oracle_gaps

    records = []
    # stratified 2.70 / 2.72, oracle 2.60: gaps 0.10 / 0.12; pbt closes 0.05 / 0.09 of them
    for seed, (strat, pbt) in enumerate([(2.70, 2.65), (2.72, 2.63)]):
        for method, member, loss in (("stratified", -1, strat), ("pbt", 0, pbt)):
            r = rec(method, member, 1.0, 15.0, seed=seed)
            r["metrics"]["test_mean_loss"] = loss
            records.append(r)
    summary = summarize(records, "pbt")
    summary["methods"] = method_intervals(summary, "stratified")
    summary["oracle"] = {"test_mean_loss": 2.60, "seeds": [0, 1, 2], "applies": True}
    oracle_gaps(summary, summary["oracle"])
    pbt = summary["methods"]["pbt"]["oracle_gap_closed"]
    assert pbt["n"] == 2 and pbt["mean"] == pytest.approx((0.5 + 0.75) / 2)
    assert summary["methods"]["stratified"]["oracle_gap_closed"]["mean"] == pytest.approx(0.0)
    text = "\n".join(format_oracle(Summary.from_dict(summary)))
    assert "mean test loss 2.6000 over seeds 0, 1, 2" in text and "pbt           +0.63 [" in text
    summary["oracle"] = {"applies": False, "why": "model.d_model differs from the oracle's proxy"}
    assert format_oracle(Summary.from_dict(summary)) == [
        "oracle: not measured against (model.d_model differs from the oracle's proxy)"
    ]


def test_random_picks_its_best_draw_on_validation_and_is_compared_with_the_population():
    records = []
    for seed, (p, r_val, r_test) in enumerate([(9.0, 1.7, 9.5), (9.1, 1.8, 9.4), (9.0, 1.6, 9.6)]):
        records += [
            rec("pbt", 0, 1.0, p, seed=seed),
            rec("random", -1, 2.0, 8.0, seed=seed) | {"draw": 0, "trial_id": f"r0-{seed}"},
            rec("random", -1, r_val, r_test, seed=seed) | {"draw": 1, "trial_id": f"r1-{seed}"},
            rec("stratified", -1, 1.0, 9.7, seed=seed),
        ]
    summary = summarize(records, "pbt")
    rows = [r for r in summary["rows"] if r["method"] == "random"]
    assert len(rows) == 3  # one per seed, not one per draw
    # draw 1 is best on validation (its test perplexity is worse than draw 0's: not looked at)
    assert [r["picked_draw"] for r in rows] == [1, 1, 1]
    assert [r["test_mean_ppl"] for r in rows] == [9.5, 9.4, 9.6]
    assert all(r["members"] == 2 and r["population_train_steps"] == 200 for r in rows)
    from popmix.tune.summarize import comparisons

    by = {c["against"]: c for c in comparisons(summary)}
    assert by["random"]["per_seed"] == pytest.approx([-0.5, -0.3, -0.6])
    assert set(by) == {"random", "stratified"}
