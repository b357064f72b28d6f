"""Your own corpus at its real size: discovery, sizes without loading it, a bounded sample.

:func:`scan_corpus` finds the shards and counts each domain (:mod:`._discover`,
:mod:`._manifest`); :func:`load_corpus` adds a sample of each domain's documents, bounded by
``sample_tokens`` (:mod:`._sample`), split into train / validation / test, and gives every
domain the corpus's size (:attr:`Domain.n_tokens`), so the priors (proportional, temperature,
Cooldown, the baselines' starting mixtures) follow the corpus and not the sample. The
manifest and the sample's report are in ``DomainSet.meta["manifest"]`` and
``meta["sample"]``.

Example::

    domains = load_corpus("pile/", domain_field="meta.pile_set_name", sample_tokens=2**22)
    domains.meta["manifest"]["unit"]       # "bytes" (of text), or "tokens"
    domains.meta["manifest"]["estimated"]  # True when some sizes are extrapolated
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from . import _formats
from ._discover import Layout, discover
from ._formats import Fields
from ._manifest import SCAN_BYTES, Manifest, build_manifest
from ._sample import draw_sample, draw_token_sample
from .domains import DataError, Domain, DomainSet, split_documents, split_tokens

__all__ = [
    "DEFAULT_SAMPLE_TOKENS",
    "Manifest",
    "load_corpus",
    "sample_tokens_for",
    "scan_corpus",
]

#: a domain's sample when no budget says otherwise (``popmix run`` derives it from its budget)
DEFAULT_SAMPLE_TOKENS = 1 << 24
#: the held-out shares :func:`~popmix.data.domains.split_documents` cuts from the sample
_HELD_OUT = (0.05, 0.05)


def sample_tokens_for(
    steps: int,
    batch_size: int,
    seq_len: int,
    eval_windows: int = 0,
    test_windows: int = 0,
    max_weight: float = 1.0,
) -> int:
    """The sample a domain needs for a budget: what the longest trial can draw from it at
    ``max_weight`` (``steps * batch_size * (seq_len + 1)`` tokens times the weight), plus its
    validation and test windows, with the held-out shares the split cuts from the sample. A
    domain is then repeated in training only where the whole corpus would be repeated too."""
    window = seq_len + 1
    train = steps * batch_size * window * max_weight
    need = max(
        train / (1.0 - sum(_HELD_OUT)),
        # a held-out split holds at least two windows, whatever the budget evaluates
        max(eval_windows, 2) * window / _HELD_OUT[0],
        max(test_windows, 2) * window / _HELD_OUT[1],
    )
    return max(1, math.ceil(need))


def scan_corpus(
    path: str | os.PathLike,
    domain_field: str | None = None,
    domains: Mapping[str, Sequence[str]] | None = None,
    text_field: str = "text",
    token_dtype: str | None = None,
    rescan: bool = False,
    seed: int = 0,
    scan_bytes: int = SCAN_BYTES,
    progress: Callable[[int, int, int, int], None] | None = None,
) -> tuple[Layout, Manifest]:
    """Find the corpus's shards and count every domain, without keeping any text.

    Args:
        path: a folder (domains: its first-level entries, unless ``domain_field`` or
            ``domains``), or one table file (domains: its ``domain_field``, default
            ``domain``).
        domain_field: dotted path of the record field naming each record's domain.
        domains: domain name -> globs relative to ``path``.
        text_field: dotted path of the text.
        token_dtype: dtype of headerless ``.npy`` token files.
        rescan: count every shard again instead of using the cached counts.
        seed: which shards are counted when the corpus is estimated.
        scan_bytes: on-disk bytes counted exactly before estimating.

    Raises:
        DataError: see :mod:`popmix.data._discover` and :mod:`popmix.data._manifest`.
    """
    root = Path(path).expanduser()
    if not root.exists():
        raise DataError(f"data path {str(root)!r} does not exist; check the path")
    dtype = None if token_dtype is None else _formats.token_dtype(token_dtype).name
    layout = discover(root, domain_field, domains)
    fields = Fields(text=text_field, domain=layout.domain_field)
    manifest = build_manifest(layout, fields, dtype, rescan, seed, scan_bytes, progress)
    return layout, manifest


def load_corpus(
    path: str | os.PathLike,
    domain_field: str | None = None,
    domains: Mapping[str, Sequence[str]] | None = None,
    text_field: str = "text",
    token_dtype: str | None = None,
    rescan: bool = False,
    seed: int = 0,
    sample_tokens: int | None = None,
    scan_bytes: int = SCAN_BYTES,
) -> DomainSet:
    """The corpus's domains: a sample of each (``sample_tokens`` bytes of text, or tokens of
    a pre-tokenized corpus; default :data:`DEFAULT_SAMPLE_TOKENS`; a smaller domain whole),
    sized by the whole corpus. Arguments as in :func:`scan_corpus`.

    A pre-tokenized corpus (Megatron ``.bin``/``.idx``, ``.npy``) keeps its ids and sets
    ``meta["vocab_size"]`` to the sample's largest id plus one (the model's vocabulary unless
    ``model.vocab_size`` says otherwise: :func:`popmix.data.domains.check_vocab`).

    Raises:
        DataError: a bad corpus (see :func:`scan_corpus`), or negative or float token ids.
    """
    layout, manifest = scan_corpus(
        path, domain_field, domains, text_field, token_dtype, rescan, seed, scan_bytes
    )
    size = DEFAULT_SAMPLE_TOKENS if sample_tokens is None else sample_tokens
    if size < 1:
        raise DataError(f"data.sample_tokens must be at least 1, got {size}")
    extra: dict[str, int] = {}
    if manifest.unit == "tokens" and all(d.dtype is not None for d in manifest.domains):
        dtype = None if token_dtype is None else _formats.token_dtype(token_dtype).name
        ids, report = draw_token_sample(layout, manifest.names, dtype, size, seed)
        out = tuple(_token_domain(n, ids[n], manifest, layout) for n in manifest.names)
        extra["vocab_size"] = 1 + max(int(ids[n].max()) for n in manifest.names)
    else:
        fields = Fields(text=text_field, domain=layout.domain_field)
        docs, report = draw_sample(layout, manifest, fields, size, seed)
        out = tuple(_domain(d.name, docs[d.name], manifest, layout) for d in manifest.domains)
    root = layout.root
    meta = {
        **extra,
        "source": {"folders": "folder", "field": "table", "globs": "globs"}[layout.rule],
        "path": str(root),
        "domain_field": layout.domain_field,
        "text_field": text_field,
        "manifest": manifest.to_dict(),
        "sample": report,
    }
    return DomainSet(root.stem if root.is_file() else root.name, out, meta)


def _token_domain(name: str, ids: np.ndarray, manifest: Manifest, layout: Layout) -> Domain:
    if ids.size == 0:
        raise DataError(
            f"domain {name!r} of {str(layout.root)!r} has no tokens; add tokens or remove it"
        )
    train, validation, test = split_tokens(ids, _HELD_OUT)
    return Domain(name, train, validation, test, corpus_tokens=manifest.size(name).value)


def _domain(name: str, docs: list[str], manifest: Manifest, layout: Layout) -> Domain:
    if not docs:
        raise DataError(
            f"domain {name!r} of {str(layout.root)!r} has no text; add text or remove it"
        )
    train, validation, test = split_documents(docs, _HELD_OUT)
    size = manifest.size(name)
    return Domain(name, train, validation, test, corpus_tokens=max(1, size.value))
