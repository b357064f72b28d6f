"""Real corpus layouts (issue 19), as tiny fixture trees: domains, exact counts, estimates
within their error bar, a reproducible bounded sample, and one-line errors."""

import gzip
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from popmix.data import load_domains
from popmix.data.corpus import load_corpus, sample_tokens_for, scan_corpus
from popmix.data.domains import DataError, check_vocab


@pytest.fixture(autouse=True)
def cache(monkeypatch, tmp_path):
    monkeypatch.setenv("POPMIX_CACHE", str(tmp_path / "cache"))


def jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def write(path: Path, data: bytes, compression: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if compression == "gzip":
        data = gzip.compress(data)
    elif compression == "zstd":
        data = zstandard.ZstdCompressor().compress(data)
    path.write_bytes(data)
    return path


def docs(prefix: str, n: int) -> list[str]:
    return [f"{prefix} document {i} " + "word " * (i % 7) for i in range(n)]


def nbytes(texts: list[str]) -> int:
    return sum(len(t.encode()) for t in texts)


def counts(manifest, name):
    d = manifest.domains[manifest.names.index(name)]
    return (d.documents.value if d.documents else None), (d.bytes.value if d.bytes else None), d


def test_dolma_folders_of_gzip_shards(tmp_path):
    truth = {}
    for source, n_shards in (("cc_en_head", 3), ("wiki", 1)):
        texts = docs(source, 30 * n_shards)
        truth[source] = texts
        for j in range(n_shards):
            part = texts[j * 30 : (j + 1) * 30]
            rows = [{"id": i, "text": t, "source": source} for i, t in enumerate(part)]
            write(tmp_path / "dolma" / source / f"{j:04d}.json.gz", jsonl(rows), "gzip")
    _, m = scan_corpus(tmp_path / "dolma")
    assert m.names == ["cc_en_head", "wiki"] and m.unit == "bytes" and not m.estimated
    for source, texts in truth.items():
        assert counts(m, source)[:2] == (len(texts), nbytes(texts))
    # the source field names the same domains
    _, by_field = scan_corpus(tmp_path / "dolma", domain_field="source")
    assert by_field.names == m.names
    assert counts(by_field, "wiki")[:2] == counts(m, "wiki")[:2]


def test_pile_nested_field_in_zstd_shards(tmp_path):
    rows = [
        {"text": t, "meta": {"pile_set_name": ["Pile-CC", "Github", "ArXiv"][i % 3]}}
        for i, t in enumerate(docs("pile", 90))
    ]
    for j in range(3):  # every shard mixes all domains
        write(tmp_path / "pile" / f"{j:02d}.jsonl.zst", jsonl(rows[j::3]), "zstd")
    ds = load_corpus(tmp_path / "pile", domain_field="meta.pile_set_name")
    assert ds.names == ["ArXiv", "Github", "Pile-CC"]
    github = [r["text"] for r in rows if r["meta"]["pile_set_name"] == "Github"]
    _, m = scan_corpus(tmp_path / "pile", domain_field="meta.pile_set_name")
    assert counts(m, "Github")[:2] == (30, nbytes(github))
    assert ds[ds.index("Github")].n_tokens == nbytes(github)  # the corpus's size, not the split
    assert ds.meta["manifest"]["unit"] == "bytes"


def test_redpajama_plain_folders_and_slimpajama_chunks(tmp_path):
    write(tmp_path / "rp" / "arxiv" / "arxiv_0.jsonl", jsonl([{"text": t} for t in docs("a", 5)]))
    write(tmp_path / "rp" / "book" / "book.jsonl", jsonl([{"text": t} for t in docs("b", 7)]))
    _, m = scan_corpus(tmp_path / "rp")
    assert m.names == ["arxiv", "book"] and counts(m, "book")[0] == 7
    rows = [
        {"text": t, "meta": {"redpajama_set_name": f"Red{i % 2}"}}
        for i, t in enumerate(docs("s", 40))
    ]
    write(
        tmp_path / "slim" / "train" / "chunk1" / "example_train_0.jsonl.zst",
        jsonl(rows[:20]),
        "zstd",
    )
    write(
        tmp_path / "slim" / "train" / "chunk2" / "example_train_0.jsonl.zst",
        jsonl(rows[20:]),
        "zstd",
    )
    _, m = scan_corpus(tmp_path / "slim", domain_field="meta.redpajama_set_name")
    assert m.names == ["Red0", "Red1"] and counts(m, "Red0")[0] == 20


def test_fineweb_parquet_with_token_count(tmp_path):
    for dump in ("CC-MAIN-2024-10", "CC-MAIN-2024-18"):
        texts = docs(dump, 25)
        table = pa.table({"text": texts, "token_count": [len(t.split()) for t in texts]})
        (tmp_path / "fw" / dump).mkdir(parents=True)
        pq.write_table(table, tmp_path / "fw" / dump / "000_00000.parquet")
    _, m = scan_corpus(tmp_path / "fw")
    assert m.unit == "tokens"  # every domain counts its tokens: the priors use them
    d = counts(m, "CC-MAIN-2024-10")[2]
    assert d.tokens.exact and d.tokens.value == sum(
        len(t.split()) for t in docs("CC-MAIN-2024-10", 25)
    )
    # a column of a nested struct names the domain in a table
    table = pa.table(
        {"text": docs("x", 6), "meta": [{"lang": ["en", "de"][i % 2]} for i in range(6)]}
    )
    pq.write_table(table, tmp_path / "mixed.parquet")
    assert load_corpus(tmp_path / "mixed.parquet", domain_field="meta.lang").names == ["de", "en"]


def test_dclm_zstd_two_levels_deep_and_misnamed_compression(tmp_path):
    texts = docs("dclm", 40)
    for g in range(2):
        for loc in range(2):
            part = texts[(2 * g + loc) * 10 : (2 * g + loc + 1) * 10]
            name = f"global-shard_0{g}_of_10/local-shard_{loc}_of_10/shard_0.jsonl.zstd"
            write(
                tmp_path / "dclm" / "baseline" / name, jsonl([{"text": t} for t in part]), "zstd"
            )
    # zstd bytes under a plain .jsonl name: recognised by the magic bytes
    write(tmp_path / "dclm" / "other.jsonl", jsonl([{"text": t} for t in docs("o", 3)]), "zstd")
    _, m = scan_corpus(tmp_path / "dclm")
    assert m.names == ["baseline", "other"]
    assert counts(m, "baseline")[:2] == (40, nbytes(texts)) and counts(m, "other")[0] == 3


def write_megatron(prefix: Path, documents: list[list[int]], code: int = 8) -> None:
    dtype = {8: np.uint16, 4: np.int32}[code]
    prefix.parent.mkdir(parents=True, exist_ok=True)
    tokens = np.concatenate([np.array(d, dtype) for d in documents])
    tokens.tofile(prefix.with_suffix(".bin"))
    lengths = np.array([len(d) for d in documents], np.int32)
    pointers = np.concatenate([[0], np.cumsum(lengths[:-1]) * tokens.itemsize]).astype(np.int64)
    header = b"MMIDIDX\x00\x00" + np.array([1], "<u8").tobytes() + bytes([code])
    header += np.array([len(documents), len(documents) + 1], "<u8").tobytes()
    body = (
        lengths.tobytes()
        + pointers.tobytes()
        + np.arange(len(documents) + 1, dtype=np.int64).tobytes()
    )
    prefix.with_suffix(".idx").write_bytes(header + body)


def test_megatron_and_npy_sizes_from_headers(tmp_path):
    write_megatron(tmp_path / "mg" / "web_text_document", [[1, 2, 3], [4, 5], [6] * 10])
    write_megatron(tmp_path / "mg" / "code_text_document", [[7] * 4], code=4)
    _, m = scan_corpus(tmp_path / "mg")
    assert m.unit == "tokens" and m.names == ["code_text_document", "web_text_document"]
    web = counts(m, "web_text_document")[2]
    assert (web.tokens.value, web.tokens.exact, web.documents.value, web.dtype) == (
        15,
        True,
        3,
        "uint16",
    )
    # OLMo: headerless memmaps need a dtype; a real .npy carries its own
    (tmp_path / "olmo" / "wiki").mkdir(parents=True)
    np.arange(100, dtype=np.uint32).tofile(tmp_path / "olmo" / "wiki" / "part-0.npy")
    np.save(tmp_path / "olmo" / "books.npy", np.arange(40, dtype=np.uint16))
    _, m = scan_corpus(tmp_path / "olmo", token_dtype="uint32")
    assert [counts(m, n)[2].tokens.value for n in m.names] == [40, 100]
    _, m = scan_corpus(tmp_path / "olmo", domains={"all": ["**/*.npy"]}, token_dtype="uint32")
    assert m.names == ["all"] and counts(m, "all")[2].tokens.value == 140


def test_pretokenized_sample_is_blocks_of_the_files_ids(tmp_path):
    # the id at each position is the position: every block is checkable against the file
    web = [list(range(j * 500, j * 500 + 500)) for j in range(40)]  # 20,000 ids, 40 documents
    write_megatron(tmp_path / "mg" / "web", web)
    write_megatron(tmp_path / "mg" / "code", [[7, 8, 9] * 100], code=4)  # 300 ids: read whole
    a = load_corpus(tmp_path / "mg", sample_tokens=2_000, seed=3)
    assert a.names == ["code", "web"] and a.vocab_size == 1 + int(a[1].test.max())
    assert a[1].n_tokens == 20_000 and a[0].n_tokens == 300  # the corpus's sizes
    sample = a.meta["sample"]
    assert sample["unit"] == "tokens" and sample["read_whole"] == ["code"]
    block = sample["block_tokens"]
    ids = np.concatenate([a[1].train, a[1].validation, a[1].test])
    assert ids.size == 2_000 // block * block + (block if 2_000 % block else 0)
    assert a[1].train.dtype == np.uint16  # the files' dtype, not widened in memory
    blocks = ids.reshape(-1, block).astype(np.int64)
    assert np.all(np.diff(blocks, axis=1) == 1)  # consecutive positions of the file
    assert np.all(blocks[:, 0] % block == 0) and np.all(np.diff(blocks[:, 0]) > 0)  # in order
    b = load_corpus(tmp_path / "mg", sample_tokens=2_000, seed=3)
    c = load_corpus(tmp_path / "mg", sample_tokens=2_000, seed=4)
    assert np.array_equal(a[1].train, b[1].train) and not np.array_equal(a[1].train, c[1].train)
    code = np.concatenate([a[0].train, a[0].validation, a[0].test])
    assert np.array_equal(code, [7, 8, 9] * 100)


def test_pretokenized_vocab_and_bad_ids(tmp_path):
    (tmp_path / "olmo").mkdir()
    np.arange(600, dtype=np.uint32).tofile(tmp_path / "olmo" / "wiki.npy")  # headerless
    np.save(tmp_path / "olmo" / "books.npy", np.arange(500, 900, dtype=np.uint16))
    ds = load_corpus(tmp_path / "olmo", token_dtype="uint32")
    assert ds.vocab_size == 900 and check_vocab(ds, None) == 900 and check_vocab(ds, 1024) == 1024
    assert "model.vocab_size=900 or more" in one_line(check_vocab, ds, 899)
    (tmp_path / "neg").mkdir()
    np.array([3, -1, 4] * 50, dtype=np.int32).tofile(tmp_path / "neg" / "a.npy")
    assert "negative token id (-1)" in one_line(load_corpus, tmp_path / "neg", token_dtype="int32")


def many_shards(root: Path, n_shards: int = 40) -> tuple[int, int]:
    rng = np.random.default_rng(3)
    total_docs = total_bytes = 0
    for j in range(n_shards):
        # random letters: shards compress by their content, as real text roughly does
        texts = [
            f"doc {j}-{i} " + "".join(rng.choice(list("abcdefgh "), int(rng.integers(20, 400))))
            for i in range(int(rng.integers(20, 60)))
        ]
        write(root / "web" / f"{j:03d}.jsonl.gz", jsonl([{"text": t} for t in texts]), "gzip")
        total_docs += len(texts)
        total_bytes += nbytes(texts)
    return total_docs, total_bytes


def test_estimate_lands_within_its_error_bar_and_cache(tmp_path):
    true_docs, true_bytes = many_shards(tmp_path / "c")
    # about half the shards counted, the rest estimated
    _, m = scan_corpus(tmp_path / "c", scan_bytes=30_000)
    web = counts(m, "web")[2]
    assert m.estimated and not web.bytes.exact and 0 < m.shards_counted < m.shards_total
    assert abs(web.bytes.value - true_bytes) <= web.bytes.error
    assert abs(web.documents.value - true_docs) <= web.documents.error
    assert web.bytes.error < 0.5 * true_bytes
    _, full = scan_corpus(tmp_path / "c", rescan=True)
    assert counts(full, "web")[:2] == (true_docs, true_bytes) and full.shards_cached == 0
    _, again = scan_corpus(tmp_path / "c")
    assert again.shards_cached == again.shards_total and not again.estimated


def test_same_seed_same_bounded_sample(tmp_path):
    many_shards(tmp_path / "c")
    write(tmp_path / "c" / "small.jsonl", jsonl([{"text": t} for t in docs("small", 30)]))
    a = load_corpus(tmp_path / "c", sample_tokens=5_000, seed=1)
    b = load_corpus(tmp_path / "c", sample_tokens=5_000, seed=1)
    c = load_corpus(tmp_path / "c", sample_tokens=5_000, seed=2)
    web = a.index("web")
    assert bytes(a[web].train) == bytes(b[web].train) != bytes(c[web].train)
    sampled = a.meta["sample"]["sampled"]
    assert 2_500 < sampled["web"] < 10_000  # about the sample, far below the corpus
    assert a[web].n_tokens > 20 * sampled["web"]  # priors follow the corpus
    assert a.meta["sample"]["under_filled"] == ["small"]  # read whole: smaller than the sample
    assert bytes(a[a.index("small")].test).decode().endswith(docs("small", 30)[-1])


def test_sample_size_follows_the_budget():
    assert sample_tokens_for(1000, 16, 128) == int(np.ceil(1000 * 16 * 129 / 0.9))
    assert sample_tokens_for(1, 1, 128, test_windows=64) == int(np.ceil(64 * 129 / 0.05))
    assert sample_tokens_for(1, 1, 128) == int(np.ceil(2 * 129 / 0.05))  # two held-out windows


def test_load_domains_takes_the_field(tmp_path):
    rows = [{"text": t, "meta": {"k": "ab"[i % 2]}} for i, t in enumerate(docs("t", 40))]
    write(tmp_path / "t" / "s.jsonl.gz", jsonl(rows), "gzip")
    assert load_domains(data=str(tmp_path / "t"), domain_column="meta.k").names == ["a", "b"]


def one_line(fn, *args, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        fn(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_bad_input_is_one_line(tmp_path):
    root = tmp_path / "bad"
    (root / "empty_folder").mkdir(parents=True)
    (root / "empty_folder" / "notes.md").write_text("no shard")
    assert "no readable shard" in one_line(scan_corpus, root)

    def fresh(name: str) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        return folder

    f = fresh("trunc")
    full = gzip.compress(jsonl([{"text": t} for t in docs("x", 200)]))
    (f / "x.jsonl.gz").write_bytes(full[: len(full) // 2])
    assert "truncated" in one_line(scan_corpus, f)
    f = fresh("trunc_zstd")
    full = zstandard.ZstdCompressor().compress(jsonl([{"text": t} for t in docs("x", 200)]))
    (f / "x.jsonl.zst").write_bytes(full[: len(full) // 2])
    assert "truncated" in one_line(scan_corpus, f)
    f = fresh("misnamed")
    write(f / "x.jsonl.gz", jsonl([{"text": "plain"}]))
    assert "is named gzip but is not gzip" in one_line(scan_corpus, f)
    f = fresh("field")
    write(f / "x.jsonl", jsonl([{"text": "a", "meta": {"set": "s"}}]))
    message = one_line(scan_corpus, f, domain_field="meta.pile_set_name")
    assert "'meta.pile_set_name'" in message and "meta.set" in message
    f = fresh("mixed")
    write(f / "text.jsonl", jsonl([{"text": "a"}]))
    np.save(f / "tokens.npy", np.arange(4, dtype=np.uint16))
    assert "mixed units" in one_line(scan_corpus, f)
    f = fresh("nobin")
    write_megatron(f / "web", [[1, 2]])
    (f / "web.idx").unlink()
    assert "has no index 'web.idx'" in one_line(scan_corpus, f)
    f = fresh("dtype")
    (f / "t.npy").write_bytes(b"\x00" * 7)
    assert "not a whole number of uint16" in one_line(scan_corpus, f, token_dtype="uint16")
    assert "give its dtype" in one_line(scan_corpus, f)
    f = fresh("glob")
    write(f / "a.jsonl", jsonl([{"text": "a"}]))
    assert "matches no readable shard" in one_line(scan_corpus, f, domains={"d": ["*.parquet"]})
