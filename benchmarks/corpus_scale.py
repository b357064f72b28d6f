"""What a real-sized corpus costs popmix: peak memory and start-up time, and the manifest's.

Writes a synthetic sharded corpus (16 domains, steep sizes: domain ``i`` holds
``(i + 1) ** -1.2`` of the largest, 8 MB shards) of each size in a temporary folder: ``.jsonl.zst``
text, or with ``--format megatron`` pre-tokenized Megatron ``.bin``/``.idx`` shards of
``uint16`` ids (2 bytes a token, a vocabulary of 50,000). It prints, per size:

- the peak resident memory and wall time of ``popmix run --data DIR --steps 1`` (a fresh
  process, to its first training step and its report), and the manifest's unit and whether
  it is estimated;
- the manifest's time without the cache (``rescan``) and with it;
- the largest relative difference between the priors (proportional weights) from that
  manifest and from exact sizes (the generator's own counts), and whether each domain's exact
  size is within the manifest's error bar.

Goal (issue 19): peak memory at 2 GB <= 1.2x that at 0.2 GB; a cached start <= 5 s; priors
equal to the exact ones, or within the error bar.

    python benchmarks/corpus_scale.py [--sizes-gb 0.2,2] [--format jsonl|megatron] [--steps N]
        [--keep DIR]

``--steps`` sets the run's budget, and with it the sample each domain is drawn (at 1 step a
few thousand tokens: this measures that memory no longer follows the corpus, not the memory
of a long run's sample).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import zstandard

N_DOMAINS = 16
SHARD_BYTES = 8 << 20
_WORDS = np.array(
    "the of and to in a is that for it as was with be by on not he this are or his from at "
    "which but have an they you were her she there been one all we their has would when if "
    "so no will more can out up who said do into some than them its only other new time".split()
)


def write_corpus(root: Path, total_bytes: int, seed: int = 0) -> dict[str, dict[str, int]]:
    """The corpus and each domain's exact documents and bytes of text."""
    rng = np.random.default_rng(seed)
    shares = np.arange(1, N_DOMAINS + 1, dtype=float) ** -1.2
    shares /= shares.sum()
    truth = {}
    cctx = zstandard.ZstdCompressor(level=3)
    for i, share in enumerate(shares):
        name = f"domain{i:02d}"
        folder = root / name
        folder.mkdir(parents=True)
        want, docs, nbytes, shard = int(share * total_bytes), 0, 0, 0
        while nbytes < want:
            lines, held = [], 0
            while held < min(SHARD_BYTES, want - nbytes):
                words = _WORDS[rng.integers(0, _WORDS.size, int(rng.integers(50, 600)))]
                text = f"{name} " + " ".join(words.tolist())
                lines.append(json.dumps({"text": text}))
                held += len(text)
                docs += 1
            nbytes += held
            data = ("\n".join(lines) + "\n").encode()
            (folder / f"part-{shard:05d}.jsonl.zst").write_bytes(cctx.compress(data))
            shard += 1
        truth[name] = {"documents": docs, "size": nbytes}
    return truth


VOCAB = 50_000
_TOKENS_PER_SHARD = SHARD_BYTES // 2


def write_megatron_corpus(
    root: Path, total_bytes: int, seed: int = 0
) -> dict[str, dict[str, int]]:
    """Megatron shards of random ``uint16`` ids, documents of 200 to 2,000 tokens; each
    domain's exact tokens. The ``.idx`` is written from Megatron's documented layout: magic,
    version, dtype code, sequence and document counts, lengths, byte pointers, document
    index."""
    rng = np.random.default_rng(seed)
    shares = np.arange(1, N_DOMAINS + 1, dtype=float) ** -1.2
    shares /= shares.sum()
    truth = {}
    for i, share in enumerate(shares):
        name = f"domain{i:02d}"
        folder = root / name
        folder.mkdir(parents=True)
        want, held, shard = int(share * total_bytes) // 2, 0, 0
        while held < want:
            n = min(_TOKENS_PER_SHARD, want - held)
            rng.integers(0, VOCAB, n, dtype=np.uint16).tofile(folder / f"part-{shard:05d}.bin")
            lengths = np.diff(
                np.unique(np.r_[0, rng.integers(1, n, max(1, n // 1000)), n])
            ).astype(np.int32)
            pointers = np.r_[0, np.cumsum(lengths[:-1], dtype=np.int64) * 2].astype(np.int64)
            header = b"MMIDIDX\x00\x00" + np.array([1], "<u8").tobytes() + bytes([8])
            header += np.array([lengths.size, lengths.size + 1], "<u8").tobytes()
            documents = np.arange(lengths.size + 1, dtype=np.int64)
            body = lengths.tobytes() + pointers.tobytes() + documents.tobytes()
            (folder / f"part-{shard:05d}.idx").write_bytes(header + body)
            held += n
            shard += 1
        truth[name] = {"documents": 0, "size": held}
    return truth


def peak_run(root: Path, cache: Path, steps: int) -> tuple[float, float, str]:
    """(peak MB, wall s, the run's header line) of ``popmix run`` over ``steps`` steps."""
    cmd = [sys.executable, "-m", "popmix.cli", "run", "--data", str(root), "--steps", str(steps)]
    cmd += ["--eval-windows", "1", "--test-windows", "1", "--out", str(cache / "run")]
    env = {**os.environ, "POPMIX_CACHE": str(cache)}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    out = proc.stdout.read().decode() if proc.stdout else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"popmix run failed:\n{out}")
    header = next((ln for ln in out.splitlines() if ln.startswith("popmix run:")), "")
    return usage.ru_maxrss / 1024, wall, header


def manifest_times(root: Path, cache: Path) -> tuple[float, float, object]:
    os.environ["POPMIX_CACHE"] = str(cache)
    from popmix.data.corpus import scan_corpus

    start = time.perf_counter()
    scan_corpus(root, rescan=True, progress=lambda *a: None)
    fresh = time.perf_counter() - start
    start = time.perf_counter()
    _, manifest = scan_corpus(root)
    return fresh, time.perf_counter() - start, manifest


def compare_priors(manifest, truth: dict[str, dict[str, int]]) -> tuple[float, bool]:
    names = sorted(truth)
    exact = np.array([truth[n]["size"] for n in names], dtype=float)
    found = np.array([manifest.size(n).value for n in names], dtype=float)
    within = all(
        abs(manifest.size(n).value - truth[n]["size"]) <= manifest.size(n).error for n in names
    )
    p, q = exact / exact.sum(), found / found.sum()
    return float(np.max(np.abs(q - p) / p)), within


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes-gb", default="0.2,2")
    parser.add_argument("--format", choices=("jsonl", "megatron"), default="jsonl")
    parser.add_argument("--steps", type=int, default=1, help="the run's budget (default 1)")
    parser.add_argument("--keep", help="write the corpora here instead of a temporary folder")
    args = parser.parse_args(argv)
    writer = write_megatron_corpus if args.format == "megatron" else write_corpus
    base = Path(args.keep or tempfile.mkdtemp(prefix="popmix-corpus-scale-"))
    print(
        f"{'size':>6}  {'written':>8}  {'peak MB':>8}  {'run s':>6}  {'scan s':>7}  "
        f"{'cached s':>8}  {'prior diff':>10}  within"
    )
    for gb in (float(x) for x in args.sizes_gb.split(",")):
        root, cache = base / f"corpus-{gb}gb", base / f"cache-{gb}gb"
        start = time.perf_counter()
        truth = writer(root, int(gb * 1e9))
        written = time.perf_counter() - start
        fresh, cached, manifest = manifest_times(root, cache)
        peak, wall, header = peak_run(root, cache, args.steps)
        diff, within = compare_priors(manifest, truth)
        print(
            f"{gb:>5}G  {written:>7.0f}s  {peak:>8.0f}  {wall:>6.1f}  {fresh:>7.1f}  "
            f"{cached:>8.2f}  {diff:>10.2e}  {within}   ({header})",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
