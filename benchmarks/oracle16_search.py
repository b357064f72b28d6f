"""The oracle of the oracle16 benchmark: the best static mixture for its proxy, found once with
many proxy runs and written to ``popmix/data/assets/oracle16_oracle.json`` (shipped).

The search runs over one weight per *kind* of domain (noise, easy, related, rich, tiny; within a
kind every domain gets the same share): the domains of a kind are drawn from one process and
differ only by their draw, so a mixture that treats them alike loses little, and five numbers
are a space that a few dozen runs cover, where 16 are not.

1. **Explore** (seed 0): Optuna's TPE sampler proposes ``--trials`` mixtures (a log-weight per
   kind in [-6, 0], normalised), after three enqueued ones: stratified, proportional and a
   hand-made guess. Each is one proxy run of ``experiments/oracle16.yaml`` with fixed weights;
   the score is the mean test loss over the 16 domains.
2. **Refine** (seed 0): ``--refine`` more mixtures, ``--workers`` at a time, each the best so
   far with every log-weight moved by a normal step of sd 0.3 (a (1 + lambda) evolution
   strategy): TPE finds the region, this walks to its bottom.
3. **Confirm**: the ``--top`` best of step 1 and stratified are rerun on seeds 1 and 2 (seed 0
   is kept). The oracle is the candidate with the lowest mean over the three seeds.

    python benchmarks/oracle16_search.py [--trials 40] [--refine 16] [--top 4] [--workers 2]
        [--out FILE]

Prints every run and the final table; the JSON holds the oracle's weights, its mean test loss
over seeds 0-2 with each seed's, the proxy it holds for and the search's own record.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from popmix.config import load_experiment
from popmix.data import load_domains
from popmix.data.oracle16 import KINDS, ORACLE_ASSET
from popmix.policies import build_policy
from popmix.train import run_training

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = ROOT / "experiments" / "oracle16.yaml"
SEEDS = (0, 1, 2)


def kind_weights_to_domains(kind_weights: dict[str, float]) -> list[float]:
    """Per-domain weights (benchmark order) from one weight per kind, shared within a kind."""
    total = sum(kind_weights.values())
    out = []
    for kind, count, *_ in KINDS:
        out += [kind_weights[kind] / total / count] * count
    return out


def run_once(weights: list[float], seed: int) -> dict:
    """One proxy run of the experiment with fixed ``weights`` on ``seed`` (one thread)."""
    exp = load_experiment(str(EXPERIMENT))
    domains = load_domains(exp.data.benchmark, exp.data.tasks, seed=exp.data.seed)
    cfg = dataclasses.replace(exp.train, seed=seed, threads=1)
    policy = build_policy("fixed", domains.sizes, cfg.steps, {"weights": list(weights)}, seed)
    r = run_training(domains, policy, exp.model, cfg)
    return {"seed": seed, "test_mean_loss": r["test_mean_loss"], "test_loss": r["test_loss"]}


def main() -> None:
    import optuna

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=40, help="explored mixtures (seed 0)")
    p.add_argument("--refine", type=int, default=16, help="local steps around the best")
    p.add_argument("--top", type=int, default=4, help="candidates confirmed on seeds 1, 2")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", default=str(ROOT / "popmix" / "data" / "assets" / ORACLE_ASSET))
    args = p.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    exp = load_experiment(str(EXPERIMENT))
    domains = load_domains(exp.data.benchmark, exp.data.tasks, seed=exp.data.seed)
    kinds = [k[0] for k in KINDS]
    sizes = {k: float(s * c) for k, c, _, s, *_ in KINDS}
    start = time.time()

    sampler = optuna.samplers.TPESampler(seed=0, n_startup_trials=10, multivariate=True)
    study = optuna.create_study(direction="minimize", sampler=sampler)
    enqueued = {
        "stratified": {k: float(c) for k, c, *_ in KINDS},
        "proportional": sizes,
        "guess": {"noise": 0.04, "easy": 0.08, "related": 0.28, "rich": 0.48, "tiny": 0.12},
    }
    for kw in enqueued.values():
        total = sum(kw.values())
        study.enqueue_trial({f"log_{k}": math.log(kw[k] / total) for k in kinds})
    explored: list[dict] = []
    with ProcessPoolExecutor(args.workers) as pool:
        while len(explored) < args.trials:
            batch = [study.ask() for _ in range(min(args.workers, args.trials - len(explored)))]
            mixes = []
            for trial in batch:
                kw = {k: math.exp(trial.suggest_float(f"log_{k}", -6.0, 0.0)) for k in kinds}
                total = sum(kw.values())
                mixes.append({k: v / total for k, v in kw.items()})
            futures = [pool.submit(run_once, kind_weights_to_domains(m), 0) for m in mixes]
            for trial, mix, fut in zip(batch, mixes, futures):
                r = fut.result()
                study.tell(trial, r["test_mean_loss"])
                explored.append({"kind_weights": mix, "runs": [r]})
                shares = " ".join(f"{k} {v:.3f}" for k, v in mix.items())
                print(
                    f"[{time.time() - start:6.0f}s] explore {len(explored):>3}: "
                    f"mean test loss {r['test_mean_loss']:.4f}  ({shares})",
                    flush=True,
                )
        rng = np.random.default_rng(0)
        refined = 0
        while refined < args.refine:
            best_so_far = min(explored, key=lambda e: e["runs"][0]["test_mean_loss"])
            centre = np.log([best_so_far["kind_weights"][k] for k in kinds])
            mixes = []
            for _ in range(min(args.workers, args.refine - refined)):
                w = np.exp(centre + rng.normal(0.0, 0.3, size=len(kinds)))
                mixes.append({k: float(v) for k, v in zip(kinds, w / w.sum())})
            futures = [pool.submit(run_once, kind_weights_to_domains(m), 0) for m in mixes]
            for mix, fut in zip(mixes, futures):
                r = fut.result()
                refined += 1
                explored.append({"kind_weights": mix, "runs": [r], "refine": True})
                shares = " ".join(f"{k} {v:.3f}" for k, v in mix.items())
                print(
                    f"[{time.time() - start:6.0f}s] refine {refined:>3}: "
                    f"mean test loss {r['test_mean_loss']:.4f}  ({shares})",
                    flush=True,
                )
        ranked = sorted(explored, key=lambda e: e["runs"][0]["test_mean_loss"])
        candidates = ranked[: args.top]
        strat = explored[0]  # the first enqueued: stratified
        if strat not in candidates:
            candidates.append(strat)
        jobs = [(c, s) for c in candidates for s in SEEDS[1:]]
        futures = [
            pool.submit(run_once, kind_weights_to_domains(c["kind_weights"]), s) for c, s in jobs
        ]
        for (c, s), fut in zip(jobs, futures):
            c["runs"].append(fut.result())
            loss = c["runs"][-1]["test_mean_loss"]
            print(f"[{time.time() - start:6.0f}s] confirm seed {s}: {loss:.4f}", flush=True)

    def mean(c: dict) -> float:
        return statistics.fmean(r["test_mean_loss"] for r in c["runs"])

    best = min(candidates, key=mean)
    print("\ncandidate mixtures on seeds 0, 1, 2 (mean test loss):")
    for c in sorted(candidates, key=mean):
        label = "stratified" if c is strat else "oracle" if c is best else ""
        per_seed = " / ".join(f"{r['test_mean_loss']:.4f}" for r in c["runs"])
        shares = " ".join(f"{k} {v:.3f}" for k, v in c["kind_weights"].items())
        print(f"  {mean(c):.4f}  ({per_seed})  {shares}  {label}")
    gap = mean(strat) - mean(best)
    std = statistics.stdev(r["test_mean_loss"] for r in best["runs"])
    print(
        f"\noracle - stratified: {-gap:+.4f} nats of mean test loss; the oracle's seed std "
        f"{std:.4f} ({gap / std if std else float('inf'):.1f} stds); {time.time() - start:.0f} s"
    )
    names = domains.names
    weights = kind_weights_to_domains(best["kind_weights"])
    record = {
        "benchmark": "oracle16",
        "weights": dict(zip(names, weights)),
        "kind_weights": best["kind_weights"],
        "test_mean_loss": mean(best),
        "seeds": list(SEEDS),
        "per_seed": [r["test_mean_loss"] for r in best["runs"]],
        "std": std,
        "test_loss": {n: statistics.fmean(r["test_loss"][n] for r in best["runs"]) for n in names},
        "stratified": {
            "test_mean_loss": mean(strat),
            "per_seed": [r["test_mean_loss"] for r in strat["runs"]],
        },
        # the oracle holds for this proxy (popmix checks a search's settings against it)
        "proxy": {
            "data": {"benchmark": "oracle16", "seed": exp.data.seed},
            "model": dataclasses.asdict(exp.model),
            "train": {
                k: getattr(exp.train, k)
                for k in ("steps", "batch_size", "lr", "warmup", "test_windows")
            },
        },
        "search": {
            "command": "python benchmarks/oracle16_search.py "
            f"--trials {args.trials} --refine {args.refine} --top {args.top}",
            "space": "one log-weight per kind in [-6, 0], normalised; equal within a kind",
            "sampler": "Optuna TPE (seed 0, multivariate, 10 startup trials), stratified, "
            "proportional and a guess enqueued first; then a (1 + lambda) evolution strategy "
            "around the best (log-weight steps of sd 0.3)",
            "explored": [
                {
                    "kind_weights": e["kind_weights"],
                    "test_mean_loss": e["runs"][0]["test_mean_loss"],
                    "stage": "refine" if e.get("refine") else "explore",
                }
                for e in explored
            ],
            "wall_time_s": time.time() - start,
        },
    }
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")
    assert np.isclose(sum(weights), 1.0)


if __name__ == "__main__":
    main()
