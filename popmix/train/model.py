"""A small byte-level decoder-only transformer (the proxy model every method trains)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from popmix.config import ModelConfig
from popmix.data.domains import VOCAB_SIZE


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_head = cfg.n_head
        self.explicit_attention = False
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.fc = nn.Linear(cfg.d_model, 4 * cfg.d_model)
        self.out = nn.Linear(4 * cfg.d_model, cfg.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2) for z in (q, k, v))
        if self.explicit_attention:
            # Plain ops, which support the double backward of the bracket's Hessian-vector
            # products (the fused kernel does not); same result up to float rounding.
            att = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
            mask = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
            y = att.masked_fill(~mask, float("-inf")).softmax(dim=-1) @ v
        else:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, c))
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class TinyGPT(nn.Module):
    """Pre-LayerNorm GPT over token ids (bytes of text by default), with tied input/output
    embeddings and no dropout.

    No dropout on purpose: dropout draws from torch's global generator, which would make a
    restored trial diverge from the uninterrupted one.
    """

    def __init__(self, cfg: ModelConfig, generator: torch.Generator | None = None) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        # null: bytes of text; a pre-tokenized corpus's Trainer fills it in (check_vocab)
        self.vocab_size = VOCAB_SIZE if cfg.vocab_size is None else cfg.vocab_size
        self.tok = nn.Embedding(self.vocab_size, cfg.d_model)
        self.pos = nn.Embedding(cfg.seq_len, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.reset_parameters(generator)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None) -> None:
        # GPT-2 initialisation, drawn from an explicit generator so a seed fixes the model.
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                p.zero_()
            elif "ln" in name:
                p.fill_(1.0)
            else:
                std = 0.02
                if name.endswith(("proj.weight", "out.weight")):
                    std /= math.sqrt(2 * self.cfg.n_layer)  # residual branches
                p.normal_(0.0, std, generator=generator)

    def set_explicit_attention(self, on: bool) -> None:
        """Use plain matmul attention (for the bracket's double backward)."""
        for block in self.blocks:
            assert isinstance(block, Block)
            block.explicit_attention = on

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Logits of shape (B, T, vocab_size) for token ids ``idx`` of shape (B, T)."""
        t = idx.shape[1]
        x = self.tok(idx) + self.pos(torch.arange(t, device=idx.device))
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x) @ self.tok.weight.T

    def example_losses(self, tokens: torch.Tensor) -> torch.Tensor:
        """Mean next-token cross-entropy (nats) of each window: shape (B,) for tokens (B, T+1)."""
        return self.token_losses(tokens).mean(dim=1)

    def token_losses(self, tokens: torch.Tensor) -> torch.Tensor:
        """Next-token cross-entropy (nats) of every position: shape (B, T) for tokens (B, T+1)."""
        logits = self(tokens[:, :-1])
        if logits.dtype not in (torch.float32, torch.float64):
            logits = logits.float()  # half-precision logits: the loss in float32
        tok_loss = F.cross_entropy(
            logits.reshape(-1, self.vocab_size), tokens[:, 1:].reshape(-1), reduction="none"
        )
        return tok_loss.view(tokens.shape[0], -1)
