"""A repetition cap in action: a search's answer exported for a target run of ``--target-tokens``
tokens with at most ``--max-epochs`` passes over each domain, before and after ``--cap``, and
what the cap costs on the proxy: both final mixtures trained as static mixtures on
``--seeds`` seeds (``popmix run --method fixed``), paired by seed.

    python benchmarks/repetition_cap.py SEARCH_DIR --keep DIR --target-tokens 1e7
        [--max-epochs 4] [--method pbt] [--seeds 3] [popmix run flags, e.g. --benchmark X]

The run flags must name the search's data and proxy (the same ``--benchmark`` or
``--experiment``). Each run is kept in ``DIR/{uncapped,capped}-seed<S>``; a run that holds its
``result.json`` is read, not run again.

Prints the export's lines (one per domain repeated beyond the cap, and what ``--cap`` moved),
each domain's weight before and after with its epochs at the target, and the mean test
perplexity of each mixture [95% over seeds] and the paired difference capped - uncapped.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from _searches import fmt

from popmix._util.stats import mean_ci, paired


def popmix(*args: str) -> str:
    cmd = [sys.executable, "-m", "popmix.cli", *args]
    print("$ popmix", " ".join(args), flush=True)
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(done.stderr.strip() or done.stdout.strip())
    return done.stderr + done.stdout


def export(search: Path, out: Path, method: str, tokens: str, epochs: str, cap: bool) -> dict:
    args = [str(search), "--format", "json", "--method", method, "--out", str(out), "--force"]
    args += ["--target-tokens", tokens, "--max-epochs", epochs] + (["--cap"] if cap else [])
    print(popmix("export", *args), end="")
    return json.loads(out.read_text())


def train(folder: Path, weights: list[float], seed: int, flags: list[str]) -> float:
    result = folder / "result.json"
    if not result.exists():
        w = ",".join(f"{x:.10g}" for x in weights)
        args = ["run", "--method", "fixed", "--weights", w, "--seed", str(seed)]
        popmix(*args, "--out", str(folder), "--quiet", *flags)
    return float(json.loads(result.read_text())["test_mean_ppl"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("search", type=Path)
    ap.add_argument("--keep", type=Path, required=True)
    ap.add_argument("--target-tokens", required=True)
    ap.add_argument("--max-epochs", default="4")
    ap.add_argument("--method", default="pbt")
    ap.add_argument("--seeds", type=int, default=3)
    args, flags = ap.parse_known_args()
    args.keep.mkdir(parents=True, exist_ok=True)
    found = {}
    for label, cap in (("uncapped", False), ("capped", True)):
        out = args.keep / f"{label}.json"
        found[label] = export(
            args.search, out, args.method, args.target_tokens, args.max_epochs, cap
        )
    domains = found["uncapped"]["domains"]
    sizes = json.loads((args.search / "summary.json").read_text())["sizes"]
    tokens = float(args.target_tokens)
    head = ("domain", "size", "uncapped", "epochs", "capped", "epochs")
    print("\n{:<10} {:>10} {:>9} {:>8} {:>9} {:>8}".format(*head))
    for d in domains:
        u, c = found["uncapped"]["final_weights"][d], found["capped"]["final_weights"][d]
        n = float(sizes[d])
        cells = f"{u:>9.4f} {u * tokens / n:>8.3g} {c:>9.4f} {c * tokens / n:>8.3g}"
        print(f"{d:<10} {n:>10.4g} {cells}")
    ppl: dict[str, list[float]] = {}
    for label in found:
        weights = [found[label]["final_weights"][d] for d in domains]
        ppl[label] = [
            train(args.keep / f"{label}-seed{s}", weights, s, flags) for s in range(args.seeds)
        ]
    print()
    for label, values in ppl.items():
        per = ", ".join(f"{v:.3f}" for v in values)
        print(f"{label:<9} mean test ppl {fmt(mean_ci(values))} (per seed {per})")
    p = paired(ppl["capped"], ppl["uncapped"])
    print(f"capped - uncapped: {fmt(p, '+.3f')} {p['verdict']}")


if __name__ == "__main__":
    main()
