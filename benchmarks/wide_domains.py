"""What 256 domains cost a search against 16: the driver's memory and the time per report.

Runs the same small ``popmix search`` on ``--benchmark synthetic`` at each ``--tasks`` width
(default 16 and 256), one after another, each in a fresh process, and prints per width:

- the search's wall time;
- the driver's peak resident memory (``ru_maxrss`` of the process running ``popmix search``;
  the trials run in Ray's worker processes);
- the time per report of a trial, split into training and the rest (validation of every
  domain, the result's assembly, the checkpoint), from every trial's Tune results
  (``time_this_iter_s`` and popmix's ``time_train_s``), as medians over all reports;
- the size of the experiment folder (TensorBoard, results, checkpoints).

The ratio 256 / 16 of each figure is measured in the same run of this script.

    python benchmarks/wide_domains.py [--widths 16,256] [--steps 200] [KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DRIVER = """
import resource, sys
from popmix.cli import main
rc = main(sys.argv[1:])
print("PEAK_RSS_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, flush=True)
sys.exit(rc)
"""


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def reports(exp_dir: Path) -> list[dict]:
    rows = []
    for f in exp_dir.rglob("result.json"):
        for line in f.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                if "time_train_s" in r and "time_this_iter_s" in r:
                    rows.append(r)
    return rows


def measure(width: int, steps: int, overrides: list[str]) -> dict:
    storage = Path(tempfile.mkdtemp(prefix=f"popmix-wide{width}-"))
    args = [
        "search",
        "--benchmark",
        "synthetic",
        "--tasks",
        str(width),
        "--storage",
        str(storage),
        "--name",
        "wide",
        "--quiet",
        f"train.steps={steps}",
        *overrides,
    ]
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, *args], capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"width {width}: popmix search failed:\n{proc.stderr[-2000:]}")
    peak = next(
        int(line.split()[1]) for line in proc.stdout.splitlines() if line.startswith("PEAK_RSS_KB")
    )
    rows = reports(storage / "wide")
    per_report = [r["time_this_iter_s"] for r in rows]
    train = [r["time_train_s"] for r in rows]
    rest = [a - b for a, b in zip(per_report, train)]
    return {
        "width": width,
        "wall_s": wall,
        "peak_rss_mb": peak / 1024,
        "reports": len(rows),
        "report_s": statistics.median(per_report),
        "train_s": statistics.median(train),
        "rest_s": statistics.median(rest),
        "folder_mb": folder_bytes(storage / "wide") / 2**20,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--widths", default="16,256")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument(
        "overrides",
        nargs="*",
        default=[],
        help="KEY=VALUE settings for both searches (default: the synthetic proxy below)",
    )
    args = p.parse_args()
    overrides = args.overrides or [
        "model.n_layer=1",
        "model.n_head=2",
        "model.d_model=64",
        "model.seq_len=64",
        "search.report_every=25",
        "methods=[pbt,stratified]",
    ]
    results = [measure(int(w), args.steps, overrides) for w in args.widths.split(",")]
    print(f"popmix search --benchmark synthetic, {args.steps} steps, {' '.join(overrides)}")
    head = (
        f"{'domains':>8}{'wall s':>9}{'driver MB':>11}{'reports':>9}{'s/report':>10}"
        f"{'train':>8}{'other':>8}{'folder MB':>11}"
    )
    print(head + "\n" + "-" * len(head))
    for r in results:
        print(
            f"{r['width']:>8}{r['wall_s']:>9.0f}{r['peak_rss_mb']:>11.0f}{r['reports']:>9}"
            f"{r['report_s']:>10.3f}{r['train_s']:>8.3f}{r['rest_s']:>8.3f}{r['folder_mb']:>11.1f}"
        )
    if len(results) >= 2:
        a, b = results[0], results[-1]
        print(
            f"{b['width']} / {a['width']} domains: wall {b['wall_s'] / a['wall_s']:.2f}x, driver "
            f"memory {b['peak_rss_mb'] / a['peak_rss_mb']:.2f}x, time per report "
            f"{b['report_s'] / a['report_s']:.2f}x (other than training "
            f"{b['rest_s'] / max(a['rest_s'], 1e-9):.2f}x)"
        )


if __name__ == "__main__":
    main()
