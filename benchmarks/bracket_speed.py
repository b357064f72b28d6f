"""Wall time of the documented ``popmix bracket`` command (docs/how-to/bracket.md), and its sign
agreement (goal: at most 3 minutes on 2 CPU cores, 100% sign agreement at eta = 1e-3 on the
pairs validated).

Runs the command exactly as the documentation shows it, in a fresh process (so the time includes
Python's and torch's start-up, as a user's does), into a temporary folder, then reads its
``validation.json``. Prints the wall time and, per step size, the sign agreement over all the
validated pairs of all evaluated steps, how many of them were beyond the noise of the
measurement (2 standard errors) and the agreement there.

    python benchmarks/bracket_speed.py [--keep DIR] [-- extra popmix bracket arguments]

Other processes on the machine slow it down: note the load (printed) beside the time, and the
CPU time per CPU (printed), which bounds the wall time on idle CPUs from above.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: the documented command (docs/how-to/bracket.md), without "popmix"
DOCUMENTED_COMMAND = (
    "bracket --tasks 16 --steps 300 --at-steps 0,150,300 --target mean --validate 0.001,0.01,0.1"
)
GOAL_S = 180.0


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--keep", metavar="DIR", help="write the command's output here (kept)")
    p.add_argument("extra", nargs="*", help="more popmix bracket arguments (after --)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.keep or Path(tmp) / "bracket")
        cmd = [
            sys.executable,
            "-m",
            "popmix.cli",
            *shlex.split(DOCUMENTED_COMMAND),
            "--out",
            str(out),
            *args.extra,
        ]
        print(f"popmix {DOCUMENTED_COMMAND} {' '.join(args.extra)}".rstrip(), flush=True)
        load_before = os.getloadavg()[0]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
        wall = time.perf_counter() - t0
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = usage.ru_utime + usage.ru_stime
        load_after = os.getloadavg()[0]
        if proc.returncode != 0:
            print(proc.stdout)
            print(f"failed with exit code {proc.returncode}", file=sys.stderr)
            return 1
        tables = json.loads((out / "validation.json").read_text())["steps"]
    print(
        f"wall time {wall:.0f} s ({wall / 60:.1f} min; goal <= {GOAL_S / 60:.0f} min) on "
        f"{os.cpu_count()} CPUs, 1-minute load {load_before:.1f} before and {load_after:.1f} "
        "after"
    )
    # Other processes stretch the wall time far more than the CPU time. Per CPU (popmix uses
    # them all) it bounds the wall time on idle CPUs from above: under contention torch's
    # waiting threads spin, which adds CPU time too.
    print(
        f"CPU time {cpu:.0f} s, {cpu / (os.cpu_count() or 1):.0f} s per CPU (at most about the "
        "wall time on idle CPUs)"
    )
    print(
        f"validated {sum(t['pairs_validated'] for t in tables)} pairs over steps "
        f"{', '.join(str(t['step']) for t in tables)}, target on "
        f"{tables[0]['target_windows_described']}"
    )
    print(f"{'eta':>8}  {'pairs':>5}  {'sign agreement':>14}  {'beyond noise':>12}  {'agree':>6}")
    etas = sorted({r["eta"] for t in tables for r in t["pairs"]})
    for eta in etas:
        rows = [r for t in tables for r in t["pairs"] if r["eta"] == eta]
        agree = [_sign(r["measured"]) == _sign(r["predicted"]) for r in rows]
        beyond = [a for a, r in zip(agree, rows) if not r["within_noise"]]
        there = f"{sum(beyond) / len(beyond):.0%}" if beyond else "-"
        print(
            f"{eta:>8g}  {len(rows):>5}  {sum(agree) / len(rows):>14.1%}  {len(beyond):>12}  "
            f"{there:>6}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
