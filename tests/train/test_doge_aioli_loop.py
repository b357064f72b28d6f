"""DoGE and Aioli inside the shared loop: per-domain gradients, exact counts, extra compute."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from popmix.policies import build_policy
from popmix.train import ModelConfig, TrainConfig, Trainer, measure
from popmix.train.model import TinyGPT

TINY = ModelConfig(n_layer=1, n_head=2, d_model=32, seq_len=16)


def trainer(domains, method, params, **kw):
    cfg = TrainConfig(
        **{
            "steps": 40,
            "batch_size": 8,
            "warmup_steps": 2,
            "threads": 1,
            "eval_windows": 4,
            "test_windows": 4,
            **kw,
        }
    )
    return Trainer(domains, build_policy(method, domains.sizes, cfg.steps, params), TINY, cfg)


def flat_grad(model):
    return torch.cat([p.grad.reshape(-1) for p in model.parameters()]).double()


def test_per_domain_gradients_equal_separate_backward_passes(tiny_domains):
    t = trainer(tiny_domains, "doge", {"mu": 0.05, "grad_clip": 1e9})
    ref = trainer(tiny_domains, "stratified", {})
    ref.model.load_state_dict(t.model.state_dict())
    batch = t.draw_batch(t.policy.weights(0))
    grads = measure.domain_gradients(t.model, batch.tokens, batch.ids, batch.counts, clip=1e9)
    gram = grads.gram()
    alpha_np = np.array([0.1, 0.2, 0.3, 0.4])
    combined = torch.cat([g.reshape(-1) for g in grads.combine(alpha_np)]).double()

    # Reference: one forward over the whole batch, one separate backward per domain.
    grads = []
    for i in range(len(tiny_domains)):
        ref.model.zero_grad(set_to_none=True)
        losses = ref.model.example_losses(batch.tokens)
        losses[batch.ids == i].mean().backward()
        grads.append(flat_grad(ref.model))
    g = torch.stack(grads)
    np.testing.assert_allclose(gram, (g @ g.T).numpy(), rtol=1e-4, atol=1e-9)
    alpha = torch.as_tensor(alpha_np, dtype=torch.float64)
    torch.testing.assert_close(combined, alpha @ g, rtol=1e-4, atol=1e-8)


def slow_domain_gradient(model, tokens, ids, i, clip):
    """Domain i's clipped mean-loss gradient: its own forward and backward, flattened."""
    model.zero_grad(set_to_none=True)
    if not bool((ids == i).any()):
        return torch.zeros(sum(p.numel() for p in model.parameters()), dtype=torch.float64)
    model.example_losses(tokens[ids == i]).mean().backward()
    g = flat_grad(model)
    return g * measure.clip_factor(float(g.norm()), clip)


@pytest.mark.parametrize(
    "layout",
    ["stratified", "unequal counts", "shuffled", "a domain missing", "short windows"],
)
def test_fast_domain_gradients_equal_a_direct_computation(layout):
    """The one-pass per-domain gradients against one forward and backward per domain: the
    Gram matrix, the dot products with a (clipped) held-out target gradient, and the
    α-weighted model gradient; with the per-domain clip active, into reused blocks."""
    cfg = ModelConfig(n_layer=2, n_head=2, d_model=16, seq_len=12)
    model = TinyGPT(cfg, torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(1)
    t = 8 if layout == "short windows" else cfg.seq_len  # fewer positions than seq_len
    ids = {
        "stratified": [0, 0, 1, 1, 2, 2],
        "unequal counts": [0, 1, 1, 1, 2, 2],
        "shuffled": [2, 0, 1, 2, 0, 1],
        "a domain missing": [0, 0, 0, 2, 2, 2],
        "short windows": [0, 0, 1, 1, 2, 2],
    }[layout]
    ids_t = torch.tensor(ids)
    counts = np.bincount(ids, minlength=3)
    # domain-specific byte ranges, so the three gradients differ
    tokens = torch.stack(
        [torch.randint(40 * d, 40 * d + 60, (t + 1,), generator=gen) for d in ids]
    )
    val = torch.randint(0, 256, (6, t + 1), generator=gen)
    clip = 0.5

    # refilling an earlier result's blocks (as the loop does) leaves nothing of the old batch
    other = torch.randint(0, 256, tokens.shape, generator=gen)
    stale = measure.domain_gradients(model, other, ids_t, counts, clip)
    ptrs = [x.data_ptr() for x in stale.sums]
    grads = measure.domain_gradients(model, tokens, ids_t, counts, clip, reuse=stale)
    assert [x.data_ptr() for x in grads.sums] == ptrs
    target = measure.mean_gradient(model, val, clip)
    alpha = np.array([0.2, 0.3, 0.5])
    fast_gram, fast_dots = grads.gram(), grads.dots(target)
    fast_step = torch.cat([g.reshape(-1) for g in grads.combine(alpha)]).double()
    fast_loss = grads.example_loss.clone()

    slow = torch.stack([slow_domain_gradient(model, tokens, ids_t, i, clip) for i in range(3)])
    model.zero_grad(set_to_none=True)
    model.example_losses(val).mean().backward()
    g_val = flat_grad(model)
    g_val = g_val * measure.clip_factor(float(g_val.norm()), clip)
    norms = slow.norm(dim=1)
    present = counts > 0
    assert torch.all(norms[torch.from_numpy(present)] > clip * (1 - 1e-4))  # clip binds
    np.testing.assert_allclose(fast_gram, (slow @ slow.T).numpy(), rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(fast_dots, (slow @ g_val).numpy(), rtol=1e-4, atol=1e-9)
    assert np.all(fast_dots[~present] == 0) and np.all(fast_gram[~present] == 0)
    torch.testing.assert_close(fast_step, torch.as_tensor(alpha) @ slow, rtol=1e-4, atol=1e-8)
    with torch.no_grad():
        torch.testing.assert_close(fast_loss, model.example_losses(tokens))


def test_fast_domain_gradients_refuse_a_parameter_they_do_not_know():
    model = TinyGPT(ModelConfig(n_layer=1, n_head=2, d_model=16, seq_len=8))
    model.register_parameter("extra", torch.nn.Parameter(torch.zeros(3)))
    tokens = torch.randint(0, 256, (2, 9))
    with pytest.raises(RuntimeError, match="no per-domain gradient for \\['extra'\\]"):
        measure.domain_gradients(model, tokens, torch.tensor([0, 1]), np.array([1, 1]), 1.0)


def test_the_model_step_follows_the_updated_doge_weights(tiny_domains):
    t = trainer(tiny_domains, "doge", {"mu": 0.01, "target": "others"})
    seen = []
    combine = measure.DomainGradients.combine
    measure.DomainGradients.combine = lambda self, w: seen.append(np.array(w)) or combine(self, w)
    try:
        t.train_step()
    finally:
        measure.DomainGradients.combine = combine
    np.testing.assert_array_equal(seen[0], t.policy.weights(1))
    np.testing.assert_array_equal(t.weight_log[0]["weights"], t.policy.weights(1))


def test_doge_clips_each_domain_gradient(tiny_domains):
    t = trainer(tiny_domains, "doge", {"grad_clip": 1e-3})
    captured = {}
    update = t.policy.update
    t.policy.update = lambda s: (captured.setdefault("s", s), update(s))
    t.train_step()
    np.testing.assert_allclose(np.sqrt(np.diag(captured["s"].grad_dots)), 1e-3, rtol=1e-3)


@pytest.mark.parametrize("target", ["others", "validation", "domain:d2"])
def test_doge_trains_and_counts_its_extra_work(tiny_domains, target):
    t = trainer(tiny_domains, "doge", {"mu": 0.01, "target": target})
    t.train(10)
    w = t.policy.weights(10)
    assert abs(w.sum() - 1) < 1e-9 and not np.allclose(w, 0.25)
    avg = t.policy.average_weights()
    assert abs(avg.sum() - 1) < 1e-9
    extra = t.extra_step_equivalents()
    # a held-out target batch of 8 windows: one forward and one backward per step
    assert extra == (0.0 if target == "others" else pytest.approx(10 * 8 * 3 / (3 * 8)))
    assert t.apply == "loss"  # DoGE trains on stratified batches


def test_doge_counts_missing_domains(tiny_domains):
    t = trainer(tiny_domains, "doge", {}, batch_size=2)  # 2 slots, 4 domains
    t.train(6)
    missing = np.array(t.policy.state_dict()["missing"])
    assert missing.sum() == 6 * 2  # two domains absent at every step


def test_aioli_exact_counts_and_counted_evaluations(tiny_domains):
    params = {
        "eta": 0.5,
        "lp_rounds": 1,
        "lp_steps": 2,
        "update_steps": 12,
        "one_hot_factor": 0.75,
        "eval_windows": 2,
    }
    t = trainer(tiny_domains, "aioli", params)
    seen = []
    draw = t.sampler.counts
    t.sampler.counts = lambda w: seen.append((np.array(w), draw(w))) or seen[-1][1]
    t.train(24)
    for w, c in seen:
        assert c.sum() == 8
        if w.max() == 0.75:  # a LearnParams batch: exactly 6 of 8 from the perturbed domain
            assert c[np.argmax(w)] == 6
    # two rounds, each 4 perturbations + 1 start evaluation, 2 windows per domain each
    assert t.policy.evals == 10
    assert t.extra["eval_windows"] == 10 * 2 * 4
    assert t.policy.updates == 2
    assert not np.allclose(t.policy.mixture(), 0.25)


def test_aioli_restore_continues_exactly(tiny_domains, tmp_path):
    params = {"eta": 0.5, "lp_rounds": 1, "lp_steps": 2, "update_steps": 12, "eval_windows": 2}
    a = trainer(tiny_domains, "aioli", params)
    a.train(30)
    b = trainer(tiny_domains, "aioli", params)
    b.train(13)
    b.save(tmp_path / "s.pt")
    c = trainer(tiny_domains, "aioli", params)
    c.load(tmp_path / "s.pt")
    c.train(17)
    np.testing.assert_array_equal(a.policy.mixture(), c.policy.mixture())
    for x, y in zip(a.model.parameters(), c.model.parameters()):
        assert torch.equal(x, y)


def test_doge_clips_the_target_gradient_too(tiny_domains, monkeypatch):
    clip = 1e-3
    t = trainer(tiny_domains, "doge", {"grad_clip": clip, "target": "validation"})
    captured = {}
    update, mean_gradient = t.policy.update, measure.mean_gradient
    t.policy.update = lambda s: (captured.setdefault("s", s), update(s))

    # the unclipped target gradient, for comparison
    def spy(model, tokens, clip):
        captured["g"] = mean_gradient(model, tokens, 0.0)
        return mean_gradient(model, tokens, clip)

    monkeypatch.setattr(measure, "mean_gradient", spy)
    t.train_step()
    g_norm = float(torch.sqrt(sum((g.double() ** 2).sum() for g in captured["g"])))
    assert g_norm > 10 * clip  # unclipped, the dot products would be this much larger
    s = captured["s"]
    norms = np.sqrt(np.diag(s.grad_dots))
    # Cauchy-Schwarz with both sides clipped to norm `clip`
    assert np.all(np.abs(s.target_dots) <= norms * clip * (1 + 1e-3))
    assert np.abs(s.target_dots).max() > 0.05 * clip**2  # and not trivially zero


def test_doge_ood_target_is_never_trained_on(tiny_domains):
    t = trainer(tiny_domains, "doge", {"mu": 0.01, "target": "domain:d2"})
    seen = []
    draw = t.sampler.counts
    t.sampler.counts = lambda w: seen.append(draw(w)) or seen[-1]
    t.train(6)
    assert all(c[2] == 0 and c.sum() == 8 for c in seen)
    assert all(p["weights"][2] == 0.0 for p in t.weight_log)
    assert t.policy.final_weights(6)[2] == 0.0
