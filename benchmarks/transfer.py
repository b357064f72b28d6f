"""Does what a search found transfer? Each method's found mixture (the final weights of its
seed's answer, ``<method>_weights-seed<S>.json``) trained from scratch, static from the first
step, on the same seed (``popmix run --weights-from FILE --replay final --seed S``), and scored
against the search's own stratified run of that seed, paired by seed; on oracle16 with the
share of the stratified-to-oracle gap each closes.

A method's row in the search is the run that found the mixture (PBT's best member changed its
weights as it trained; DoReMi's proxy moved them every step; best-of-n's pick is stratified
with a lucky seed). What a user takes away is the mixture: this trains it as the user's run
would, so a method whose gain was seed luck or a schedule's path shows it here.

    python benchmarks/transfer.py SEARCH_DIR [SEARCH_DIR ...] --keep DIR
        [--methods pbt,random,doremi] [popmix run flags, e.g. --experiment oracle16]

The run flags must name the searches' data and proxy. Runs are kept in
``DIR/<method>-seed<S>``; one that holds its ``result.json`` is read, not run again. Several
search folders (parts of one table, see ``baselines_table.py``) are read together.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from _searches import fmt

from popmix._util.stats import mean_ci, paired


def train(folder: Path, weights: Path, seed: int, flags: list[str]) -> dict[str, Any]:
    result = folder / "result.json"
    if not result.exists():
        args = ["run", "--weights-from", str(weights), "--replay", "final", "--seed", str(seed)]
        args += ["--out", str(folder), "--quiet", *flags]
        print("$ popmix", " ".join(args), flush=True)
        subprocess.run([sys.executable, "-m", "popmix.cli", *args], check=True)
    out: dict[str, Any] = json.loads(result.read_text())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("searches", type=Path, nargs="+")
    ap.add_argument("--keep", type=Path, required=True)
    ap.add_argument("--methods", default="pbt,random,doremi")
    args, flags = ap.parse_known_args()
    summaries = [json.loads((f / "summary.json").read_text()) for f in args.searches]
    strat = {r["seed"]: r for s in summaries for r in s["rows"] if r["method"] == "stratified"}
    oracle = next((s["oracle"] for s in summaries if s.get("oracle")), None)
    lines = []
    moved: dict[str, dict[int, float]] = {}
    for method in args.methods.split(","):
        files = sorted(
            (int(p.stem.rsplit("seed", 1)[1]), p)
            for f in args.searches
            for p in f.glob(f"{method}_weights-seed*.json")
        )
        if not files:
            lines.append(f"{method}: no weights files in {', '.join(map(str, args.searches))}")
            continue
        runs = {s: train(args.keep / f"{method}-seed{s}", p, s, flags) for s, p in files}
        seeds = [s for s in runs if s in strat]
        moved[method] = {s: runs[s]["test_mean_ppl"] for s in seeds}
        ppl = [runs[s]["test_mean_ppl"] for s in seeds]
        ref = [strat[s]["test_mean_ppl"] for s in seeds]
        p = paired(ppl, ref)
        line = (
            f"{method:<8} transferred: mean test ppl {fmt(mean_ci(ppl))} on seeds {seeds}; "
            f"- stratified {fmt(p, '+.3f')} {p['verdict']}"
        )
        if oracle:
            target = oracle["test_mean_loss"]
            shares = [
                (strat[s]["test_mean_loss"] - runs[s]["test_mean_loss"])
                / (strat[s]["test_mean_loss"] - target)
                for s in seeds
            ]
            line += f"; gap closed {fmt(mean_ci(shares), '+.2f')}"
        lines.append(line)
    # the first method's transferred mixture against each other's, paired by seed
    first, *others = list(moved)
    for other in others:
        common = [s for s in moved[first] if s in moved[other]]
        p = paired([moved[first][s] for s in common], [moved[other][s] for s in common])
        lines.append(f"{first} - {other}, both transferred: {fmt(p, '+.3f')} {p['verdict']}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
