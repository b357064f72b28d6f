"""A bounded, reproducible sample of each domain's documents.

A domain whose text fits the sample (``sample_bytes``) is read whole. A larger one gets
``k = sample_bytes * documents / bytes`` documents (its mean document size, from the manifest):
shards are chosen at random with probability proportional to their expected bytes of the
domain (Efraimidis-Spirakis keys) until they hold :data:`OVERSAMPLE` times the sample, and the
documents inside them are reservoir-sampled (Li's Algorithm L, which draws random numbers only
for the documents it keeps). The chosen shards are read once, in corpus order, filling every
domain's reservoir in the same pass (a field-named corpus mixes all domains in each shard).
Kept documents are returned in corpus order, so the held-out splits are the same for the same
seed, and the random state is ``default_rng([seed, domain index])``: the same seed and the same
files give the same sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._discover import Layout
from ._formats import Fields, records
from ._manifest import Manifest
from .domains import MIN_DOCUMENTS

#: the chosen shards hold this many times the sample's bytes (when the domain has them), so
#: documents come from more than the one or two shards that would just fill it
OVERSAMPLE = 4


@dataclass
class _Reservoir:
    """``k`` documents drawn uniformly from those offered (all of them when ``k`` is None),
    each with the key that restores corpus order."""

    k: int | None
    rng: np.random.Generator
    items: list[tuple[tuple[int, int], str]]
    seen: int = 0
    weight: float = 1.0
    next_index: int = 0

    def offer(self, key: tuple[int, int], text: str) -> None:
        self.seen += 1
        if self.k is None or len(self.items) < self.k:
            self.items.append((key, text))
            if self.k is not None and len(self.items) == self.k:
                self.weight = self._draw_weight()
                self.next_index = self.k - 1 + self._skip()
            return
        if self.seen - 1 == self.next_index:
            self.items[int(self.rng.integers(self.k))] = (key, text)
            self.weight *= self._draw_weight()
            self.next_index += self._skip()

    def _draw_weight(self) -> float:
        assert self.k is not None
        return math.exp(math.log(1.0 - self.rng.random()) / self.k)

    def _skip(self) -> int:
        """Documents to pass over before the next one kept, plus one."""
        if self.weight >= 1.0:
            return 1
        u = 1.0 - self.rng.random()
        return int(math.floor(math.log(u) / math.log1p(-self.weight))) + 1

    def documents(self) -> list[str]:
        return [text for _, text in sorted(self.items, key=lambda item: item[0])]


def draw_sample(
    layout: Layout, manifest: Manifest, fields: Fields, sample_bytes: int, seed: int
) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """Each domain's sampled documents (corpus order) and a report: the sample's target,
    each domain's sampled bytes, the domains read whole because they are smaller, and the
    under-filled ones (those, and any whose reservoir its chosen shards could not fill)."""
    reservoirs: dict[str, _Reservoir] = {}
    chosen: set[str] = set()
    whole: list[str] = []
    for i, d in enumerate(manifest.domains):
        rng = np.random.default_rng([seed, i])
        nbytes = d.bytes.value if d.bytes is not None else 0
        expected = manifest.expected.get(d.name, {})
        if nbytes <= sample_bytes:
            reservoirs[d.name] = _Reservoir(None, rng, [])
            chosen.update(p for p, b in expected.items() if b > 0)
            whole.append(d.name)
            continue
        docs = d.documents.value if d.documents is not None else 1
        # at least MIN_DOCUMENTS, so the splits can keep whole documents
        k = max(MIN_DOCUMENTS, math.ceil(sample_bytes * docs / nbytes))
        reservoirs[d.name] = _Reservoir(k, rng, [])
        chosen.update(_choose_shards(expected, min(nbytes, OVERSAMPLE * sample_bytes), rng))
    for index, shard in enumerate(layout.shards):
        if str(shard.path) not in chosen:
            continue
        for position, (value, text, _) in enumerate(records(shard.path, shard.fmt, fields)):
            if text is None or not text.strip():
                continue
            name = shard.domain if shard.domain is not None else str(value)
            if name in reservoirs:
                reservoirs[name].offer((index, position), text)
    out = {name: r.documents() for name, r in reservoirs.items()}
    sampled = {name: sum(len(t.encode("utf-8")) for t in docs) for name, docs in out.items()}
    report = {
        "bytes_per_domain": sample_bytes,
        "seed": seed,
        "sampled_bytes": sampled,
        "read_whole": whole,
        # smaller than the sample (read whole), or a reservoir its shards could not fill
        "under_filled": sorted(
            n for n, r in reservoirs.items() if r.k is None or len(r.items) < r.k
        ),
        "shards_read": len(chosen),
    }
    return out, report


def _choose_shards(expected: dict[str, float], need: float, rng: np.random.Generator) -> list[str]:
    """Shards in a random order weighted by their expected bytes, until they hold ``need``."""
    paths = [p for p, b in expected.items() if b > 0]
    if not paths:
        return []
    sizes = np.array([expected[p] for p in paths])
    # Efraimidis-Spirakis: sorting u ** (1 / w) draws without replacement, weighted by w
    keys = np.log(1.0 - rng.random(len(paths))) / sizes
    out, held = [], 0.0
    for i in np.argsort(-keys, kind="stable"):
        out.append(paths[i])
        held += sizes[i]
        if held >= need:
            break
    return out
