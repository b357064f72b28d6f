"""One method of a finished search against methods of other searches of the same seeds (or of
the same search), paired by seed: what a screen of settings needs when each setting is its own
search.

    python benchmarks/paired_searches.py DIR[:METHOD] [NAME=DIR2:METHOD2 ...]

``METHOD`` defaults to ``pbt``. Prints the method's mean test perplexity [95% over seeds] and
its value on each seed; on oracle16 the share of the stratified-to-oracle gap it closes, over
seeds and on each; its exploits (taken / skipped as within noise) and the search's wall time;
then its paired difference from the search's own stratified and from each ``NAME=DIR2:METHOD2``
(mean [95%] verdict, and per seed). Two searches are paired only where their stratified runs
agree to the last digit on every seed (the same seed trained the same model); otherwise the
row says so. A ``popmix run`` folder per seed (``DIR2/seed<S>/result.json``, e.g. a mixture
retrained static) is read as ``NAME=DIR2:run``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from _searches import by_seed, fmt, gap_share

from popmix._util.stats import mean_ci, paired


def side(arg: str, default: str = "pbt") -> tuple[str, Path, str]:
    name, eq, rest = arg.partition("=")
    if not eq:
        name, rest = "", arg
    folder, colon, method = rest.rpartition(":")
    if not colon:
        folder, method = rest, default
    return name, Path(folder), method


def run_rows(folder: Path) -> dict[int, dict[str, Any]]:
    """``popmix run`` results, one folder per seed."""
    out = {}
    for path in sorted(folder.glob("seed*/result.json")):
        result = json.loads(path.read_text())
        seed = int(path.parent.name.removeprefix("seed"))
        out[seed] = {
            "test_mean_ppl": result["test_mean_ppl"],
            "test_mean_loss": result.get("test_mean_loss"),
        }
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("search", metavar="DIR[:METHOD]")
    ap.add_argument("others", nargs="*", metavar="NAME=DIR2:METHOD2")
    args = ap.parse_args(argv)
    _, folder, method = side(args.search)
    summary = json.loads((folder / "summary.json").read_text())
    mine, strat = by_seed(summary, method), by_seed(summary, "stratified")
    seeds = sorted(mine)
    if not seeds:
        sys.exit(f"{folder}: no finished {method} row")
    ppl = [mine[s]["test_mean_ppl"] for s in seeds]
    print(
        f"{method} in {folder}: {fmt(mean_ci(ppl))} test ppl; seeds "
        + " / ".join(f"{p:.3f}" for p in ppl)
    )
    oracle = summary.get("oracle") or {}

    def gap(of: dict[int, dict[str, Any]]) -> str:
        """The share of oracle16's stratified-to-oracle gap closed, over seeds and on each."""
        common = [s for s in seeds if s in of and s in strat]
        if not (oracle.get("applies") and common):
            return ""
        shares = [gap_share(oracle, strat[s], of[s]) for s in common]
        per = " / ".join(f"{x:+.2f}" for x in shares)
        return f"gap closed {fmt(mean_ci(shares), '+.2f')}, seeds {per}"

    if gap(mine):
        print(f"  {gap(mine)}")
    ex = summary.get("exploits") or {}
    if ex:
        print(
            f"  exploits: {ex.get('taken')} taken / {ex.get('skipped_within_noise')} skipped "
            "as within noise"
        )
    print(f"  wall: {summary.get('wall_time_s', float('nan')):.0f} s")

    def show(name: str, other: dict[int, dict[str, Any]], note: str = "") -> None:
        common = [s for s in seeds if s in other]
        if len(common) < 2:
            print(f"  - {name}: fewer than 2 common seeds")
            return
        a = [mine[s]["test_mean_ppl"] for s in common]
        b = [other[s]["test_mean_ppl"] for s in common]
        p = paired(a, b)
        per = ", ".join(f"{x - y:+.3f}" for x, y in zip(a, b))
        print(f"  - {name}: {fmt(p, '+.3f')} {p['verdict']}; seeds {per}{note}")
        if other is not strat and gap(other):
            print(f"      its own {gap(other)}")

    if strat:
        show("stratified", strat)
    for arg in args.others:
        name, path, meth = side(arg)
        if meth == "run":
            show(name or str(path), run_rows(path))
            continue
        other = json.loads((path / "summary.json").read_text())
        theirs = by_seed(other, "stratified")
        agree = all(
            theirs.get(s, {}).get("test_mean_ppl") == strat[s]["test_mean_ppl"]
            for s in seeds
            if s in strat
        )
        show(
            f"{name or path} ({meth})",
            by_seed(other, meth),
            "" if agree else "  (stratified differs: not the same runs)",
        )


if __name__ == "__main__":
    main()
