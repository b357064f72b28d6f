"""UniMax against hand-computed allocations (Chung et al. 2023, Algorithm 1)."""

from __future__ import annotations

import numpy as np
import pytest

from popmix.config import Experiment
from popmix.policies import PolicyError, build_policy, unimax_allocation

SIZES = np.array([1000.0, 10.0, 100.0])  # deliberately not sorted


def test_no_domain_capped_is_uniform():
    # budget 30, 2 epochs: shares of 10 each, every cap (20, 200, 2000) above them
    np.testing.assert_allclose(unimax_allocation(SIZES, 30, 2), [10, 10, 10])
    w = build_policy("unimax", SIZES, 10, {"max_epochs": 2, "budget_tokens": 30}).weights(0)
    np.testing.assert_allclose(w, [1 / 3] * 3)


def test_smallest_capped_and_its_leftover_shared_by_the_rest():
    # budget 300, 2 epochs, caps 20 (size 10), 200 (size 100), 2000 (size 1000):
    # size 10: share 300/3 = 100 > 20 -> 20, 280 left; size 100: share 140 <= 200 -> 140;
    # size 1000: the last 140.
    np.testing.assert_allclose(unimax_allocation(SIZES, 300, 2), [140, 20, 140])
    w = build_policy("unimax", SIZES, 10, {"max_epochs": 2, "budget_tokens": 300}).weights(0)
    np.testing.assert_allclose(w, [140 / 300, 20 / 300, 140 / 300], rtol=1e-12)


def test_two_capped_in_turn():
    # budget 900: size 10 share 300 -> 20 (880 left); size 100 share 440 -> 200 (680 left);
    # size 1000 gets 680 (< 2000)
    np.testing.assert_allclose(unimax_allocation(SIZES, 900, 2), [680, 20, 200])
    p = build_policy("unimax", SIZES, 10, {"max_epochs": 2, "budget_tokens": 900})
    np.testing.assert_allclose(p.weights(5), [680 / 900, 20 / 900, 200 / 900], rtol=1e-12)
    assert p.capped().tolist() == [False, True, True]
    assert p.hparams()["capped_domains"] == 2


def test_every_domain_capped_is_proportional_to_the_caps():
    alloc = unimax_allocation(SIZES, 1e6, 2)
    np.testing.assert_allclose(alloc, 2 * SIZES)
    w = build_policy("unimax", SIZES, 10, {"max_epochs": 2, "budget_tokens": 1e6}).weights(0)
    np.testing.assert_allclose(w, SIZES / SIZES.sum())


def test_no_budget_is_uniform():
    np.testing.assert_allclose(build_policy("unimax", SIZES, 10).weights(0), [1 / 3] * 3)


@pytest.mark.parametrize(
    "params", [{"max_epochs": 0}, {"max_epochs": -1.0}, {"budget_tokens": 0}, {"max_epochs": "x"}]
)
def test_bad_parameters_are_refused(params):
    with pytest.raises(PolicyError, match="unimax"):
        build_policy("unimax", SIZES, 10, params)


def test_the_experiment_fills_the_budget_with_the_runs_tokens():
    exp = Experiment()
    params = exp.method_params("unimax")
    assert params["budget_tokens"] == exp.train.steps * exp.train.batch_size * exp.model.seq_len
    given = exp.replace(baselines={"unimax": {"budget_tokens": 5e9, "max_epochs": 1}})
    assert given.method_params("unimax") == {"budget_tokens": 5e9, "max_epochs": 1}
    assert "budget_tokens" not in exp.method_params("temperature")
