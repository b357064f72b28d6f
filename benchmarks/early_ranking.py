"""How early does the validation objective rank two mixtures as the end of training does?

PBT ranks its members on reads taken during training; a mixture that puts more weight on what
is slow to learn can read worse than another for the first reports and better from then on,
and a round before that point throws it away (``search.burn_in`` keeps rounds after it). This
prints, for two methods of finished searches paired by seed, the difference of their
validation objectives (nats, negative: the first leads) at every report, the report from which
the first stays ahead to the end, and the difference of their final test perplexities.

    python benchmarks/early_ranking.py DIR_A:METHOD_A DIR_B:METHOD_B

``DIR_A`` and ``DIR_B`` are experiment folders (they may be the same); each method's row of a
seed is its static run (a baseline, the swarm's optimum run), read from the trial's
``result.json``. Methods whose weights change as they train (a PBT member) are refused: their
curve is not one mixture's.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from _searches import by_seed

from popmix._util.stats import paired


def curve(folder: Path, trial_id: str) -> dict[int, float]:
    """Validation objective by optimizer step of one trial."""
    found = sorted(folder.glob(f"seed*/*_{trial_id}/result.json"))
    if not found:
        sys.exit(f"no result.json of trial {trial_id} under {folder}")
    rows = [json.loads(line) for line in found[0].read_text().splitlines() if line.strip()]
    return {int(r["step"]): float(r["objective"]) for r in rows if "objective" in r}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("first", metavar="DIR_A:METHOD_A")
    ap.add_argument("second", metavar="DIR_B:METHOD_B")
    args = ap.parse_args(argv)
    sides = []
    for arg in (args.first, args.second):
        folder, _, method = arg.rpartition(":")
        if method in ("pbt", "pb2"):
            sys.exit(
                f"{arg}: a population member's weights change as it trains; name a static run"
            )
        summary = json.loads((Path(folder) / "summary.json").read_text())
        sides.append((Path(folder), method, by_seed(summary, method)))
    (fa, ma, ra), (fb, mb, rb) = sides
    seeds = sorted(set(ra) & set(rb))
    if not seeds:
        sys.exit(f"{ma} and {mb} share no finished seed")
    print(f"validation objective, {ma} minus {mb} (nats; negative: {ma} leads), by step")
    for s in seeds:
        a, b = curve(fa, ra[s]["trial_id"]), curve(fb, rb[s]["trial_id"])
        steps = sorted(set(a) & set(b))
        diffs = [a[t] - b[t] for t in steps]
        ahead = next((t for i, t in enumerate(steps) if all(d < 0 for d in diffs[i:])), None)
        line = " ".join(f"{t}:{d:+.3f}" for t, d in zip(steps, diffs))
        print(f"  seed {s}: {line}")
        print(
            f"    {ma} ahead from step {ahead} to the end"
            if ahead
            else f"    {ma} not ahead at the end"
        )
    test = paired([ra[s]["test_mean_ppl"] for s in seeds], [rb[s]["test_mean_ppl"] for s in seeds])
    lo, hi = test["ci95"] if test.get("ci95") else (float("nan"), float("nan"))
    print(
        f"test perplexity, {ma} minus {mb}: {test['diff_mean']:+.3f} [{lo:+.3f}, {hi:+.3f}] "
        f"over seeds {', '.join(map(str, seeds))}"
    )


if __name__ == "__main__":
    main()
