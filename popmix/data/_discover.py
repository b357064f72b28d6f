"""Finding a corpus's shards and which domain each belongs to.

Three rules, from the most common layout to the most general:

* **folders** (the default): a domain is a first-level entry of the data folder, a file
  (``wiki.jsonl.zst`` is domain ``wiki``; ``web.bin`` + ``web.idx`` is domain ``web``) or a
  folder whose readable files, at any depth, are its shards (Dolma, RedPajama, DCLM);
* **a field** (``data.domain_field``, a dotted path such as ``meta.pile_set_name``): every
  readable file under the folder is a shard, and each record names its domain (The Pile,
  SlimPajama, a table with a domain column);
* **globs** (``data.domains: {name: [glob, ...]}``, relative to the data folder): for anything
  else, e.g. FineWeb's crawl folders or OLMo's ``.npy`` lists.

Hidden files and folders and files of formats popmix does not read (``README.md``) are skipped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ._formats import TEXT_FORMATS, TOKEN_FORMATS, split_name
from .domains import DataError

_READ = (*TEXT_FORMATS, *TOKEN_FORMATS)
_SUFFIXES = ".txt, .json, .jsonl (plain, .gz, .zst, .zstd), .parquet, .csv, .bin + .idx, .npy"


@dataclass(frozen=True)
class Shard:
    """One file of the corpus: its path, format, size and modification time, and its domain
    (``None`` when each record names its own)."""

    path: Path
    fmt: str
    domain: str | None
    size: int
    mtime_ns: int

    @property
    def tokenized(self) -> bool:
        return self.fmt in TOKEN_FORMATS


@dataclass(frozen=True)
class Layout:
    """The shards of a corpus and the rule that names their domains."""

    root: Path
    rule: str  # "folders", "field" or "globs"
    shards: tuple[Shard, ...]
    domain_field: str | None = None


def discover(
    root: Path,
    domain_field: str | None = None,
    globs: Mapping[str, Sequence[str]] | None = None,
) -> Layout:
    """The shards under ``root`` (a folder, or one table file) and their domains.

    Raises:
        DataError: nothing readable, a domain named twice, a glob matching nothing, a ``.bin``
            without its ``.idx``.
    """
    if globs:
        if not root.is_dir():
            raise DataError(
                f"data.domains needs data.path to be a folder, got the file {str(root)!r}"
            )
        return Layout(root, "globs", _by_globs(root, globs))
    if root.is_file():
        fmt = _readable(root)
        if fmt is None or fmt not in ("jsonl", "json", "csv", "parquet"):
            raise DataError(
                f"cannot read {str(root)!r} as a table: use a .jsonl, .json, .parquet or .csv "
                "file (a .txt file holds a single domain: put one file per domain in a folder)"
            )
        return Layout(root, "field", (_shard(root, fmt, None),), domain_field or "domain")
    if domain_field is not None:
        shards = tuple(_shard(f, fmt, None) for f, fmt in _walk(root) if fmt != "idx")
        if not shards:
            raise _nothing_readable(root)
        return Layout(root, "field", shards, domain_field)
    return Layout(root, "folders", _by_first_level(root))


def _readable(path: Path) -> str | None:
    fmt = split_name(path.name)[1]
    return fmt if fmt in _READ or fmt == "idx" else None


def _shard(path: Path, fmt: str, domain: str | None) -> Shard:
    st = path.stat()
    return Shard(path, fmt, domain, st.st_size, st.st_mtime_ns)


def _walk(folder: Path) -> list[tuple[Path, str]]:
    """Readable files below ``folder`` at any depth, sorted by path; hidden entries skipped."""
    out = []
    for f in sorted(folder.rglob("*")):
        rel = f.relative_to(folder).parts
        if any(p.startswith(".") for p in rel) or not f.is_file():
            continue
        fmt = _readable(f)
        if fmt is not None:
            out.append((f, fmt))
    _check_pairs(out)
    return out


def _check_pairs(files: list[tuple[Path, str]]) -> None:
    """Every Megatron ``.bin`` needs its ``.idx`` (and an ``.idx`` its ``.bin``)."""
    paths = {f for f, _ in files}
    for f, fmt in files:
        if fmt == "megatron" and f.with_suffix(".idx") not in paths:
            raise DataError(
                f"Megatron shard {str(f)!r} has no index {f.with_suffix('.idx').name!r} next "
                "to it; copy the .idx written with it, or remove the .bin"
            )
        if fmt == "idx" and f.with_suffix(".bin") not in paths:
            raise DataError(
                f"Megatron index {str(f)!r} has no {f.with_suffix('.bin').name!r} next to it; "
                "copy the .bin or remove the .idx"
            )


def _by_first_level(root: Path) -> tuple[Shard, ...]:
    if not root.is_dir():
        raise DataError(f"data path {str(root)!r} is not a folder; give a folder of domains")
    entries = sorted(e for e in root.iterdir() if not e.name.startswith("."))
    _check_pairs([(e, fmt) for e in entries if e.is_file() and (fmt := _readable(e))])
    named: dict[str, Path] = {}
    shards: list[Shard] = []
    for entry in entries:
        if entry.is_dir():
            name, below = entry.name, [(f, fmt) for f, fmt in _walk(entry) if fmt != "idx"]
            if not below:
                raise DataError(
                    f"folder {str(entry)!r} has no readable shard ({_SUFFIXES}); add shards "
                    "to it or remove it"
                )
        else:
            fmt = _readable(entry)
            if fmt is None or fmt == "idx":
                continue
            name, below = split_name(entry.name)[0], [(entry, fmt)]
        if name in named:
            raise DataError(
                f"two entries give domain {name!r}: {named[name].name!r} and {entry.name!r}; "
                "rename or remove one of them"
            )
        named[name] = entry
        shards.extend(_shard(f, fmt, name) for f, fmt in below)
    if not shards:
        raise _nothing_readable(root)
    return tuple(shards)


def _by_globs(root: Path, globs: Mapping[str, Sequence[str]]) -> tuple[Shard, ...]:
    owner: dict[Path, str] = {}
    shards: list[Shard] = []
    for name in sorted(globs):
        given: str | Sequence[str] = globs[name]
        patterns = [given] if isinstance(given, str) else list(given)
        found: list[tuple[Path, str]] = []
        for pattern in patterns:
            matches = [
                (f, fmt)
                for f in sorted(root.glob(pattern))
                if f.is_file() and (fmt := _readable(f)) is not None and fmt != "idx"
            ]
            if not matches:
                raise DataError(
                    f"data.domains.{name}: {pattern!r} matches no readable shard under "
                    f"{str(root)!r} ({_SUFFIXES}); check the pattern"
                )
            found.extend(matches)
        for f, fmt in sorted(set(found)):
            if f in owner and owner[f] != name:
                raise DataError(
                    f"data.domains: {str(f)!r} is matched by both {owner[f]!r} and {name!r}; "
                    "make the globs disjoint"
                )
            owner[f] = name
            shards.append(_shard(f, fmt, name))
    _check_pairs([(s.path, s.fmt) for s in shards] + _indexes(shards))
    return tuple(shards)


def _indexes(shards: list[Shard]) -> list[tuple[Path, str]]:
    return [
        (s.path.with_suffix(".idx"), "idx")
        for s in shards
        if s.fmt == "megatron" and s.path.with_suffix(".idx").is_file()
    ]


def _nothing_readable(root: Path) -> DataError:
    return DataError(
        f"folder {str(root)!r} has no data files popmix reads; put one file or folder of "
        f"shards per domain in it ({_SUFFIXES})"
    )
