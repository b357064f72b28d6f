"""One complete run: the result record's metric names, and its weights file."""

from __future__ import annotations

import json

import numpy as np

from popmix.policies import build_policy
from popmix.records.weights import FORMAT, WeightsSchedule
from popmix.train import ModelConfig, TrainConfig, run_training
from popmix.train.run import run_schedule, split_metrics, weight_schedule

TINY = ModelConfig(n_layer=1, n_head=2, d_model=32, seq_len=16)


def test_split_metrics_names_and_values():
    losses = np.log(np.array([2.0, 4.0, 3.0]))
    m = split_metrics("test", ["a", "b", "c"], losses)
    assert set(m) == {
        "test_loss",
        "test_ppl",
        "test_mean_ppl",
        "test_worst_ppl",
        "test_worst_domain",
        "test_mean_loss",
    }
    assert list(m["test_ppl"]) == ["a", "b", "c"]
    np.testing.assert_allclose(list(m["test_ppl"].values()), [2.0, 4.0, 3.0], rtol=1e-12)
    assert abs(m["test_mean_ppl"] - 3.0) < 1e-12 and abs(m["test_worst_ppl"] - 4.0) < 1e-12
    assert m["test_worst_domain"] == "b"
    assert abs(m["test_mean_loss"] - float(np.mean(losses))) < 1e-15


def test_result_record_uses_the_one_set_of_names(tiny_domains, tmp_path):
    cfg = TrainConfig(
        steps=6,
        batch_size=4,
        warmup_steps=1,
        eval_interval=3,
        eval_windows=2,
        test_windows=2,
        threads=1,
    )
    policy = build_policy("temperature", tiny_domains.sizes, cfg.steps, {"temperature": 2.0})
    result = run_training(tiny_domains, policy, TINY, cfg)
    for key in ("test_mean_ppl", "test_worst_ppl", "test_worst_domain", "test_mean_loss"):
        assert key in result
    for old in ("mean_test_ppl", "worst_test_ppl", "worst_domain", "mean_test_loss"):
        assert old not in result
    assert result["test_worst_ppl"] >= result["test_mean_ppl"] > 1
    assert {"val_mean_ppl", "val_worst_ppl", "val_mean_loss"} <= set(result["history"][-1])
    json.dumps(result)  # result.json as written

    # weights.json: the one format, read back by the one reader
    path = tmp_path / "weights.json"
    path.write_text(json.dumps(weight_schedule(result)))
    assert json.loads(path.read_text())["format"] == FORMAT
    back = WeightsSchedule.read(path, tiny_domains.names)
    assert back == run_schedule(result)
    assert back.method == "temperature" and back.total_steps == 6
    assert back.points[0].step == 0 and back.points[0].temperature == 2.0
