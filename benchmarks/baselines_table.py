"""PBT beside the baselines a practitioner checks first: DoReMi, UniMax and random search at
equal compute, in one table per benchmark, paired by seed, with each method's compute; on
oracle16 the share of the stratified-to-oracle gap each closes and the weights DoReMi and
UniMax learn, summed by kind of domain, beside the oracle's.

A benchmark's table is made of ``--parts``: searches of the same seeds that each run a few of
the methods (default: ``pbt,best-of-n,stratified``, ``stratified,doremi,unimax`` and
``random,stratified``), kept in ``--keep DIR/<benchmark>/<part>``; a part that already holds
its ``summary.json`` is read, not run again. Every part runs stratified, and the parts are
merged only where stratified's rows agree to the last digit on every seed (the same seed
trains the same model whatever runs beside it); otherwise the script stops and says so.

    python benchmarks/baselines_table.py --keep DIR [--seeds 3]
        [--benchmarks oracle16,multilingual] [--parts "pbt,best-of-n,stratified;..."]
        [popmix search flags]

Prints, per benchmark and method: mean test perplexity [95% over seeds], optimizer steps per
seed (the method's own, every draw or member, plus its extra forwards and references as step
equivalents), the paired difference against stratified, PBT and best-of-n (mean [95%]
verdict), and on oracle16 the gap closed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from _searches import fmt, run_search

from popmix._util.stats import mean_ci, paired

BENCHMARKS = {
    "oracle16": ["--experiment", "oracle16"],
    "multilingual": ["--benchmark", "multilingual"],
}
PARTS = "pbt,best-of-n,stratified;stratified,doremi,unimax;random,stratified"
AGAINST = ("stratified", "pbt", "best-of-n")


def merge(summaries: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    """Every part's rows by (method, seed), after checking that stratified's agree."""
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for s in summaries:
        for r in s["rows"]:
            key = (r["method"], r["seed"])
            if key in rows and rows[key].get("test_mean_ppl") != r.get("test_mean_ppl"):
                sys.exit(
                    f"{key[0]} seed {key[1]} differs between parts "
                    f"({rows[key].get('test_mean_ppl')} vs {r.get('test_mean_ppl')}): "
                    "the parts did not train the same models; rerun them with one popmix"
                )
            rows.setdefault(key, r)
    return rows


def steps(row: dict[str, Any]) -> float:
    own = row.get("population_train_steps") or row.get("train_steps") or 0
    return float(own) + float(row.get("extra_step_equivalents") or 0.0)


def gap_closed(rows: dict, method: str, seeds: list[int], oracle: dict[str, Any]) -> str:
    target = oracle["test_mean_loss"]
    shares = []
    for s in seeds:
        ref = rows.get(("stratified", s), {}).get("test_mean_loss")
        own = rows.get((method, s), {}).get("test_mean_loss")
        if ref is not None and own is not None and ref > target:
            shares.append((ref - own) / (ref - target))
    return fmt(mean_ci(shares), "+.2f") if shares else "n/a"


def by_kind(domains: list[str], w: dict[str, float]) -> str:
    kinds: dict[str, list[str]] = {}
    for d in domains:
        kinds.setdefault(d.rstrip("0123456789"), []).append(d)
    return ", ".join(f"{k} {sum(w[d] for d in ds):.2f}" for k, ds in kinds.items())


def weight_lines(folders: list[Path], summary: dict[str, Any]) -> list[str]:
    """oracle16: each seed's transferred weights of DoReMi and UniMax (and PBT's answer), by
    kind, beside the oracle's."""
    oracle = (summary.get("oracle") or {}).get("weights")
    if not oracle:
        return []
    domains = summary["domains"]
    lines = ["  weights by kind of domain:", f"    oracle          {by_kind(domains, oracle)}"]
    for method in ("doremi", "unimax", "pbt", "random"):
        for folder in folders:
            for path in sorted(folder.glob(f"{method}_weights-seed*.json")):
                w = json.loads(path.read_text())
                final = dict(zip(w["domains"], w["final_weights"]))
                seed = path.stem.rsplit("seed", 1)[1]
                lines.append(f"    {method:<7} seed {seed:<3} {by_kind(domains, final)}")
    return lines


def table(name: str, folders: list[Path]) -> list[str]:
    summaries = [json.loads((f / "summary.json").read_text()) for f in folders]
    rows = merge(summaries)
    methods = list(dict.fromkeys(m for s in summaries for m in s["methods"]))
    oracle = next((s["oracle"] for s in summaries if s.get("oracle")), None)
    lines = [f"{name}: {', '.join(str(f) for f in folders)}"]
    for method in methods:
        seeds = sorted(s for m, s in rows if m == method)
        ppl = mean_ci([rows[(method, s)].get("test_mean_ppl") for s in seeds])
        cost = mean_ci([steps(rows[(method, s)]) for s in seeds])["mean"]
        line = f"  {method:<11} {fmt(ppl)}  steps/seed {cost:,.0f}"
        if oracle:
            line += f"  gap closed {gap_closed(rows, method, seeds, oracle)}"
        lines.append(line)
        for other in AGAINST:
            common = [s for s in seeds if (other, s) in rows]
            if other == method or not common:
                continue
            p = paired(
                [rows[(method, s)].get("test_mean_ppl") for s in common],
                [rows[(other, s)].get("test_mean_ppl") for s in common],
            )
            lines.append(f"      - {other:<11} {fmt(p, '+.3f')} {p['verdict']}")
    return lines + weight_lines(folders, summaries[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", type=Path, required=True)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--benchmarks", default=",".join(BENCHMARKS))
    ap.add_argument("--parts", default=PARTS)
    args, extra = ap.parse_known_args()
    names = [b for b in args.benchmarks.split(",") if b]
    unknown = [b for b in names if b not in BENCHMARKS]
    if unknown:
        sys.exit(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHMARKS)}")
    parts = [p for p in args.parts.split(";") if p]
    if any("stratified" not in p.split(",") for p in parts):
        sys.exit("every part runs stratified (the rows the parts are merged on)")
    for name in names:
        for part in parts:
            folder = args.keep / name / part.replace(",", "+")
            run_search(folder, part, args.seeds, BENCHMARKS[name] + extra)
    print()
    for name in names:
        folders = [args.keep / name / p.replace(",", "+") for p in parts]
        print("\n".join(table(name, folders)))
        print()


if __name__ == "__main__":
    main()
