"""The swarm's predicted optimum against stratified and PBT at equal total optimizer steps,
paired by seed, with the fit's held-out quality and the settle curve (issue 13's figures).

It runs ``popmix search --methods pbt,swarm,stratified`` (one experiment, so the three are
paired by seed on the same initialisation) on the default experiment (brown16, the default
proxy, 1000 steps; ``search.population`` 4, so the swarm's 32 runs of floor(3 * 1000 / 32) =
93 steps and its optimum's 1000-step run cost what PBT's 4 members do), or on the experiment
the extra flags name (``--experiment experiments/oracle16.yaml``: then the share of the
stratified-to-oracle gap each method closes is printed too). With ``--pbt-summary`` (a
finished ``--methods pbt,stratified`` search on the same seeds, e.g.
benchmarks/flagship_space.py's ``brown16-sampling``) PBT comes from that file and the script
runs ``--methods swarm,stratified`` only; the stratified trial is then the same run in both
searches, and the script checks that its test perplexities agree, which is what makes pairing
across the two valid.

Printed: per method, mean test perplexity over domains with its 95% interval over seeds and
its optimizer steps per seed; the paired differences swarm - stratified, swarm - PBT and
PBT - stratified (:func:`popmix._util.stats.paired`); per seed, the fit's held-out R^2 and
Spearman rank correlation (5-fold cross-validation over the swarm runs, the chosen model) and
the settle curve (:func:`popmix.analysis.swarm_fit.settle_curve`: the optimum refitted on the
first n runs, its L1 distance to the optimum of all runs).

    python benchmarks/swarm_vs_pbt.py [--seeds 3] [--keep DIR] [--name NAME]
        [--pbt-summary FILE] [popmix search flags and KEY=VALUE ...]

With ``--keep DIR`` the searches are written there (``DIR/NAME``) and a search whose
``summary.json`` is already there is not run again. About 50 minutes for 3 seeds of brown16
on 2 idle CPU cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from _searches import by_seed, fmt, run_search

from popmix._util.stats import mean_ci, paired

#: the optimum "stops moving" once every larger swarm's optimum is within this L1 distance of
#: the optimum of all runs (0.1: a tenth of the simplex's largest L1 distance, 2)
SETTLED_L1 = 0.1


def settled_at(curve: list[dict[str, Any]]) -> int | None:
    """The fewest runs from which every larger swarm's optimum is within SETTLED_L1."""
    at = None
    for row in reversed(curve):
        if row["moved"] > SETTLED_L1:
            break
        at = row["runs"]
    return at


def settle(summary: dict, seed: int) -> list[dict[str, Any]]:
    from popmix.analysis.swarm_fit import settle_curve

    names = summary["domains"]
    runs = [r for r in summary["swarm"]["per_seed"][str(seed)]["runs"] if r["status"] == "ok"]
    w = np.array([r["weights"] for r in runs])
    y = np.array([[r["val_loss"][n] for n in names] for r in runs])
    return settle_curve(
        w,
        y,
        names,
        objective=summary["objective"],
        floor=summary["swarm"]["floor"],
        seed=seed,
    )


def report(swarm: dict, pbt: dict) -> list[str]:
    rows = {
        "swarm": by_seed(swarm, "swarm"),
        "pbt": by_seed(pbt, "pbt"),
        "stratified": by_seed(swarm, "stratified"),
    }
    strat_pbt = by_seed(pbt, "stratified")
    seeds = sorted(set.intersection(*(set(r) for r in rows.values())))
    sw = swarm["swarm"]
    lines = [
        f"{swarm.get('benchmark', '?')}, seeds {seeds}, {swarm['steps_per_model']} steps per "
        "full run; swarm of "
        f"{sw['size']} runs x {sw['run_steps']} steps around {sw['prior']} (concentration "
        f"{sw['concentration']}), PBT population "
        f"{len(pbt['members']) // max(1, len({m['seed'] for m in pbt['members']}))}"
    ]
    gaps = [
        abs(rows["stratified"][s]["test_mean_ppl"] - strat_pbt[s]["test_mean_ppl"])
        for s in seeds
        if s in strat_pbt
    ]
    if pbt is not swarm:
        lines.append(
            f"stratified agrees across the two searches within {max(gaps):.2e} ppl "
            f"({len(gaps)} seeds)"
            if gaps
            else "stratified: no common seed across the two searches (no pairing check)"
        )
    lines.append(f"{'method':<11}{'mean test ppl [95%]':>28}{'worst test ppl [95%]':>28}  steps")
    for name, r in rows.items():
        mean = mean_ci([r[s]["test_mean_ppl"] for s in seeds])
        worst = mean_ci([r[s]["test_worst_ppl"] for s in seeds])
        steps = sorted({r[s].get("population_train_steps") or r[s]["train_steps"] for s in seeds})
        lines.append(f"{name:<11}{fmt(mean):>28}{fmt(worst):>28}  {steps}")
    for a, b in (("swarm", "stratified"), ("swarm", "pbt"), ("pbt", "stratified")):
        p = paired(
            [rows[a][s]["test_mean_ppl"] for s in seeds],
            [rows[b][s]["test_mean_ppl"] for s in seeds],
        )
        per = ", ".join(
            f"{rows[a][s]['test_mean_ppl'] - rows[b][s]['test_mean_ppl']:+.3f}" for s in seeds
        )
        lines.append(f"{a} - {b} (mean test ppl, paired): {fmt(p, '+.3f')} {p['verdict']}")
        lines.append(f"  per seed {per}")
    for s in seeds:
        surface = sw["per_seed"][str(s)]["surface"]
        q = surface.get("quality") or {}
        chosen = q.get("chosen")
        cv = (q.get("cv") or {}).get(chosen, {})
        others = ", ".join(
            f"{m} R2 {v['r2']:+.3f}" for m, v in (q.get("cv") or {}).items() if m != chosen
        )
        nan = float("nan")
        lines.append(
            f"seed {s}: fit {chosen} ({q.get('law_form')}), held-out R2 {cv.get('r2', nan):+.3f}"
            f", Spearman {cv.get('spearman', nan):+.3f} over {q.get('n_runs')} runs "
            f"({others})"
        )
        lo, hi = surface.get("predicted_ci") or (nan, nan)
        lines.append(
            f"  predicted objective at the swarm's {sw['run_steps']} steps "
            f"{surface.get('predicted', nan):.4f} [{lo:.4f}, {hi:.4f}]; the optimum's run at "
            f"{swarm['steps_per_model']} steps: validation objective "
            f"{rows['swarm'][s]['objective']:.4f}"
        )
        curve = settle(swarm, s)
        path = ", ".join(f"{c['runs']}: {c['moved']:.3f}" for c in curve)
        at = settled_at(curve)
        verdict = (
            f"within {SETTLED_L1} from {at} runs"
            if at is not None and at < curve[-1]["runs"]
            else f"not settled before all {curve[-1]['runs']} runs"
        )
        lines.append(f"  settle curve (runs: L1 to the all-runs optimum) {path}; {verdict}")
    lines += oracle_lines(swarm, pbt, rows, seeds)
    return lines


def oracle_lines(
    swarm: dict, pbt: dict, rows: dict[str, dict[int, dict[str, Any]]], seeds: list[int]
) -> list[str]:
    """Where the benchmark ships an oracle that holds for this proxy: the oracle's mean test
    loss, each method's (paired) gap to it and the share of the stratified-to-oracle gap it
    closes (``summary.json``'s ``oracle_gap_closed``)."""
    oracle = swarm.get("oracle") or {}
    if not oracle.get("applies"):
        return [f"oracle: none here ({oracle.get('why', 'the benchmark has none')})"]
    # summaries written before popmix-summary/1 called it mean_test_loss
    target = oracle.get("test_mean_loss", oracle.get("mean_test_loss"))
    lines = [f"oracle: mean test loss {target:.4f} (seeds {oracle['seeds']})"]
    for name, r in rows.items():
        gap = mean_ci([r[s]["test_mean_loss"] - target for s in seeds])
        source = pbt if name == "pbt" else swarm
        closed = (source.get("methods") or {}).get(name, {}).get("oracle_gap_closed") or {}
        lines.append(
            f"  {name:<11} mean test loss - oracle's {fmt(gap, '+.4f')}; share of the "
            f"stratified-to-oracle gap closed {fmt(closed, '+.2f')}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--keep", type=Path, default=None)
    ap.add_argument(
        "--pbt-summary",
        type=Path,
        default=None,
        help="a finished --methods pbt,stratified search's summary.json on the same seeds",
    )
    ap.add_argument("--name", default="swarm-pbt", help="the search's folder under --keep")
    args, extra = ap.parse_known_args(argv)  # any other flag or KEY=VALUE: to every search
    root = args.keep or Path(tempfile.mkdtemp(prefix="popmix-swarm-"))
    out = root / args.name
    # Tune's trials beside the results, under DIR/tune/NAME
    flags = ["--storage", str(root / "tune"), "--name", args.name, *extra]
    if args.pbt_summary is not None:
        swarm = run_search(out, "swarm,stratified", args.seeds, flags)
        pbt = json.loads(args.pbt_summary.read_text())
    else:
        swarm = pbt = run_search(out, "pbt,swarm,stratified", args.seeds, flags)
    print("\n".join(report(swarm, pbt)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
