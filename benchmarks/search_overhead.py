"""How much of a search's wall time its trials spend training (goal: at least 80%).

Runs ``popmix search`` (the default experiment unless told otherwise), then divides the seconds
trials spent inside the training loop by what the machine offered: wall time x concurrent
trials. Everything else is overhead: Ray start-up, validation, checkpoints, PBT pauses.

    python benchmarks/search_overhead.py [any popmix search options]
    python benchmarks/search_overhead.py --experiment experiments/smoke.yaml
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from popmix.cli import main as popmix


def main(argv: list[str]) -> int:
    storage = tempfile.mkdtemp(prefix="popmix-bench-")
    start = time.perf_counter()
    rc = popmix(["search", "--storage", storage, "--name", "bench", *argv])
    wall = time.perf_counter() - start
    if rc != 0:
        return rc
    summary = json.loads(Path(storage, "bench", "summary.json").read_text())
    # every trial once: the members, each of best-of-n's draws, the other baselines
    by_id = {m["trial_id"]: m for m in summary["members"]}
    for r in summary["rows"]:
        if r["method"] == summary["population_method"]:
            continue
        for t in r.get("draws") or [r]:
            by_id[t["trial_id"]] = t
    trials = list(by_id.values())
    n = max(1, len({t["trial_id"] for t in trials}) // max(1, len({t["seed"] for t in trials})))
    train = sum(t.get("train_time_s") or 0.0 for t in trials)
    in_search = summary["wall_time_s"]
    print(
        f"\nsearch wall time: {wall:.0f} s (driver, incl. Ray start) / "
        f"{in_search:.0f} s (Tuner runs)"
    )
    print(
        f"trials: {len(trials)} ({n} per seed, run concurrently), "
        f"training time summed: {train:.0f} s"
    )
    print(
        f"share of wall time spent training: {train / (n * wall):.1%} "
        f"(of the Tuner runs alone: {train / (n * in_search):.1%}; goal >= 80%)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
