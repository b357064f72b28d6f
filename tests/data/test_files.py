import json
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from popmix.data._manifest import manifest_dir
from popmix.data.domains import MIN_SPLIT_BYTES, DataError, DomainSet, split_documents
from popmix.data.files import load_folder, load_table, load_user_data


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("POPMIX_CACHE", str(tmp_path / "popmix-cache"))


def text_of(a: np.ndarray) -> str:
    return bytes(a).decode("utf-8")


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


def write_parquet(path: Path, columns: dict) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


def make_folder(root: Path) -> tuple[Path, dict[str, list[str]]]:
    """A folder with one domain per format; returns it and each domain's documents."""
    folder = root / "my-corpus"
    folder.mkdir()
    docs = {
        # >= 20 documents: whole documents go to each split
        "wiki": [f"Article {i}.\nIt has two lines." for i in range(20)],
        # < 20 documents: the bytes are cut at 90% / 95%
        "code": ["def f():\n    return 1", "x = [1, 2, 3]", "print('héllo wörld')"],
        "chat": [f"user: question {i}?" for i in range(25)],
        "web-news": ["Breaking: ümlauts and emoji \U0001f600 survive."] * 4,
    }
    (folder / "wiki.txt").write_text("\n\n".join(docs["wiki"]), "utf-8")
    write_jsonl(folder / "code.jsonl", [{"text": t, "id": i} for i, t in enumerate(docs["code"])])
    write_parquet(folder / "chat.parquet", {"text": docs["chat"]})
    (folder / "web-news.json").write_text(
        json.dumps([{"text": t} for t in docs["web-news"]], ensure_ascii=False), "utf-8"
    )
    (folder / "README.md").write_text("not data: ignored")
    (folder / ".hidden.txt").write_text("ignored too")
    (folder / "sub").mkdir()  # a sub-folder is a domain of its shards
    (folder / "sub" / "inner.txt").write_text("sub-folders are domains")
    return folder, docs


def test_load_folder_names_order_and_content(tmp_path):
    folder, docs = make_folder(tmp_path)
    ds = load_folder(folder)
    assert isinstance(ds, DomainSet)
    assert ds.name == "my-corpus"
    assert ds.names == ["chat", "code", "sub", "web-news", "wiki"]
    for d in ds:
        assert d.entropy_rate is None
        for split in ("train", "validation", "test"):
            assert d.split(split).dtype == np.uint8

    wiki = ds[ds.index("wiki")]  # 20 paragraphs: 18 train, 1 validation, 1 test
    assert text_of(wiki.train) == "\n\n".join(docs["wiki"][:18])
    assert text_of(wiki.validation) == docs["wiki"][18]
    assert text_of(wiki.test) == docs["wiki"][19]

    chat = ds[ds.index("chat")]  # 25 rows: 1 validation, 1 test (round(25 * 0.05) = 1)
    assert text_of(chat.train) == "\n\n".join(docs["chat"][:23])
    assert text_of(chat.test) == docs["chat"][24]

    for name in ("code", "web-news"):  # few documents: one byte stream, cut at the fractions
        d = ds[ds.index(name)]
        whole = "\n\n".join(docs[name]).encode("utf-8")
        joined = bytes(d.train) + bytes(d.validation) + bytes(d.test)
        assert joined == whole
        assert d.test.size == int(len(whole) * 0.05)


def test_load_user_data_dispatches_folder(tmp_path):
    folder, _ = make_folder(tmp_path)
    a = load_user_data(folder)
    b = load_folder(folder)
    assert a.names == b.names
    for da, db in zip(a, b):
        np.testing.assert_array_equal(da.train, db.train)


def test_text_paragraphs_are_documents(tmp_path):
    folder = tmp_path / "paras"
    folder.mkdir()
    paragraphs = [f"Paragraph {i} line one.\nParagraph {i} line two." for i in range(40)]
    (folder / "prose.txt").write_text("\n\n".join(paragraphs) + "\n", "utf-8")
    (prose,) = load_folder(folder)  # 40 documents: 2 validation, 2 test
    assert text_of(prose.train) == "\n\n".join(paragraphs[:36])
    assert text_of(prose.validation) == "\n\n".join(paragraphs[36:38])
    assert text_of(prose.test).rstrip("\n") == "\n\n".join(paragraphs[38:])


# --------------------------------------------------------------------------------------------
# whole documents only while every split keeps enough bytes, else a byte cut

SEQ_LEN = 128  # the default model's context: check() asks seq_len + 1 tokens of every split


def sizes(d) -> tuple[int, int, int]:
    return d.train.size, d.validation.size, d.test.size


def normal_domain(folder: Path) -> list[str]:
    paragraphs = [f"Normal paragraph {i}. " + "Some ordinary prose here. " * 6 for i in range(60)]
    (folder / "normal.txt").write_text("\n\n".join(paragraphs), "utf-8")
    return paragraphs


def test_short_last_paragraph_gets_a_byte_cut(tmp_path):
    """The issue: a ~6 KB file of short paragraphs whose last one is 12 bytes. 25 paragraphs
    give one test document (round(25 * 0.05) = 1), so the test split was those 12 bytes and the
    run refused it; now the bytes are cut and every split gets its 5%."""
    folder = tmp_path / "user"
    folder.mkdir()
    paragraphs = [f"Paragraph {i:02d}. " + "word " * 47 for i in range(24)] + ["See you soon"]
    (folder / "notes.txt").write_text("\n\n".join(paragraphs) + "\n", "utf-8")
    normal = normal_domain(folder)
    ds = load_folder(folder)
    ds.check(SEQ_LEN + 1)  # raised "test split has only 12 tokens" before
    notes, norm = ds[ds.index("notes")], ds[ds.index("normal")]
    whole = ("\n\n".join(paragraphs) + "\n").encode("utf-8")
    assert 6000 <= len(whole) <= 6200
    assert bytes(notes.train) + bytes(notes.validation) + bytes(notes.test) == whole
    assert sizes(notes) == (len(whole) - 2 * 301, 301, 301)  # int(6037 * 0.05) = 301
    # the normal domain next to it keeps its whole-document split: 3 + 3 of 60 paragraphs
    assert text_of(norm.validation) == "\n\n".join(normal[54:57])
    assert text_of(norm.test) == "\n\n".join(normal[57:])


def test_many_tiny_paragraphs_split_fine(tmp_path):
    """300 paragraphs of ~20 bytes (~6.5 KB): 15 per held-out split hold ~330 bytes, about their
    5%, so the documents stay whole and every split is long enough for seq_len 128."""
    folder = tmp_path / "user"
    folder.mkdir()
    paragraphs = [f"note {i:03d}: short line" for i in range(300)]
    (folder / "tiny.txt").write_text("\n\n".join(paragraphs), "utf-8")
    normal_domain(folder)
    ds = load_folder(folder)
    ds.check(SEQ_LEN + 1)
    tiny = ds[ds.index("tiny")]
    assert text_of(tiny.validation) == "\n\n".join(paragraphs[270:285])
    assert text_of(tiny.test) == "\n\n".join(paragraphs[285:])
    total = sum(sizes(tiny)) + 4
    for n in (tiny.validation.size, tiny.test.size):
        assert n >= SEQ_LEN + 1 and abs(n - 0.05 * total) <= 0.01 * total


def test_few_big_documents_split_on_document_boundaries(tmp_path):
    folder = tmp_path / "user"
    folder.mkdir()
    docs = [f"Document {i:02d}. " + "A long document body. " * 45 for i in range(20)]
    write_jsonl(folder / "big.jsonl", [{"text": t} for t in docs])
    ds = load_folder(folder)
    ds.check(SEQ_LEN + 1)
    (big,) = ds
    assert text_of(big.train) == "\n\n".join(docs[:18])
    assert text_of(big.validation) == docs[18]
    assert text_of(big.test) == docs[19]


def test_split_rule_edges():
    even = [f"doc {i:02d} " + "x" * 93 for i in range(40)]  # 100 bytes each, 4 KB in all
    # each held-out split: 2 documents (200 bytes, its 5%): whole documents
    tr, va, te = split_documents(even)
    assert (va.size, te.size) == (202, 202)
    # a held-out split below MIN_SPLIT_BYTES while its byte cut would reach it: byte cut
    sparse = [f"doc {i:02d} " + "x" * 93 for i in range(19)] + ["y" * 3000]
    tr, va, te = split_documents(sparse)  # the last doc is 60% of the bytes: train < half
    assert te.size == int((tr.size + va.size + te.size) * 0.05)
    # 25 documents, so 1 test document: 100 bytes, over half its share (139 bytes) but under
    # MIN_SPLIT_BYTES, which the byte cut reaches: byte cut; with min_bytes=50: whole documents
    short_tail = [f"doc {i:02d} " + "x" * 103 for i in range(24)] + ["z" * 100]
    assert split_documents(short_tail)[2].size == int(len("\n\n".join(short_tail)) * 0.05)
    assert bytes(split_documents(short_tail, min_bytes=50)[2]) == b"z" * 100
    # a corpus too small for MIN_SPLIT_BYTES either way keeps its whole documents
    small = [f"s{i}" for i in range(20)]
    assert bytes(split_documents(small)[2]) == b"s19"
    assert MIN_SPLIT_BYTES == SEQ_LEN + 1
    # deterministic: the same documents give the same splits
    for a, b in zip(split_documents(sparse), split_documents(list(sparse))):
        np.testing.assert_array_equal(a, b)


def table_rows() -> list[dict]:
    return [
        {"domain": name, "text": f"row {i} of {name}"}
        for i, name in ((i, ["beta", "alpha", "gamma"][i % 3]) for i in range(60))
    ]


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "csv", "json"])
def test_load_table_groups_rows_by_domain(tmp_path, fmt):
    rows = table_rows()
    path = tmp_path / f"mixed.{fmt}"
    if fmt == "jsonl":
        write_jsonl(path, rows)
    elif fmt == "json":
        path.write_text(json.dumps(rows))
    elif fmt == "parquet":
        write_parquet(path, {k: [r[k] for r in rows] for k in rows[0]})
    else:
        path.write_text("domain,text\n" + "".join(f"{r['domain']},{r['text']}\n" for r in rows))
    ds = load_table(path)
    assert ds.name == "mixed"
    assert ds.names == ["alpha", "beta", "gamma"]
    alpha = [r["text"] for r in rows if r["domain"] == "alpha"]  # 20 rows, in file order
    a = ds[0]
    assert text_of(a.train) == "\n\n".join(alpha[:18])
    assert text_of(a.validation) == alpha[18]
    assert text_of(a.test) == alpha[19]
    # a file goes to load_table through load_user_data as well
    assert load_user_data(path).names == ds.names


def test_load_table_custom_columns_and_folder(tmp_path):
    folder = tmp_path / "shards"
    folder.mkdir()
    write_jsonl(folder / "part-0.jsonl", [{"src": "x", "body": f"x{i}"} for i in range(5)])
    write_parquet(folder / "part-1.parquet", {"src": ["y", "x"], "body": ["y0", "x5"]})
    ds = load_table(folder, domain_column="src", text_column="body")
    assert ds.name == "shards"
    assert ds.names == ["x", "y"]
    x = ds[0]
    assert (
        bytes(x.train) + bytes(x.validation) + bytes(x.test)
        == "\n\n".join([f"x{i}" for i in range(6)]).encode()
    )
    # a folder plus a domain column means "a folder of tables"
    with pytest.raises(DataError, match="'text'"):
        load_user_data(folder, domain_column="src")  # text_column defaults to "text"


def test_load_user_data_folder_with_domain_column(tmp_path):
    folder = tmp_path / "tables"
    folder.mkdir()
    write_jsonl(folder / "all.jsonl", table_rows())
    ds = load_user_data(folder, domain_column="domain")
    assert ds.names == ["alpha", "beta", "gamma"]


def test_numeric_domain_names_become_strings(tmp_path):
    rows = [{"domain": i % 2, "text": f"t{i}"} for i in range(6)]
    path = write_jsonl(tmp_path / "t.jsonl", rows)
    assert load_table(path).names == ["0", "1"]


def test_cache_goes_to_popmix_cache(tmp_path, monkeypatch):
    folder, _ = make_folder(tmp_path)
    load_folder(folder)
    assert manifest_dir() == tmp_path / "popmix-cache" / "manifests"
    assert any(manifest_dir().iterdir())
    monkeypatch.delenv("POPMIX_CACHE")
    assert manifest_dir() == Path(tempfile.gettempdir()) / "popmix-cache" / "manifests"


# --------------------------------------------------------------------------------------------
# errors: one line, a DataError naming the bad value


def one_line_error(fn, *args, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        fn(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("fn", [load_folder, load_table, load_user_data])
def test_missing_path(tmp_path, fn):
    missing = tmp_path / "nowhere"
    message = one_line_error(fn, missing)
    assert str(missing) in message and "does not exist" in message


def test_folder_without_data_files(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "README.md").write_text("hello")
    message = one_line_error(load_folder, folder)
    assert "docs" in message and "no data files" in message and ".txt" in message
    message = one_line_error(load_table, folder)
    assert "no table files" in message


def test_load_folder_on_a_file(tmp_path):
    f = write_jsonl(tmp_path / "t.jsonl", table_rows())
    message = one_line_error(load_folder, f)
    assert "t.jsonl" in message and "not a folder" in message


@pytest.mark.parametrize(
    ("filename", "content"),
    [
        ("empty.txt", ""),
        ("blank.txt", "\n\n   \n\n"),
        ("empty.jsonl", ""),
        ("blanks.jsonl", '{"text": ""}\n{"text": "   "}\n'),
        ("nulls.jsonl", '{"text": null}\n'),
    ],
)
def test_empty_domain(tmp_path, filename, content):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "fine.txt").write_text("some text")
    (folder / filename).write_text(content)
    message = one_line_error(load_folder, folder)
    assert filename in message or repr(Path(filename).stem) in message
    assert "empty" in message or "no text" in message


def test_empty_parquet_domain(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    write_parquet(folder / "none.parquet", {"text": pa.array([], pa.string())})
    message = one_line_error(load_folder, folder)
    assert "none.parquet" in message and "empty" in message


@pytest.mark.parametrize("suffix", ["jsonl", "parquet"])
def test_missing_text_column(tmp_path, suffix):
    folder = tmp_path / "data"
    folder.mkdir()
    if suffix == "jsonl":
        write_jsonl(folder / "bad.jsonl", [{"content": "a", "id": 1}])
    else:
        write_parquet(folder / "bad.parquet", {"content": ["a"], "id": [1]})
    message = one_line_error(load_folder, folder)
    assert f"bad.{suffix}" in message
    assert "'text'" in message and "content" in message and "id" in message


def test_missing_domain_column(tmp_path):
    path = write_jsonl(tmp_path / "t.jsonl", [{"text": "a", "source": "x"}])
    message = one_line_error(load_table, path)
    assert "'domain'" in message and "t.jsonl" in message and "source" in message
    message = one_line_error(load_user_data, path, domain_column="kind")
    assert "'kind'" in message


def test_rows_without_domain(tmp_path):
    path = write_jsonl(tmp_path / "t.jsonl", [{"domain": "a", "text": "x"}, {"text": "y"}])
    message = one_line_error(load_table, path)
    assert "1 row(s)" in message and "'domain'" in message


def test_empty_domain_in_table(tmp_path):
    path = write_jsonl(
        tmp_path / "t.jsonl", [{"domain": "a", "text": "x"}, {"domain": "b", "text": "  "}]
    )
    message = one_line_error(load_table, path)
    assert "'b'" in message and "no text" in message


def test_non_text_column(tmp_path):
    path = write_jsonl(tmp_path / "t.jsonl", [{"domain": "a", "text": 3}])
    message = one_line_error(load_table, path)
    assert "'text'" in message and "int" in message


def test_duplicate_domain_names(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "news.txt").write_text("a")
    write_jsonl(folder / "news.jsonl", [{"text": "b"}])
    message = one_line_error(load_folder, folder)
    assert "'news'" in message and "news.txt" in message and "news.jsonl" in message


def test_text_file_is_not_a_table(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("hello")
    message = one_line_error(load_user_data, f)
    assert "notes.txt" in message and "folder" in message


def test_unreadable_file(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "broken.parquet").write_bytes(b"this is not parquet at all")
    message = one_line_error(load_folder, folder)
    assert "broken.parquet" in message
