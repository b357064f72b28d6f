"""The shared training loop: exact continuation, learning, and sample-vs-loss equivalence."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from popmix.data.domains import Domain, DomainSet
from popmix.policies import build_policy
from popmix.train import Diverged, ModelConfig, TrainConfig, Trainer, run_training

TINY = ModelConfig(n_layer=1, n_head=2, d_model=32, seq_len=16)


def make_trainer(domains, method="cooldown", params=None, **kw) -> Trainer:
    cfg = TrainConfig(
        **{
            "steps": 30,
            "batch_size": 8,
            "warmup_steps": 3,
            "threads": 1,
            "eval_windows": 4,
            "test_windows": 4,
            **kw,
        }
    )
    params = {"t_start": 4.0, "switch_frac": 0.4} if params is None else params
    policy = build_policy(method, domains.sizes, cfg.steps, params)
    return Trainer(domains, policy, TINY, cfg)


@pytest.mark.parametrize("apply", ["sample", "loss"])
def test_restore_continues_exactly(tiny_domains, tmp_path, apply):
    straight = make_trainer(tiny_domains, apply=apply)
    straight.train(12)  # reported at the same step as the run that stops
    straight.pop_train_losses()
    straight.pop_health()
    straight.train(18)

    first = make_trainer(tiny_domains, apply=apply)
    first.train(12)
    first.pop_train_losses()
    first.pop_health()
    first.train(3)  # steps not yet reported travel in the checkpoint too
    first.save(tmp_path / "ckpt.pt")
    del first
    resumed = make_trainer(tiny_domains, apply=apply, seed=12345)  # seed must not matter
    resumed.load(tmp_path / "ckpt.pt")
    resumed.train(15)

    resumed.pop_health(), straight.pop_health()
    assert resumed.health.state_dict() == straight.health.state_dict()
    assert resumed.step == straight.step == 30
    assert resumed.tokens_seen == straight.tokens_seen
    for (name, a), b in zip(
        straight.model.state_dict().items(), resumed.model.state_dict().values()
    ):
        assert torch.equal(a, b), name
    np.testing.assert_array_equal(straight.evaluate("test"), resumed.evaluate("test"))
    np.testing.assert_array_equal(straight.last_weights, resumed.last_weights)
    assert straight.sampler.state_dict() == resumed.sampler.state_dict()


def test_same_seed_same_run_other_seed_differs(tiny_domains):
    a, b, c = (make_trainer(tiny_domains, seed=s) for s in (0, 0, 1))
    for t in (a, b, c):
        t.train(10)
    assert np.array_equal(a.evaluate(), b.evaluate())
    assert not np.array_equal(a.evaluate(), c.evaluate())


def test_loss_goes_down(tiny_domains):
    cfg = TrainConfig(
        steps=80,
        batch_size=16,
        eval_interval=40,
        threads=1,
        eval_windows=8,
        lr=1e-2,
        test_windows=8,
        warmup_steps=5,
    )
    policy = build_policy("stratified", tiny_domains.sizes, cfg.steps)
    result = run_training(tiny_domains, policy, TINY, cfg)
    # Untrained: about ln 256 = 5.55 nats. Domain i is uniform over 3 + 2i bytes.
    floors = np.log(3 + 2 * np.arange(4))
    test = np.array([result["test_loss"][n] for n in tiny_domains.names])
    assert np.all(test < floors + 0.35), (test, floors)
    assert result["steps"] == 80 and result["tokens_seen"] == 80 * 16 * 16
    assert [r["step"] for r in result["history"]] == [40, 80]


def test_threads_follow_config(tiny_domains):
    before = torch.get_num_threads()
    try:
        make_trainer(tiny_domains, threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_lr_schedule_warmup_then_cosine(tiny_domains):
    t = make_trainer(tiny_domains, steps=100, warmup_steps=10, lr=1.0, min_lr_frac=0.1)
    assert t.lr_at(0) == pytest.approx(0.1)
    assert t.lr_at(9) == pytest.approx(1.0)
    assert t.lr_at(10) == pytest.approx(1.0)
    assert t.lr_at(55) == pytest.approx(0.55)
    assert t.lr_at(100) == pytest.approx(0.1)


def test_warmup_is_a_share_of_the_budget_unless_given_in_steps(tiny_domains):
    t = make_trainer(tiny_domains, steps=200, lr=1.0, warmup_frac=0.1, warmup_steps=None)
    assert t.cfg.warmup == 20 and t.lr_at(19) == pytest.approx(1.0)
    assert t.lr_at(9) == pytest.approx(0.5)
    t = make_trainer(tiny_domains, steps=200, lr=1.0, warmup_frac=0.1, warmup_steps=4)
    assert t.cfg.warmup == 4


def test_divergence_is_reported(tiny_domains):
    t = make_trainer(tiny_domains, lr=1e30, grad_clip=0.0, warmup_steps=0, steps=20)
    t.train(20)
    with pytest.raises(Diverged, match="non-finite"):
        t.pop_train_losses()


def _few_window_domains() -> DomainSet:
    """Three domains with exactly 4 possible training windows each, so expectations are exact."""
    rng = np.random.default_rng(7)
    seq = TINY.seq_len
    doms = [
        Domain(
            f"f{i}",
            rng.integers(60 + 9 * i, 70 + 9 * i, size=seq + 4, dtype=np.uint8),
            rng.integers(60, 90, size=64, dtype=np.uint8),
            rng.integers(60, 90, size=64, dtype=np.uint8),
        )
        for i in range(3)
    ]
    return DomainSet("few", tuple(doms))


def _flat_grad(model) -> torch.Tensor:
    return torch.cat([p.grad.reshape(-1) for p in model.parameters()]).double()


def _mc_mean(trainer: Trainer, p: np.ndarray, n: int, reweight: bool = True):
    grads = []
    for _ in range(n):
        batch = trainer.draw_batch(p)
        if not reweight:
            batch.example_weight = torch.ones_like(batch.example_weight)
        loss, _ = trainer.batch_loss(batch)
        trainer.model.zero_grad(set_to_none=True)
        loss.backward()
        grads.append(_flat_grad(trainer.model))
    g = torch.stack(grads)
    return g.mean(0), g.std(0) / np.sqrt(n)


def test_sample_and_loss_modes_have_the_same_expected_gradient():
    """Li et al. 2025, Theorem 1: sampling from p and reweighting q-batches by p/q agree."""
    domains = _few_window_domains()
    p = np.array([0.7, 0.2, 0.1])
    sample = make_trainer(domains, "fixed", {"weights": p.tolist()}, apply="sample", batch_size=8)
    loss = make_trainer(domains, "fixed", {"weights": p.tolist()}, apply="loss", batch_size=6)
    loss.model.load_state_dict(sample.model.state_dict())

    # Exact expectation: Σ_i p_i · mean over domain i's 4 windows of ∇ loss.
    exact = 0
    for i, d in enumerate(domains):
        windows = torch.from_numpy(
            np.stack([d.train[s : s + TINY.seq_len + 1] for s in range(4)]).astype(np.int64)
        )
        sample.model.zero_grad(set_to_none=True)
        sample.model.example_losses(windows).mean().backward()
        exact = exact + p[i] * _flat_grad(sample.model)

    def z2(mean, se):  # mean squared standardized error, about 1 when unbiased
        keep = se > 1e-9
        return float((((mean - exact) / se)[keep] ** 2).mean())

    n = 300
    assert z2(*_mc_mean(sample, p, n)) < 1.6
    assert z2(*_mc_mean(loss, p, n)) < 1.6
    # The same check catches a missing reweighting: stratified batches without p/q are biased.
    assert z2(*_mc_mean(loss, p, n, reweight=False)) > 5


def test_synthetic_loss_falls_toward_its_known_floor():
    """On Markov-chain domains the excess loss over the entropy rate shrinks with training."""
    from popmix.data.synthetic import make_synthetic

    domains = make_synthetic(3, seed=1, vocab=8, max_tokens=40_000, min_tokens=40_000)
    floor = np.array([d.entropy_rate for d in domains])
    cfg = TrainConfig(
        steps=150,
        batch_size=16,
        lr=1e-2,
        warmup_steps=5,
        threads=1,
        eval_interval=0,
        eval_windows=16,
        test_windows=16,
    )
    trainer = Trainer(domains, build_policy("stratified", domains.sizes, cfg.steps), TINY, cfg)
    excess_start = trainer.evaluate("test") - floor
    trainer.train(150)
    excess_end = trainer.evaluate("test") - floor
    assert np.all(excess_start > 2.0)  # an untrained byte model is far from the floor
    assert np.all(excess_end < 0.15 * excess_start), (excess_start, excess_end)
    assert np.all(excess_end > -0.05)  # nothing beats the entropy rate (up to sampling noise)


@pytest.mark.parametrize(
    "method,params",
    [
        ("aioli", {"lp_rounds": 1, "lp_steps": 2, "update_steps": 10, "eval_windows": 2}),
        ("doge", {"mu": 0.01}),
        ("cooldown", {"t_start": 5.0, "t_end": 1.0, "switch_frac": 0.5}),
    ],
)
def test_weight_log_is_what_each_step_trained_on(tiny_domains, method, params):
    cfg = TrainConfig(steps=23, batch_size=8, eval_windows=2, test_windows=2, threads=1)
    policy = build_policy(method, tiny_domains.sizes, cfg.steps, params)
    trainer = Trainer(tiny_domains, policy, ModelConfig(1, 2, 16, 16), cfg)
    used = []
    while trainer.step < cfg.steps:
        trainer.train(1)
        used.append(trainer.last_weights.tolist())
    log = trainer.weight_log
    assert log[0]["step"] == 0
    for t, w in enumerate(used):
        point = [p for p in log if p["step"] <= t][-1]
        assert point["weights"] == w, f"step {t}"
    if method == "cooldown":
        assert {p["temperature"] for p in log} == {5.0, 1.0}


def test_a_policy_that_asks_for_step_losses_gets_them_every_step(tiny_domains):
    from popmix.policies import LoopNeeds, StratifiedPolicy

    class Listening(StratifiedPolicy):
        name = "listening"

        @property
        def needs(self):
            return LoopNeeds(step_losses=True)

        def update(self, signals):
            self.seen.append(signals)

    policy = Listening(tiny_domains.sizes, 5)
    policy.seen = []
    cfg = TrainConfig(steps=5, batch_size=8, eval_windows=2, test_windows=2, threads=1)
    Trainer(tiny_domains, policy, ModelConfig(1, 2, 16, 16), cfg).train(5)
    assert [s.step for s in policy.seen] == [0, 1, 2, 3, 4]
    for s in policy.seen:
        assert s.counts.sum() == 8 and s.eval_loss is None and s.grad_dots is None
        present = s.counts > 0
        assert np.all(np.isfinite(s.train_loss[present]))
        assert np.all(np.isnan(s.train_loss[~present]))


def test_static_policies_get_no_signals(tiny_domains):
    from popmix.policies import StratifiedPolicy

    calls = []
    policy = StratifiedPolicy(tiny_domains.sizes, 3)
    policy.update = calls.append
    cfg = TrainConfig(steps=3, batch_size=8, eval_windows=2, test_windows=2, threads=1)
    Trainer(tiny_domains, policy, ModelConfig(1, 2, 16, 16), cfg).train(3)
    assert calls == []  # no host sync paid for a method that does not listen
