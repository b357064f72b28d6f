"""How much of a search's answer is its own draws: the same search over the same seeds, run
with several ``search.seed`` values (another donor, other explore steps; the seeds' models and
batches are the same).

    python benchmarks/search_draws.py DIR [DIR ...] [--method pbt]

Each DIR is a finished search of one ``search.seed`` (read from its ``search.json``). Prints,
for each seed, the method's test perplexity under each draw (and on oracle16 the share of the
stratified-to-oracle gap it closes); the draws' spread within a seed (pooled standard
deviation) beside the seeds' spread (of each seed's mean over the draws); the method minus
stratified under each draw (mean [95%] over seeds, verdict), and over the draws' mean per seed.
Searches are compared only where their stratified runs agree to the digit on every seed.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
from _searches import by_seed, fmt, gap_share

from popmix._util.stats import mean_ci, paired


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("searches", nargs="+", type=Path, metavar="DIR")
    ap.add_argument("--method", default="pbt")
    args = ap.parse_args(argv)
    draws = []
    for folder in args.searches:
        summary = json.loads((folder / "summary.json").read_text())
        search = json.loads((folder / "search.json").read_text())
        draw = search["experiment"]["search"]["seed"]
        draws.append((draw, by_seed(summary, args.method), by_seed(summary, "stratified")))
        if not draws[1:]:
            oracle = summary.get("oracle") or {}  # one benchmark: the first search's
    strat = draws[0][2]
    for draw, _, theirs in draws[1:]:
        if any(theirs.get(s, {}).get("test_mean_ppl") != strat[s]["test_mean_ppl"] for s in strat):
            sys.exit(f"search.seed {draw}: its stratified runs differ: not the same seeds' runs")
    seeds = sorted(set.intersection(*(set(mine) for _, mine, _ in draws)) & set(strat))
    if len(seeds) < 2:
        sys.exit("fewer than 2 seeds common to every search")
    ppl = np.array([[mine[s]["test_mean_ppl"] for _, mine, _ in draws] for s in seeds])
    on_oracle = bool(oracle.get("applies"))

    def share(mine: dict, s: int) -> float:
        value = gap_share(oracle, strat[s], mine[s])
        assert value is not None
        return value

    head = " | ".join(f"search.seed {d}" for d, _, _ in draws)
    print(f"{args.method}, test ppl (gap closed) | seed | {head} | mean over draws")
    for i, s in enumerate(seeds):
        cells = []
        for j, (_, mine, _) in enumerate(draws):
            cell = f"{ppl[i, j]:.3f}"
            cells.append(cell + (f" ({share(mine, s):+.2f})" if on_oracle else ""))
        print(f"  seed {s} | " + " | ".join(cells) + f" | {ppl[i].mean():.3f}")
    within = math.sqrt(float(np.mean(ppl.var(axis=1, ddof=1)))) if len(draws) > 1 else math.nan
    between = float(ppl.mean(axis=1).std(ddof=1))
    print(
        f"spread (sd, test ppl): the draws within a seed {within:.3f}; the seeds (their means "
        f"over the draws) {between:.3f}"
    )
    if on_oracle:
        shares = np.array([[share(mine, s) for _, mine, _ in draws] for s in seeds])
        sd = math.sqrt(float(np.mean(shares.var(axis=1, ddof=1)))) if len(draws) > 1 else 0.0
        per_draw = " / ".join(fmt(mean_ci(list(shares[:, j])), "+.2f") for j in range(len(draws)))
        print(f"gap closed, each draw over the seeds: {per_draw}")
        over = fmt(mean_ci(list(shares.mean(axis=1))), "+.2f")
        print(f"gap closed, each seed's mean over the draws: {over}; within a seed sd {sd:.2f}")
    base = [strat[s]["test_mean_ppl"] for s in seeds]
    for j, (draw, _, _) in enumerate(draws):
        p = paired(list(ppl[:, j]), base)
        print(f"  search.seed {draw}: {args.method} - stratified {fmt(p, '+.3f')} {p['verdict']}")
    p = paired(list(ppl.mean(axis=1)), base)
    print(f"  mean over the draws: {args.method} - stratified {fmt(p, '+.3f')} {p['verdict']}")


if __name__ == "__main__":
    main()
