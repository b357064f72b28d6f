"""The user's own domains, read from local files with Hugging Face ``datasets`` (offline).

Two layouts are supported:

* a **folder with one file per domain** (:func:`load_folder`): ``*.txt`` (one document per
  paragraph, paragraphs separated by blank lines), ``*.jsonl`` / ``*.json``, ``*.parquet`` or
  ``*.csv`` with a ``text`` column. The domain's name is the file's stem; domains are sorted by
  name.
* a **table** (:func:`load_table`): one ``.jsonl`` / ``.json`` / ``.parquet`` / ``.csv`` file,
  or a folder of them, with a column naming each row's domain and a column with its text.

:func:`load_user_data` picks the right one. Each domain's documents are split into train /
validation / test by :func:`~popmix.data.domains.split_documents`: whole documents (paragraphs,
rows) while every split still gets about its share of the bytes and enough of them for a run
(so many short paragraphs, or a short last one, do not leave a held-out split of a dozen bytes),
else the joined bytes are cut at the split fractions. Nothing is downloaded: the
``text`` / ``json`` / ``parquet`` / ``csv`` builders ship with ``datasets`` and read local files,
so this works with ``HF_DATASETS_OFFLINE=1``. The Arrow cache that ``datasets`` writes goes to
``$POPMIX_CACHE/hf-datasets`` when ``POPMIX_CACHE`` is set, else to
``<tempdir>/popmix-hf-cache``, not to the user's home.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .domains import DataError, Domain, DomainSet, split_documents

__all__ = [
    "FOLDER_SUFFIXES",
    "TABLE_SUFFIXES",
    "cache_dir",
    "load_folder",
    "load_table",
    "load_user_data",
]

#: file suffix -> ``datasets`` builder
_BUILDERS = {
    ".txt": "text",
    ".jsonl": "json",
    ".json": "json",
    ".parquet": "parquet",
    ".csv": "csv",
}
FOLDER_SUFFIXES = (".txt", ".jsonl", ".json", ".parquet", ".csv")
TABLE_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv")


def cache_dir() -> Path:
    """Where ``datasets`` keeps its Arrow cache for popmix (see the module docstring)."""
    root = os.environ.get("POPMIX_CACHE")
    if root:
        return Path(root).expanduser() / "hf-datasets"
    return Path(tempfile.gettempdir()) / "popmix-hf-cache"


# ---------------------------------------------------------------------------------------------
# public loaders


def load_user_data(path: str | os.PathLike, domain_column: str | None = None) -> DomainSet:
    """Load the user's domains from ``path``.

    A folder is read with :func:`load_folder` (one file per domain), unless ``domain_column``
    is given: then it is a folder of table files read with :func:`load_table`. A single file is
    always a table (its ``domain_column``, default ``"domain"``, names each row's domain).
    """
    p = _existing(path)
    if p.is_dir():
        if domain_column is None:
            return load_folder(p)
        return load_table(p, domain_column=domain_column)
    return load_table(p, domain_column=domain_column or "domain")


def load_folder(path: str | os.PathLike) -> DomainSet:
    """One domain per file of the folder ``path``, named by the file's stem, sorted by name.

    ``.txt`` files hold one document per paragraph (blank-line separated); ``.jsonl``,
    ``.json``, ``.parquet`` and ``.csv`` files need a ``text`` column (one document per row).
    Other files, hidden files and sub-folders are ignored.
    """
    folder = _existing(path)
    if not folder.is_dir():
        raise DataError(
            f"{str(folder)!r} is a file, not a folder; give a folder with one file per domain "
            f"({', '.join('*' + s for s in FOLDER_SUFFIXES)}), or a table with a domain column"
        )
    files = _supported_files(folder, FOLDER_SUFFIXES)
    if not files:
        raise DataError(
            f"folder {str(folder)!r} has no data files; put one file per domain in it "
            f"({', '.join('*' + s for s in FOLDER_SUFFIXES)})"
        )
    by_name: dict[str, Path] = {}
    for f in files:
        if f.stem in by_name:
            raise DataError(
                f"two files give domain {f.stem!r}: {by_name[f.stem].name!r} and {f.name!r}; "
                "rename or remove one of them"
            )
        by_name[f.stem] = f
    domains = []
    for name in sorted(by_name):
        docs = _read_columns(by_name[name], ["text"], "text")["text"]
        domains.append(_make_domain(name, docs, f"file {str(by_name[name])!r}"))
    meta = {
        "source": "folder",
        "path": str(folder),
        "files": {n: str(by_name[n]) for n in sorted(by_name)},
    }
    return DomainSet(folder.name, tuple(domains), meta)


def load_table(
    path: str | os.PathLike, domain_column: str = "domain", text_column: str = "text"
) -> DomainSet:
    """Domains from a table: a ``.jsonl`` / ``.json`` / ``.parquet`` / ``.csv`` file (or a
    folder of them) whose ``domain_column`` names each row's domain and whose ``text_column``
    holds its text. Rows are grouped by domain (domains sorted by name, rows kept in order).
    """
    p = _existing(path)
    if p.is_dir():
        files = _supported_files(p, TABLE_SUFFIXES)
        if not files:
            raise DataError(
                f"folder {str(p)!r} has no table files; add "
                f"{', '.join('*' + s for s in TABLE_SUFFIXES)} files with columns "
                f"{domain_column!r} and {text_column!r}"
            )
    else:
        if p.suffix.lower() not in TABLE_SUFFIXES:
            hint = (
                "; a .txt file holds a single domain: put one file per domain in a folder"
                if p.suffix.lower() == ".txt"
                else ""
            )
            raise DataError(
                f"cannot read {str(p)!r} as a table: use a {', '.join(TABLE_SUFFIXES)} file{hint}"
            )
        files = [p]
    groups: dict[str, list[str]] = {}
    for f in files:
        cols = _read_columns(f, [domain_column, text_column], text_column)
        missing = sum(1 for v in cols[domain_column] if v is None or str(v) == "")
        if missing:
            raise DataError(
                f"{missing} row(s) of {str(f)!r} have no value in column {domain_column!r}; "
                "give every row a domain name"
            )
        for d, t in zip(cols[domain_column], cols[text_column]):
            groups.setdefault(str(d), []).append(t)
    domains = tuple(
        _make_domain(name, groups[name], f"column {domain_column!r} of {str(p)!r}")
        for name in sorted(groups)
    )
    meta = {
        "source": "table",
        "path": str(p),
        "domain_column": domain_column,
        "text_column": text_column,
        "files": [str(f) for f in files],
    }
    return DomainSet(p.stem if p.is_file() else p.name, domains, meta)


# ---------------------------------------------------------------------------------------------
# helpers


def _existing(path: str | os.PathLike) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"data path {str(p)!r} does not exist; check the path")
    return p


def _supported_files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    return sorted(
        f
        for f in folder.iterdir()
        if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in suffixes
    )


def _make_domain(name: str, docs: list, where: str) -> Domain:
    texts = [t for t in docs if isinstance(t, str) and t.strip()]
    if not texts:
        raise DataError(f"domain {name!r} ({where}) has no text; add text or remove it")
    train, validation, test = split_documents(texts)
    return Domain(name, train, validation, test)


@contextlib.contextmanager
def _quiet_datasets() -> Iterator[None]:
    """No progress bars from ``datasets`` while popmix reads files (restored afterwards)."""
    import datasets

    was_enabled = datasets.is_progress_bar_enabled()
    if was_enabled:
        datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_enabled:
            datasets.enable_progress_bars()


def _root_cause(exc: BaseException) -> str:
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _is_empty_file(f: Path, builder: str) -> bool:
    if f.stat().st_size == 0:
        return True
    if builder == "parquet":
        import pyarrow.parquet as pq

        try:
            return pq.read_metadata(f).num_rows == 0
        except Exception:  # not a parquet file: let datasets report it
            return False
    if builder in ("json", "text") and f.stat().st_size < 1 << 16:
        return not f.read_bytes().strip()
    return False


def _read_columns(f: Path, columns: list[str], text_column: str) -> dict[str, list]:
    """``columns`` of file ``f`` as Python lists; ``text_column`` must hold strings. A .txt
    file has the single column ``text_column``: its paragraphs."""
    builder = _BUILDERS[f.suffix.lower()]
    if _is_empty_file(f, builder):
        raise DataError(f"file {str(f)!r} is empty; add text to it or remove it")
    import datasets

    kwargs = {"sample_by": "paragraph"} if builder == "text" else {}
    try:
        with _quiet_datasets():
            ds = datasets.load_dataset(
                builder,
                data_files={"data": str(f)},
                split="data",
                cache_dir=str(cache_dir()),
                **kwargs,
            )
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"could not read {str(f)!r} as {builder}: {_root_cause(exc)}") from exc
    if ds.num_rows == 0:
        raise DataError(f"file {str(f)!r} is empty; add text to it or remove it")
    if builder == "text":
        return {text_column: list(ds["text"])}
    missing = [c for c in columns if c not in ds.column_names]
    if missing:
        raise DataError(
            f"file {str(f)!r} has no column {missing[0]!r} (its columns: "
            f"{', '.join(ds.column_names)}); rename the column or choose another one"
        )
    out = {}
    for c in columns:
        values = list(ds[c])
        if c == text_column:
            bad = next((v for v in values if v is not None and not isinstance(v, str)), None)
            if bad is not None:
                raise DataError(
                    f"column {c!r} of {str(f)!r} must hold text, found {type(bad).__name__} "
                    f"value {bad!r}"
                )
        out[c] = values
    return out
