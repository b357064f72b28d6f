"""Each static rule against a closed form or a hand-computed case."""

from __future__ import annotations

import numpy as np
import pytest

from popmix.policies import PolicyError, build_policy, loss_weights, temperature_weights

SIZES = np.array([900.0, 90.0, 9.0, 1.0])


def test_temperature_hand_computed():
    # T=2: p ∝ sqrt(n) = (30, 9.4868, 3, 1), sum 43.4868
    w = build_policy("temperature", SIZES, 10, {"temperature": 2.0}).weights(0)
    s = np.sqrt(SIZES)
    np.testing.assert_allclose(w, s / s.sum(), rtol=1e-12)
    np.testing.assert_allclose(w[0], 30 / (30 + np.sqrt(90) + 3 + 1), rtol=1e-12)


def test_temperature_limits():
    np.testing.assert_allclose(temperature_weights(SIZES, 1.0), SIZES / SIZES.sum(), rtol=1e-12)
    np.testing.assert_allclose(temperature_weights(SIZES, 1e9), np.full(4, 0.25), atol=1e-8)
    # Very small T puts all mass on the largest domain without overflow.
    np.testing.assert_allclose(temperature_weights(SIZES, 1e-3), [1, 0, 0, 0], atol=1e-12)


def test_proportional_and_stratified():
    np.testing.assert_allclose(build_policy("proportional", SIZES, 5).weights(3), SIZES / 1000)
    np.testing.assert_allclose(build_policy("stratified", SIZES, 5).weights(3), 0.25)


def test_cooldown_step_is_the_papers_schedule():
    p = build_policy("cooldown", SIZES, 100, {"t_start": 5, "t_end": 1, "switch_frac": 0.3})
    for step in (0, 29):
        np.testing.assert_allclose(p.weights(step), temperature_weights(SIZES, 5))
    for step in (30, 99):
        np.testing.assert_allclose(p.weights(step), SIZES / SIZES.sum())


def test_cooldown_linear():
    p = build_policy(
        "cooldown", SIZES, 100, {"t_start": 5, "t_end": 1, "switch_frac": 0.5, "shape": "linear"}
    )
    assert p.temperature(0) == 5
    assert p.temperature(25) == pytest.approx(3.0)
    assert p.temperature(50) == 1 and p.temperature(99) == 1


def test_fixed_normalises():
    np.testing.assert_allclose(
        build_policy("fixed", SIZES, 5, {"weights": [2, 1, 1, 0]}).weights(0), [0.5, 0.25, 0.25, 0]
    )


@pytest.mark.parametrize(
    "method,params,needle",
    [
        ("temperature", {"temperature": 0}, "temperature must be a positive number, got 0"),
        ("temperature", {"temperature": -2.0}, "got -2.0"),
        ("cooldown", {"t_end": -1}, "t_end must be a positive number, got -1"),
        ("cooldown", {"switch_frac": 1.5}, "switch_frac must be in (0, 1], got 1.5"),
        ("cooldown", {"shape": "cosine"}, "unknown cooldown shape 'cosine'"),
        ("fixed", {"weights": [1, 2]}, "got 2 weights for 4 domains"),
        ("fixed", {"weights": [0, 0, 0, 0]}, "sum to a positive number"),
        ("fixed", {"weights": [1, -1, 1, 1]}, "non-negative"),
        ("fixed", {}, "needs weights"),
        ("nope", {}, "unknown method 'nope'"),
        ("temperature", {"temp": 2}, "bad parameter for method 'temperature'"),
    ],
)
def test_bad_parameters_are_one_line_errors(method, params, needle):
    with pytest.raises(PolicyError) as info:
        build_policy(method, SIZES, 10, params)
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


def test_loss_weights_conversion():
    p = np.array([0.5, 0.3, 0.2])
    q = np.array([0.2, 0.3, 0.5])
    w = loss_weights(p, q)
    np.testing.assert_allclose(w, [2.5, 1.0, 0.4])
    np.testing.assert_allclose(q * w, p)  # expected contribution of each domain is p_i
    # Li et al.'s scalarization: q proportional, p temperature → w = p(τ)/p(1)
    wt = loss_weights(temperature_weights(SIZES, 5), SIZES / SIZES.sum())
    np.testing.assert_allclose(wt * SIZES / SIZES.sum(), temperature_weights(SIZES, 5))
    with pytest.raises(ValueError):
        loss_weights(np.array([0.5, 0.5]), np.array([1.0, 0.0]))
