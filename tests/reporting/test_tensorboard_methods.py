"""TensorBoard's method summary carries the table's by-group and oracle blocks."""

from __future__ import annotations

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from popmix.records.summary import Summary
from popmix.tune.summarize import group_intervals, method_intervals, oracle_gaps, summarize
from popmix.tune.tensorboard import write_method_summary


def rec(method, member, seed, loss, ppl):
    """One finished trial's record with the figures the method summary reads."""
    return {
        "trial_id": f"{method}{member}-{seed}",
        "method": method,
        "seed": seed,
        "member": member,
        "status": "ok",
        "params": {},
        "metrics": {
            "objective": 1.0,
            "test_mean_ppl": sum(ppl.values()) / len(ppl),
            "test_worst_ppl": max(ppl.values()),
            "test_mean_loss": loss,
            "test_ppl": ppl,
        },
        "schedule": None,
    }


def test_groups_and_the_oracle_reach_the_text_and_the_hparams_metrics(tmp_path):
    records = []
    for seed in (0, 1):
        for method, member, loss in (("stratified", -1, 2.7), ("pbt", 0, 2.65)):
            ppl = {"a": 10.0 + seed, "b": 20.0}
            records.append(rec(method, member, seed, loss + 0.01 * seed, ppl))
    summary = summarize(records, "pbt")
    summary["reference"] = "stratified"
    summary["methods"] = method_intervals(summary, "stratified")
    summary["groups"] = group_intervals(summary, {"a": "high", "b": "low"}, "stratified")
    summary["oracle"] = {"test_mean_loss": 2.6, "seeds": [0, 1, 2], "applies": True}
    oracle_gaps(summary, summary["oracle"])
    write_method_summary(tmp_path, Summary.from_dict(summary))

    text = EventAccumulator(str(tmp_path), size_guidance={"tensors": 0})
    text.Reload()
    body = text.Tensors("comparison/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "high (1 domains)" in body and "stratified-to-oracle gap" in body
    pbt = EventAccumulator(str(tmp_path / "pbt"), size_guidance={"scalars": 0})
    pbt.Reload()
    tags = set(pbt.Tags()["scalars"])
    assert {"method/high_test_mean_ppl", "method/low_test_mean_ppl"} <= tags
    # gaps 0.10 and 0.11 (seed 1 is 0.01 worse for both): 0.05 of each closed
    closed = (0.05 / 0.10 + 0.05 / 0.11) / 2
    assert pbt.Scalars("method/oracle_gap_closed")[0].value == pytest.approx(closed, rel=1e-6)
    assert pbt.Scalars("method/high_test_mean_ppl")[0].value == pytest.approx(10.5)
