"""One suite every registered mixing policy must pass (Optuna's conformance-suite pattern).

Adding a policy means adding one factory line to ``FACTORIES``; a policy missing from it fails
``test_every_policy_has_a_factory``.
"""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

from popmix.policies import POLICIES, DomainSignals, build_policy

SIZES = np.array([5_000_000, 800_000, 120_000, 40_000, 9_000], dtype=np.float64)
TOTAL = 60

FACTORIES = {
    "stratified": {},
    "proportional": {},
    "temperature": {"temperature": 2.5},
    "unimax": {"max_epochs": 2.0, "budget_tokens": 3_000_000},
    "cooldown": {"t_start": 5.0, "t_end": 1.0, "switch_frac": 0.5},
    "fixed": {"weights": [3, 1, 0, 2, 1]},
    "mixture": {"t_start": 4.0, "t_end": 1.5, "switch_frac": 0.3, "loss_weights": [1, 2, 3, 4, 5]},
    "schedule": {
        "points": [
            {"step": 0, "weights": [1, 1, 1, 1, 1]},
            {"step": 20, "weights": [5, 1, 1, 0, 1], "loss_weights": [1, 1, 2, 2, 1]},
        ]
    },
    "doge": {"mu": 0.05, "eps": 0.01},
    "aioli": {"eta": 0.5, "lp_rounds": 1, "lp_steps": 2, "update_steps": 15, "ema": 0.3},
    "doremi": {"eta": 0.5, "smoothing": 1e-3},
}


def make(name: str, seed: int = 0, sizes=SIZES):
    return build_policy(name, sizes, TOTAL, FACTORIES[name], seed=seed)


def signals(step: int, rng: np.random.Generator, k: int = len(SIZES)) -> DomainSignals:
    counts = rng.multinomial(8, np.full(k, 1.0 / k))
    loss = rng.uniform(1.0, 3.0, size=k)
    loss[counts == 0] = np.nan
    grads = rng.normal(size=(k, 6)) * (counts > 0)[:, None]
    return DomainSignals(
        step=step,
        train_loss=loss,
        counts=counts,
        lr=1e-3,
        grad_dots=grads @ grads.T,
        target_dots=None,
        excess_loss=np.where(counts > 0, rng.uniform(0.0, 1.0, size=k), np.nan),
    )


def trajectory(policy, start: int, stop: int, seed: int = 7, replay_every: int = 0) -> np.ndarray:
    """Drive a policy like the loop does: evaluations it asks for, weights, then update.

    With ``replay_every`` > 0, every so many steps also ask for the weights of every past step
    (and the loss multipliers and temperature), as a reporter replaying the schedule would.
    """
    rng = np.random.default_rng(seed + start)
    out = []
    for step in range(start, stop):
        if policy.evaluates_before(step):
            held_out = rng.uniform(1.0, 3.0, size=policy.n_domains)
            policy.update(DomainSignals(step=step, eval_loss=held_out))
        out.append(policy.weights(step))
        policy.update(signals(step, rng, policy.n_domains))
        if replay_every and step % replay_every == replay_every - 1:
            for past in range(step + 2):
                policy.weights(past)
                policy.loss_multipliers(past)
                policy.current_temperature(past)
                policy.final_weights(past)
    return np.array(out)


def test_every_policy_has_a_factory():
    assert set(FACTORIES) == set(POLICIES)


@pytest.fixture(params=sorted(FACTORIES))
def name(request):
    return request.param


def test_weights_on_simplex_every_step(name):
    traj = trajectory(make(name), 0, TOTAL)
    assert traj.shape == (TOTAL, len(SIZES))
    assert traj.dtype == np.float64
    assert np.all(np.isfinite(traj)) and np.all(traj >= 0)
    np.testing.assert_allclose(traj.sum(axis=1), 1.0, atol=1e-9)


def test_adaptive_policies_actually_move(name):
    traj = trajectory(make(name), 0, TOTAL)
    if name in ("doge", "aioli", "doremi", "cooldown", "schedule"):
        assert not np.allclose(traj[0], traj[-1])


@pytest.mark.parametrize("replay_every", [1, 7, 11])
def test_asking_for_past_weights_changes_nothing_that_follows(name, replay_every):
    plain = make(name, seed=2)
    replayed = make(name, seed=2)
    np.testing.assert_array_equal(
        trajectory(plain, 0, TOTAL), trajectory(replayed, 0, TOTAL, replay_every=replay_every)
    )
    assert pickle.dumps(plain.state_dict()) == pickle.dumps(replayed.state_dict())


def test_same_seed_same_trajectory(name):
    np.testing.assert_array_equal(
        trajectory(make(name, 3), 0, TOTAL), trajectory(make(name, 3), 0, TOTAL)
    )


@pytest.mark.parametrize("cut", [0, 7, 30])
def test_state_round_trip_gives_identical_future(name, cut, tmp_path):
    from popmix.train.checkpoint import load_state, save_state

    reference = make(name, seed=1)
    trajectory(reference, 0, cut)
    # through the checkpoint format: plain data, read back without unpickling objects
    save_state(reference.state_dict(), tmp_path / "policy.pt")
    state = load_state(tmp_path / "policy.pt")
    expected = trajectory(copy.deepcopy(reference), cut, TOTAL)

    restored = make(name, seed=1)
    restored.load_state_dict(state)
    np.testing.assert_array_equal(trajectory(restored, cut, TOTAL), expected)


def test_state_holds_no_hyperparameters(name):
    policy = make(name)
    trajectory(policy, 0, 5)
    overlap = set(policy.state_dict()) & (set(FACTORIES[name]) | {"sizes", "total_steps", "seed"})
    assert not overlap


def test_non_finite_signals_give_finite_weights(name):
    policy = make(name)
    k = len(SIZES)
    for step in range(TOTAL):
        bad = np.array([np.nan, np.inf, -np.inf, 1e300, 0.0])[:k]
        if policy.evaluates_before(step):
            policy.update(DomainSignals(step=step, eval_loss=bad))
        gram = np.full((k, k), np.nan)
        policy.update(
            DomainSignals(
                step,
                train_loss=bad,
                counts=np.ones(k, dtype=np.int64),
                lr=np.nan,
                grad_dots=gram,
                excess_loss=bad,
            )
        )
        w = policy.weights(step + 1)
        assert np.all(np.isfinite(w)) and abs(w.sum() - 1) < 1e-9


def test_single_domain_gives_one(name):
    params = dict(FACTORIES[name])
    if "weights" in params:
        params["weights"] = [2.0]
    if "loss_weights" in params:
        params["loss_weights"] = [2.0]
    if "points" in params:
        params["points"] = [{"step": 0, "weights": [3.0]}]
    policy = build_policy(name, np.array([1234.0]), TOTAL, params)
    for step in (0, TOTAL // 2, TOTAL - 1):
        np.testing.assert_allclose(policy.weights(step), [1.0])


def test_hparams_are_json_scalars_or_lists(name):
    import json

    json.dumps(make(name).hparams())
