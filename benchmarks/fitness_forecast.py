"""How well does each PBT fitness rule, read part way through a run, rank mixtures as the end
of the run does?

A PBT round keeps the members its fitness ranks first; it helps only if that ranking agrees
with the ranking at the end of training. This takes every finished run of a method whose
mixture is its own (not a PBT member, whose mixture changes as it is copied, nor best-of-n's
draws, stratified on other seeds) from search folders, and the ``popmix run`` outputs under
other folders (``benchmarks/transfer.py --keep`` writes them), groups them by seed (each seed's
runs share their validation windows), and prints, for each report step before the last and
each rule of :mod:`popmix.tune.fitness` computed from the reads up to that step, two
agreements with the runs' validation objective at the last step, averaged over seeds:
Spearman's rank correlation (1: the same order; 0: none; negative: reversed) and the share of
pairs of runs the fitness orders as the end does.

    python benchmarks/fitness_forecast.py DIR [DIR ...]

Runs of different lengths are refused. A run found twice (the same seed's stratified in two
searches) counts once.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from popmix.records.trial import TrialSpec
from popmix.tune.fitness import FITNESS_RULES, fitness_of

Curves = dict[int, list[tuple[str, dict[int, float]]]]


#: best-of-n's draws are stratified trained on other seeds: one mixture, not several to order
SAME_MIXTURE = {"best-of-n"}


def static_curves(folders: list[Path]) -> tuple[int, Curves]:
    """The run length and each seed's runs (method, validation objective by step): the
    finished trials of search folders (and of their ``popmix confirm``) that are not PBT
    members, and the ``popmix run`` outputs (a ``result.json`` with its ``history``) found
    under the other folders, read on their mean validation loss (the default objective)."""
    runs: list[tuple[int, int, str, dict[int, float]]] = []  # (length, seed, method, curve)
    for folder in folders:
        summary = folder / "summary.json"
        if summary.exists():
            horizon = json.loads(summary.read_text())["steps_per_model"]
            trials = [*folder.glob("seed*/*/params.json"), *folder.glob("confirm/*/params.json")]
            for params in sorted(trials):
                spec = TrialSpec.from_config(json.loads(params.read_text()))
                results = params.parent / "result.json"
                if spec.is_member or spec.method in SAME_MIXTURE or not results.exists():
                    continue
                rows = [json.loads(x) for x in results.read_text().splitlines() if x.strip()]
                curve = {int(r["step"]): float(r["objective"]) for r in rows if "objective" in r}
                runs.append((horizon, spec.seed, spec.method, curve))
            continue
        for result in sorted(folder.rglob("result.json")):
            try:
                run = json.loads(result.read_text())
            except json.JSONDecodeError:
                continue  # a trial's rows (JSON lines), not a run's result
            if not isinstance(run, dict) or "history" not in run:
                continue
            curve = {int(h["step"]): float(h["val_mean_loss"]) for h in run["history"]}
            name = f"{result.parent.name} ({run['method']})"
            runs.append((int(run["steps"]), int(run["train_config"]["seed"]), name, curve))
    lengths = {length for length, *_ in runs}
    if len(lengths) > 1:
        sys.exit(f"the runs end at different steps ({sorted(lengths)}); give one kind")
    seen: set[tuple[int, tuple[float, ...]]] = set()
    by_seed: Curves = {}
    for horizon, seed, method, curve in runs:
        key = (seed, tuple(round(curve[t], 5) for t in sorted(curve)))
        if curve.get(horizon) is None or key in seen:
            continue  # unfinished, or a run found twice (one seed's stratified in two folders)
        seen.add(key)
        by_seed.setdefault(seed, []).append((method, curve))
    return (lengths.pop() if lengths else 0), by_seed


def spearman(a: list[float], b: list[float]) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def pairs_agreeing(a: list[float], b: list[float]) -> float:
    n = len(a)
    same = [(a[i] - a[j]) * (b[i] - b[j]) > 0 for i in range(n) for j in range(i + 1, n)]
    return float(np.mean(same))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folders", nargs="+", type=Path, metavar="DIR")
    ap.add_argument("--fitness-reads", type=int, default=3, help="reads `average` averages")
    args = ap.parse_args(argv)
    horizon, by_seed = static_curves(args.folders)
    by_seed = {s: c for s, c in by_seed.items() if len(c) >= 3}
    if not by_seed:
        sys.exit("no seed has three finished runs of a fixed method in these folders")
    for seed, runs in sorted(by_seed.items()):
        names = sorted({m for m, _ in runs})
        counts = ", ".join(
            f"{m} x{n}" if (n := sum(x == m for x, _ in runs)) > 1 else m for m in names
        )
        print(f"seed {seed}: {len(runs)} runs ({counts})")
    steps = sorted({t for runs in by_seed.values() for _, c in runs for t in c if t < horizon})
    print(f"agreement with the validation objective at step {horizon}, mean over seeds:")
    print("Spearman / share of pairs in the same order")
    print("step   " + "".join(f"{rule:>16}" for rule in FITNESS_RULES))
    for t in steps:
        cells = []
        for rule in FITNESS_RULES:
            rho, share = [], []
            for runs in by_seed.values():
                final = [c[horizon] for _, c in runs]
                fit = []
                for _, c in runs:
                    upto = sorted(s for s in c if s <= t)
                    vals = [c[s] for s in upto]
                    fit.append(fitness_of(rule, upto, vals, horizon, args.fitness_reads))
                rho.append(spearman(fit, final))
                share.append(pairs_agreeing(fit, final))
            cells.append(f"{np.mean(rho):+.2f} / {np.mean(share):.2f}")
        print(f"{t:<6} " + "".join(f"{c:>16}" for c in cells))


if __name__ == "__main__":
    main()
