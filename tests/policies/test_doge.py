"""DoGE's update rule against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from popmix.policies import DomainSignals, PolicyError, build_policy

SIZES = np.array([100.0, 200.0, 300.0])
# g1 = (1, 0), g2 = (0, 2), g3 = (1, 1)
GRAM = np.array([[1.0, 0.0, 1.0], [0.0, 4.0, 2.0], [1.0, 2.0, 2.0]])


def step(policy, gram=GRAM, counts=(2, 2, 2), lr=0.1, target=None, t=0):
    policy.update(
        DomainSignals(
            step=t,
            train_loss=np.ones(3),
            counts=np.array(counts),
            lr=lr,
            grad_dots=gram,
            target_dots=target,
        )
    )


def softmax(x):
    e = np.exp(np.asarray(x) - np.max(x))
    return e / e.sum()


def test_defaults_are_the_official_universal_setting():
    p = build_policy("doge", SIZES, 10, {})
    assert (p.target, p.mu) == ("validation", 0.01)
    assert p.target_windows >= 3 and p.target_windows % 3 == 0  # every domain in it
    big = build_policy("doge", np.ones(16), 10, {})
    assert big.target_windows == 16


def test_others_variant_scores_scaling_and_mirror_step():
    p = build_policy("doge", SIZES, 10, {"mu": 0.1, "target": "others"})
    np.testing.assert_allclose(p.weights(0), [1 / 3] * 3)
    step(p)
    # W = (row sums minus diagonal) / (k - 1) = (1, 2, 3) / 2: the mean over the other domains
    mean_norm = (1 + 2 + math.sqrt(2)) / 3
    s = 0.1 * np.array([0.5, 1.0, 1.5]) / (mean_norm + 1e-6)
    np.testing.assert_allclose(p.weights(1), softmax(s / 0.1), rtol=1e-12)
    # the time average after one update is the new alpha itself
    np.testing.assert_allclose(p.average_weights(), softmax(s / 0.1), rtol=1e-12)


def test_score_clipping_to_lr_times_bounds():
    p = build_policy("doge", SIZES, 10, {"mu": 1.0, "dw_min": 0.0, "dw_max": 0.5})
    # target alignment: a negative, a small and a huge score
    step(p, target=np.array([-3.0, 0.01, 50.0]), lr=0.2)
    mean_norm = (1 + 2 + math.sqrt(2)) / 3
    s = np.clip(0.2 * np.array([-3.0, 0.01, 50.0]) / (mean_norm + 1e-6), 0.0, 0.2 * 0.5)
    assert s[0] == 0.0 and s[2] == pytest.approx(0.1)
    np.testing.assert_allclose(p.weights(1), softmax(s), rtol=1e-12)
    # one score cut at the top, one at the bottom, of three
    assert p.diagnostics() == {"score_clip_high": 1 / 3, "score_clip_low": 1 / 3}


def test_averaging_and_eps_smoothing():
    p = build_policy("doge", SIZES, 10, {"mu": 0.05, "eps": 0.1, "target": "others"})
    alphas = []
    for t in range(3):
        step(p, t=t)
        alphas.append(p.weights(t + 1))
    np.testing.assert_allclose(p.average_weights(), np.mean(alphas, axis=0), rtol=1e-12)
    assert np.all(p.weights(3) >= 0.1 / 3 - 1e-15)
    # the official recursion: each step continues from the log of the eps-mixed weights
    mean_norm = (1 + 2 + math.sqrt(2)) / 3
    s = 0.1 * np.array([0.5, 1.0, 1.5]) / (mean_norm + 1e-6)
    log_alpha = np.zeros(3)
    for _ in range(3):
        alpha = 0.9 * softmax(log_alpha + s / 0.05) + 0.1 / 3
        log_alpha = np.log(alpha)
    np.testing.assert_allclose(p.weights(3), alpha, rtol=1e-10)
    # which differs from mixing once at the end of unmixed log-weights
    assert not np.allclose(p.weights(3), 0.9 * softmax(3 * s / 0.05) + 0.1 / 3, rtol=1e-3)


def test_ood_target_domain_is_not_trained_on():
    p = build_policy("doge", SIZES, 10, {"mu": 0.1, "target": "domain:b"})
    p.bind(["a", "b", "c"])
    np.testing.assert_allclose(p.weights(0), [0.5, 0.0, 0.5])
    assert p.trained.tolist() == [True, False, True]
    gram = GRAM.copy()
    gram[1, :] = gram[:, 1] = 0.0  # the held-out domain is never in a training batch
    step(p, gram=gram, counts=(3, 0, 3), target=np.array([1.0, 0.0, 2.0]))
    mean_norm = (1 + math.sqrt(2)) / 2
    s = 0.1 * np.array([1.0, 2.0]) / (mean_norm + 1e-6)
    w = p.weights(1)
    assert w[1] == 0.0
    np.testing.assert_allclose(w[[0, 2]], softmax(s / 0.1), rtol=1e-12)
    assert p.state_dict()["missing"] == [0, 0, 0]  # held out is not "missing"
    np.testing.assert_allclose(p.average_weights()[1], 0.0)
    with pytest.raises(PolicyError, match="no domain 'z'"):
        build_policy("doge", SIZES, 10, {"target": "domain:z"}).bind(["a", "b", "c"])


def test_missing_domain_is_zero_gradient_and_counted():
    p = build_policy("doge", SIZES, 10, {"mu": 0.1, "target": "others"})
    gram = GRAM.copy()
    gram[1, :] = gram[:, 1] = 0.0  # domain 1 absent: g = 0
    step(p, gram=gram, counts=(2, 0, 2))
    # W = (1 + 1 - 1, 0, 1 + 2 - 2) / (2 present - 1) with domain 1 forced to 0; mean norm over
    # present = (1+√2)/2
    s = 0.1 * np.array([1.0, 0.0, 1.0]) / ((1 + math.sqrt(2)) / 2 + 1e-6)
    np.testing.assert_allclose(p.weights(1), softmax(s / 0.1), rtol=1e-12)
    assert p.state_dict()["missing"] == [0, 1, 0]


def test_non_finite_products_skip_the_update():
    p = build_policy("doge", SIZES, 10, {})
    step(p, gram=np.full((3, 3), np.nan))
    np.testing.assert_allclose(p.weights(1), [1 / 3] * 3)
    assert p.state_dict()["skipped"] == 1


@pytest.mark.parametrize(
    "params,needle",
    [
        ({"mu": 0}, "mu must be a positive number"),
        ({"dw_min": 2, "dw_max": 1}, "must not exceed dw_max"),
        ({"target": "nowhere"}, "unknown doge target 'nowhere'"),
        ({"target_batch": 2}, "target_batch 2 is below the 3 domains"),
    ],
)
def test_bad_doge_parameters(params, needle):
    with pytest.raises(PolicyError, match=needle):
        build_policy("doge", SIZES, 10, params)
