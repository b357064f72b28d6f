"""Text domains through a local tokenizer (``model.tokenizer``) instead of byte tokens.

The splits of a text domain are UTF-8 bytes; with a tokenizer each split is decoded and encoded
with it once, where the domains are loaded (the driver of a search, before any trial), so every
trial trains on the same ids. The tokenizer is a ``tokenizer.json`` read by Hugging Face's
``tokenizers`` package (Rust, no torch), imported only here and only when asked for: nothing
is downloaded.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from popmix.config import tokenizer_file
from popmix.data.domains import SPLITS, DataError, Domain, DomainSet


def load_tokenizer(path: str | Path) -> Any:
    """The ``tokenizers.Tokenizer`` of a ``tokenizer.json`` or of the folder holding one.

    Raises:
        DataError: the package is missing, or the file is missing or not a tokenizer.
    """
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise DataError(
            "model.tokenizer needs the tokenizers package: pip install 'popmix[hf]'"
        ) from None
    try:
        file = tokenizer_file(str(path))
    except ValueError as e:
        raise DataError(str(e)) from None
    try:
        return Tokenizer.from_file(str(file))
    except Exception as e:  # the Rust side raises its own exception type
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(
            f"model.tokenizer: {file} is not a tokenizer.json ({first[:120]})"
        ) from None


def tokenize_domains(domains: DomainSet, path: str | Path) -> DomainSet:
    """``domains`` with every split encoded by the tokenizer at ``path``.

    A split is decoded as UTF-8 (a character a byte cut split in two is dropped) and encoded
    without special tokens. A sampled corpus's size (``corpus_tokens``, in bytes) is scaled
    by the sample's tokens per byte, so the priors keep following the corpus.
    ``meta["vocab_size"]`` becomes the tokenizer's vocabulary; a known loss floor
    (``entropy_rate``, per byte) is dropped.

    Raises:
        DataError: a pre-tokenized domain set (its ids are not text), or a tokenizer problem.
    """
    if "vocab_size" in domains.meta:
        raise DataError(
            f"model.tokenizer applies to text, and {domains.name!r} is already token ids; "
            "remove model.tokenizer"
        )
    tokenizer = load_tokenizer(path)
    vocab = int(tokenizer.get_vocab_size(with_added_tokens=True))
    dtype = np.uint16 if vocab <= 1 << 16 else np.int32
    out = []
    for d in domains:
        texts = [d.split(s).tobytes().decode("utf-8", errors="ignore") for s in SPLITS]
        encoded = tokenizer.encode_batch(texts, add_special_tokens=False)
        splits = [np.asarray(e.ids, dtype=dtype) for e in encoded]
        corpus = d.corpus_tokens
        if corpus is not None and d.train.size:
            corpus = max(1, round(corpus * splits[0].size / d.train.size))
        out.append(
            replace(
                d,
                train=splits[0],
                validation=splits[1],
                test=splits[2],
                corpus_tokens=corpus,
                entropy_rate=None,  # a floor in nats per byte, not per token
            )
        )
    meta = {**domains.meta, "vocab_size": vocab, "tokenizer": str(Path(path))}
    return DomainSet(domains.name, tuple(out), meta)


__all__ = ["Domain", "load_tokenizer", "tokenize_domains"]
