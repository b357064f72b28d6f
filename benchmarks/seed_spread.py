"""How noisy is the proxy? The spread over seeds of one method's mean test perplexity.

Trains S seeds of each method with the experiment's proxy (file, then ``KEY=VALUE`` overrides,
exactly as ``popmix run`` reads them) one after another, and prints per method the mean, the
standard deviation (and its share of the mean: the shipped proxies aim at 1% or less), min, max,
the seeds that split off into a cluster of their own (popmix._util.stats.split_seeds) and
the loss spikes. ``popmix calibrate`` measures the
same as Tune trials, with intervals; this script runs the seeds one after another in one
process, for a figure without Ray.

    python benchmarks/seed_spread.py [--experiment FILE] [--seeds 5] \\
        [--methods stratified,proportional] [--threads 2] [KEY=VALUE ...]

e.g. the warm-up comparison of docs/benchmarks/proxy-noise.md: ``... data.tasks=16
train.warmup_steps=20`` against ``... data.tasks=16`` (the default warm-up, 20% of the steps),
both at the default 1000 steps.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time

from popmix._util.stats import split_seeds
from popmix.config import load_experiment
from popmix.data import load_experiment_domains
from popmix.policies import build_policy
from popmix.train import run_training


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--experiment")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--methods", default="stratified,proportional")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("overrides", nargs="*")
    args = p.parse_args()
    exp = load_experiment(args.experiment, args.overrides)
    domains = load_experiment_domains(exp)
    domains.check(exp.model.seq_len + 1)
    print(
        f"{domains.name}: {len(domains)} domains, {exp.train.steps} steps, warm-up "
        f"{exp.train.warmup} steps, lr {exp.train.lr}, {args.seeds} seeds"
    )
    rows = {}
    for method in [m.strip() for m in args.methods.split(",") if m.strip()]:
        values, spikes = [], 0
        for seed in range(args.seeds):
            cfg = dataclasses.replace(exp.train, seed=seed, threads=args.threads)
            policy = build_policy(
                method, domains.sizes, cfg.steps, exp.method_params(method), seed
            )
            start = time.perf_counter()
            result = run_training(domains, policy, exp.model, cfg)
            values.append(result["test_mean_ppl"])
            spikes += result["loss_spikes"]
            print(
                f"  {method:<13} seed {seed}: test mean ppl {values[-1]:.3f} "
                f"({time.perf_counter() - start:.0f} s)",
                flush=True,
            )
        mean, std = statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0
        split = split_seeds(values)
        rows[method] = dict(
            mean=mean, std=std, min=min(values), max=max(values), values=values, split=split
        )
        print(
            f"{method:<13} mean {mean:.3f}  std {std:.3f} ({100 * std / mean:.2f}% of the mean)  "
            f"min {min(values):.3f}  max {max(values):.3f}  split-off seeds: {split or 'none'}  "
            f"loss spikes: {spikes}"
        )
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
