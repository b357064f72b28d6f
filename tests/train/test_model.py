"""The proxy transformer: causal, a uniform guess at init, two attention paths that agree."""

from __future__ import annotations

import math

import torch

from popmix.config import ModelConfig
from popmix.data import VOCAB_SIZE
from popmix.train.model import TinyGPT

CFG = ModelConfig(n_layer=2, n_head=2, d_model=32, seq_len=16)


def _model(seed: int = 0) -> TinyGPT:
    return TinyGPT(CFG, generator=torch.Generator().manual_seed(seed))


def test_logits_at_a_position_ignore_later_tokens():
    model = _model().eval()
    x = torch.randint(0, VOCAB_SIZE, (3, CFG.seq_len), generator=torch.Generator().manual_seed(1))
    y = x.clone()
    y[:, 9:] = (y[:, 9:] + 7) % VOCAB_SIZE  # change only the future of position 8
    with torch.no_grad():
        a, b = model(x), model(y)
    assert a.shape == (3, CFG.seq_len, VOCAB_SIZE)
    assert torch.allclose(a[:, :9], b[:, :9], atol=1e-6)
    assert not torch.allclose(a[:, 9:], b[:, 9:])


def test_initial_loss_is_near_a_uniform_guess_over_bytes():
    tokens = torch.randint(
        0, VOCAB_SIZE, (8, CFG.seq_len + 1), generator=torch.Generator().manual_seed(2)
    )
    loss = _model().example_losses(tokens).mean().item()
    assert abs(loss - math.log(VOCAB_SIZE)) < 0.3


def test_explicit_attention_matches_the_fused_kernel():
    """The bracket's double backward needs plain attention ops: they must compute the same."""
    model = _model().eval()
    x = torch.randint(0, VOCAB_SIZE, (2, CFG.seq_len), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        fused = model(x)
        model.set_explicit_attention(True)
        plain = model(x)
    assert torch.allclose(fused, plain, atol=1e-5)


def test_the_generator_alone_decides_the_initial_weights():
    a, b, c = _model(0), _model(0), _model(1)
    pa, pb, pc = (torch.cat([p.flatten() for p in m.parameters()]) for m in (a, b, c))
    assert torch.equal(pa, pb) and not torch.equal(pa, pc)
