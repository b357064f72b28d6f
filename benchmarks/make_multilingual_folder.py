"""Write a multilingual folder of your own kind: 8 languages, 3 scripts, a 20x size range.

The text is the translated UI strings of the gettext catalogs installed on this machine
(``/usr/share/locale/<ll>/LC_MESSAGES/*.mo``, read with Python's ``gettext``): each package's
own licence, mostly GPL/LGPL, so the folder is for measuring here and is not shipped. What a
machine has depends on its image; a language with too little text is written shorter.

    python benchmarks/make_multilingual_folder.py DIR
    python benchmarks/seed_spread.py data.path=DIR        # the proxy's seed spread on it
    popmix calibrate --data DIR                            # the same as Tune trials

The sizes (bytes): de 2.0 M, fr 1.2 M, es 0.8 M, sv 0.5 M, pl 0.3 M, ru 0.25 M (Cyrillic),
el 0.15 M (Greek), he 0.1 M (Hebrew).
"""

from __future__ import annotations

import argparse
import gettext
import glob
import os

PLAN = {
    "de": 2_000_000,
    "fr": 1_200_000,
    "es": 800_000,
    "sv": 500_000,
    "pl": 300_000,
    "ru": 250_000,
    "el": 150_000,
    "he": 100_000,
}


def catalog_text(language: str) -> list[str]:
    """Distinct translated strings of at least 20 characters, one per line."""
    texts: list[str] = []
    seen: set[str] = set()
    for mo in sorted(glob.glob(f"/usr/share/locale/{language}/LC_MESSAGES/*.mo")):
        try:
            with open(mo, "rb") as f:
                catalog = gettext.GNUTranslations(f)._catalog  # type: ignore[attr-defined]
        except (OSError, ValueError, UnicodeDecodeError):
            continue
        for key, value in catalog.items():
            if key and isinstance(value, str) and len(value) >= 20 and value not in seen:
                seen.add(value)
                texts.append(value.replace("\n", " "))
    return texts


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for language, size in PLAN.items():
        data = "\n".join(catalog_text(language)).encode()[:size].decode(errors="ignore")
        with open(os.path.join(args.out, f"{language}.txt"), "w") as f:
            f.write(data)
        print(f"{language}: {len(data.encode())} bytes")


if __name__ == "__main__":
    main()
