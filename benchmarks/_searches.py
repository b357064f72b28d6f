"""What the benchmarks that compare searches share: running ``popmix search`` once into a kept
folder, a summary's rows by seed, and an interval as text.

Not a benchmark itself: ``flagship_space.py`` and ``swarm_vs_pbt.py`` import it (``benchmarks/``
is on ``sys.path`` when they run as ``python benchmarks/X.py``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any


def run_search(out: Path, methods: str, seeds: int, flags: list[str]) -> dict:
    """``popmix search --methods METHODS --seeds N --out OUT --quiet FLAGS``, unless ``OUT``
    already holds its ``summary.json`` (an interrupted measurement continues where it
    stopped); returns the summary."""
    summary = out / "summary.json"
    if not summary.exists():
        cmd = [sys.executable, "-m", "popmix.cli", "search", "--methods", methods]
        cmd += ["--seeds", str(seeds), "--out", str(out), "--quiet", *flags]
        print("$ popmix", " ".join(cmd[3:]), flush=True)
        subprocess.run(cmd, check=True)
    return json.loads(summary.read_text())


def by_seed(summary: dict, method: str) -> dict[int, dict[str, Any]]:
    """The method's finished rows of ``summary.json``, by seed."""
    return {r["seed"]: r for r in summary["rows"] if r["method"] == method and r["status"] == "ok"}


def gap_share(oracle: dict[str, Any], strat: dict[str, Any], row: dict[str, Any]) -> float | None:
    """The share of oracle16's stratified-to-oracle gap that ``row`` closes (its seed's
    stratified row ``strat``; ``oracle``: the summary's ``oracle``), None off oracle16."""
    if not oracle.get("applies"):
        return None
    top = strat["test_mean_loss"]
    return (top - row["test_mean_loss"]) / (top - oracle["test_mean_loss"])


def fmt(stat: dict[str, Any], spec: str = ".3f") -> str:
    """``mean [lo, hi]`` of a :func:`popmix._util.stats.mean_ci` or ``paired`` result."""
    m = stat.get("mean", stat.get("diff_mean"))
    if m is None:
        return "n/a"
    if stat.get("ci95") is None:
        return f"{m:{spec}}"
    lo, hi = stat["ci95"]
    return f"{m:{spec}} [{lo:{spec}}, {hi:{spec}}]"
