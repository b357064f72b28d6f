"""The swarm's fit (popmix.analysis.swarm_fit): its time, its quality against a known law, and
how many swarm runs it needs before its predicted optimum stops moving.

On a synthetic Data-Mixing-Laws surface with k domains (c_i in [1.5, 3], k_i in [0.5, 1.5],
t_ii in [-5, -2], transfers t_ij ~ N(0, 0.5)), a swarm of n runs drawn from the flat
Dirichlet (floored, as ``search.swarm`` draws them) with Gaussian noise on every loss, prints:

- the wall and CPU time of one :func:`fit_surface` (default k = 16, n = 32, n_boot = 200);
- the fit's quality: held-out R^2 and Spearman of both models, the chosen one, and the gap
  between the true objective at the predicted optimum and the law's true optimum (the oracle,
  found by the same optimiser on the true law with many more starts), with the predicted
  objective and its interval beside the true value;
- the settle curve: the L1 distance of the optimum fitted on the first n runs to the one
  fitted on all ``--settle-runs`` runs, and to the oracle.

With ``--run DIR`` (a finished ``popmix search`` with the swarm), the same fit quality and
settle curve on each seed's real swarm runs, read from ``DIR/summary.json`` (``swarm``).

    python benchmarks/swarm_fit.py [--domains 16] [--runs 32] [--n-boot 200] [--noise 0.01]
        [--settle-runs 96] [--seed 0] [--run DIR]

Other processes slow the wall time; the CPU time (printed) bounds it on an idle core.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from popmix.analysis.swarm_fit import (
    MixingLaw,
    fit_surface,
    law_optimum,
    objective_of,
    settle_curve,
)


def synthetic_law(k: int, seed: int) -> MixingLaw:
    rng = np.random.default_rng(seed)
    t = rng.normal(0.0, 0.5, (k, k))
    t[np.arange(k), np.arange(k)] = -rng.uniform(2.0, 5.0, k)
    return MixingLaw(rng.uniform(1.5, 3.0, k), rng.uniform(0.5, 1.5, k), t, own_weight=False)


def draw_swarm(
    law: MixingLaw, n: int, noise: float, floor: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed + 1)
    k = len(law.c)
    w = floor + (1 - k * floor) * rng.dirichlet(np.ones(k), size=n)
    return w, law.losses(w) + rng.normal(0.0, noise, size=(n, k))


def oracle(law: MixingLaw, names: list[str], objective: str, floor: float, seed: int):
    return law_optimum(law, names, objective, floor, seed + 2, candidates=200_000, starts=32)


def report_fit(name: str, s, truth=None) -> None:
    cv = s.quality["cv"]
    print(f"\n{name}: {s.quality['n_runs']} runs, {len(s.names)} domains, objective {s.objective}")
    for model in ("mixing_law", "boosted"):
        mark = "  (chosen)" if model == s.model else ""
        print(
            f"  {model:10s} held-out R^2 {cv[model]['r2']:7.3f}  Spearman "
            f"{cv[model]['spearman']:6.3f}  RMSE {cv[model]['rmse']:.4f}{mark}"
        )
    print(f"  law form: {s.quality['law_form']}; fit time {s.settings['seconds']:.1f} s")
    lo, hi = s.predicted_ci
    print(
        f"  predicted objective {s.predicted:.4f} [{lo:.4f}, {hi:.4f}]; best swarm run "
        f"{s.quality['best_observed']:.4f}"
    )
    if truth is not None:
        law, names, best_w, best = truth
        at = objective_of(law.losses(np.array([s.optimum]))[0], names, s.objective)
        gap = np.abs(np.array(s.optimum) - best_w).sum()
        inside = lo <= at <= hi
        print(
            f"  true objective at the predicted optimum {at:.4f}; oracle {best:.4f}: gap "
            f"{at - best:+.4f} nats; L1 to the oracle's weights {gap:.3f}; the true value at "
            f"the optimum is {'inside' if inside else 'outside'} the predicted interval"
        )
    width = np.mean([b - a for a, b in s.optimum_ci])
    print(f"  mean width of the optimum weights' 95% intervals {width:.3f}")


def report_settle(rows: list[dict], oracle_w: np.ndarray | None = None) -> None:
    head = "  runs  model       CV R^2  moved (L1 to all runs)"
    print(head + ("  L1 to oracle" if oracle_w is not None else ""))
    for r in rows:
        line = f"  {r['runs']:4d}  {r['model']:10s} {r['cv_r2']:7.3f}  {r['moved']:8.3f}"
        if oracle_w is not None:
            line += f"{np.abs(np.array(r['optimum']) - oracle_w).sum():22.3f}"
        print(line)


def real_swarms(folder: Path) -> list[tuple[str, list[str], np.ndarray, np.ndarray]]:
    """(label, names, weights, losses) of each seed's finished swarm runs in a search folder."""
    summary = json.loads((folder / "summary.json").read_text())
    swarm = summary.get("swarm") or {}
    names = None
    if (folder / "surface.json").is_file():
        names = json.loads((folder / "surface.json").read_text()).get("domains")
    out = []
    for seed, entry in sorted((swarm.get("per_seed") or {}).items()):
        runs = [r for r in entry.get("runs", []) if r.get("status") == "ok" and r.get("val_loss")]
        if not runs:
            continue
        first = runs[0]["val_loss"]
        seed_names = list(names or (first.keys() if isinstance(first, dict) else []))
        if not seed_names:
            raise SystemExit(f"{folder}: cannot tell the domains' order (no surface.json)")

        def row(v, seed_names=seed_names):
            return [v[n] for n in seed_names] if isinstance(v, dict) else list(v)

        w = np.array([r["weights"] for r in runs], dtype=float)
        y = np.array([row(r["val_loss"]) for r in runs], dtype=float)
        out.append((f"seed {seed}", seed_names, w, y))
    if not out:
        raise SystemExit(f"{folder}: no finished swarm runs in summary.json")
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--domains", type=int, default=16)
    p.add_argument("--runs", type=int, default=32)
    p.add_argument("--n-boot", type=int, default=200)
    p.add_argument("--noise", type=float, default=0.01, help="loss noise (nats)")
    p.add_argument("--floor", type=float, default=1e-3)
    p.add_argument("--objective", default="mean")
    p.add_argument("--settle-runs", type=int, default=96)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--run", type=Path, help="a finished popmix search folder with the swarm")
    args = p.parse_args()

    names = [f"d{i}" for i in range(args.domains)]
    law = synthetic_law(args.domains, args.seed)
    best_w, best = oracle(law, names, args.objective, args.floor, args.seed)
    w, y = draw_swarm(law, max(args.runs, args.settle_runs), args.noise, args.floor, args.seed)

    wall, cpu = time.perf_counter(), time.process_time()
    s = fit_surface(
        w[: args.runs],
        y[: args.runs],
        names,
        objective=args.objective,
        floor=args.floor,
        seed=args.seed,
        n_boot=args.n_boot,
    )
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    load = Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "?"
    print(
        f"fit_surface: k = {args.domains}, n = {args.runs}, n_boot = {args.n_boot}: "
        f"{wall:.1f} s wall, {cpu:.1f} s CPU (load average {load})"
    )
    report_fit(f"synthetic law (noise {args.noise} nats)", s, (law, names, best_w, best))

    sizes = sorted(
        {int(round(x)) for x in np.geomspace(5, args.settle_runs, num=9)} | {args.settle_runs}
    )
    rows = settle_curve(
        w[: args.settle_runs],
        y[: args.settle_runs],
        names,
        objective=args.objective,
        floor=args.floor,
        sizes=sizes,
        seed=args.seed,
    )
    print(f"\nsettle curve on the synthetic law ({args.settle_runs} runs):")
    report_settle(rows, best_w)

    if args.run is not None:
        for label, seed_names, rw, ry in real_swarms(args.run):
            s = fit_surface(
                rw,
                ry,
                seed_names,
                objective=args.objective,
                floor=args.floor,
                seed=args.seed,
                n_boot=args.n_boot,
            )
            report_fit(f"{args.run} {label}", s)
            print(f"  settle curve ({len(rw)} runs):")
            report_settle(
                settle_curve(
                    rw, ry, seed_names, objective=args.objective, floor=args.floor, seed=args.seed
                )
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
