"""The flagship space (loss weights and a temperature schedule, searched together) against the
sampling-weights space, on brown16 and the multilingual benchmark, over seeds.

For each benchmark it runs ``popmix search`` twice on the default experiment, once per space,
with the same seeds and the methods ``pbt,stratified`` (the stratified trial is the paired
reference, and the same run in both searches: the script checks that its test perplexities
agree, which is what makes the pairing across the two searches valid). It prints, per
benchmark, each space's PBT answer (mean test perplexity over domains, and the worst domain)
with 95% intervals over seeds, each against stratified, and the paired difference between the
two spaces, with a verdict (:func:`popmix._util.stats.paired`). On multilingual it also
gives the high- and low-resource groups' mean perplexity.

    python benchmarks/flagship_space.py [--benchmarks brown16,multilingual] [--seeds 3]
        [--keep DIR] [popmix search flags and KEY=VALUE ...]

With ``--keep DIR`` the searches are written there and a search whose ``summary.json`` is
already there is not run again (so an interrupted measurement continues where it stopped).
About 15 minutes per search on 2 idle CPU cores (15 trials of 1000 steps).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from _searches import by_seed, fmt, run_search

from popmix._util.stats import mean_ci, paired
from popmix.tune.summarize import group_mean_ppl

SPACES = {"sampling": "sampling.yaml", "flagship": "loss_and_temperature.yaml"}


def compare(benchmark: str, summaries: dict[str, dict]) -> list[str]:
    pbt = {name: by_seed(s, "pbt") for name, s in summaries.items()}
    strat = {name: by_seed(s, "stratified") for name, s in summaries.items()}
    seeds = sorted(set.intersection(*(set(p) for p in pbt.values())))
    lines = [f"\n{benchmark}: seeds {seeds}, {summaries['sampling']['steps_per_model']} steps"]
    # The pairing check: stratified does not depend on the space.
    gap = max(
        abs(strat["sampling"][s]["test_mean_ppl"] - strat["flagship"][s]["test_mean_ppl"])
        for s in seeds
        if s in strat["sampling"] and s in strat["flagship"]
    )
    lines.append(f"  stratified agrees across the two searches within {gap:.2e} ppl")
    ref = strat["sampling"]
    groups = summaries["sampling"].get("groups", {}) or {}
    assignment = groups.get("assignment") or {}
    names = {g: [d for d, a in assignment.items() if a == g] for g in set(assignment.values())}
    lines.append(
        f"  {'space':<10} {'mean test ppl':>26} {'worst test ppl':>26} {'vs stratified':>30}"
    )
    for name, rows in {**pbt, "stratified": ref}.items():
        mean = mean_ci([rows[s]["test_mean_ppl"] for s in seeds])
        worst = mean_ci([rows[s]["test_worst_ppl"] for s in seeds])
        vs = ""
        if name != "stratified":
            p = paired(
                [rows[s]["test_mean_ppl"] for s in seeds], [ref[s]["test_mean_ppl"] for s in seeds]
            )
            vs = f"{fmt(p)} {p['verdict']}"
        lines.append(f"  {name:<10} {fmt(mean):>26} {fmt(worst):>26} {vs:>30}")
        for g, members in sorted(names.items()):
            gm = mean_ci([group_mean_ppl(rows[s], members) for s in seeds])
            lines.append(f"    {g}-resource mean ppl {fmt(gm)}")
    for key in ("test_mean_ppl", "test_worst_ppl"):
        p = paired(
            [pbt["flagship"][s][key] for s in seeds], [pbt["sampling"][s][key] for s in seeds]
        )
        per = ", ".join(f"{pbt['flagship'][s][key] - pbt['sampling'][s][key]:+.3f}" for s in seeds)
        lines.append(f"  flagship - sampling, {key}: {fmt(p)} ({p['verdict']}; per seed {per})")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--benchmarks", default="brown16,multilingual")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--keep", type=Path, default=None)
    args, extra = ap.parse_known_args(argv)  # any other flag or KEY=VALUE: to every search
    root = args.keep or Path(tempfile.mkdtemp(prefix="popmix-flagship-"))
    lines: list[str] = []
    for benchmark in args.benchmarks.split(","):
        summaries = {
            name: run_search(
                root / f"{benchmark}-{name}",
                "pbt,stratified",
                args.seeds,
                ["--benchmark", benchmark, "--space", space, *extra],
            )
            for name, space in SPACES.items()
        }
        lines += compare(benchmark, summaries)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
