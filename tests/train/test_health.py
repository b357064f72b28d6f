"""The run's health record: loss spikes against a hand-made history, and the gradient norm."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from popmix.policies import build_policy
from popmix.train import ModelConfig, TrainConfig, Trainer
from popmix.train.health import SPIKE_MIN_HISTORY, TrainingHealth, is_spike


def test_a_spike_is_far_above_the_recent_median_in_robust_and_relative_terms():
    recent = np.array([2.0, 2.1, 1.9, 2.0, 2.05, 1.95] * 5)
    # median 2.0, MAD 0.05 -> robust std 0.0741; 6 of them: 0.445; 10% of the median: 0.2
    assert is_spike(2.5, recent)
    assert not is_spike(2.4, recent)  # 0.4 above: under 6 robust stds
    flat = np.full(30, 2.0)  # MAD 0: only the relative floor decides
    assert is_spike(2.21, flat) and not is_spike(2.19, flat)


def test_spikes_are_counted_once_there_is_a_history_and_survive_a_state_round_trip():
    h = TrainingHealth()
    losses = np.full(40, 3.0)
    losses[5] = 9.0  # too early to judge
    losses[30] = 9.0
    out = h.observe(0, losses[:25], np.ones(25))
    assert out["loss_spikes"] == 0 and out["grad_norm"] == pytest.approx(1.0)
    copy = TrainingHealth()
    copy.load_state_dict(h.state_dict())
    for x in (h, copy):
        norms = np.array([1.0] * 14 + [7.0])
        out = x.observe(25, losses[25:], norms)
        # the first stretch's norms are all 1 (spread 0); this one's sample std by hand:
        # mean 1.4, squared deviations 14 x 0.16 + 31.36 = 33.6, over 14: 2.4, sqrt 1.549
        spread = np.sqrt(33.6 / 14)
        assert out == {
            "grad_norm": pytest.approx(1.4),
            "grad_norm_std": pytest.approx(spread),
            "grad_norm_max": 7.0,
            "grad_norm_std_pooled": pytest.approx(np.sqrt((0.0 + spread**2) / 2)),
            "loss_spikes": 1,
        }
        assert x.spike_steps == [30]
    assert SPIKE_MIN_HISTORY > 5


def _trainer(domains, clip):
    cfg = TrainConfig(steps=5, batch_size=8, warmup_steps=1, threads=1, grad_clip=clip)
    policy = build_policy("stratified", domains.sizes, cfg.steps, {})
    return Trainer(domains, policy, ModelConfig(n_layer=1, n_head=2, d_model=32, seq_len=16), cfg)


def test_the_reported_gradient_norm_is_the_norm_before_clipping(tiny_domains):
    clipped, free = _trainer(tiny_domains, 1e-3), _trainer(tiny_domains, 0.0)
    for t in (clipped, free):
        t.train(1)
    norm = torch.linalg.vector_norm(
        torch.stack([torch.linalg.vector_norm(p.grad) for p in free.model.parameters()])
    ).item()
    a, b = clipped.pop_health(), free.pop_health()
    assert a["grad_norm"] == pytest.approx(norm, rel=1e-5)
    assert b["grad_norm"] == pytest.approx(norm, rel=1e-5)
    assert norm > 1e-3  # so the clip did act on the other run


def test_evaluation_noise_is_the_bootstrap_spread_of_the_mean_perplexity():
    from popmix.train.loop import mean_ppl_standard_error

    rng = np.random.default_rng(0)
    windows = rng.normal(2.0, 0.2, size=400)
    se = mean_ppl_standard_error([windows], resamples=2000)
    # delta method: sd(exp(mean)) = exp(mean) * sd / sqrt(n)
    expected = np.exp(windows.mean()) * windows.std() / np.sqrt(windows.size)
    assert se == pytest.approx(expected, rel=0.1)
    assert mean_ppl_standard_error([np.full(8, 2.0), np.full(8, 3.0)]) == pytest.approx(0.0)
    # two domains: the mean of their perplexities, each resampled on its own
    two = mean_ppl_standard_error([windows, windows], resamples=2000)
    assert two == pytest.approx(expected / np.sqrt(2), rel=0.1)
