"""The bare PyTorch loop that the step-time benchmarks time popmix's Trainer against.

Not a benchmark itself: ``loop_overhead.py`` and ``hf_step_time.py`` import it (``benchmarks/``
is on ``sys.path`` when they run as ``python benchmarks/X.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F


def bare_steps(
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    logits_of: Callable[[torch.Tensor], torch.Tensor],
    domains,
    seq_len: int,
    cfg,
    weights,
    seed: int,
    device: torch.device | None = None,
) -> Callable[[int], None]:
    """``run(n)``: ``n`` steps of draw, forward (``logits_of`` of the input ids), cross-entropy,
    backward, clip, ``opt``, cosine LR, continuing from the steps already run."""
    rng = np.random.default_rng(seed)
    trains = [d.train for d in domains]
    window = np.arange(seq_len + 1)
    step = 0

    def run(n: int) -> None:
        nonlocal step
        for _ in range(n):
            ids = rng.choice(len(trains), size=cfg.batch_size, p=weights)
            x = np.stack(
                [trains[i][rng.integers(0, trains[i].size - seq_len) + window] for i in ids]
            ).astype(np.int64)
            x = torch.from_numpy(x)
            if device is not None:
                x = x.to(device)
            lr = cfg.lr * 0.5 * (1 + math.cos(math.pi * step / cfg.steps))
            for g in opt.param_groups:
                g["lr"] = lr
            logits = logits_of(x[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            step += 1

    return run
