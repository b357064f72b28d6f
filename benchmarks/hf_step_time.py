"""Step time of a tiny ``transformers`` causal LM trained through popmix against a bare loop.

The same model (GPT-2 or Llama config, 2 layers, width 128, byte vocabulary, random init from
the same seed) trains in popmix's :class:`Trainer` (``model.hf_config``: sampler, policy,
per-domain loss sums, health record) and in a bare PyTorch loop (draw windows, forward through
``transformers``, cross-entropy, backward, clip, AdamW with popmix's decay groups, cosine LR),
at the same batch size and sequence length, in one process. Blocks of steps alternate between
the two loops so machine noise hits both alike; the figure is the ratio of median per-step
times, measured in the same run.

    python benchmarks/hf_step_time.py [--arch gpt2|llama] [--tasks 16] [--blocks 8]
        [--steps-per-block 20] [--batch-size 16] [--seq-len 128] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from _bare_loop import bare_steps

from popmix.config import ModelConfig, TrainConfig
from popmix.data import load_domains
from popmix.policies import build_policy
from popmix.train import Trainer
from popmix.train.hf_model import HFCausalLM

CONFIGS = {
    "gpt2": {"model_type": "gpt2", "n_layer": 2, "n_head": 4, "n_embd": 128, "n_positions": 256},
    "llama": {
        "model_type": "llama",
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "hidden_size": 128,
        "intermediate_size": 512,
        "max_position_embeddings": 256,
    },
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_loop(domains, model_cfg, cfg, weights, device, seed):
    """What any trainer of this model does: draw, forward, backward, clip, AdamW, cosine LR."""
    model = HFCausalLM(model_cfg, 256, seed).to(device).hf
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=cfg.lr,
        betas=(0.9, 0.95),
    )

    def logits_of(x: torch.Tensor) -> torch.Tensor:
        return model(input_ids=x, use_cache=False).logits

    return bare_steps(
        model, opt, logits_of, domains, model_cfg.seq_len, cfg, weights, seed, device
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", choices=sorted(CONFIGS), default="gpt2")
    ap.add_argument("--tasks", type=int, default=16)
    ap.add_argument("--blocks", type=int, default=8)
    ap.add_argument("--steps-per-block", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    device = torch.device(args.device)
    domains = load_domains("brown16", args.tasks)
    model_cfg = ModelConfig(seq_len=args.seq_len, hf_config=CONFIGS[args.arch])
    total = args.blocks * args.steps_per_block + 10
    # fp32 in both loops (train.precision auto would be bf16 autocast on a GPU)
    cfg = TrainConfig(
        steps=total,
        batch_size=args.batch_size,
        eval_interval=0,
        device=args.device,
        precision="fp32",
    )
    policy = build_policy("temperature", domains.sizes, total, {"temperature": 3.0})
    trainer = Trainer(domains, policy, model_cfg, cfg)
    bare = bare_loop(domains, model_cfg, cfg, policy.weights(0), device, cfg.seed)
    print(
        f"transformers {args.arch}, torch {torch.__version__}, {torch.get_num_threads()} "
        f"threads, {device}, model {sum(p.numel() for p in trainer.model.parameters())} "
        f"parameters, batch {cfg.batch_size} x {model_cfg.seq_len}, {len(domains)} domains"
    )

    trainer.train(5)  # warm-up both (allocator, kernels)
    bare(5)
    sync(device)
    t_loop, t_bare = [], []
    for _ in range(args.blocks):
        t0 = time.perf_counter()
        trainer.train(args.steps_per_block)
        trainer.pop_train_losses()  # a report's reads, once per block
        trainer.pop_health()
        sync(device)
        t_loop.append((time.perf_counter() - t0) / args.steps_per_block)
        t0 = time.perf_counter()
        bare(args.steps_per_block)
        sync(device)
        t_bare.append((time.perf_counter() - t0) / args.steps_per_block)
    loop_ms = 1000 * statistics.median(t_loop)
    bare_ms = 1000 * statistics.median(t_bare)
    print(f"popmix Trainer: {loop_ms:.2f} ms/step   bare PyTorch loop: {bare_ms:.2f} ms/step")
    print(f"ratio popmix/bare: {loop_ms / bare_ms:.3f}")


if __name__ == "__main__":
    main()
