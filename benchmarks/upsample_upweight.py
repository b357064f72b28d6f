"""Upsample or upweight? The same temperature mixture applied to the batch or to the loss.

Li et al. (2025) prove that sampling domain i with probability p_i(T) (upsampling) and
sampling proportionally while weighting domain i's loss by p_i(T) / p_i(1) (upweighting, or
scalarization) have the same expected gradient, and that upweighting's gradient has the larger
variance (their Theorem 2), so upsampling converges faster; they also find it overfits the small
domains sooner. This script trains both on the experiment's proxy (popmix's ``train.apply:
sample`` against ``train.apply: loss`` with ``train.loss_base: proportional``) at the same
temperature, on the same seeds, and prints per mode:

- the gradient-norm spread: the standard deviation of the per-step gradient norm (before
  clipping) within each report's steps, pooled over the run (``grad_norm_std_pooled``,
  :mod:`popmix.train.health`): the paper's variance of mini-batch gradient norms;
- the mean validation loss at a quarter, half and all of the steps (convergence);
- the final mean test perplexity over all domains and, where the data has groups
  (multilingual: high- and low-resource), over each group;

and the paired difference sample - loss of each with its 95% interval over seeds.

    python benchmarks/upsample_upweight.py [--experiment experiments/cooldown_multilingual.yaml]
        [--temperature 5] [--seeds 3] [--workers 2] [KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from popmix._util.stats import mean_ci, paired
from popmix.config import load_experiment
from popmix.data import load_experiment_domains
from popmix.data.domains import domain_groups
from popmix.policies import build_policy
from popmix.train import run_training

ROOT = Path(__file__).resolve().parents[1]
MODES = {"sample": {"apply": "sample"}, "loss": {"apply": "loss", "loss_base": "proportional"}}


def run_mode(experiment: str, overrides: list[str], mode: str, t: float, seed: int) -> dict:
    exp = load_experiment(experiment, overrides)
    d = exp.data
    domains = load_experiment_domains(exp)
    cfg = dataclasses.replace(
        exp.train, seed=seed, threads=1, eval_interval=exp.search.report_every, **MODES[mode]
    )
    policy = build_policy("temperature", domains.sizes, cfg.steps, {"temperature": t}, seed)
    r = run_training(domains, policy, exp.model, cfg)
    by_step = {h["step"]: h["val_mean_loss"] for h in r["history"]}
    groups: dict[str, list[str]] = {}
    for name, group in domain_groups(domains, d.groups).items():
        groups.setdefault(group, []).append(name)
    return {
        "mode": mode,
        "seed": seed,
        "grad_norm_std_pooled": r["grad_norm_std_pooled"],
        "val": {
            q: by_step[min(by_step, key=lambda s: abs(s - q * cfg.steps))]
            for q in (0.25, 0.5, 1.0)
        },
        "test_mean_ppl": r["test_mean_ppl"],
        "groups": {
            g: float(np.mean([r["test_ppl"][n] for n in names])) for g, names in groups.items()
        },
        "wall_time_s": r["wall_time_s"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--experiment", default=str(ROOT / "experiments" / "cooldown_multilingual.yaml")
    )
    p.add_argument("--temperature", type=float, default=5.0)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("overrides", nargs="*")
    args = p.parse_args()
    start = time.time()
    jobs = [(m, s) for s in range(args.seeds) for m in MODES]
    with ProcessPoolExecutor(args.workers) as pool:
        futures = [
            pool.submit(run_mode, args.experiment, args.overrides, m, args.temperature, s)
            for m, s in jobs
        ]
        results = [f.result() for f in futures]
    for r in results:
        print(
            f"{r['mode']:<7} seed {r['seed']}: grad-norm spread {r['grad_norm_std_pooled']:.4f}  "
            f"val loss {r['val'][0.25]:.4f} / {r['val'][0.5]:.4f} / {r['val'][1.0]:.4f}  "
            f"test ppl {r['test_mean_ppl']:.3f}  "
            + "  ".join(f"{g} {v:.3f}" for g, v in r["groups"].items())
            + f"  ({r['wall_time_s']:.0f} s)"
        )
    rows = [
        ("grad-norm spread", lambda r: r["grad_norm_std_pooled"], ".4f"),
        ("val loss at 25%", lambda r: r["val"][0.25], ".4f"),
        ("val loss at 50%", lambda r: r["val"][0.5], ".4f"),
        ("val loss at 100%", lambda r: r["val"][1.0], ".4f"),
        ("test mean ppl", lambda r: r["test_mean_ppl"], ".3f"),
    ]
    for g in results[0]["groups"]:
        rows.append((f"test ppl, {g}", lambda r, g=g: r["groups"][g], ".3f"))
    by = {(r["mode"], r["seed"]): r for r in results}
    seeds = range(args.seeds)
    print(
        f"\nT = {args.temperature:g}, {args.seeds} seeds, {args.experiment} "
        f"{' '.join(args.overrides)} ({time.time() - start:.0f} s)"
    )
    print(f"{'':<20}{'upsample (sample)':>24}{'upweight (loss)':>24}   sample - loss [95%]")
    for label, get, spec in rows:
        cells = []
        for mode in MODES:
            s = mean_ci([get(by[(mode, seed)]) for seed in seeds])
            cells.append(f"{s['mean']:{spec}} ± {s['std'] or 0:{spec}}")
        d = paired([get(by[("sample", s)]) for s in seeds], [get(by[("loss", s)]) for s in seeds])
        ci = "" if d["ci95"] is None else f" [{d['ci95'][0]:+{spec}}, {d['ci95'][1]:+{spec}}]"
        print(f"{label:<20}{cells[0]:>24}{cells[1]:>24}   {d['diff_mean']:+{spec}}{ci}")


if __name__ == "__main__":
    main()
