"""The user's own domains, read from local files (offline), through :mod:`popmix.data.corpus`.

Layouts (see :mod:`popmix.data._discover`):

* a **folder of domains** (:func:`load_folder`): each first-level entry is a domain, a file
  named by its stem (``wiki.txt``, ``code.jsonl.zst``, ``web.bin`` + ``web.idx``) or a folder
  of shards at any depth (Dolma, RedPajama, DCLM);
* a **table** (:func:`load_table`): one ``.jsonl`` / ``.json`` / ``.parquet`` / ``.csv`` file,
  or a folder of shards, whose field (a dotted path, ``meta.pile_set_name``) names each
  record's domain;
* **globs** per domain (``data.domains``), through :func:`load_user_data`.

``.txt`` files hold one document per paragraph (blank-line separated); the other text formats
one per record, in the field ``text``. Compression (gzip, zstd) is recognised by the files'
first bytes. Domains are sorted by name. Each domain's documents, a bounded sample for a large
one, are split into train / validation / test by :func:`~popmix.data.domains.split_documents`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ._discover import discover
from .corpus import load_corpus
from .domains import DataError, DomainSet

__all__ = [
    "FOLDER_SUFFIXES",
    "TABLE_SUFFIXES",
    "load_folder",
    "load_table",
    "load_user_data",
]

FOLDER_SUFFIXES = (".txt", ".jsonl", ".json", ".parquet", ".csv", ".bin", ".npy")
TABLE_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv")


def load_user_data(
    path: str | os.PathLike,
    domain_column: str | None = None,
    domains: Mapping[str, Sequence[str]] | None = None,
    **options: Any,
) -> DomainSet:
    """Load the user's domains from ``path``.

    A folder's first-level entries are its domains, unless ``domain_column`` (a dotted field
    path) names each record's domain, or ``domains`` maps names to globs. A single file is
    always a table (its ``domain_column``, default ``"domain"``, names each row's domain).
    ``options`` go to :func:`~popmix.data.corpus.load_corpus` (``text_field``,
    ``token_dtype``, ``rescan``, ``seed``, ``sample_tokens``).
    """
    return load_corpus(path, domain_field=domain_column, domains=domains, **options)


def load_folder(path: str | os.PathLike, **options: Any) -> DomainSet:
    """One domain per first-level entry of the folder ``path`` (a file, or a folder of shards),
    sorted by name; hidden entries and files of other formats are ignored."""
    folder = _existing(path)
    if not folder.is_dir():
        raise DataError(
            f"{str(folder)!r} is a file, not a folder; give a folder with one file or folder of "
            "shards per domain, or a table with a domain column"
        )
    return load_corpus(folder, **options)


def load_table(
    path: str | os.PathLike,
    domain_column: str = "domain",
    text_column: str = "text",
    **options: Any,
) -> DomainSet:
    """Domains from a table: a ``.jsonl`` / ``.json`` / ``.parquet`` / ``.csv`` file (or a
    folder of shards) whose ``domain_column`` (a dotted path) names each row's domain and whose
    ``text_column`` holds its text. Domains are sorted by name, rows kept in order."""
    p = _existing(path)
    if p.is_dir():
        layout = _try_discover(p, domain_column)
        if not any(s.fmt in ("jsonl", "json", "parquet", "csv") for s in layout):
            raise DataError(
                f"folder {str(p)!r} has no table files; add "
                f"{', '.join('*' + s for s in TABLE_SUFFIXES)} files with columns "
                f"{domain_column!r} and {text_column!r}"
            )
    return load_corpus(p, domain_field=domain_column, text_field=text_column, **options)


def _existing(path: str | os.PathLike) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"data path {str(p)!r} does not exist; check the path")
    return p


def _try_discover(folder: Path, domain_field: str) -> list[Any]:
    try:
        return list(discover(folder, domain_field).shards)
    except DataError:
        return []
