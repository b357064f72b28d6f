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

A pre-tokenized domain (:func:`draw_token_sample`) is sampled in blocks of consecutive tokens
instead, read through memory maps: only the chosen blocks are ever read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._discover import Layout
from ._formats import Fields, records, token_array
from ._manifest import Manifest
from .domains import MIN_DOCUMENTS, DataError

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
        "unit": "bytes",
        "per_domain": sample_bytes,
        "seed": seed,
        "sampled": sampled,
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


# ---------------------------------------------------------------------------------------------
# pre-tokenized domains: blocks of consecutive ids


#: a sample is at least this many blocks (so it comes from many places of the corpus) ...
MIN_BLOCKS = 64
#: ... of at least this many tokens (so a block holds many training windows) and at most this
BLOCK_TOKENS = (256, 8192)


def block_tokens(sample_tokens: int) -> int:
    """The block length of a token sample: ``sample_tokens / MIN_BLOCKS``, within
    :data:`BLOCK_TOKENS`."""
    low, high = BLOCK_TOKENS
    return int(min(high, max(low, sample_tokens // MIN_BLOCKS)))


def draw_token_sample(
    layout: Layout, names: list[str], dtype: str | None, sample_tokens: int, seed: int
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Each pre-tokenized domain's sample (its ids, in corpus order) and a report like
    :func:`draw_sample`'s.

    A domain of at most ``sample_tokens`` tokens is read whole. A larger one is cut into blocks
    of :func:`block_tokens` consecutive ids (per shard, the last one shorter) and
    ``ceil(sample_tokens / block)`` blocks are drawn uniformly without replacement, with the
    random state ``default_rng([seed, domain index])``; blocks stay in corpus order. Blocks
    span document boundaries, as Megatron's own GPT dataset does when it packs documents.

    Raises:
        DataError: negative ids, float ids, or a bad shard.
    """
    block = block_tokens(sample_tokens)
    out: dict[str, np.ndarray] = {}
    whole: list[str] = []
    for i, name in enumerate(names):
        arrays = [token_array(s.path, s.fmt, dtype) for s in layout.shards if s.domain == name]
        total = sum(a.size for a in arrays)
        if total <= sample_tokens:
            parts = [np.asarray(a) for a in arrays]
            whole.append(name)
        else:
            starts = [(k, j) for k, a in enumerate(arrays) for j in range(0, a.size, block)]
            rng = np.random.default_rng([seed, i])
            n = min(len(starts), math.ceil(sample_tokens / block))
            picked = np.sort(rng.choice(len(starts), size=n, replace=False))
            parts = [
                np.asarray(arrays[starts[p][0]][starts[p][1] : starts[p][1] + block])
                for p in picked
            ]
        ids = np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint16)
        if ids.size and ids.min() < 0:
            raise DataError(
                f"domain {name!r} holds a negative token id ({int(ids.min())}); token ids "
                "must be 0 or more: check data.token_dtype or the files"
            )
        out[name] = ids
    report = {
        "unit": "tokens",
        "per_domain": sample_tokens,
        "block_tokens": block,
        "seed": seed,
        "sampled": {n: int(a.size) for n, a in out.items()},
        "read_whole": whole,
        "under_filled": sorted(whole),
        "shards_read": sum(1 for s in layout.shards if s.domain in out),
    }
    return out, report
