"""Step-time cost of DoGE and Aioli over a plain step, at 16 domains (brown16).

DoGE's goal: at most 1.5x a plain step (the reference re-implementation's k+1 full backward
passes cost about 1 + 2(k+1)/3 x, i.e. about 12x at k = 16). Aioli's cost is its evaluations:
(k * lp_rounds + 1) per round, printed per round and as a share of the round's time.
Blocks of steps alternate between methods so machine noise hits all alike.

    python benchmarks/doge_aioli_overhead.py [--tasks 16] [--blocks 5] [--steps-per-block 10]
"""

from __future__ import annotations

import argparse
import statistics
import time

from popmix.data import load_domains
from popmix.policies import build_policy
from popmix.train import ModelConfig, TrainConfig, Trainer


def make(domains, method, params, steps, apply="sample"):
    cfg = TrainConfig(steps=steps, eval_interval=0, apply=apply, eval_windows=8)
    return Trainer(domains, build_policy(method, domains.sizes, steps, params), ModelConfig(), cfg)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=16)
    ap.add_argument("--blocks", type=int, default=5)
    ap.add_argument("--steps-per-block", type=int, default=10)
    args = ap.parse_args()
    domains = load_domains("brown16", args.tasks)
    k = len(domains)
    total = args.blocks * args.steps_per_block + 5
    runs = {
        "plain (stratified batches)": make(domains, "stratified", {}, total, apply="loss"),
        "doge, target others": make(domains, "doge", {"target": "others"}, total),
        "doge, target validation": make(domains, "doge", {"target": "validation"}, total),
    }
    for t in runs.values():
        t.train(2)
    times = {name: [] for name in runs}
    for _ in range(args.blocks):
        for name, t in runs.items():
            t0 = time.perf_counter()
            t.train(args.steps_per_block)
            times[name].append((time.perf_counter() - t0) / args.steps_per_block)
    plain = statistics.median(times["plain (stratified batches)"])
    print(
        f"{k} domains, batch {runs['doge, target others'].cfg.batch_size} x "
        f"{runs['doge, target others'].model_cfg.seq_len}"
    )
    for name, ts in times.items():
        ms = 1000 * statistics.median(ts)
        print(f"  {name:<28} {ms:7.1f} ms/step   {ms / 1000 / plain:5.2f}x plain")
    print(f"  reference design estimate (k+1 full backwards): {1 + 2 * (k + 1) / 3:.1f}x plain")

    # Aioli: one round = LearnParams (lp_rounds * k * lp_steps steps) + exploitation steps.
    params = {"eta": 0.2, "lp_rounds": 1, "lp_steps": 2, "update_steps": 3 * k, "eval_windows": 8}
    steps = params["update_steps"]
    aioli = make(domains, "aioli", params, steps + 1)
    static = make(domains, "stratified", {}, steps + 1)
    aioli.train(1)  # warm-up; its first round starts at step 0 (the start evaluation)
    static.train(1)
    t0 = time.perf_counter()
    static.train(steps)
    t_static = time.perf_counter() - t0
    t0 = time.perf_counter()
    aioli.train(steps)
    t_aioli = time.perf_counter() - t0
    evals = aioli.policy.evals
    print(
        f"aioli round of {steps} steps (LearnParams {aioli.policy.lp_duration} steps, "
        f"{evals} evaluations of {params['eval_windows']} windows x {k} domains):"
    )
    print(
        f"  {t_aioli:.1f} s vs {t_static:.1f} s for the same steps without Aioli: "
        f"+{t_aioli - t_static:.1f} s per round ({t_aioli / t_static:.2f}x); "
        f"counted extra work {aioli.extra_step_equivalents():.1f} step-equivalents"
    )


if __name__ == "__main__":
    main()
