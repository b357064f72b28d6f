"""DoReMi inside the shared loop: a frozen reference model scores every training batch, the
policy gets each domain's excess loss clipped per token, the step follows the updated
weights, the reference's work is counted, and a resumed run continues exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from popmix.config import ConfigError
from popmix.policies import build_policy, loss_weights
from popmix.train import ModelConfig, TrainConfig, Trainer
from popmix.train.model import TinyGPT

TINY = ModelConfig(n_layer=1, n_head=2, d_model=32, seq_len=16)


def config(steps=6, **kw):
    base = dict(
        steps=steps, batch_size=8, warmup_steps=2, threads=1, eval_windows=4, test_windows=4
    )
    return TrainConfig(**{**base, **kw})


@pytest.fixture
def reference(tiny_domains, tmp_path):
    """A short stratified run's checkpoint: the reference (5 steps)."""
    cfg = config(steps=5, lr=3e-2, seed=1)
    t = Trainer(tiny_domains, build_policy("stratified", tiny_domains.sizes, 5), TINY, cfg)
    t.train(5)
    path = tmp_path / "reference.pt"
    t.save(path)
    return path


def doremi(domains, reference, steps=6):
    policy = build_policy("doremi", domains.sizes, steps, {"eta": 1.0, "smoothing": 1e-3})
    return Trainer(domains, policy, TINY, config(steps=steps), reference=reference)


def test_the_policy_gets_the_per_token_clipped_excess_over_the_reference(tiny_domains, tmp_path):
    # an untrained model of another seed as the reference: better than the proxy on some
    # tokens, worse on others, so clipping each token differs from clipping the mean
    cfg = config(steps=1, seed=1)
    other = Trainer(tiny_domains, build_policy("stratified", tiny_domains.sizes, 1), TINY, cfg)
    reference = tmp_path / "reference.pt"
    other.save(reference)
    t = doremi(tiny_domains, reference)
    seen, batches = [], []
    update, draw = t.policy.update, t.draw_batch
    t.policy.update = lambda s: (seen.append(s), update(s))  # type: ignore[method-assign]
    t.draw_batch = lambda *a: batches.append(draw(*a)) or batches[-1]  # type: ignore
    proxy = TinyGPT(TINY)
    proxy.load_state_dict(t.model.state_dict())  # the proxy before its first step
    ref = TinyGPT(TINY)
    from popmix.train.checkpoint import load_state

    ref.load_state_dict(load_state(reference)["model"])
    t.train_step()

    (signals,) = seen
    batch = batches[0]
    assert signals.step == 0 and np.array_equal(signals.counts, batch.counts)
    with torch.no_grad():
        diff = (proxy.token_losses(batch.tokens) - ref.token_losses(batch.tokens)).double()
    by_hand, unclipped = [], []
    for i in range(len(tiny_domains)):
        rows = diff[batch.ids == i]  # domain i's windows, every token of them
        by_hand.append(rows.clamp_min(0).mean().item())
        unclipped.append(max(rows.mean().item(), 0.0))
    np.testing.assert_allclose(signals.excess_loss, by_hand, rtol=1e-5, atol=1e-7)
    # the clip is per token, before the mean: here it differs from clipping the mean
    assert not np.allclose(signals.excess_loss, unclipped, rtol=1e-3)
    # the step followed the weights this excess gave, as the official code's step does
    alpha = t.policy.weights(1)
    assert not np.allclose(alpha, 0.25)
    np.testing.assert_allclose(t.last_weights, alpha)
    np.testing.assert_allclose(loss_weights(alpha, t.base_q), 4 * alpha)  # stratified q


def test_the_reference_costs_its_forwards_and_its_training_steps(tiny_domains, reference):
    t = doremi(tiny_domains, reference)
    assert t.policy.vocab_size == 256  # the model's (bytes), filled by the loop
    t.train(6)
    assert t.extra["forward_windows"] == 6 * 8  # one reference forward per batch
    assert t.extra["reference_steps"] == 5
    assert t.extra_step_equivalents() == pytest.approx(6 / 3 + 5)


def test_a_resumed_doremi_run_continues_exactly(tiny_domains, reference, tmp_path):
    whole = doremi(tiny_domains, reference)
    whole.train(6)
    first = doremi(tiny_domains, reference)
    first.train(3)
    first.save(tmp_path / "state.pt")
    resumed = doremi(tiny_domains, reference)  # the reference read again from its path
    resumed.load(tmp_path / "state.pt")
    resumed.train(3)
    for a, b in zip(whole.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)
    assert whole.policy.state_dict() == resumed.policy.state_dict()
    assert whole.extra == resumed.extra


def test_doremi_without_a_reference_or_with_a_foreign_one_stops_in_one_line(
    tiny_domains, tmp_path
):
    with pytest.raises(ConfigError, match="needs a reference model") as e:
        doremi(tiny_domains, None)
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="file not found"):
        doremi(tiny_domains, tmp_path / "missing.pt")
    other = ModelConfig(n_layer=1, n_head=2, d_model=16, seq_len=16)
    cfg = config(steps=1)
    t = Trainer(tiny_domains, build_policy("stratified", tiny_domains.sizes, 1), other, cfg)
    t.save(tmp_path / "other.pt")
    with pytest.raises(ConfigError, match="not a model of this experiment's shape") as e:
        doremi(tiny_domains, tmp_path / "other.pt")
    assert "\n" not in str(e.value)
