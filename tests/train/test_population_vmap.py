"""A vectorised population member trains as the same member alone in popmix's Trainer."""

from __future__ import annotations

import pytest
import torch

from popmix.policies import build_policy
from popmix.train import ModelConfig, TrainConfig, Trainer
from popmix.train.loop import Batch
from popmix.train.population import VectorPopulation

TINY = ModelConfig(n_layer=1, n_head=2, d_model=32, seq_len=16)
N_STEPS = 6


def _trainers(domains, grad_clip: float) -> list[Trainer]:
    # Large decay and LR so that decay applied to the wrong tensors, or not at all, moves
    # parameters well past the tolerance within a few steps; a warm-up and cosine on 6 steps.
    cfg = TrainConfig(
        steps=N_STEPS,
        batch_size=4,
        lr=1e-2,
        warmup_steps=2,
        weight_decay=1.0,
        grad_clip=grad_clip,
        threads=1,
        eval_windows=2,
        test_windows=2,
    )
    out = []
    for seed in range(3):
        policy = build_policy("stratified", domains.sizes, cfg.steps, {})
        out.append(Trainer(domains, policy, TINY, TrainConfig(**{**cfg.__dict__, "seed": seed})))
    return out


def _record_batches(trainer: Trainer) -> list[Batch]:
    """The batches the trainer draws, recorded as it trains (its own draw, unchanged)."""
    seen: list[Batch] = []
    draw = trainer.draw_batch

    def recording(*args, **kwargs) -> Batch:
        batch = draw(*args, **kwargs)
        seen.append(batch)
        return batch

    trainer.draw_batch = recording  # type: ignore[method-assign]
    return seen


def _comparable(name: str, value: torch.Tensor) -> torch.Tensor:
    """The tensor without its key biases: softmax ignores a shift shared by all keys, so their
    exact gradient is 0 and Adam turns the ~1e-12 rounding left in it into full-size steps of
    either sign; both runs move them by noise, not by anything either computes."""
    if name.endswith("qkv.bias"):
        d = value.shape[0] // 3
        return torch.cat([value[:d], value[2 * d :]])
    return value


@pytest.mark.parametrize("grad_clip,explicit_attention", [(0.5, None), (0.5, False), (0.0, None)])
def test_member_matches_standalone_trainer(tiny_domains, grad_clip, explicit_attention):
    trainers = _trainers(tiny_domains, grad_clip)
    pop = VectorPopulation(
        [t.model for t in trainers], trainers[0].cfg, explicit_attention=explicit_attention
    )
    logs = [_record_batches(t) for t in trainers]
    norms = []
    for step in range(N_STEPS):
        for t in trainers:
            t.train_step()
        tokens = torch.stack([log[step].tokens for log in logs])
        weight = torch.stack([log[step].example_weight for log in logs])
        loss, norm = pop.step(tokens, trainers[0].lr_at(step), weight)
        norms.append(norm)
        expected_norm = torch.stack([t._grad_norm[-1] for t in trainers])
        torch.testing.assert_close(norm, expected_norm, rtol=0, atol=1e-5)
    for i, t in enumerate(trainers):
        for name, value in pop.member_state_dict(i).items():
            expected = t.model.state_dict()[name]
            torch.testing.assert_close(
                _comparable(name, value), _comparable(name, expected), rtol=0, atol=1e-5
            )
    if grad_clip:
        # Clipping acted on every member with norms far apart, so one norm shared by the
        # members (or none) would have failed the comparison above.
        first = norms[0]
        assert bool((first > grad_clip).all())
        assert float(first.max() - first.min()) > 0.1 * grad_clip


def test_per_member_learning_rate(tiny_domains):
    trainers = _trainers(tiny_domains, 0.5)[:2]
    pop = VectorPopulation([t.model for t in trainers], trainers[0].cfg)
    tokens = torch.stack([t.draw_batch(t.policy.weights(0)).tokens for t in trainers])
    before = pop.member_state_dict(1)
    pop.step(tokens, torch.tensor([1e-2, 0.0]))
    for name, value in pop.member_state_dict(1).items():
        assert torch.equal(value, before[name]), name  # lr 0: member 1 does not move
    assert not torch.equal(pop.member_state_dict(0)["tok.weight"], trainers[0].model.tok.weight)
