"""Domains: named token streams with train / validation / test splits.

A *domain* is one source of training data (a genre, a language, a task). popmix works on
byte-level tokens, so a split is simply a 1-D ``uint8`` array and a domain's size ``n_i`` is the
number of training tokens. Every benchmark loader returns a :class:`DomainSet`.
"""

from __future__ import annotations

from collections.abc import Sequence
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
        train, validation, test: 1-D ``uint8`` token arrays.
        entropy_rate: the best achievable loss in nats per token, when known (synthetic
            domains); ``None`` for real data.
    """

    name: str
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    entropy_rate: float | None = None

    def split(self, split: str) -> np.ndarray:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        return getattr(self, split)

    @property
    def n_tokens(self) -> int:
        """Size n_i of the domain: number of training tokens."""
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
        """Training tokens per domain, shape (n_domains,)."""
        return np.array([d.n_tokens for d in self.domains], dtype=np.int64)

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


def to_tokens(text: str | bytes) -> np.ndarray:
    """UTF-8 bytes of ``text`` as a ``uint8`` token array."""
    raw = text.encode("utf-8") if isinstance(text, str) else text
    return np.frombuffer(raw, dtype=np.uint8).copy()


def split_documents(
    docs: Sequence[str], fractions: tuple[float, float] = (0.05, 0.05)
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split a domain's documents into train / validation / test token arrays.

    Whole documents go to one split when there are enough of them (at least 20), so that no text
    leaks between splits; otherwise the concatenated bytes are cut at the given fractions. The
    held-out parts are taken from the end so the split is deterministic.
    """
    f_val, f_test = fractions
    docs = [d for d in docs if d.strip()]
    if len(docs) >= 20:
        n = len(docs)
        n_test = max(1, round(n * f_test))
        n_val = max(1, round(n * f_val))
        parts = (
            docs[: n - n_val - n_test],
            docs[n - n_val - n_test : n - n_test],
            docs[n - n_test :],
        )
        return tuple(to_tokens("\n\n".join(p)) for p in parts)  # type: ignore[return-value]
    tokens = to_tokens("\n\n".join(docs))
    n = tokens.size
    n_test = int(n * f_test)
    n_val = int(n * f_val)
    return (
        tokens[: n - n_val - n_test],
        tokens[n - n_val - n_test : n - n_test],
        tokens[n - n_test :],
    )
