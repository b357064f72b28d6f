"""MixtureSampler: frequencies, exact counts, resumable state, deterministic eval windows."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from popmix.data.sampler import MixtureSampler, eval_windows, largest_remainder

WEIGHTS = np.array([0.55, 0.25, 0.15, 0.05])


def test_multinomial_frequencies_match_weights(tiny_domains):
    s = MixtureSampler(tiny_domains, batch_size=32, seq_len=16, seed=1)
    n_batches = 4000  # 128k draws
    total = sum(s.counts(WEIGHTS) for _ in range(n_batches))
    n = 32 * n_batches
    freq = total / n
    sigma = np.sqrt(WEIGHTS * (1 - WEIGHTS) / n)
    assert np.all(np.abs(freq - WEIGHTS) < 4 * sigma), (freq, WEIGHTS)


def test_weights_can_change_every_step(tiny_domains):
    s = MixtureSampler(tiny_domains, batch_size=8, seq_len=16, seed=2)
    for i in range(50):
        one_hot = np.eye(4)[i % 4]
        c = s.counts(one_hot)
        assert c[i % 4] == 8 and c.sum() == 8
        tokens, ids = s.batch(c)
        assert tokens.shape == (8, 17) and np.all(ids == i % 4)


def test_batch_windows_come_from_their_domain(tiny_domains):
    s = MixtureSampler(tiny_domains, batch_size=64, seq_len=16, seed=3)
    tokens, ids = s.batch(s.counts(WEIGHTS))
    for row, i in zip(tokens, ids):
        # domain i draws bytes from 65 .. 67 + 2i
        assert row.max() <= 67 + 2 * i
        train = tiny_domains[i].train
        start = np.flatnonzero(
            np.all(np.lib.stride_tricks.sliding_window_view(train, 17) == row, axis=1)
        )
        assert start.size >= 1


def test_exact_counts_are_stratified_and_track_weights(tiny_domains):
    s = MixtureSampler(tiny_domains, batch_size=8, seq_len=16, count_mode="exact")
    for _ in range(20):
        np.testing.assert_array_equal(s.counts(np.full(4, 0.25)), [2, 2, 2, 2])
    s = MixtureSampler(tiny_domains, batch_size=6, seq_len=16, count_mode="exact")
    running = np.zeros(4)
    for t in range(1, 200):
        c = s.counts(WEIGHTS)
        assert c.sum() == 6 and np.all(c >= 0)
        running += c
        # the cumulative composition never drifts more than one example from its target
        assert np.all(np.abs(running - 6 * t * WEIGHTS) <= 1.0 + 1e-9)


def test_largest_remainder_k7_batch8():
    # Aioli's LearnParams case: smoothing 0.75 on one of 7 groups at batch 8.
    k, b, ohf = 7, 8, 0.75
    for j in range(k):
        w = np.full(k, (1 - ohf) / (k - 1))
        w[j] = ohf
        c = largest_remainder(b * w, b)
        assert c.sum() == b and np.all(c >= 0) and c[j] == 6


@pytest.mark.parametrize("mode", ["multinomial", "exact"])
def test_state_round_trip_continues_exactly(tiny_domains, mode):
    s = MixtureSampler(tiny_domains, batch_size=8, seq_len=16, seed=5, count_mode=mode)
    for _ in range(7):
        s.batch(s.counts(WEIGHTS))
    state = copy.deepcopy(s.state_dict())
    expected = [s.batch(s.counts(WEIGHTS)) for _ in range(5)]
    t = MixtureSampler(tiny_domains, batch_size=8, seq_len=16, seed=999, count_mode=mode)
    t.load_state_dict(state)
    for tok, ids in expected:
        tok2, ids2 = t.batch(t.counts(WEIGHTS))
        np.testing.assert_array_equal(tok, tok2)
        np.testing.assert_array_equal(ids, ids2)


def test_eval_windows_are_contiguous_and_capped():
    tokens = np.arange(100, dtype=np.uint8)
    w = eval_windows(tokens, seq_len=10, max_windows=None)
    assert w.shape == (9, 11)
    np.testing.assert_array_equal(w[1], np.arange(10, 21))
    capped = eval_windows(tokens, seq_len=10, max_windows=3)
    np.testing.assert_array_equal(capped[:, 0], [0, 40, 80])
    assert eval_windows(tokens[:5], seq_len=10, max_windows=None).shape == (0, 11)


def test_largest_remainder_never_negative_with_carried_deficit():
    rng = np.random.default_rng(0)
    for _ in range(2000):
        k = rng.integers(2, 20)
        total = int(rng.integers(1, 33))
        e = rng.dirichlet(np.full(k, 0.3)) * total + rng.uniform(-0.99, 0.99, size=k)
        e += (total - e.sum()) / k
        c = largest_remainder(e, total)
        assert c.sum() == total and np.all(c >= 0)


def test_exact_mode_with_changing_mixtures_stays_valid(tiny_domains):
    s = MixtureSampler(tiny_domains, batch_size=5, seq_len=16, count_mode="exact")
    rng = np.random.default_rng(1)
    for _ in range(300):
        c = s.counts(rng.dirichlet(np.full(4, 0.2)) if rng.random() < 0.3 else WEIGHTS)
        assert c.sum() == 5 and np.all(c >= 0)


def test_aioli_perturbations_at_k16_batch16_are_unbiased():
    """Smoothed one-hots tie 15 domains' fractional parts; breaking ties by index gave the
    low-index domains every off-perturbation example."""
    from popmix.data.domains import Domain, DomainSet
    from popmix.policies._aioli import smoothed_one_hot

    rng = np.random.default_rng(0)
    k, b, lp_steps, rounds = 16, 16, 2, 150
    doms = tuple(
        Domain(
            f"d{i}",
            rng.integers(0, 9, 400, dtype=np.uint8),
            np.zeros(40, np.uint8),
            np.zeros(40, np.uint8),
        )
        for i in range(k)
    )
    s = MixtureSampler(DomainSet("k16", doms), batch_size=b, seq_len=8, seed=5, count_mode="exact")
    realised = np.zeros((k, k))  # column j: the mixture actually drawn while perturbing j
    for _ in range(rounds):
        for j in rng.permutation(k):
            w = smoothed_one_hot(j, k, 0.75)
            realised[:, j] += sum(s.counts(w) for _ in range(lp_steps)) / (lp_steps * b)
    realised /= rounds
    np.testing.assert_allclose(np.diag(realised), 0.75)
    off = realised[~np.eye(k, dtype=bool)]
    # each domain's off-perturbation share: 0.25 / 15 = 0.0167 in expectation, none starved
    assert off.min() > 0.0125 and off.max() < 0.021
    col_mass = realised.sum(axis=1) - np.diag(realised)  # per domain, over all perturbations
    np.testing.assert_allclose(col_mass, 15 * 0.25 / 15, rtol=0.06)
