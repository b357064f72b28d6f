"""DoReMi's update against hand-computed steps (the official "doremiv1" rule), and what a
search checks before it runs it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from popmix.config import ConfigError, Experiment, check_method_params
from popmix.policies import DomainSignals, PolicyError, build_policy

SIZES = np.array([100.0, 200.0, 300.0])


def step(policy, excess, counts=(4, 4, 4), at=0):
    policy.update(
        DomainSignals(step=at, counts=np.array(counts), excess_loss=np.array(excess, float))
    )


def test_one_step_is_the_exponentiated_gradient_of_the_excess_then_smoothed():
    p = build_policy("doremi", SIZES, 10, {"eta": 1.0, "smoothing": 1e-3})
    np.testing.assert_allclose(p.weights(0), [1 / 3] * 3)
    step(p, [0.5, 0.0, 1.0])
    # log α = log(1/3) + (0.5, 0, 1), normalised: e^0.5, 1, e^1 over their sum 5.36700...
    raw = np.array([math.exp(0.5), 1.0, math.e]) / (math.exp(0.5) + 1.0 + math.e)
    np.testing.assert_allclose(raw, [0.307196, 0.186324, 0.506480], atol=1e-6)
    expected = 0.999 * raw + 1e-3 / 3
    np.testing.assert_allclose(p.weights(1), expected, rtol=1e-12)
    # the average counts the initial uniform weights once: (u + α1) / 2
    np.testing.assert_allclose(p.final_weights(1), (np.full(3, 1 / 3) + expected) / 2)


def test_a_second_step_starts_from_the_smoothed_weights_and_an_absent_domain_keeps_its_score():
    p = build_policy("doremi", SIZES, 10, {"eta": 0.5, "smoothing": 1e-3})
    step(p, [0.5, 0.0, 1.0])
    a1 = p.weights(1)
    # domain 1 absent: its score stays 0.0 (the last one); the others get (0.2, 0.0)
    step(p, [0.2, np.nan, 0.0], counts=(4, 0, 8), at=1)
    z = np.log(a1) + 0.5 * np.array([0.2, 0.0, 0.0])
    a2 = 0.999 * np.exp(z) / np.exp(z).sum() + 1e-3 / 3
    np.testing.assert_allclose(p.weights(2), a2, rtol=1e-12)
    np.testing.assert_allclose(p.final_weights(2), (np.full(3, 1 / 3) + a1 + a2) / 3)
    assert p.state_dict()["missing"] == [0, 1, 0]


def test_a_domain_absent_from_the_first_batch_starts_at_log_vocab():
    p = build_policy("doremi", SIZES, 10, {"eta": 1.0, "smoothing": 0.0, "vocab_size": 256})
    step(p, [0.1, np.nan, 0.1], counts=(2, 0, 2))
    z = np.array([0.1, math.log(256), 0.1])
    np.testing.assert_allclose(p.weights(1), np.exp(z) / np.exp(z).sum(), rtol=1e-12)


def test_no_or_non_finite_excess_skips_the_update():
    p = build_policy("doremi", SIZES, 10)
    p.update(DomainSignals(step=0, counts=np.array([1, 1, 1])))
    step(p, [np.inf, 0.1, 0.1])
    np.testing.assert_allclose(p.weights(2), [1 / 3] * 3)
    assert p.state_dict()["skipped"] == 2 and p.diagnostics() == {"skipped_updates": 2.0}


@pytest.mark.parametrize(
    "params,match",
    [({"eta": 0}, "eta"), ({"smoothing": 2}, "smoothing"), ({"vocab_size": 1}, "vocab_size")],
)
def test_bad_parameters(params, match):
    with pytest.raises(PolicyError, match=match):
        build_policy("doremi", SIZES, 10, params)


def test_a_search_refuses_doremi_without_its_reference_method_in_one_line():
    with pytest.raises(ConfigError, match="add stratified to methods"):
        check_method_params(Experiment(methods=("pbt", "doremi")), SIZES, ["a", "b", "c"])
    check_method_params(Experiment(methods=("stratified", "doremi")), SIZES, ["a", "b", "c"])


def test_an_unbound_vocabulary_is_the_models():
    p = build_policy("doremi", SIZES, 10, {})
    assert p.vocab_size is None
    p.bind_vocab(50257)
    assert p.vocab_size == 50257 and p.hparams()["vocab_size"] == 50257
    p = build_policy("doremi", SIZES, 10, {"vocab_size": 300})
    p.bind_vocab(256)  # a value given stays
    assert p.vocab_size == 300
