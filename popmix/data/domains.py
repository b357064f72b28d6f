"""Domains: named token streams with train / validation / test splits.

A *domain* is one source of training data (a genre, a language, a task). Text is read as
byte-level tokens, so a split is simply a 1-D ``uint8`` array; a pre-tokenized corpus (Megatron
``.bin``/``.idx``, ``.npy``) keeps its files' integer ids and names its vocabulary
(:attr:`DomainSet.vocab_size`). A domain's size ``n_i`` is the number of training tokens (or
the whole corpus's, when the splits are a sample). Every benchmark loader returns a
:class:`DomainSet`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

SPLITS = ("train", "validation", "test")
VOCAB_SIZE = 256  # byte-level tokens: no tokenizer to download


class DataError(ValueError):
    """A data problem the user can fix (missing file, empty domain, too many tasks...)."""


@dataclass(frozen=True)
class Domain:
    """One domain: its name and three token splits.

    Args:
        name: unique, human-readable name (used in metric keys: ``loss/<name>``).
        train, validation, test: 1-D token arrays: ``uint8`` bytes of text, or the integer
            ids of a pre-tokenized corpus.
        entropy_rate: the best achievable loss in nats per token, when known (synthetic
            domains); ``None`` for real data.
        corpus_tokens: the size of the whole corpus the splits were sampled from, in the unit
            of its manifest (``DomainSet.meta["manifest"]["unit"]``); ``None`` when the splits
            are the whole domain.
    """

    name: str
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    entropy_rate: float | None = None
    corpus_tokens: int | None = None

    def split(self, split: str) -> np.ndarray:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        return getattr(self, split)

    @property
    def n_tokens(self) -> int:
        """Size n_i of the domain: the corpus's size when the splits are a sample of it (the
        priors must follow the corpus, not the sample), else the number of training tokens."""
        if self.corpus_tokens is not None:
            return int(self.corpus_tokens)
        return int(self.train.size)

    @property
    def n_train(self) -> int:
        """Training tokens held in memory (the sample's, for a sampled corpus)."""
        return int(self.train.size)


@dataclass(frozen=True)
class DomainSet:
    """An ordered collection of domains (the order fixes every per-domain vector's layout)."""

    name: str
    domains: tuple[Domain, ...]
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = [d.name for d in self.domains]
        if len(set(names)) != len(names):
            raise DataError(f"duplicate domain names in {self.name!r}: {names}")

    def __len__(self) -> int:
        return len(self.domains)

    def __iter__(self):
        return iter(self.domains)

    def __getitem__(self, i: int) -> Domain:
        return self.domains[i]

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.domains]

    @property
    def sizes(self) -> np.ndarray:
        """Size n_i per domain (:attr:`Domain.n_tokens`: the corpus's when sampled), shape
        (n_domains,)."""
        return np.array([d.n_tokens for d in self.domains], dtype=np.int64)

    @property
    def vocab_size(self) -> int:
        """Token ids the data needs: 256 for bytes of text, the largest id plus one for a
        pre-tokenized corpus (``meta["vocab_size"]``, set when it is loaded)."""
        return int(self.meta.get("vocab_size", VOCAB_SIZE))

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise DataError(
                f"unknown domain {name!r}; known domains: {', '.join(self.names)}"
            ) from None

    def first(self, n: int) -> DomainSet:
        """The first ``n`` domains (``--tasks n``)."""
        if n < 1:
            raise DataError(f"--tasks must be at least 1, got {n}")
        if n > len(self.domains):
            raise DataError(
                f"--tasks {n} asks for more domains than {self.name!r} has ({len(self.domains)}); "
                f"use --tasks {len(self.domains)} or fewer"
            )
        return DomainSet(self.name, self.domains[:n], dict(self.meta))

    def check(self, min_tokens: int) -> None:
        """Every split of every domain must hold at least ``min_tokens`` tokens."""
        for d in self.domains:
            for s in SPLITS:
                n = d.split(s).size
                if n < min_tokens:
                    what = "is empty" if n == 0 else f"has only {n} tokens"
                    raise DataError(
                        f"domain {d.name!r} {s} split {what}; every split needs at least "
                        f"{min_tokens} tokens (sequence length + 1): add data or lower --seq-len"
                    )


def domain_groups(
    domains: DomainSet, given: Mapping[str, Sequence[str]] | None = None
) -> dict[str, str]:
    """Domain name -> group name, for results by group.

    Args:
        given: group -> domain names (an experiment's ``data.groups``); when empty, the
            domain set's own groups (``meta["groups"]``, e.g. the multilingual benchmark's
            resource groups), kept to the domains it holds.

    Raises:
        DataError: a listed domain that is not in ``domains``, or one listed in two groups.
    """
    if not given:
        own = domains.meta.get("groups") or {}
        return {n: own[n] for n in domains.names if n in own}
    out: dict[str, str] = {}
    for group, names in given.items():
        for name in names:
            domains.index(name)  # an unknown name is a one-line error naming the known ones
            if name in out and out[name] != group:
                raise DataError(
                    f"data.groups: domain {name!r} is in both {out[name]!r} and {group!r}; "
                    "put each domain in one group"
                )
            out[name] = group
    return {n: out[n] for n in domains.names if n in out}


def to_tokens(text: str | bytes) -> np.ndarray:
    """UTF-8 bytes of ``text`` as a ``uint8`` token array."""
    raw = text.encode("utf-8") if isinstance(text, str) else text
    return np.frombuffer(raw, dtype=np.uint8).copy()


#: fewest documents for which :func:`split_documents` tries to keep documents whole.
MIN_DOCUMENTS = 20
#: bytes a split needs for a run at the default ``seq_len`` of 128: one window of
#: ``seq_len + 1`` tokens (what :meth:`DomainSet.check` asks of every split).
MIN_SPLIT_BYTES = 129
#: a whole-document split must give every split at least this part of its byte share.
MIN_SHARE = 0.5


def split_documents(
    docs: Sequence[str],
    fractions: tuple[float, float] = (0.05, 0.05),
    min_bytes: int = MIN_SPLIT_BYTES,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split a domain's documents into train / validation / test token arrays.

    Documents are joined with a blank line (``"\\n\\n"``). Two ways to split them:

    * **whole documents** (no text leaks between splits): with ``n >= 20`` documents, the last
      ``round(n * f_test)`` (at least 1) go to test, the ``round(n * f_val)`` (at least 1)
      before them to validation, the rest to train;
    * **byte cut**: the joined bytes are cut at byte positions, test getting the last
      ``int(B * f_test)`` of the ``B`` bytes, validation the ``int(B * f_val)`` before them.

    Counting documents says nothing about their bytes: many short paragraphs, or a short last
    paragraph, gave a held-out split of a dozen bytes, which no run can use (a split needs
    ``seq_len + 1`` tokens). So the whole-document split is kept only when **every split**
    (train included)

    1. gets at least ``MIN_SHARE`` (half) of its byte share (``f * B``, train's share being
       ``(1 - f_val - f_test) * B``), and
    2. gets at least ``min_bytes`` bytes (default 129, one window of the default ``seq_len``
       128 plus one); this one is waived for a split whose byte cut would be shorter than
       ``min_bytes`` too, since cutting bytes could not make that split usable either.

    Otherwise, and with fewer than 20 documents, the bytes are cut. Both ways depend on the
    documents alone (no randomness), so the same files always give the same splits; corpora
    whose documents are even enough keep the whole-document split they had before.
    """
    f_val, f_test = fractions
    docs = [d for d in docs if d.strip()]
    if len(docs) >= MIN_DOCUMENTS:
        n = len(docs)
        n_test = max(1, round(n * f_test))
        n_val = max(1, round(n * f_val))
        parts = tuple(
            to_tokens("\n\n".join(p))
            for p in (
                docs[: n - n_val - n_test],
                docs[n - n_val - n_test : n - n_test],
                docs[n - n_test :],
            )
        )
        total = sum(p.size for p in parts) + 2 * 2  # the two blank lines between the parts
        shares = (1.0 - f_val - f_test, f_val, f_test)
        byte_cut = _byte_cut_sizes(total, f_val, f_test)
        if all(
            p.size >= MIN_SHARE * share * total and (p.size >= min_bytes or cut < min_bytes)
            for p, share, cut in zip(parts, shares, byte_cut)
        ):
            return parts  # type: ignore[return-value]
    tokens = to_tokens("\n\n".join(docs))
    n_train, n_val, _ = _byte_cut_sizes(tokens.size, f_val, f_test)
    return (
        tokens[:n_train],
        tokens[n_train : n_train + n_val],
        tokens[n_train + n_val :],
    )


def split_tokens(
    tokens: np.ndarray, fractions: tuple[float, float] = (0.05, 0.05)
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train / validation / test of a pre-tokenized sample: cut at token positions, test the
    last ``int(n * f_test)`` tokens and validation the ``int(n * f_val)`` before them (the
    token files carry no document boundaries popmix reads, so there is no whole-document
    split)."""
    n_train, n_val, _ = _byte_cut_sizes(tokens.size, *fractions)
    return tokens[:n_train], tokens[n_train : n_train + n_val], tokens[n_train + n_val :]


def check_vocab(domains: DomainSet, vocab_size: int | None, key: str = "model.vocab_size") -> int:
    """The vocabulary a model of ``domains`` embeds: ``vocab_size`` (``model.vocab_size``,
    or with ``key="model.hf_config"`` the transformers config's), or the data's own when it
    is ``None``. The one vocabulary check of every model kind.

    Raises:
        DataError: ``vocab_size`` smaller than the data's largest id plus one.
    """
    needed = domains.vocab_size
    if vocab_size is None:
        return needed
    if vocab_size < needed and key == "model.hf_config":
        raise DataError(
            f"model.hf_config: vocab_size {vocab_size} is too small for {domains.name!r}, "
            f"whose largest token id is {needed - 1}; set vocab_size: {needed} or more in the "
            "config (or leave it out: from the data)"
        )
    if vocab_size < needed:
        raise DataError(
            f"model.vocab_size={vocab_size} is too small for {domains.name!r}, whose largest "
            f"token id is {needed - 1}; use model.vocab_size={needed} or more (or null: from "
            "the data)"
        )
    return int(vocab_size)


def _byte_cut_sizes(n: int, f_val: float, f_test: float) -> tuple[int, int, int]:
    """(train, validation, test) sizes of the byte cut of ``n`` bytes."""
    n_test = int(n * f_test)
    n_val = int(n * f_val)
    return n - n_val - n_test, n_val, n_test
