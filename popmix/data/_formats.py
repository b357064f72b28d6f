"""Shard formats: what a file holds, how to open it, and its records.

A shard's format comes from its name (``.txt``, ``.json``, ``.jsonl``, ``.csv``, ``.parquet``,
Megatron ``.bin`` + ``.idx``, ``.npy``) and its compression from its first bytes (gzip
``1f 8b``, zstd ``28 b5 2f fd``), so a ``.jsonl`` that is really zstd is still read and DCLM's
``.zstd`` works like ``.zst``. Text records are streamed: one shard is never held in memory
whole (a ``.json`` array file, which has no lines to stream, is the exception).

Every reading problem is a one-line :class:`~popmix.data.domains.DataError` naming the shard.
"""

from __future__ import annotations

import gzip
import io
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from .domains import DataError

#: formats read as text records, and those already tokenized
TEXT_FORMATS = ("txt", "jsonl", "json", "csv", "parquet")
TOKEN_FORMATS = ("megatron", "npy")
#: compression suffixes a streamed format may carry (``.zstd``: DCLM's spelling)
COMPRESSED = {".gz": "gzip", ".zst": "zstd", ".zstd": "zstd"}
_STREAMED = ("txt", "jsonl", "json", "csv")
_MAGIC = {"gzip": b"\x1f\x8b", "zstd": b"\x28\xb5\x2f\xfd"}
_NPY_MAGIC = b"\x93NUMPY"
#: Megatron's ``.idx``: magic, u64 version, u8 dtype code, u64 sequences, u64 documents
_IDX_MAGIC = b"MMIDIDX\x00\x00"
_IDX_HEADER = 9 + 8 + 1 + 8 + 8
_IDX_DTYPES = {
    1: np.uint8,
    2: np.int8,
    3: np.int16,
    4: np.int32,
    5: np.int64,
    6: np.float64,
    7: np.float32,
    8: np.uint16,
}
#: a record field that, when present, counts the document's tokens (FineWeb's)
TOKEN_COUNT_FIELD = "token_count"
_CHUNK = 1 << 20


def split_name(name: str) -> tuple[str, str | None]:
    """``(stem, format)`` of a file name; format ``None`` for a file popmix does not read.

    ``wiki.jsonl.zst`` is ``("wiki", "jsonl")``, ``web.bin`` is ``("web", "megatron")``; an
    ``.idx`` belongs to its ``.bin`` and is not a shard of its own (``"idx"``).
    """
    lower = name.lower()
    compressed = next((s for s in COMPRESSED if lower.endswith(s)), "")
    base = lower[: len(lower) - len(compressed)]
    for fmt in (*_STREAMED, "parquet", "npy", "bin", "idx"):
        if base.endswith("." + fmt):
            if compressed and fmt not in _STREAMED:
                return name, None  # a compressed table or token file cannot be streamed
            stem = name[: len(base) - len(fmt) - 1]
            return stem, {"bin": "megatron"}.get(fmt, fmt)
    return name, None


# ---------------------------------------------------------------------------------------------
# opening: decompress by magic bytes


def compression_of(path: Path) -> str | None:
    """``gzip``, ``zstd`` or ``None``, from the first bytes; a name that promises a compression
    the bytes do not have is an error (a mislabelled or half-written shard)."""
    with open(path, "rb") as f:
        head = f.read(4)
    found = next((c for c, magic in _MAGIC.items() if head.startswith(magic)), None)
    named = COMPRESSED.get(Path(path.name.lower()).suffix)
    if named and found != named:
        raise DataError(
            f"shard {str(path)!r} is named {named} but is not {named} (it starts with "
            f"{head.hex(' ') or 'nothing'}); rename it to what it is or recompress it"
        )
    return found


class _ZstdRaw(io.RawIOBase):
    """A zstd stream that notices truncation: ``zstandard``'s own stream reader returns a
    short read without error when the last frame is cut off."""

    def __init__(self, raw: BinaryIO, path: Path) -> None:
        import zstandard

        self._zstd = zstandard
        self._raw = raw
        self._path = path
        self._obj = zstandard.ZstdDecompressor().decompressobj()
        self._pending = False  # bytes fed to a frame that has not ended yet
        self._out = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._out:
            chunk = self._raw.read(_CHUNK)
            if not chunk:
                if self._pending:
                    raise truncated(self._path, "its last zstd frame is cut off")
                return 0
            self._out = self._feed(chunk)
        n = min(len(buffer), len(self._out))
        buffer[:n] = self._out[:n]
        self._out = self._out[n:]
        return n

    def _feed(self, chunk: bytes) -> bytes:
        out = []
        while chunk:
            try:
                out.append(self._obj.decompress(chunk))
            except self._zstd.ZstdError as exc:
                raise truncated(self._path, f"zstd: {exc}") from None
            if self._obj.eof:  # concatenated frames: start the next one on what is left
                chunk = self._obj.unused_data
                self._obj = self._zstd.ZstdDecompressor().decompressobj()
                self._pending = False
            else:
                chunk = b""
                self._pending = True
        return b"".join(out)

    def close(self) -> None:
        self._raw.close()
        super().close()


def truncated(path: Path, why: str) -> DataError:
    return DataError(
        f"shard {str(path)!r} is truncated or corrupt ({why}); download it again or remove it"
    )


def open_stream(path: Path) -> BinaryIO:
    """The decompressed bytes of a streamed shard, as a buffered binary file."""
    compression = compression_of(path)
    raw = open(path, "rb")
    if compression == "gzip":
        return gzip.GzipFile(fileobj=raw)  # type: ignore[return-value]
    if compression == "zstd":
        return io.BufferedReader(_ZstdRaw(raw, path), _CHUNK)  # type: ignore[return-value]
    return raw


# ---------------------------------------------------------------------------------------------
# text records


@dataclass(frozen=True)
class Fields:
    """Which fields of a record to read: dotted paths (``meta.pile_set_name``)."""

    text: str = "text"
    domain: str | None = None


#: one record: its domain value (``None`` without a domain field, or when the record lacks
#: it), its text (``None`` when missing) and its ``token_count`` (``None`` when absent)
Record = tuple[Any, Any, Any]


def records(path: Path, fmt: str, fields: Fields) -> Iterator[Record]:
    """Stream the records of a text shard, checking that the fields exist.

    Raises:
        DataError: the shard is unreadable, truncated, or lacks a field in every record.
    """
    if fmt == "txt":
        if fields.domain is not None:
            raise DataError(
                f"shard {str(path)!r} is plain text and has no field {fields.domain!r}; a "
                "domain field needs .jsonl, .json, .parquet or .csv shards"
            )
        yield from ((None, p, None) for p in _paragraphs(path))
    elif fmt == "parquet":
        yield from _checked(path, _parquet_records(path, fields), fields)
    elif fmt == "csv":
        yield from _checked(path, _csv_records(path, fields), fields)
    else:
        yield from _checked(path, _json_records(path, fields), fields)


def _paragraphs(path: Path) -> Iterator[str]:
    """One document per blank-line separated paragraph (how ``datasets``' ``text`` builder
    splits with ``sample_by="paragraph"``), streamed chunk by chunk."""
    carry = ""
    with _reading(path), open_stream(path) as raw:
        # strict: the proxy trains on the text's UTF-8 bytes, and replacement characters in
        # place of a binary file or another encoding would be trained on as if they were text
        text = io.TextIOWrapper(raw, encoding="utf-8", errors="strict")
        while chunk := text.read(_CHUNK):
            if "\x00" in chunk:
                raise _binary(path)
            parts = (carry + chunk).split("\n\n")
            carry = parts.pop()
            yield from parts
    if carry:
        yield carry


def _binary(path: Path) -> DataError:
    return DataError(
        f"{str(path)!r} is a binary file (it holds NUL bytes), not text; remove it or give "
        "its text as .txt, .jsonl, .parquet or .csv"
    )


class _reading:
    """Turns a decompression or decoding failure while reading ``path`` into a one-line
    DataError."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        if isinstance(exc, (EOFError, zlib.error, gzip.BadGzipFile)):
            raise truncated(self.path, f"{type(exc).__name__}: {exc}") from None
        if isinstance(exc, UnicodeDecodeError):
            if b"\x00" in exc.object:
                raise _binary(self.path) from None
            bad = exc.object[exc.start : exc.start + 1].hex()
            raise DataError(
                f"{str(self.path)!r} is not UTF-8 text (byte 0x{bad} cannot start or continue "
                "a character); convert it, e.g. iconv -f latin1 -t utf-8, or remove it"
            ) from None


def _get(record: Any, path: list[str]) -> tuple[bool, Any]:
    for key in path:
        if not isinstance(record, dict) or key not in record:
            return False, None
        record = record[key]
    return True, record


def _json_records(path: Path, fields: Fields) -> Iterator[tuple[dict, Any, Any, Any]]:
    """(record, domain, text, token_count) per JSON line (or per element of a JSON array)."""
    text_path = fields.text.split(".")
    domain_path = fields.domain.split(".") if fields.domain else None
    for n, record in _json_objects(path):
        if not isinstance(record, dict):
            raise DataError(
                f"line {n} of {str(path)!r} is a JSON {type(record).__name__}, not an object; "
                "give one JSON object per line"
            )
        _, text = _get(record, text_path)
        domain = _get(record, domain_path)[1] if domain_path else None
        yield record, domain, text, record.get(TOKEN_COUNT_FIELD)


def _json_objects(path: Path) -> Iterator[tuple[int, Any]]:
    with _reading(path), open_stream(path) as f:
        first = f.peek(64)[:64].lstrip() if hasattr(f, "peek") else b""
        if first.startswith(b"["):  # a JSON array, not JSON lines: it has to be read whole
            try:
                rows = json.loads(f.read())
            except json.JSONDecodeError as exc:
                raise _not_json(path, 1, exc) from None
            yield from enumerate(rows, 1)
            return
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield n, json.loads(line)
            except json.JSONDecodeError as exc:
                raise _not_json(path, n, exc) from None


def _not_json(path: Path, line: int, exc: json.JSONDecodeError) -> DataError:
    return DataError(
        f"line {line} of {str(path)!r} is not JSON ({exc.msg}); the shard is truncated or not "
        "JSON lines: fix or remove it"
    )


def _checked(
    path: Path, rows: Iterator[tuple[Any, Any, Any, Any]], fields: Fields
) -> Iterator[Record]:
    """Yield the rows' (domain, text, tokens); a field missing from every row, or a domain
    missing from some rows, is an error once the shard is read."""
    n_rows = n_text = n_domain = 0
    example: Any = None
    for record, domain, text, tokens in rows:
        if example is None:
            example = record
        n_rows += 1
        n_text += text is not None
        n_domain += domain is not None
        if text is not None and not isinstance(text, str):
            raise DataError(
                f"field {fields.text!r} of {str(path)!r} must hold text, found "
                f"{type(text).__name__} value {text!r}; choose the field that holds the text"
            )
        yield domain, text, tokens
    if n_rows == 0:
        return
    for name, found in ((fields.text, n_text), (fields.domain, n_domain)):
        if name is not None and found == 0 and not _has(example, name):
            raise DataError(
                f"shard {str(path)!r} has no field {name!r} (its fields: "
                f"{', '.join(field_names(example))}); name an existing field or rename it"
            )
    if fields.domain is not None and n_domain < n_rows:
        raise DataError(
            f"{n_rows - n_domain} row(s) of {str(path)!r} have no value in field "
            f"{fields.domain!r}; give every row a domain name"
        )


def _has(record: Any, dotted: str) -> bool:
    return _get(record, dotted.split("."))[0]


def field_names(record: Any, prefix: str = "") -> list[str]:
    """The dotted paths of a record's fields (nested objects spelled out)."""
    out: list[str] = []
    for key, value in (record or {}).items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.extend(field_names(value, name + "."))
        else:
            out.append(name)
    return out


def _arrow_records(batches: Iterator[Any], fields: Fields, schema: Any) -> Iterator[tuple]:
    """Rows of Arrow record batches as (schema as a record, domain, text, token_count): only
    the needed columns become Python values, one batch at a time."""
    example = _schema_record(schema)
    for batch in batches:
        text = _arrow_column(batch, fields.text)
        domain = _arrow_column(batch, fields.domain) if fields.domain else None
        tokens = _arrow_column(batch, TOKEN_COUNT_FIELD)
        for i in range(batch.num_rows):
            yield (
                example,
                domain[i] if domain is not None else None,
                text[i] if text is not None else None,
                tokens[i] if tokens is not None else None,
            )


def _schema_record(schema: Any) -> dict:
    """An Arrow schema as a record of its fields (structs nested), for field checks."""
    import pyarrow as pa

    def of(arrow_type: Any) -> Any:
        if pa.types.is_struct(arrow_type):
            return {f.name: of(f.type) for f in arrow_type}
        return None

    return {f.name: of(f.type) for f in schema}


def _arrow_column(batch: Any, dotted: str) -> list | None:
    """A column by dotted path (``meta.source``: field ``source`` of struct column ``meta``);
    a column whose own name has dots is taken first."""
    if dotted in batch.schema.names:
        return batch.column(dotted).to_pylist()
    head, *rest = dotted.split(".")
    if head not in batch.schema.names:
        return None
    column = batch.column(head)
    for key in rest:
        import pyarrow as pa

        if not pa.types.is_struct(column.type) or column.type.get_field_index(key) < 0:
            return None
        column = column.field(key)
    return column.to_pylist()


def _parquet_records(path: Path, fields: Fields) -> Iterator[tuple]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
        names = pf.schema_arrow.names
        wanted = {f.split(".")[0] for f in (fields.text, fields.domain) if f} | {TOKEN_COUNT_FIELD}
        columns = [n for n in names if n in wanted or n in (fields.text, fields.domain)]
        batches = pf.iter_batches(batch_size=4096, columns=columns or names[:1])
        yield from _arrow_records(_guarded(path, batches, "parquet"), fields, pf.schema_arrow)
    except DataError:
        raise
    except Exception as exc:
        raise _unreadable(path, "parquet", exc) from None


def _csv_records(path: Path, fields: Fields) -> Iterator[tuple]:
    import pyarrow.csv as pacsv

    with _reading(path), open_stream(path) as f:
        try:
            reader = pacsv.open_csv(f)
        except Exception as exc:
            raise _unreadable(path, "csv", exc) from None
        yield from _arrow_records(_guarded(path, reader, "csv"), fields, reader.schema)


def _guarded(path: Path, batches: Any, fmt: str) -> Iterator[Any]:
    iterator = iter(batches)
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except DataError:
            raise
        except Exception as exc:
            raise _unreadable(path, fmt, exc) from None
        yield batch


def _unreadable(path: Path, fmt: str, exc: BaseException) -> DataError:
    first = (str(exc).strip().splitlines() or [""])[0]
    return DataError(
        f"could not read {str(path)!r} as {fmt} ({type(exc).__name__}: {first}); the shard is "
        "truncated or not what its name says: fix, rename or remove it"
    )


def parquet_rows(path: Path) -> int:
    """Rows of a parquet shard, from its footer alone."""
    import pyarrow.parquet as pq

    try:
        return int(pq.read_metadata(path).num_rows)
    except Exception as exc:
        raise _unreadable(path, "parquet", exc) from None


# ---------------------------------------------------------------------------------------------
# pre-tokenized shards: sizes from headers, never from reading the tokens


@dataclass(frozen=True)
class TokenFile:
    """A pre-tokenized shard: its token count, dtype and documents (``None``: unknown)."""

    tokens: int
    dtype: str
    documents: int | None


def megatron_index(bin_path: Path) -> TokenFile:
    """Tokens and documents of a Megatron ``PREFIX.bin`` from its ``PREFIX.idx`` (the
    documented header, read with numpy alone), checked against the ``.bin``'s size."""
    idx = bin_path.with_suffix(".idx")
    if not idx.is_file():
        raise DataError(
            f"Megatron shard {str(bin_path)!r} has no index {idx.name!r} next to it; copy the "
            ".idx written with it, or remove the .bin"
        )
    with open(idx, "rb") as f:
        head = f.read(_IDX_HEADER)
    if len(head) < _IDX_HEADER or not head.startswith(_IDX_MAGIC):
        raise truncated(idx, "not a Megatron MMIDIDX index")
    code = head[17]
    n_sequences = int(np.frombuffer(head, np.uint64, 1, 18)[0])
    n_documents = int(np.frombuffer(head, np.uint64, 1, 26)[0])
    if code not in _IDX_DTYPES:
        raise truncated(idx, f"unknown dtype code {code}")
    dtype = np.dtype(_IDX_DTYPES[code])
    if idx.stat().st_size < _IDX_HEADER + 4 * n_sequences:
        raise truncated(idx, f"shorter than its {n_sequences} sequence lengths")
    lengths = np.memmap(idx, np.int32, "r", _IDX_HEADER, (n_sequences,))
    tokens = int(lengths.sum(dtype=np.int64))
    size = bin_path.stat().st_size
    if size != tokens * dtype.itemsize:
        raise truncated(
            bin_path,
            f"{size} bytes where its index says {tokens} tokens of {dtype.name}, "
            f"{tokens * dtype.itemsize} bytes",
        )
    return TokenFile(tokens, dtype.name, max(n_documents - 1, 0))


def npy_tokens(path: Path, dtype: str | None) -> TokenFile:
    """Tokens of a ``.npy`` shard: from its header when it has one, else (OLMo's headerless
    memmaps) from its size and the ``dtype`` the user gives."""
    with open(path, "rb") as f:
        head = f.read(len(_NPY_MAGIC))
    if head == _NPY_MAGIC:
        try:
            array = np.load(path, mmap_mode="r")
        except Exception as exc:
            raise _unreadable(path, "npy", exc) from None
        return TokenFile(int(array.size), array.dtype.name, None)
    if dtype is None:
        raise DataError(
            f"{str(path)!r} is a headerless token file; give its dtype, e.g. "
            "data.token_dtype=uint16 (or uint32)"
        )
    itemsize = token_dtype(dtype).itemsize
    size = path.stat().st_size
    if size % itemsize:
        raise DataError(
            f"{str(path)!r} has {size} bytes, not a whole number of {dtype} tokens "
            f"({itemsize} bytes each); check data.token_dtype or the file"
        )
    return TokenFile(size // itemsize, token_dtype(dtype).name, None)


def token_dtype(name: str) -> np.dtype:
    try:
        dtype = np.dtype(name)
    except TypeError:
        dtype = None
    if dtype is None or dtype.kind not in "ui":
        raise DataError(
            f"data.token_dtype {name!r} is not an integer dtype; use uint16, uint32 or int32"
        )
    return dtype


def token_array(path: Path, fmt: str, dtype: str | None) -> np.ndarray:
    """The token ids of a pre-tokenized shard, memory-mapped (nothing is read until used):
    a Megatron ``.bin`` in its index's dtype, a ``.npy`` in its header's (or ``dtype``, for a
    headerless one).

    Raises:
        DataError: float ids (Megatron's dtype codes 6 and 7), or a bad shard (see
            :func:`megatron_index`, :func:`npy_tokens`).
    """
    tf = megatron_index(path) if fmt == "megatron" else npy_tokens(path, dtype)
    if np.dtype(tf.dtype).kind not in "ui":
        raise DataError(
            f"{str(path)!r} holds {tf.dtype} values, not integer token ids; re-tokenize it "
            "with an integer dtype (uint16 or int32)"
        )
    if tf.tokens == 0:
        return np.zeros(0, dtype=tf.dtype)
    with open(path, "rb") as f:
        has_header = f.read(len(_NPY_MAGIC)) == _NPY_MAGIC
    if fmt == "npy" and has_header:
        return np.load(path, mmap_mode="r").reshape(-1)
    return np.memmap(path, np.dtype(tf.dtype), "r", 0, (tf.tokens,))
