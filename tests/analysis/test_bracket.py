"""The bracket on a quadratic toy (where the theory is exact) and on the small transformer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from popmix.analysis.bracket import (
    bracket_vector,
    effect_matrix,
    effect_matrix_direct,
    measured_effect,
    two_steps,
)


def quadratics(k=4, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    theta = torch.randn(d, generator=g, dtype=torch.float64, requires_grad=True)

    def make():
        m = torch.randn(d, d, generator=g, dtype=torch.float64)
        a = m @ m.T / d + 0.1 * torch.eye(d, dtype=torch.float64)
        c = torch.randn(d, generator=g, dtype=torch.float64)
        return lambda: 0.5 * (theta - c) @ a @ (theta - c)

    return [theta], [make() for _ in range(k)], make()


def test_quadratic_parameter_difference_is_exact():
    params, losses, _ = quadratics()
    for eta in (0.3, 0.05, 0.001):
        diff = two_steps(losses[0], losses[1], params, eta) - two_steps(
            losses[1], losses[0], params, eta
        )
        predicted = eta**2 * bracket_vector(losses[0], losses[1], params)
        torch.testing.assert_close(diff, predicted, rtol=1e-9, atol=1e-14)


def test_quadratic_target_error_shrinks_as_eta_cubed():
    params, losses, target = quadratics()
    m = effect_matrix(losses, target, params)
    errors = []
    etas = [0.04, 0.02, 0.01, 0.005]
    for eta in etas:
        measured = measured_effect(losses[0], losses[2], target, params, eta)
        errors.append(abs(measured - eta**2 * float(m[0, 2])))
    ratios = [errors[i] / errors[i + 1] for i in range(len(errors) - 1)]
    # halving eta divides an O(eta^3) error by 8
    assert all(7.0 < r < 9.0 for r in ratios), ratios


def test_k_hvp_matrix_equals_direct_form_and_is_antisymmetric():
    params, losses, target = quadratics(k=5, d=6, seed=3)
    fast = effect_matrix(losses, target, params)
    direct = effect_matrix_direct(losses, target, params)
    torch.testing.assert_close(fast, direct, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(fast, -fast.T)
    assert torch.all(fast.diagonal() == 0)


def test_transformer_matrix_forms_agree_and_signs_match_reality(tiny_domains):
    """On the small transformer (float64), for a small step the measured order effect has the
    predicted sign for most pairs. Threshold: at eta = 1e-3 the neglected O(eta^3) terms are
    about 1000x smaller than the eta^2 term for a typical pair, so only pairs whose predicted
    effect is near zero can flip; we require 80%."""
    from popmix.analysis.bracket_model import domain_losses
    from popmix.train import ModelConfig
    from popmix.train.model import TinyGPT

    model = TinyGPT(
        ModelConfig(n_layer=1, n_head=2, d_model=16, seq_len=16), torch.Generator().manual_seed(0)
    ).double()
    losses, target, names = domain_losses(model, tiny_domains, target="mean", windows=4)
    params = [p for p in model.parameters()]
    fast = effect_matrix(losses, target, params)
    direct = effect_matrix_direct(losses, target, params)
    torch.testing.assert_close(fast, direct, rtol=1e-6, atol=1e-12)
    eta = 1e-3
    agree, total = 0, 0
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            measured = measured_effect(losses[a], losses[b], target, params, eta)
            agree += np.sign(measured) == np.sign(float(fast[a, b]))
            total += 1
    assert agree / total >= 0.8, (agree, total)


def _counted(fns, calls):
    def wrap(i, f):
        def g():
            calls[i] += 1
            return f()

        return g

    return [wrap(i, f) for i, f in enumerate(fns)]


def test_shared_first_gradients_give_the_direct_two_step_effects():
    """order_effects (first steps from the matrix's g_i) equals measured_effect (both orders
    from scratch, the oracle) and costs two gradients and two target reads per pair."""
    from popmix.analysis.bracket import domain_gradients, order_effects

    params, losses, target = quadratics(k=4, d=5, seed=1)
    start = params[0].detach().clone()
    pairs = [(0, 1), (2, 0), (1, 3)]
    grads = domain_gradients(losses, params)
    calls = [0] * (len(losses) + 1)
    counted = _counted([*losses, target], calls)
    for eta in (0.2, 1e-3):
        calls[:] = [0] * len(calls)
        got = order_effects(pairs, counted[:-1], grads, counted[-1], params, eta)
        assert sum(calls[:-1]) == 2 * len(pairs) and calls[-1] == 2 * len(pairs)
        for (a, b), effect in zip(pairs, got):
            oracle = measured_effect(losses[a], losses[b], target, params, eta)
            assert float(effect) == pytest.approx(oracle, rel=1e-9, abs=1e-15)
    torch.testing.assert_close(params[0].detach(), start, rtol=0, atol=0)


def test_effect_matrix_from_given_gradients_is_the_same_matrix():
    from popmix.analysis.bracket import domain_gradients

    params, losses, target = quadratics(k=4, d=5, seed=2)
    ticks = []
    grads = domain_gradients(losses, params, lambda: ticks.append(1))
    m = effect_matrix(losses, target, params, grads=grads, progress=lambda: ticks.append(1))
    torch.testing.assert_close(m, effect_matrix(losses, target, params), rtol=1e-12, atol=0)
    assert len(ticks) == 2 * len(losses) + 1  # k gradients, the target's, k HVPs


def test_pair_sample_spans_the_effects_and_is_seeded():
    from popmix.analysis.bracket_model import sample_pairs

    rng = np.random.default_rng(0)
    k = 16
    upper = np.triu(rng.normal(size=(k, k)), 1)
    m = upper - upper.T
    every = sample_pairs(m, None, np.random.default_rng(0))
    assert len(every) == k * (k - 1) // 2 and all(a < b for a, b in every)
    strengths = [abs(m[a, b]) for a, b in every]
    assert strengths == sorted(strengths, reverse=True)
    picked = sample_pairs(m, 24, np.random.default_rng(5))
    assert len(set(picked)) == 24 and sample_pairs(m, 24, np.random.default_rng(5)) == picked
    assert sample_pairs(m, 24, np.random.default_rng(6)) != picked
    # one pair from each of 24 runs of consecutive ranks: the top 5 and the bottom 5 are hit
    ranks = [every.index(p) for p in picked]
    assert ranks == sorted(ranks) and ranks[0] < 5 and ranks[-1] >= len(every) - 5
    assert sample_pairs(m, 500, np.random.default_rng(0)) == every


def test_window_target_standard_error_is_the_stratified_one():
    from popmix.analysis.bracket_model import WindowTarget

    values = torch.tensor([1.0, 3.0, 2.0, 2.0, 8.0], dtype=torch.float64)
    groups = np.array([0, 0, 1, 1, 1])
    t = WindowTarget(lambda: values, groups, ("x", "y"))
    mean, se = t.stats(values)
    assert mean == pytest.approx((2.0 + 4.0) / 2)
    assert float(t.mean()) == pytest.approx(mean)
    # SE^2 = (s_x^2 / 2 + s_y^2 / 3) / 2^2 with s_x^2 = 2, s_y^2 = 12
    assert se == pytest.approx(np.sqrt(2 / 2 + 12 / 3) / 2)
    single = WindowTarget(lambda: values, np.array([0, 0, 1, 1, 1]) * 0, ("x",))
    assert single.stats(values)[1] == pytest.approx(values.numpy().std(ddof=1) / np.sqrt(5))
    assert np.isnan(
        WindowTarget(lambda: values[:3], np.array([0, 1, 1]), ("x", "y")).stats(values[:3])[1]
    )


def test_transformer_validation_table_on_window_target(tiny_domains):
    """The validation table on the small transformer: measured against the prediction for the
    same windows, each with a standard error; at eta = 1e-3 every sign agrees."""
    from popmix.analysis.bracket import domain_gradients
    from popmix.analysis.bracket_model import (
        domain_losses,
        format_validation,
        validation_table,
        window_target,
    )
    from popmix.train import ModelConfig
    from popmix.train.model import TinyGPT

    model = TinyGPT(
        ModelConfig(n_layer=1, n_head=2, d_model=16, seq_len=16), torch.Generator().manual_seed(1)
    ).double()
    losses, target, names = domain_losses(model, tiny_domains, target="mean", windows=4)
    params = [p for p in model.parameters()]
    grads = domain_gradients(losses, params)
    m = effect_matrix(losses, target, params, grads=grads).numpy()
    vt = window_target(model, tiny_domains, "mean", windows=4)
    assert vt.n_windows == 4 * len(names)  # 32 / 4 domains = 8, capped at the 4 windows
    pairs = [(0, 1), (1, 3), (2, 3)]
    table = validation_table(pairs, losses, grads, vt, params, m, names, [1e-3, 5e-4, 0.3])
    assert table["pairs_validated"] == 3 and table["pairs_in_all"] == 6
    small = next(s for s in table["summary"] if s["eta"] == 1e-3)
    assert small["sign_agreement"] == 1.0
    rows = {eta: [r for r in table["pairs"] if r["eta"] == eta] for eta in (1e-3, 5e-4)}
    for i, (a, b) in enumerate(pairs):
        r = rows[1e-3][i]
        assert r["se"] > 0 and r["within_noise"] == (abs(r["measured"]) <= 2 * r["se"])
        assert r["predicted_all_windows"] == pytest.approx(1e-6 * m[a, b])
        # same windows, so measured and predicted differ by the O(eta^3) terms only: relative
        # to the eta^2 effect, the gap halves with eta
        gaps = [abs(rows[e][i]["measured"] / rows[e][i]["predicted"] - 1) for e in (1e-3, 5e-4)]
        assert 1.6 < gaps[0] / gaps[1] < 2.4, gaps
    text = format_validation(table)
    assert "sign agreement" in text and "validated 3 of 6 pairs on 16 validation windows" in text
