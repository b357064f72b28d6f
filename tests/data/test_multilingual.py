"""The packaged benchmark ``multilingual`` (16 languages, 11 scripts, high and low resource)."""

from __future__ import annotations

import socket
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest

import popmix.data.multilingual as multilingual
from popmix.data import BENCHMARKS, DataError, eval_windows, load_domains
from popmix.data.domains import SPLITS, Domain, DomainSet
from popmix.data.multilingual import (
    DOMAIN_NAMES,
    EN_STOPWORDS,
    domain_info,
    language_check,
    load_multilingual,
    resource_groups,
)
from popmix.data.prepare_multilingual import (
    LANGUAGES,
    clean_pages,
    help_page_lines,
    udhr_documents,
    udhr_splits,
    zipf_target,
)

# The documented --tasks order (assets/README.md).
EXPECTED = [
    "en", "ka", "ru", "hi", "ja", "th", "de", "el",
    "zh", "ug", "fr", "vi", "hy", "ko", "tr", "pl",
]  # fmt: skip
HIGH = {"en", "ru", "ja", "de", "zh", "fr"}

# The default experiment's evaluation (experiments/default.yaml).
SEQ_LEN, TEST_WINDOWS, EVAL_WINDOWS = 128, 64, 8


@pytest.fixture(scope="module")
def ds() -> DomainSet:
    return load_multilingual()


def test_registered_and_in_documented_order(ds):
    assert "multilingual" in BENCHMARKS
    assert isinstance(ds, DomainSet) and ds.name == "multilingual"
    assert len(ds) == 16 >= 12
    assert ds.names == EXPECTED == list(DOMAIN_NAMES)
    assert [lang.name for lang in LANGUAGES] == EXPECTED
    assert all(isinstance(d, Domain) and d.entropy_rate is None for d in ds)
    assert load_domains("multilingual", None, None).names == EXPECTED


def test_at_least_three_scripts(ds):
    info = domain_info()
    scripts = {info[name]["script"] for name in ds.names}
    assert len(scripts) >= 3
    assert {"Latn", "Cyrl", "Grek", "Arab", "Jpan", "Hans", "Deva"} <= scripts


def test_steep_size_profile(ds):
    sizes = ds.sizes
    assert sizes.max() / sizes.min() >= 50
    assert sizes.max() == ds[ds.index("en")].n_tokens
    assert 1_000_000 <= sizes.max() <= 2_000_000 and sizes.min() >= 5_000
    # the LibreOffice languages follow the Zipf targets they were subsampled to
    for lang in LANGUAGES:
        if lang.rank is not None:
            n = ds[ds.index(lang.name)].n_tokens
            assert zipf_target(lang.rank) <= n <= zipf_target(lang.rank) * 1.1, lang.name


def test_groups(ds):
    groups = resource_groups()
    assert list(groups) == EXPECTED
    assert set(groups.values()) == {"high", "low"}
    assert {n for n, g in groups.items() if g == "high"} == HIGH
    assert ds.meta["groups"] == groups
    high = [ds[ds.index(n)].n_tokens for n in HIGH]
    low = [ds[ds.index(n)].n_tokens for n in groups if n not in HIGH]
    assert min(high) > max(low)  # every high-resource language is larger than every low one
    assert resource_groups(ds.first(3)) == {"en": "high", "ka": "low", "ru": "high"}


def test_every_split_holds_the_default_evaluation_windows(ds):
    for d in ds:
        for s in SPLITS:
            arr = d.split(s)
            assert arr.dtype == np.uint8 and arr.ndim == 1
            arr.tobytes().decode("utf-8")  # whole documents: valid UTF-8
        assert eval_windows(d.test, SEQ_LEN, TEST_WINDOWS).shape == (TEST_WINDOWS, SEQ_LEN + 1)
        assert eval_windows(d.validation, SEQ_LEN, EVAL_WINDOWS).shape == (
            EVAL_WINDOWS,
            SEQ_LEN + 1,
        )
        assert d.train.size > d.test.size or d.name not in HIGH
        assert d.test.size >= TEST_WINDOWS * SEQ_LEN + 1 <= d.train.size
        assert d.validation.size >= EVAL_WINDOWS * SEQ_LEN + 1
    ds.check(min_tokens=SEQ_LEN + 1)


@pytest.mark.parametrize("held_out", ["test", "validation"])
def test_no_held_out_text_in_train(ds, held_out):
    for d in ds:
        train = d.train.tobytes()
        held = d.split(held_out).tobytes()
        for start in np.linspace(0, len(held) - 200, 8).astype(int):
            piece = held[start : start + 200]
            assert piece not in train, (d.name, held_out, int(start))


def test_language_checks_stored_and_recomputed(ds):
    info = domain_info()
    for d in ds:
        stored = info[d.name]["checks"]
        letters = tuple(info[d.name]["letters"])
        fresh = language_check(d.test.tobytes().decode("utf-8"), letters)
        if d.name == "en":
            assert stored["en_stopword_share"] > 0.15 and fresh["en_stopword_share"] > 0.15
        else:
            assert stored["en_stopword_share"] < 0.002, d.name
            assert fresh["en_stopword_share"] < 0.002, d.name
        assert stored["script_share"] >= 0.85 and fresh["script_share"] >= 0.9, d.name


def test_language_check_counts():
    assert language_check("The cat and the dog", ("LATIN",)) == {
        "en_stopword_share": 0.6,
        "script_share": 1.0,
    }
    # unsegmented scripts: one word per letter; the script share counts letters only
    japanese = language_check("これはテストです。The", ("CJK", "HIRAGANA", "KATAKANA"))
    assert japanese == {"en_stopword_share": round(1 / 9, 5), "script_share": round(8 / 11, 5)}
    assert language_check("Это тест, 123.", ("CYRILLIC",))["script_share"] == 1.0
    assert not {"a", "in", "an", "to", "die", "de", "la"} & EN_STOPWORDS


def test_tasks_keeps_the_first_n_in_order():
    for n in (2, 4, 8):
        sub = load_domains("multilingual", n, None)
        assert sub.names == EXPECTED[:n]
        assert set(resource_groups(sub).values()) == {"high", "low"}
    four = load_domains("multilingual", 4, None)
    assert len({domain_info()[n]["script"] for n in four.names}) == 4
    with pytest.raises(DataError, match="more domains"):
        load_domains("multilingual", 17, None)


def test_meta_names_sources_versions_and_licences(ds):
    assert "MPL-2.0" in ds.meta["licence"] and "MIT" in ds.meta["licence"]
    packages = {p["name"]: p for p in ds.meta["packages"]}
    assert packages["udhr"]["version"] == "6.0.0"
    assert packages["libreoffice-help-de"]["version"] == "4:7.4.7-1+deb12u14"
    assert len(packages) == 13
    notice = (files("popmix.data") / "assets" / "multilingual-NOTICE.txt").read_text("utf-8")
    assert "Mozilla Public License Version 2.0" in notice
    assert "(The MIT License)" in notice and "Apache License" in notice


def test_repeated_calls_are_cached_and_independent(ds):
    again = load_multilingual()
    np.testing.assert_array_equal(again.sizes, ds.sizes)
    again[0].train[:10] = 0
    again.meta["groups"]["en"] = "low"
    fresh = load_multilingual()
    assert fresh[0].train.tobytes() == ds[0].train.tobytes()
    assert fresh.meta["groups"]["en"] == "high" and resource_groups()["en"] == "high"


def test_loads_offline_from_the_package(monkeypatch):
    path = multilingual.asset_path()
    assert path.is_file()
    package_dir = Path(multilingual.__file__).resolve().parent
    assert Path(str(path)).resolve() == package_dir / "assets" / "multilingual.json.xz"

    def no_network(*args, **kwargs):
        raise AssertionError("load_multilingual must not touch the network")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    multilingual._payload.cache_clear()  # really read the asset again
    assert len(load_multilingual()) == 16


def test_missing_asset_is_a_one_line_data_error(monkeypatch, tmp_path):
    monkeypatch.setattr(multilingual, "asset_path", lambda: tmp_path / "multilingual.json.xz")
    multilingual._payload.cache_clear()
    try:
        with pytest.raises(DataError, match="prepare_multilingual") as err:
            load_domains("multilingual", None, None)
        assert "\n" not in str(err.value)
    finally:
        monkeypatch.undo()
        multilingual._payload.cache_clear()


# --------------------------------------------------------------------------------------------
# The prepare script's pieces, on small inputs (no download)
# --------------------------------------------------------------------------------------------

PAGE = """<html><head><title>T</title><script>var x = 1;</script></head><body>
<header><p>Help for LibreOffice</p></header>
<div id="DisplayArea"><h1>Zellen <a href="x">löschen</a></h1>
<p class="paragraph">Löscht die <span class="emph">Zellen</span>.<br>Zweite Zeile</p>
<span hidden="true" class="WRITER"><p>Nur in Writer</p></span>
<div class="bascode"><pre><code>Sub Main
End Sub</code></pre></div>
<p>   </p><p>42</p>
</div><div id="SearchFrame"></div>
<footer><h3>Help content debug info:</h3><p>This page is: x.xhp</p></footer></body></html>"""


def test_help_page_lines():
    assert help_page_lines(PAGE) == ["Zellen löschen", "Löscht die Zellen.", "Zweite Zeile", "42"]


def test_clean_pages_drops_fallback_boilerplate_and_short_pages():
    long_line = "Löscht die ausgewählten Zellen und verschiebt die übrigen nach oben. " * 4
    english = {f"p{i}": ["Deletes the selected cells and shifts the rest."] for i in range(3)}
    pages = {f"p{i}": [f"Seite {i}: {long_line}", "Verwandte Themen"] for i in range(25)}
    pages["p0"].append("Deletes the selected cells and shifts the rest.")  # untranslated
    pages["p1"].append("Choose this to open the dialog that you need")  # reads as English
    pages["p2"] = ["Zu kurz"]
    cleaned = clean_pages(pages, english)
    assert "p2" not in cleaned and len(cleaned) == 24
    assert all(lines == [f"Seite {p[1:]}: {long_line}"] for p, lines in cleaned.items())
    assert clean_pages({"p": ["Deletes the selected cells. " * 10]}, None)  # English is kept


def _declaration(article: str) -> str:
    arts = "".join(
        f'<article data-number="{i}"><h2>Article {i}</h2><p>{article}</p></article>'
        for i in range(1, 31)
    )
    return f"<html><body><h1>Title</h1><header><h2>Preamble</h2><p>Whereas</p></header>{arts}"


def test_udhr_documents_and_common_splits():
    docs = udhr_documents(_declaration("x" * 900), "test")
    assert len(docs) == 31 and docs[0] == "Title\nPreamble\nWhereas"
    assert docs[5] == "Article 5\n" + "x" * 900
    other = udhr_documents(_declaration("y" * 1400), "other")
    val_start, test_start = udhr_splits({"a": docs, "b": other})
    test_bytes = len("\n\n".join(docs[test_start:]).encode())
    assert test_bytes >= TEST_WINDOWS * SEQ_LEN + 1  # the smaller language decides
    assert len("\n\n".join(docs[test_start + 1 :]).encode()) < TEST_WINDOWS * SEQ_LEN + 1
    assert len("\n\n".join(docs[val_start:test_start]).encode()) >= 2048
    with pytest.raises(SystemExit):
        udhr_documents("<html><body><article data-number='1'></article></body></html>", "bad")
