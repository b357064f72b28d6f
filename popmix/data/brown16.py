"""The built-in default benchmark ``brown16``: 15 Brown-corpus genres plus Python code.

The data ship inside the package (``popmix/data/assets/brown16.json.xz``, about 2 MB), so
:func:`load_brown16` works offline on a fresh install and never touches the network. The asset is
built once by ``python -m popmix.data.prepare_brown16``; see ``assets/README.md`` for sources,
licences and per-domain sizes.
"""

from __future__ import annotations

import json
import lzma
from functools import lru_cache
from importlib.resources import files

from popmix.data.domains import SPLITS, DataError, Domain, DomainSet, to_tokens

NAME = "brown16"
ASSET = "brown16.json.xz"

# Fixed domain order: the Brown genres A..R, then code.
DOMAIN_NAMES = (
    "press_reportage",
    "press_editorial",
    "press_reviews",
    "religion",
    "skill_hobbies",
    "popular_lore",
    "belles_lettres",
    "government",
    "learned",
    "fiction_general",
    "mystery",
    "science_fiction",
    "adventure",
    "romance",
    "humor",
    "code",
)


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
            f"or rebuild it with `python -m popmix.data.prepare_brown16`"
        ) from None
    data = json.loads(lzma.decompress(raw).decode("utf-8"))
    domains = tuple(
        (d["name"], tuple(d[s].encode("utf-8") for s in SPLITS)) for d in data["domains"]
    )
    names = tuple(name for name, _ in domains)
    if names != DOMAIN_NAMES:
        raise DataError(f"unexpected domains in the {NAME} asset: {names}")
    meta = {"source": data["source"], "licence": data["licence"]}
    return meta, domains  # type: ignore[return-value]


def load_brown16() -> DomainSet:
    """The ``brown16`` benchmark: 16 real domains of naturally unequal size, byte tokens.

    Reading and decompressing the asset happens once per process (cached); every call returns a
    fresh :class:`DomainSet` whose arrays the caller may modify freely.
    """
    meta, domains = _payload()
    return DomainSet(
        NAME,
        tuple(
            Domain(name, to_tokens(train), to_tokens(validation), to_tokens(test))
            for name, (train, validation, test) in domains
        ),
        meta=dict(meta),
    )
