"""Does the population search earn its name? PBT against best-of-n and stratified (paired by
seed) on the benchmarks where a mixture matters, with its exploits per round, and the share of
oracle16's stratified-to-oracle gap it closes.

Each benchmark is one ``popmix search`` of ``--methods`` (default ``pbt,best-of-n,stratified``)
over ``--seeds`` seeds, kept in ``--keep DIR/<benchmark>``; a folder that already holds its
``summary.json`` is read, not run again (an interrupted measurement continues where it stopped).

    python benchmarks/population_search.py --keep DIR [--seeds 3]
        [--benchmarks oracle16,multilingual-sampling,multilingual-temperature,brown16]
        [--before DIR] [--methods pbt,best-of-n,stratified] [popmix search flags, KEY=VALUE]

``--before DIR``: the same benchmarks' folders made by another popmix (e.g. the code before a
change, run with the same commands), printed beside these, row by row.

Prints, per benchmark: each method's mean test perplexity [95% over seeds] (and on oracle16
the share of the gap it closes), PBT minus best-of-n and minus stratified (paired by seed, the
summary's own comparisons), and PBT's exploit decisions: per round (synchronous rounds:
``rounds-seed<S>.jsonl``) the decisions, those taken and those skipped as within noise; for
asynchronous PBT only the totals (it has no rounds).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from _searches import fmt, run_search

#: benchmark name -> the flags of its search (the experiment and space it runs)
BENCHMARKS = {
    "oracle16": ["--experiment", "oracle16"],
    "multilingual-sampling": ["--benchmark", "multilingual"],
    "multilingual-temperature": ["--benchmark", "multilingual", "--space", "temperature"],
    "brown16": [],
}
OLD = {"mean_test_ppl": "test_mean_ppl", "mean_test_loss": "test_mean_loss"}


def _method(summary: dict[str, Any], method: str) -> dict[str, Any]:
    entry = summary.get("methods", {}).get(method) or {}
    return {OLD.get(k, k): v for k, v in entry.items()}


def _comparison(summary: dict[str, Any], method: str, against: str) -> dict[str, Any] | None:
    for c in summary.get("comparisons", []):
        if c.get("method") == method and c.get("against") == against:
            return c
    return None


def exploit_lines(folder: Path, summary: dict[str, Any]) -> list[str]:
    """PBT's decisions: per round where the search ran in rounds, else the totals."""
    rounds = []
    for path in sorted(folder.glob("rounds-seed*.jsonl")):
        rounds += [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    ex = summary.get("exploits") or {}
    total = f"{ex.get('taken', 0)} taken, {ex.get('skipped_within_noise', 0)} skipped"
    if not rounds:
        return [f"  exploits (asynchronous, no rounds): {total}"]
    by_round: dict[int, list[dict[str, Any]]] = {}
    for r in rounds:
        by_round.setdefault(int(r["round"]), []).append(r)
    cells = []
    for n in sorted(by_round):
        rs = by_round[n]
        d = sum(r["decisions"] for r in rs)
        t = sum(r["taken"] for r in rs)
        s = sum(r["skipped_within_noise"] for r in rs)
        cells.append(f"r{n}: {d}/{t}/{s}")
    seeds = sorted({r["seed"] for r in rounds})
    return [
        f"  exploits: {len(rounds)} rounds decided over seeds {seeds}; {total}",
        "  per round, summed over seeds (decisions/taken/skipped): " + ", ".join(cells),
    ]


def kind_lines(folder: Path, summary: dict[str, Any]) -> list[str]:
    """Where a known best mixture exists (oracle16's): each seed's answer of the population
    (its best member's final weights, ``lineage.json``) summed by kind of domain (the name
    without its digits), beside stratified's and the oracle's."""
    oracle = (summary.get("oracle") or {}).get("weights")
    lineage = folder / "lineage.json"
    if not oracle or not lineage.is_file():
        return []
    domains = summary["domains"]
    kinds: dict[str, list[str]] = {}
    for d in domains:
        kinds.setdefault(d.rstrip("0123456789"), []).append(d)

    def by_kind(w: dict[str, float]) -> str:
        return ", ".join(f"{k} {sum(w[d] for d in ds):.2f}" for k, ds in kinds.items())

    lines = [
        "  weights by kind of domain:",
        f"    oracle       {by_kind(oracle)}",
        f"    stratified   {by_kind({d: 1 / len(domains) for d in domains})}",
    ]
    pop = summary.get("population_method") or "pbt"
    best = {r["seed"]: r.get("trial_id") for r in summary.get("rows", []) if r["method"] == pop}
    members = json.loads(lineage.read_text()).get("members", {})
    for seed, trial in sorted(best.items()):
        m = members.get(trial) or {}
        if m.get("final_weights"):
            w = dict(zip(m["domains"], m["final_weights"]))
            lines.append(f"    {pop} seed {seed:<3} {by_kind(w)}")
    return lines


def report(name: str, folder: Path, label: str = "") -> list[str]:
    summary = json.loads((folder / "summary.json").read_text())
    lines = [f"{name}{label}: {folder}"]
    for method in summary.get("methods", {}):
        m = _method(summary, method)
        line = f"  {method:<12} {fmt(m.get('test_mean_ppl') or {})}"
        gap = m.get("oracle_gap_closed")
        if gap:
            line += f"   gap closed {fmt(gap, '+.2f')}"
        lines.append(line)
    pop = summary.get("population_method") or "pbt"
    for against in ("best-of-n", "stratified"):
        c = _comparison(summary, pop, against)
        if c is not None:
            per = ", ".join(f"{x:+.3f}" for x in c.get("per_seed", []) if x is not None)
            lines.append(
                f"  {pop} - {against}: {fmt(c, '+.3f')} {c.get('verdict', '')} (per seed {per})"
            )
    return lines + exploit_lines(folder, summary) + kind_lines(folder, summary)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", type=Path, required=True)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--benchmarks", default=",".join(BENCHMARKS))
    ap.add_argument("--methods", default="pbt,best-of-n,stratified")
    ap.add_argument("--before", type=Path, default=None)
    args, extra = ap.parse_known_args()
    names = [b for b in args.benchmarks.split(",") if b]
    unknown = [b for b in names if b not in BENCHMARKS]
    if unknown:
        sys.exit(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHMARKS)}")
    for name in names:
        run_search(args.keep / name, args.methods, args.seeds, BENCHMARKS[name] + extra)
    print()
    for name in names:
        print("\n".join(report(name, args.keep / name)))
        if args.before is not None and (args.before / name / "summary.json").is_file():
            print("\n".join(report(name, args.before / name, " (before)")))
        print()


if __name__ == "__main__":
    main()
