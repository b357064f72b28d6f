"""Cost of popmix's shared training loop over a bare PyTorch loop (goal: at most 1.05x).

Same model, same data (brown16), same batch size and sequence length, same optimizer, in one
process. Blocks of steps alternate between the two loops so that machine noise hits both alike;
the figure is the ratio of median per-step times.

    python benchmarks/loop_overhead.py [--tasks 16] [--blocks 8] [--steps-per-block 25]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from _bare_loop import bare_steps

from popmix.data import load_domains
from popmix.policies import build_policy
from popmix.train import ModelConfig, TrainConfig, Trainer
from popmix.train.model import TinyGPT


def bare_loop(domains, model_cfg, cfg, weights, seed=0):
    """The minimum any trainer does: draw, forward, backward, clip, AdamW, cosine LR."""
    model = TinyGPT(model_cfg, torch.Generator().manual_seed(seed))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.95), weight_decay=0.1)
    return bare_steps(model, opt, model, domains, model_cfg.seq_len, cfg, weights, seed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=16)
    ap.add_argument("--blocks", type=int, default=8)
    ap.add_argument("--steps-per-block", type=int, default=25)
    args = ap.parse_args()

    domains = load_domains("brown16", args.tasks)
    model_cfg = ModelConfig()
    total = args.blocks * args.steps_per_block + 10
    cfg = TrainConfig(steps=total, eval_interval=0)
    policy = build_policy("temperature", domains.sizes, total, {"temperature": 3.0})
    trainer = Trainer(domains, policy, model_cfg, cfg)
    bare = bare_loop(domains, model_cfg, cfg, policy.weights(0))
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"model {sum(p.numel() for p in trainer.model.parameters())} parameters, "
        f"batch {cfg.batch_size} x {model_cfg.seq_len}, {len(domains)} domains"
    )

    trainer.train(5)  # warm-up both (allocator, kernels)
    bare(5)
    t_loop, t_bare = [], []
    for _ in range(args.blocks):
        t0 = time.perf_counter()
        trainer.train(args.steps_per_block)
        t_loop.append((time.perf_counter() - t0) / args.steps_per_block)
        t0 = time.perf_counter()
        bare(args.steps_per_block)
        t_bare.append((time.perf_counter() - t0) / args.steps_per_block)
    loop_ms = 1000 * statistics.median(t_loop)
    bare_ms = 1000 * statistics.median(t_bare)
    print(f"popmix loop: {loop_ms:.2f} ms/step   bare PyTorch loop: {bare_ms:.2f} ms/step")
    print(f"ratio popmix/bare: {loop_ms / bare_ms:.3f}  (goal <= 1.05)")


if __name__ == "__main__":
    main()
