"""The bracket on a quadratic toy (where the theory is exact) and on the small transformer."""

from __future__ import annotations

import numpy as np
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
