"""popmix confirm: fresh seeds, the found schedule replayed and held static, rank agreement."""

from __future__ import annotations

import json

import pytest

from popmix.config import ConfigError, load_experiment
from popmix.records.weights import WeightsSchedule
from popmix.tune.confirm import (
    confirm_methods,
    confirm_seeds,
    confirm_specs,
    rank_agreement,
    read_search,
)


def test_rank_agreement_by_hand():
    search = {"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0}
    assert rank_agreement(search, {"a": 1.5, "b": 2.5, "c": 3.5, "d": 4.5}) == {
        "methods": ["a", "b", "c", "d"],
        "spearman": pytest.approx(1.0),
        "pairwise_accuracy": 1.0,
    }
    # b and c swap: rho = 1 - 6 * (1 + 1) / (4 * 15) = 0.8; 5 of 6 pairs agree
    swapped = rank_agreement(search, {"a": 1.0, "b": 3.0, "c": 2.0, "d": 4.0, "new": 0.0})
    assert swapped["methods"] == ["a", "b", "c", "d"]
    assert swapped["spearman"] == pytest.approx(0.8)
    assert swapped["pairwise_accuracy"] == pytest.approx(5 / 6)
    assert rank_agreement(search, {"a": 1.0})["spearman"] is None


def test_fresh_seeds_and_the_methods_a_confirmation_trains():
    exp = load_experiment(None, ["seeds=[0,4,2]"])
    assert confirm_seeds(exp, 3) == [5, 6, 7]
    # the default methods: pbt, best-of-n, stratified, cooldown
    assert confirm_methods(exp) == ["best-schedule", "best-final", "stratified", "cooldown"]
    # random is a control for the search's selection, as best-of-n is; doremi is confirmed
    more = load_experiment(None, ["methods=[pbt,random,stratified,doremi]"])
    assert confirm_methods(more) == ["best-schedule", "best-final", "stratified", "doremi"]
    # doremi is not in the scale's first Tuner: it waits for its seed's stratified run
    specs = confirm_specs(more, _best(), ["a", "b"], [3])
    assert [s.method for s in specs] == ["best-schedule", "best-final", "stratified"]


def _best() -> WeightsSchedule:
    return WeightsSchedule.build(
        domains=["a", "b"], total_steps=10, points=[{"step": 0, "weights": [0.5, 0.5]}]
    )


def test_the_schedule_is_replayed_and_the_final_weights_held_static():
    exp = load_experiment(None, ["train.steps=200", "methods=[pbt,stratified]"])
    best = WeightsSchedule.build(
        domains=["a", "b"],
        total_steps=100,
        points=[{"step": 0, "weights": [0.5, 0.5]}, {"step": 50, "weights": [0.2, 0.8]}],
        final_weights=[0.2, 0.8],
    )
    specs = confirm_specs(exp, best, ["a", "b"], [7])
    by = {s.method: s for s in specs}
    assert set(by) == {"best-schedule", "best-final", "stratified"}
    assert all(s.seed == 7 and not s.is_member for s in specs)
    assert by["best-schedule"].policy == "schedule"
    # rescaled to the confirmation's 200 steps
    assert [p["step"] for p in by["best-schedule"].params["points"]] == [0, 100]
    assert by["best-final"].policy == "fixed"
    assert by["best-final"].params == {"weights": {"a": 0.2, "b": 0.8}}
    policy = by["best-final"].build_policy(__import__("numpy").ones(2), ["a", "b"], 200)
    assert list(policy.weights(0)) == pytest.approx([0.2, 0.8])


def test_a_missing_or_incomplete_search_is_a_one_line_error(tmp_path):
    with pytest.raises(ConfigError, match="no such folder"):
        read_search(tmp_path / "nope")
    with pytest.raises(ConfigError, match="not a popmix search folder"):
        read_search(tmp_path)
    (tmp_path / "summary.json").write_text(json.dumps({"rows": [], "interrupted": True}))
    with pytest.raises(ConfigError, match="interrupted"):
        read_search(tmp_path)
    (tmp_path / "summary.json").write_text(json.dumps({"rows": []}))
    with pytest.raises(ConfigError, match="rerun the search"):
        read_search(tmp_path)
    cfg = {"methods": ["pbt", "stratified"]}
    (tmp_path / "summary.json").write_text(json.dumps({"rows": [], "experiment_config": cfg}))
    with pytest.raises(ConfigError, match="no best_schedule.json"):
        read_search(tmp_path)
