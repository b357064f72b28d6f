"""Repetition caps: the exact projection onto the capped simplex (hand cases), the caps an
experiment derives from ``data.max_epochs`` and ``data.target_tokens``, and their use by
explore, the swarm's draws and optimum, and UniMax."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from popmix._util.simplex import epoch_caps, floor_project, project_box_simplex
from popmix.config import (
    ConfigError,
    DataSpec,
    Experiment,
    SearchSpace,
    SwarmSpec,
    VectorSpec,
    check_method_params,
    experiment_from_dict,
)
from popmix.tune.explore import Explorer
from popmix.tune.swarm import cap_optimum, draw_mixtures

INF = np.inf


@pytest.mark.parametrize(
    "v,lo,hi,expected",
    [
        # inside the set: unchanged
        ([0.5, 0.3, 0.2], 0.0, [INF, INF, INF], [0.5, 0.3, 0.2]),
        # x0 capped at 0.5; the others shifted up by one common 0.1: theta = -0.1
        ([0.7, 0.2, 0.1], 0.0, [0.5, INF, INF], [0.5, 0.3, 0.2]),
        # floor 0.05 and caps: x0 = 0.6 (cap), theta = -0.15: x1 = 0.25, x2 = 0.15
        ([0.9, 0.1, 0.0], 0.05, [0.6, 0.3, INF], [0.6, 0.25, 0.15]),
        # now x1 hits its cap 0.2 too: 0.6 + 0.2 - theta = 1, theta = -0.2
        ([0.9, 0.1, 0.0], 0.05, [0.6, 0.2, INF], [0.6, 0.2, 0.2]),
        # a vector that does not sum to 1: theta = (0.6 + 0.6 - 1) / 2 = 0.1 (no bound binds)
        ([0.6, 0.6], 0.0, [INF, INF], [0.5, 0.5]),
        # every cap binds exactly: caps sum to 1
        ([1.0, 0.0, 0.0], 0.0, [0.5, 0.3, 0.2], [0.5, 0.3, 0.2]),
    ],
)
def test_box_simplex_projection_hand_cases(v, lo, hi, expected):
    np.testing.assert_allclose(
        project_box_simplex(np.array(v), np.full(len(v), lo), np.array(hi)), expected, atol=1e-12
    )


def test_box_simplex_projection_is_the_nearest_point():
    """Against a bisection on theta and random feasible points: none is closer."""
    rng = np.random.default_rng(0)
    for _ in range(200):
        k = int(rng.integers(2, 9))
        v = rng.normal(size=k) / 3 + 1 / k
        lo = np.full(k, 0.01)
        hi = np.where(rng.random(k) < 0.5, rng.uniform(0.05, 0.6, k), INF)
        if hi.sum() < 1:
            continue
        x = project_box_simplex(v, lo, hi)
        assert abs(x.sum() - 1) < 1e-12 and np.all(x >= lo - 1e-15) and np.all(x <= hi + 1e-15)
        a, b = -10.0, 10.0
        for _ in range(200):
            mid = (a + b) / 2
            a, b = (mid, b) if np.clip(v - mid, lo, hi).sum() > 1 else (a, mid)
        np.testing.assert_allclose(x, np.clip(v - a, lo, hi), atol=1e-9)
        for _ in range(20):
            y = floor_project(rng.dirichlet(np.ones(k)), 0.01, hi)
            assert np.linalg.norm(v - x) <= np.linalg.norm(v - y) + 1e-12


def test_no_mixture_within_the_bounds_is_refused():
    with pytest.raises(ValueError, match="upper to 0.9"):
        project_box_simplex(np.array([0.4, 0.3, 0.3]), np.zeros(3), np.array([0.3, 0.3, 0.3]))


def test_floor_project_with_caps():
    caps = np.array([0.05, INF, INF])
    # a cap below the floor is the domain's floor too: 0.05 there, the rest split evenly
    np.testing.assert_allclose(floor_project(np.full(3, 1 / 3), 0.1, caps), [0.05, 0.475, 0.475])
    # a vector within floor and caps comes back bit for bit
    w = np.array([0.04, 0.5, 0.46])
    np.testing.assert_array_equal(floor_project(w, 0.01, caps), w)
    # no finite cap: the plain floor projection
    np.testing.assert_array_equal(
        floor_project(np.array([0.0, 0.3, 0.7]), 0.1, np.full(3, INF)),
        floor_project(np.array([0.0, 0.3, 0.7]), 0.1),
    )


def test_epoch_caps():
    np.testing.assert_allclose(
        epoch_caps(np.array([100.0, 1000.0]), 1000, np.array([2.0, INF])), [0.2, INF]
    )


# -- the experiment ---------------------------------------------------------------------------

NAMES = ["en", "de", "sw"]
SIZES = np.array([1e9, 1e8, 1e6])


def exp_with(**data) -> Experiment:
    return Experiment(data=DataSpec(**data))


def test_caps_from_target_tokens_and_max_epochs():
    exp = exp_with(target_tokens=10**8, max_epochs=4.0)
    np.testing.assert_allclose(exp.weight_caps(NAMES, SIZES), [40.0, 4.0, 0.04])
    assert exp_with().weight_caps(NAMES, SIZES) is None
    # per domain, "*" for the rest; without "*" the others are not capped
    per = exp_with(target_tokens=10**8, max_epochs={"sw": 2, "*": 8})
    np.testing.assert_allclose(per.weight_caps(NAMES, SIZES), [80.0, 8.0, 0.02])
    only = exp_with(target_tokens=10**8, max_epochs={"sw": 2})
    np.testing.assert_allclose(only.weight_caps(NAMES, SIZES), [INF, INF, 0.02])
    # no target: the run's own tokens
    own = exp_with(max_epochs=1.0)
    run = own.train.steps * own.train.batch_size * own.model.seq_len
    np.testing.assert_allclose(own.weight_caps(NAMES, SIZES), SIZES / run)


def test_bad_caps_are_one_line_errors():
    with pytest.raises(ConfigError, match="data.max_epochs.fr: no such domain"):
        exp_with(max_epochs={"fr": 2}).weight_caps(NAMES, SIZES)
    with pytest.raises(ConfigError, match="leaves no mixture"):
        exp_with(target_tokens=10**12, max_epochs=1.0).weight_caps(NAMES, SIZES)
    with pytest.raises(ConfigError, match="leaves no mixture"):
        check_method_params(exp_with(target_tokens=10**12, max_epochs=1.0), SIZES, NAMES, [])
    with pytest.raises(ConfigError, match="data.max_epochs must be a positive number"):
        experiment_from_dict({"data": {"max_epochs": -1}}).validate()
    with pytest.raises(ConfigError, match="data.max_epochs.sw must be a positive number"):
        experiment_from_dict({"data": {"max_epochs": {"sw": 0}}}).validate()
    with pytest.raises(ConfigError, match="data.target_tokens must be a positive"):
        experiment_from_dict({"data": {"target_tokens": 0}}).validate()
    loaded = experiment_from_dict({"data": {"target_tokens": 5, "max_epochs": {"sw": 2}}})
    assert loaded.data.max_epochs == {"sw": 2.0} and loaded.data.target_tokens == 5


def test_explore_and_the_initial_population_keep_the_caps():
    caps = np.array([INF, 0.3, 0.02])
    space = SearchSpace(
        sample_weights=VectorSpec(init="dirichlet", sigma=1.0),
        loss_weights=VectorSpec(init="uniform"),
    )
    ex = Explorer(space, NAMES, SIZES, seed=1, caps=caps)
    config = {"spec": ex.initial_config(0)}
    for _ in range(300):
        ex(config)
        w = np.array([config["spec"]["sample_weights"][n] for n in NAMES])
        assert np.all(w <= caps + 1e-12) and abs(w.sum() - 1) < 1e-12 and np.all(w >= 1e-3)
    # loss weights repeat no data: not capped (uniform init, sw at 1/3 > its cap)
    assert config["spec"]["loss_weights"] is not None
    assert Explorer(space, NAMES, SIZES, caps=caps).initial_config(0)["loss_weights"]["sw"] > 0.3


def test_swarm_draws_and_optimum_keep_the_caps():
    caps = np.array([INF, 0.3, 0.02])
    draws = draw_mixtures(SwarmSpec(size=50), SIZES, 0, 0, caps)
    assert np.all(draws <= caps + 1e-12)
    np.testing.assert_allclose(draws.sum(axis=1), 1.0)
    uncapped = draw_mixtures(SwarmSpec(size=50), SIZES, 0, 0)
    assert np.any(uncapped > caps)
    surface = {"names": NAMES, "optimum": [0.2, 0.3, 0.5]}
    capped = cap_optimum(surface, NAMES, 1e-3, caps)
    # sw at its cap 0.02; en and de shifted up by one common 0.48, de held at its cap 0.3:
    # en = 1 - 0.3 - 0.02
    np.testing.assert_allclose(capped["optimum"], [0.68, 0.3, 0.02])
    assert capped["optimum_uncapped"] == [0.2, 0.3, 0.5] and capped["caps"] == [None, 0.3, 0.02]
    assert cap_optimum(surface, NAMES, 1e-3, None) is surface


def test_unimax_takes_the_data_budget_and_a_global_cap():
    exp = exp_with(target_tokens=10**9, max_epochs=2.0)
    assert exp.method_params("unimax") == {"budget_tokens": 10**9, "max_epochs": 2.0}
    given = dataclasses.replace(exp, baselines={"unimax": {"max_epochs": 1}})
    assert given.method_params("unimax")["max_epochs"] == 1
    per = exp_with(target_tokens=10**9, max_epochs={"sw": 2})
    assert "max_epochs" not in per.method_params("unimax")


# -- fixed weights (data.fixed_weights): kept out of the search ---------------------------------


def test_a_fixed_weight_is_held_and_the_others_share_the_rest_by_hand():
    fixed = np.array([np.nan, 0.1, np.nan])
    # [0.5, 0.3, 0.2]: de held at 0.1; en and sw shifted up by one common 0.1 (theta = -0.1)
    np.testing.assert_allclose(
        floor_project(np.array([0.5, 0.3, 0.2]), 0.0, None, fixed), [0.6, 0.1, 0.3]
    )
    # with a cap on sw of 0.25: sw at its cap, en takes the rest: 1 - 0.1 - 0.25
    caps = np.array([INF, INF, 0.25])
    np.testing.assert_allclose(
        floor_project(np.array([0.5, 0.3, 0.2]), 0.0, caps, fixed), [0.65, 0.1, 0.25]
    )
    # a vector already at its fixed weight comes back unchanged, bit for bit
    w = np.array([0.5, 0.1, 0.4])
    assert np.array_equal(floor_project(w, 1e-3, None, fixed), w)


def test_fixed_weights_from_the_experiment_and_their_one_line_errors():
    exp = exp_with(fixed_weights={"sw": 0.05})
    np.testing.assert_array_equal(np.isnan(exp.weight_fixed(NAMES, SIZES)), [True, True, False])
    assert (
        exp.weight_fixed(NAMES, SIZES)[2] == 0.05 and exp_with().weight_fixed(NAMES, SIZES) is None
    )
    with pytest.raises(ConfigError, match="data.fixed_weights.fr: no such domain"):
        exp_with(fixed_weights={"fr": 0.1}).weight_fixed(NAMES, SIZES)
    with pytest.raises(ConfigError, match="data.fixed_weights.sw is above its repetition cap"):
        exp_with(fixed_weights={"sw": 0.1}, target_tokens=10**8, max_epochs=4.0).weight_fixed(
            NAMES, SIZES
        )
    with pytest.raises(ConfigError, match="leave the other domains 0.01"):
        exp_with(fixed_weights={"en": 0.99}).weight_fixed(NAMES, SIZES, floor=0.1)
    with pytest.raises(
        ConfigError, match="data.fixed_weights.sw must be a weight between 0 and 1"
    ):
        experiment_from_dict({"data": {"fixed_weights": {"sw": 1.5}}}).validate()
    with pytest.raises(ConfigError, match="data.fixed_weights sum to 1.1"):
        experiment_from_dict({"data": {"fixed_weights": {"sw": 0.6, "de": 0.5}}}).validate()
    loaded = experiment_from_dict({"data": {"fixed_weights": {"sw": 0.05}}})
    assert loaded.data.fixed_weights == {"sw": 0.05}


def test_explore_the_initial_population_and_the_swarm_hold_the_fixed_weights():
    exp = exp_with(fixed_weights={"de": 0.2})
    space = SearchSpace(sample_weights=VectorSpec(init="anchors", sigma=1.0))
    ex = Explorer.of_seed(exp, space, NAMES, SIZES, seed=0)
    for m in range(4):  # stratified, T = 3, proportional, a draw around them
        w = ex.initial_config(m)["sample_weights"]
        assert w["de"] == 0.2 and abs(sum(w.values()) - 1) < 1e-12
    config = {"spec": ex.initial_config(0)}
    for _ in range(200):
        ex(config)
        w = config["spec"]["sample_weights"]
        assert w["de"] == 0.2 and abs(sum(w.values()) - 1) < 1e-12 and min(w.values()) >= 1e-3
    fixed = exp.weight_fixed(NAMES, SIZES)
    draws = draw_mixtures(SwarmSpec(size=20), SIZES, 0, 0, None, fixed)
    np.testing.assert_array_equal(draws[:, 1], 0.2)
    surface = {"names": NAMES, "optimum": [0.2, 0.3, 0.5]}
    moved = cap_optimum(surface, NAMES, 1e-3, None, fixed)
    # de to 0.2; en and sw shifted up by one common 0.05
    np.testing.assert_allclose(moved["optimum"], [0.25, 0.2, 0.55])
    assert moved["fixed"] == [None, 0.2, None] and "caps" not in moved


def test_the_unimax_anchor_is_the_unimax_baseline_s_mixture_at_the_experiment_s_budget():
    # 10^8 tokens, at most 2 passes: sw (10^6) takes its cap 2 * 10^6, en and de share the
    # other 9.8 * 10^7 alike (neither reaches its cap): 0.49, 0.49, 0.02 (UniMax, Algorithm 1);
    # the limit is UniMax's own, not data.max_epochs, so the other anchors are not capped
    exp = dataclasses.replace(
        exp_with(target_tokens=10**8), baselines={"unimax": {"max_epochs": 2}}
    )
    space = SearchSpace(
        sample_weights=VectorSpec(init="anchors", anchors=("unimax", "stratified"))
    )
    space.validate(len(NAMES))
    ex = Explorer.of_seed(exp, space, NAMES, SIZES, seed=0)
    first = ex.initial_config(0)["sample_weights"]
    np.testing.assert_allclose([first[n] for n in NAMES], [0.49, 0.49, 0.02])
    np.testing.assert_allclose(list(ex.initial_config(1)["sample_weights"].values()), 1 / 3)
