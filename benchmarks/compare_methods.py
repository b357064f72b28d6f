"""PBT, the static baselines, DoGE and Aioli at equal training steps per model, over seeds.

Runs ``popmix search`` on each experiment and prints, per method, the mean test perplexity
over seeds with its spread (sample standard deviation), the worst-domain perplexity, the
extra work each method needed beyond its training steps, the effective number of domains of
its final weights (exp of their entropy), and a method's own diagnostics (DoGE: the shares of
its scores cut by the clip at the top and at the bottom).

    python benchmarks/compare_methods.py [experiments/compare_brown16.yaml ...]
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

from popmix.cli import main as popmix

DEFAULT = ["experiments/compare_brown16.yaml", "experiments/compare_synthetic.yaml"]


def table(summary: dict) -> str:
    by_method: dict[str, list[dict]] = defaultdict(list)
    for r in summary["rows"]:
        if r["status"] == "ok":
            by_method[r["method"]].append(r)

    def spread(xs: list[float]) -> str:
        sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
        return f"{statistics.mean(xs):7.3f} ± {sd:5.3f}"

    floor = summary.get("entropy_rate")  # synthetic domains: the best achievable loss
    lines = [
        f"{'method':<13}{'seeds':>6}  {'mean test ppl':>15}  {'worst test ppl':>15}"
        f"  {'train steps':>11}  {'+extra':>7}  {'eff. domains':>12}"
        + (f"  {'excess loss over floor':>22}" if floor else "")
    ]
    for method, rows in sorted(
        by_method.items(), key=lambda kv: statistics.mean(r["test_mean_ppl"] for r in kv[1])
    ):
        steps = statistics.mean(r.get("population_train_steps") or r["train_steps"] for r in rows)
        extra = statistics.mean(r.get("extra_step_equivalents") or 0.0 for r in rows)
        eff = [r["effective_domains"] for r in rows if r.get("effective_domains") is not None]
        line = (
            f"{method:<13}{len(rows):>6}  {spread([r['test_mean_ppl'] for r in rows]):>15}  "
            f"{spread([r['test_worst_ppl'] for r in rows]):>15}  {steps:>11.0f}  {extra:>7.1f}"
            f"  {statistics.mean(eff) if eff else float('nan'):>12.2f}"
        )
        if floor:
            excess = [statistics.mean(r["test_loss"][d] - floor[d] for d in floor) for r in rows]
            line += f"  {spread(excess):>22}"
        lines.append(line)
    for method, rows in sorted(by_method.items()):
        diag = [r.get("diagnostics") or {} for r in rows]
        keys = sorted({k for d in diag for k in d})
        if keys:
            shares = ", ".join(
                f"{k} {statistics.mean(d.get(k, 0.0) for d in diag):.3f}" for k in keys
            )
            lines.append(f"  {method}: {shares} (mean over seeds)")
    return "\n".join(lines)


def main(paths: list[str]) -> int:
    storage = tempfile.mkdtemp(prefix="popmix-compare-")
    tables = []
    for path in paths or DEFAULT:
        name = Path(path).stem
        rc = popmix(
            ["search", "--experiment", path, "--storage", storage, "--name", name, "--quiet"]
        )
        if rc != 0:
            return rc
        summary = json.loads(Path(storage, name, "summary.json").read_text())
        tables.append(
            f"\n{name}: {summary['benchmark']}, {len(summary['domains'])} domains, "
            f"{summary['steps_per_model']} steps per model, wall "
            f"{summary['wall_time_s']:.0f} s\n" + table(summary)
        )
    print("\n".join(tables))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
