"""A trainer of your own for popmix: a byte-level GRU language model with its own step.

popmix draws every batch for the mixture being searched, hands it to ``train_step`` with each
example's loss weight and the learning rate of the step, and evaluates every domain through
``eval_losses``; PBT, the baselines, checkpoints and logging are popmix's. Run it with

    popmix run --experiment examples/own_model/custom.yaml
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from popmix.train import ProxySetup, ProxyTrainer, TrainBatch


class ByteGRU(nn.Module):
    """Embedding, a GRU, and a linear head over the vocabulary."""

    def __init__(self, vocab_size: int, width: int, layers: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, width)
        self.rnn = nn.GRU(width, width, num_layers=layers, batch_first=True)
        self.head = nn.Linear(width, vocab_size)

    def window_losses(self, tokens: torch.Tensor) -> torch.Tensor:
        """Each window's mean next-token cross-entropy, shape (B,) for tokens (B, T+1)."""
        hidden, _ = self.rnn(self.embed(tokens[:, :-1]))
        logits = self.head(hidden)
        loss = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1), reduction="none"
        )
        return loss.view(tokens.shape[0], -1).mean(dim=1)


class GRUTrainer(ProxyTrainer):
    """``model: {custom: examples/own_model/trainer.py:GRUTrainer, custom_args: {width: 64}}``"""

    def __init__(self, setup: ProxySetup) -> None:
        super().__init__(setup)
        args = {"width": 64, "layers": 1, **setup.args}
        # The run's seed fixes the initial weights; the caller's random stream is left alone.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(setup.seed)
            self.model = ByteGRU(setup.vocab_size, args["width"], args["layers"])
        self.model.to(setup.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=setup.lr)

    def train_step(self, batch: TrainBatch) -> tuple[torch.Tensor, torch.Tensor]:
        for group in self.optimizer.param_groups:
            group["lr"] = batch.lr  # popmix's warm-up and cosine decay
        losses = self.model.window_losses(batch.tokens)
        self.optimizer.zero_grad(set_to_none=True)
        # the mixture's loss weights (1 everywhere when it shapes the batch instead)
        (losses * batch.example_weight).mean().backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.setup.grad_clip)
        self.optimizer.step()
        return losses.detach(), grad_norm

    def eval_losses(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.model.window_losses(tokens)
