"""Aioli's pieces against hand-computed cases, and the whole rule on a known linear law."""

from __future__ import annotations

import numpy as np
import pytest

from popmix.data.sampler import largest_remainder
from popmix.policies import DomainSignals, PolicyError, build_policy
from popmix.policies._aioli import normalize_matrix, smoothed_one_hot, unsmooth

A_TRUE = np.array([[0.5, 0.1, 0.0], [0.2, 0.3, 0.1], [0.0, 0.2, 0.6]])


def test_unsmoothing_recovers_a():
    factor = 0.6
    w = np.stack([smoothed_one_hot(j, 3, factor) for j in range(3)])
    np.testing.assert_allclose(w[0], [0.6, 0.2, 0.2])
    gain = A_TRUE @ w.T  # gain[i, j] = Σ_l w^(j)_l A[i, l]
    np.testing.assert_allclose(unsmooth(gain, factor), A_TRUE, atol=1e-12)
    np.testing.assert_allclose(unsmooth(A_TRUE, 1.0), A_TRUE)


def test_singular_smoothing_is_rejected():
    with pytest.raises(PolicyError, match="1/k"):
        unsmooth(np.zeros((4, 4)), 0.25)
    with pytest.raises(PolicyError, match="1/k"):
        build_policy("aioli", np.ones(4), 1000, {"one_hot_factor": 0.25})


def test_normalisation_shift_then_total():
    a = np.array([[1.0, -1.0], [2.0, 0.0]])
    np.testing.assert_allclose(normalize_matrix(a), np.array([[2.0, 0.0], [3.0, 1.0]]) / 6)
    # no shift when already non-negative, but always divided by the total
    np.testing.assert_allclose(normalize_matrix(np.array([[1.0, 3.0]])), [[0.25, 0.75]])
    assert normalize_matrix(np.zeros((2, 2))) is None  # flat: no signal


def run_on_linear_law(params, rounds=1, k=3, lp_steps=2):
    """Drive the policy like the loop: losses fall by Σ_j A_ij w_j per step."""
    p = build_policy("aioli", np.ones(k), 10_000, {"lp_steps": lp_steps, **params}, seed=0)
    loss = np.full(k, 5.0)
    total = rounds * p.update_steps
    for t in range(total):
        if p.evaluates_before(t):
            p.update(DomainSignals(step=t, eval_loss=loss.copy()))
        w = p.weights(t)
        loss = loss - A_TRUE @ w * 0.01
    return p


def test_learnparams_recovers_a_from_known_loss_decreases():
    p = run_on_linear_law({"eta": 1.0, "lp_rounds": 2, "update_steps": 20, "one_hot_factor": 0.6})
    # gain per perturbation = lp_steps * 0.01 * A w^(j); estimate divides by lp_rounds
    expected = 2 * 0.01 * A_TRUE * 2 / 2  # two rounds summed, then /lp_rounds; times lp_steps
    np.testing.assert_allclose(p.estimate(p._gain), expected, atol=1e-12)
    # the update: p = softmax(eta * colsum(normalised A)) from a uniform start
    a = normalize_matrix(expected)
    e = np.exp(a.sum(axis=0) - a.sum(axis=0).max())
    np.testing.assert_allclose(p.mixture(), e / e.sum(), rtol=1e-10)
    assert p.updates == 1 and p.evals == 2 * 3 + 1


def test_cumulative_without_ema_and_following_with_ema():
    plain = run_on_linear_law(
        {"eta": 0.5, "lp_rounds": 1, "update_steps": 10, "one_hot_factor": 1.0}, rounds=2
    )
    a = normalize_matrix(A_TRUE)
    s = a.sum(axis=0)
    e = np.exp(2 * 0.5 * s - (2 * 0.5 * s).max())
    np.testing.assert_allclose(plain.mixture(), e / e.sum(), rtol=1e-10)  # two steps of eta*s

    ema = run_on_linear_law(
        {"eta": 0.5, "lp_rounds": 1, "update_steps": 10, "one_hot_factor": 1.0, "ema": 0.3},
        rounds=2,
    )
    # A is the same each round, so the EMA is A and p = softmax(eta * colsum(A)), not cumulative
    e = np.exp(0.5 * s - (0.5 * s).max())
    np.testing.assert_allclose(ema.mixture(), e / e.sum(), rtol=1e-10)


def test_ema_weights_the_old_estimate_by_gamma():
    p = build_policy(
        "aioli",
        np.ones(2),
        1000,
        {
            "eta": 1.0,
            "lp_rounds": 1,
            "lp_steps": 1,
            "update_steps": 5,
            "one_hot_factor": 1.0,
            "ema": 0.25,
        },
    )

    # Round 0: column decreases (1, 0)/(0, 1) -> A0; round 1: A1. Feed evals directly.
    def feed(r, a):
        base = r * 5
        order = p.round_order(r)
        loss = np.array([10.0, 10.0])
        p.update(DomainSignals(step=base, eval_loss=loss.copy()))
        for q, j in enumerate(order):
            loss = loss - a[:, j]
            p.update(DomainSignals(step=base + q + 1, eval_loss=loss.copy()))

    a0 = np.array([[3.0, 1.0], [0.0, 0.0]])
    a1 = np.array([[1.0, 1.0], [1.0, 1.0]])
    feed(0, a0)
    feed(1, a1)
    n0, n1 = normalize_matrix(a0), normalize_matrix(a1)
    avg = 0.75 * n1 + 0.25 * n0
    e = np.exp(avg.sum(axis=0) - avg.sum(axis=0).max())
    np.testing.assert_allclose(p.mixture(), e / e.sum(), rtol=1e-10)


def test_final_weights_are_the_mixture_even_inside_learnparams():
    # the popmix run --method aioli defaults at 16 domains, a run that ends mid-perturbation
    p = build_policy("aioli", np.ones(16), 300, {"lp_steps": 4, "update_steps": 250}, seed=0)
    loss = np.full(16, 5.0)
    for t in range(260):  # into the second round's LearnParams
        if p.evaluates_before(t):
            p.update(DomainSignals(step=t, eval_loss=loss.copy()))
        loss = loss - 0.01 * p.weights(t) * np.arange(1, 17) / 16
    assert max(p.weights(259)) == pytest.approx(0.75)  # training is on a perturbation now
    np.testing.assert_allclose(p.final_weights(260), p.mixture())
    assert max(p.final_weights(260)) < 0.2


def test_weights_of_past_steps_change_nothing():
    """The issue's reproduction: report boundaries off round boundaries used to redraw the
    LearnParams order and zero the gains measured so far."""
    params = {"lp_steps": 2, "update_steps": 30, "one_hot_factor": 0.75}

    def drive(replay: bool) -> tuple[list, np.ndarray]:
        p = build_policy("aioli", np.ones(3), 1000, params, seed=3)
        loss = np.full(3, 5.0)
        used = []
        for t in range(66):
            if p.evaluates_before(t):
                p.update(DomainSignals(step=t, eval_loss=loss.copy()))
            w = p.weights(t)
            used.append(w)
            loss = loss - 0.01 * A_TRUE @ w
            if replay and t % 11 == 10:  # a report every 11 steps replays the past ones
                for past in range(t + 1):
                    p.weights(past)
        return used, p.state_dict()

    plain, plain_state = drive(False)
    replayed, replayed_state = drive(True)
    np.testing.assert_array_equal(np.array(plain), np.array(replayed))
    assert plain_state == replayed_state
    # and a perturbation step asked again gives the same one-hot
    p = build_policy("aioli", np.ones(3), 1000, params, seed=3)
    assert [p.weights(t).argmax() for t in range(0, 6, 2)] == p.round_order(0)


def test_restricted_prior_stage_then_rounds():
    p = build_policy(
        "aioli",
        np.ones(3),
        1000,
        {"prior": [8, 1, 1], "prior_steps": 7, "update_steps": 20, "lp_steps": 2},
    )
    np.testing.assert_allclose(p.weights(0), [0.8, 0.1, 0.1])
    assert not p.evaluates_before(6) and p.evaluates_before(7)
    assert max(p.weights(7)) == pytest.approx(0.75)


def test_exact_counts_for_k7_batch8_smoothing_075():
    for j in range(7):
        w = smoothed_one_hot(j, 7, 0.75)
        c = largest_remainder(8 * w, 8)
        assert c.sum() == 8 and c[j] == 6 and np.all(c >= 0)


def test_update_steps_must_fit_learnparams():
    with pytest.raises(PolicyError, match="must exceed the LearnParams length"):
        build_policy(
            "aioli", np.ones(7), 1000, {"lp_rounds": 2, "lp_steps": 10, "update_steps": 140}
        )
