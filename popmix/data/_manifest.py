"""A corpus's sizes without loading it: documents, bytes and tokens per domain.

Each count is **exact** (every shard counted: a streaming pass, parquet and Megatron headers,
``.npy`` sizes) or **estimated**. A corpus larger than ``scan_bytes`` on disk is counted on a
random subset of its shards (at least :data:`MIN_SCANNED` per domain) and extrapolated by
on-disk size with the ratio estimator; the error bar is two standard errors of that estimate
(``N^2 (1 - n/N) / n * s^2``, ``s^2`` the spread of the sampled shards around the ratio).

Per-shard counts are cached in ``$POPMIX_CACHE/manifests/<hash>.json`` (else
``<tempdir>/popmix-cache/manifests``), keyed by the corpus's folder and field rule, each shard
by its path, size and modification time, so a second start reads no shard it counted before;
``rescan=True`` counts everything again.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from popmix._util.atomic import write_json

from ._discover import Layout, Shard
from ._formats import Fields, megatron_index, npy_tokens, records
from .domains import DataError

#: on-disk bytes counted exactly before the counts are estimated from a sample of shards
SCAN_BYTES = 1 << 30
#: fewest shards counted per domain (or per corpus, for field-named domains) to estimate
MIN_SCANNED = 4
_CACHE_VERSION = 1

#: per shard, per domain: [documents, bytes, tokens, documents with a token count]
ShardCounts = dict[str, list[int]]


def manifest_dir() -> Path:
    """Where manifests are cached (see the module docstring)."""
    root = os.environ.get("POPMIX_CACHE")
    base = Path(root).expanduser() if root else Path(tempfile.gettempdir()) / "popmix-cache"
    return base / "manifests"


@dataclass(frozen=True)
class Count:
    """A count and how sure it is: ``error`` is ± two standard errors (0 when exact)."""

    value: int
    exact: bool
    error: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "exact": self.exact, "error": self.error}


@dataclass(frozen=True)
class DomainManifest:
    """One domain's sizes. ``bytes`` are UTF-8 bytes of text (what the byte-level proxy
    reads; ``None`` for pre-tokenized domains); ``tokens`` come from a ``token_count`` field
    or a pre-tokenized file (``None`` when unknown); ``dtype`` is set for pre-tokenized."""

    name: str
    n_shards: int
    disk_bytes: int
    documents: Count | None
    bytes: Count | None
    tokens: Count | None
    dtype: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "shards": self.n_shards,
            "disk_bytes": self.disk_bytes,
            "documents": self.documents.to_dict() if self.documents else None,
            "bytes": self.bytes.to_dict() if self.bytes else None,
            "tokens": self.tokens.to_dict() if self.tokens else None,
            "dtype": self.dtype,
        }


@dataclass(frozen=True)
class Manifest:
    """Every domain's sizes, in one ``unit`` (``bytes`` or ``tokens``) for the priors."""

    root: str
    rule: str
    unit: str
    domains: tuple[DomainManifest, ...]
    shards_total: int
    shards_counted: int
    shards_cached: int
    seconds: float
    #: domain -> shard path -> its expected bytes of that domain (counted or extrapolated)
    expected: dict[str, dict[str, float]] = field(default_factory=dict, repr=False)

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.domains]

    def size(self, name: str) -> Count:
        d = self.domains[self.names.index(name)]
        count = d.tokens if self.unit == "tokens" else d.bytes
        assert count is not None  # the unit is one every domain has
        return count

    @property
    def estimated(self) -> bool:
        return any(not self.size(n).exact for n in self.names)

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "rule": self.rule,
            "unit": self.unit,
            "estimated": self.estimated,
            "shards": {
                "total": self.shards_total,
                "counted": self.shards_counted,
                "cached": self.shards_cached,
            },
            "seconds": round(self.seconds, 3),
            "domains": {d.name: d.to_dict() for d in self.domains},
        }


# ---------------------------------------------------------------------------------------------
# counting one shard


def count_shard(shard: Shard, fields: Fields, token_dtype: str | None) -> dict[str, Any]:
    """``{"domains": ShardCounts, "dtype": ...}`` of one shard."""
    if shard.tokenized and shard.domain is None:
        raise DataError(
            f"pre-tokenized shard {str(shard.path)!r} has no records to name its domain; "
            "drop data.domain_field and use one folder or data.domains glob per domain"
        )
    if shard.fmt == "megatron":
        tf = megatron_index(shard.path)
        return {
            "domains": {shard.domain or "": [tf.documents, 0, tf.tokens, 0]},
            "dtype": tf.dtype,
        }
    if shard.fmt == "npy":
        tf = npy_tokens(shard.path, token_dtype)
        return {"domains": {shard.domain or "": [0, 0, tf.tokens, 0]}, "dtype": tf.dtype}
    counts: ShardCounts = {}
    if shard.domain is not None:
        counts[shard.domain] = [0, 0, 0, 0]  # a domain without text is still a domain
    for value, text, tokens in records(shard.path, shard.fmt, fields):
        name = shard.domain if shard.domain is not None else str(value)
        c = counts.setdefault(name, [0, 0, 0, 0])
        if text is None or not text.strip():
            continue
        c[0] += 1
        c[1] += len(text.encode("utf-8"))
        if isinstance(tokens, int):
            c[2] += tokens
            c[3] += 1
    return {"domains": counts, "dtype": None}


# ---------------------------------------------------------------------------------------------
# the manifest


def build_manifest(
    layout: Layout,
    fields: Fields,
    token_dtype: str | None = None,
    rescan: bool = False,
    seed: int = 0,
    scan_bytes: int = SCAN_BYTES,
    progress: Callable[[int, int, int, int], None] | None = None,
) -> Manifest:
    """Count (or estimate) every domain's sizes; see the module docstring.

    Args:
        progress: called after each shard with (shards done, shards to do, bytes done, bytes
            to do); default: a line on stderr once counting takes more than a second.

    Raises:
        DataError: an unreadable shard, a domain without text, mixed units across domains.
    """
    start = time.perf_counter()
    cache_file = manifest_dir() / f"{_cache_key(layout, fields, token_dtype)}.json"
    cached = {} if rescan else _read_cache(cache_file)
    groups = _groups(layout)
    counted: dict[str, dict[str, Any]] = {}
    n_cached = 0
    for s in layout.shards:
        hit = cached.get(str(s.path))
        if hit and hit["size"] == s.size and hit["mtime_ns"] == s.mtime_ns:
            counted[str(s.path)] = hit
            n_cached += 1
    todo = _to_count(groups, counted, scan_bytes, seed)
    report = progress or _Progress()
    total_bytes = sum(s.size for s in todo)
    done_bytes = 0
    for i, s in enumerate(todo, 1):
        counted[str(s.path)] = {
            "size": s.size,
            "mtime_ns": s.mtime_ns,
            **count_shard(s, fields, token_dtype),
        }
        done_bytes += s.size
        report(i, len(todo), done_bytes, total_bytes)
    if todo:
        known = {str(s.path) for s in layout.shards} & counted.keys()
        _write_cache(cache_file, {p: counted[p] for p in sorted(known)})
    domains, expected = _estimate(layout, groups, counted)
    return Manifest(
        root=str(layout.root),
        rule=layout.rule,
        unit=_unit(domains),
        domains=domains,
        shards_total=len(layout.shards),
        shards_counted=sum(str(s.path) in counted for s in layout.shards),
        shards_cached=n_cached,
        seconds=time.perf_counter() - start,
        expected=expected,
    )


def _groups(layout: Layout) -> list[list[Shard]]:
    """Shards counted as one population: a domain's own shards, or all of a field-named
    corpus (each shard mixes its domains)."""
    if layout.rule == "field":
        return [list(layout.shards)]
    by: dict[str, list[Shard]] = {}
    for s in layout.shards:
        by.setdefault(s.domain or "", []).append(s)
    return [by[name] for name in sorted(by)]


def _to_count(
    groups: list[list[Shard]], counted: dict[str, Any], scan_bytes: int, seed: int
) -> list[Shard]:
    """The shards to count now: all of them when the corpus's text fits ``scan_bytes``, else
    a random subset of each group's (its share of ``scan_bytes``, at least MIN_SCANNED);
    pre-tokenized shards always, their header is all there is to read."""
    text_bytes = sum(s.size for g in groups for s in g if not s.tokenized)
    chosen: list[Shard] = []
    rng = np.random.default_rng([seed, 19])
    for group in groups:
        new = [s for s in group if str(s.path) not in counted]
        if text_bytes <= scan_bytes:
            chosen.extend(new)
            continue
        chosen.extend(s for s in new if s.tokenized)
        text = [s for s in group if not s.tokenized]
        share = scan_bytes * sum(s.size for s in text) / text_bytes
        have = [s for s in text if str(s.path) in counted]
        taken, n = sum(s.size for s in have), len(have)
        for i in rng.permutation(len(text)):
            s = text[i]
            if taken >= share and n >= min(MIN_SCANNED, len(text)):
                break
            if str(s.path) in counted:
                continue
            chosen.append(s)
            taken, n = taken + s.size, n + 1
    order = {id(s): i for i, s in enumerate(s for g in groups for s in g)}
    return sorted(chosen, key=lambda s: order[id(s)])


def _estimate(
    layout: Layout, groups: list[list[Shard]], counted: dict[str, Any]
) -> tuple[tuple[DomainManifest, ...], dict[str, dict[str, float]]]:
    out: dict[str, DomainManifest] = {}
    expected: dict[str, dict[str, float]] = {}
    for group in groups:
        seen = [s for s in group if str(s.path) in counted]
        names = sorted({n for s in seen for n in counted[str(s.path)]["domains"]})
        for name in names:
            rows = [counted[str(s.path)]["domains"].get(name, [0, 0, 0, 0]) for s in seen]
            y = np.array(rows, dtype=np.float64).reshape(-1, 4)
            x = np.array([s.size for s in seen], dtype=np.float64)
            total_x = float(sum(s.size for s in group))
            exact = len(seen) == len(group)
            docs, nbytes, tokens = (
                _ratio(y[:, j], x, total_x, len(group), exact) for j in range(3)
            )
            with_tokens = bool(np.all(y[:, 3] == y[:, 0])) and float(y[:, 3].sum()) > 0
            dtype = next(
                (counted[str(s.path)]["dtype"] for s in seen if counted[str(s.path)]["dtype"]),
                None,
            )
            _no_text_check(name, group, nbytes, dtype, layout.rule)
            out[name] = DomainManifest(
                name=name,
                n_shards=len(group) if layout.rule != "field" else len(seen),
                disk_bytes=int(total_x),
                documents=docs if dtype is None or docs.value else None,
                bytes=nbytes if dtype is None else None,
                tokens=tokens if (dtype is not None or with_tokens) else None,
                dtype=dtype,
            )
            ratio = float(y[:, 1].sum() / x.sum()) if x.sum() else 0.0
            expected[name] = {
                str(s.path): (
                    float(counted[str(s.path)]["domains"].get(name, [0, 0])[1])
                    if str(s.path) in counted
                    else ratio * s.size
                )
                for s in group
            }
    return tuple(out[n] for n in sorted(out)), expected


def _ratio(y: np.ndarray, x: np.ndarray, total_x: float, n_total: int, exact: bool) -> Count:
    """The ratio estimate of a group's total of ``y`` from its counted shards (``y`` per
    shard, ``x`` their sizes), with ± two standard errors."""
    if exact:
        return Count(int(y.sum()), True)
    r = float(y.sum() / x.sum()) if x.sum() else 0.0
    estimate = r * total_x
    n = y.size
    if n < 2:
        return Count(round(estimate), False, round(estimate))
    spread = float(np.sum((y - r * x) ** 2) / (n - 1))
    variance = n_total**2 * (1 - n / n_total) / n * spread
    return Count(round(estimate), False, math.ceil(2 * math.sqrt(variance)))


def _no_text_check(
    name: str, group: Sequence[Shard], nbytes: Count, dtype: str | None, rule: str
) -> None:
    if dtype is not None or nbytes.value > 0:
        return
    if rule == "field":
        raise DataError(
            f"domain {name!r} has no text in its rows of {str(group[0].path)!r}"
            f"{' and the other shards' if len(group) > 1 else ''}; add text or remove its rows"
        )
    if len(group) == 1:
        raise DataError(
            f"domain {name!r} has no text: file {str(group[0].path)!r} is empty; add text to "
            "it or remove it"
        )
    raise DataError(
        f"domain {name!r} has no text in its {len(group)} shards (e.g. "
        f"{str(group[0].path)!r}); add text or remove it"
    )


def _unit(domains: Sequence[DomainManifest]) -> str:
    """``tokens`` when every domain counts them, else ``bytes`` of text; pre-tokenized
    domains next to text domains have no common unit."""
    tokenized = [d.name for d in domains if d.dtype is not None]
    text = [d.name for d in domains if d.dtype is None]
    if tokenized and text:
        raise DataError(
            f"mixed units across domains: {tokenized[0]!r} is pre-tokenized (tokens), "
            f"{text[0]!r} is text (bytes); give every domain as text, or every one tokenized"
        )
    return "tokens" if all(d.tokens is not None for d in domains) else "bytes"


# ---------------------------------------------------------------------------------------------
# cache and progress


def _cache_key(layout: Layout, fields: Fields, token_dtype: str | None) -> str:
    key = json.dumps(
        [str(layout.root.resolve()), layout.rule, fields.text, fields.domain, token_dtype]
    )
    return hashlib.sha1(key.encode()).hexdigest()[:20]


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # no cache yet, or a half-written one: count again
    if not isinstance(data, dict) or data.get("version") != _CACHE_VERSION:
        return {}
    shards = data.get("shards")
    return shards if isinstance(shards, dict) else {}


def _write_cache(path: Path, shards: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, {"version": _CACHE_VERSION, "shards": shards})


class _Progress:
    """A progress line on stderr with the time left, once counting takes over a second."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.last = 0.0

    def __call__(self, done: int, todo: int, done_bytes: int, total_bytes: int) -> None:
        now = time.perf_counter() - self.start
        if now < 1.0 or (now - self.last < 0.5 and done < todo):
            return
        self.last = now
        left = now * (total_bytes - done_bytes) / max(done_bytes, 1)
        end = "\n" if done == todo else ""
        print(
            f"\rcounting the data: {done}/{todo} shards, {done_bytes / 1e6:.0f} of "
            f"{total_bytes / 1e6:.0f} MB, {left:.0f} s left ",
            end=end,
            file=sys.stderr,
            flush=True,
        )
