"""The catalogue of bad inputs (issue 12, item 5): each is one line on stderr naming the value
and the fix, exit code 2, no traceback, and nothing written where the command would have
written. The commands run in this process (``popmix.cli.main``), so the catalogue costs
seconds; the subprocess tests elsewhere (tests/cli/test_cli.py, test_search_command.py) check
the same through a real process.
"""

from __future__ import annotations

import errno
import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from popmix.cli import main

TINY = "--steps 4 --n-layer 1 --d-model 16 --n-head 2 --seq-len 16 --batch-size 4".split()


def weights_file(path: Path, weights: dict[str, float]) -> Path:
    """A popmix weights file (the format of weights.json and best_schedule.json)."""
    data = {
        "format": "popmix-weights/1",
        "method": "fixed",
        "domains": list(weights),
        "total_steps": 4,
        "points": [{"step": 0, "weights": list(weights.values())}],
    }
    path.write_text(json.dumps(data))  # NaN is written as JSON's NaN, as Python reads it
    return path


def brown(n: int) -> list[str]:
    from popmix.data.brown16 import load_brown16

    return load_brown16().names[:n]


def setup_text(tmp: Path, name: str, content: bytes | str) -> Path:
    folder = tmp / "data"
    folder.mkdir(exist_ok=True)
    p = folder / name
    p.write_bytes(content if isinstance(content, bytes) else content.encode())
    return folder


def _no_column(tmp: Path) -> Path:
    table = tmp / "table.jsonl"
    table.write_text(
        "\n".join(json.dumps({"text": "hello " * 50, "kind": "a"}) for _ in range(40))
    )
    return table


def _two_domains(tmp: Path) -> Path:
    setup_text(tmp, "a.txt", "alpha beta gamma. " * 400)
    return setup_text(tmp, "b.txt", "delta epsilon. " * 400)


#: (command line with {tmp} and {out}, what to write first, a fragment of the message)
CASES: list[tuple[str, Callable[[Path], object] | None, str]] = [
    # the experiment: YAML, types, keys, values
    (
        "run --experiment {tmp}/bad.yaml",
        lambda t: (t / "bad.yaml").write_text("train: {steps: [1, \n"),
        "malformed YAML at line 2",
    ),
    ("run train.steps=many", None, "train.steps"),
    ("run train.stepz=3", None, "train.stepz"),
    ("run --steps 0", None, "must be at least 1, got 0"),
    ("run --steps -5", None, "must be at least 1, got -5"),
    ("run --method magic", None, "unknown method 'magic'"),
    ("search --searcher magic", None, "invalid choice: 'magic'"),
    ("search --objective domain:nowhere --tasks 3", None, "nowhere"),
    # data
    ("run --data {tmp}/missing", None, "missing"),
    ("run --data {tmp}/data", lambda t: setup_text(t, "a.txt", b""), "empty"),
    (
        "run --data {tmp}/data",
        lambda t: setup_text(t, "a.bin.txt", bytes(range(256)) * 64),
        "is a binary file (it holds NUL bytes)",
    ),
    (
        "run --data {tmp}/data",
        lambda t: setup_text(t, "latin.txt", "caf\xe9 cr\xe8me. ".encode("latin-1") * 400),
        "is not UTF-8 text (byte 0xe9",
    ),
    ("run --data {tmp}/table.jsonl --domain-field lang", _no_column, "lang"),
    (
        "run --data {tmp}/data",
        lambda t: setup_text(t, "t.npy", b"\x00" * 7),
        "data.token_dtype",
    ),
    (
        "run --data {tmp}/data",
        lambda t: setup_text(t, "web.bin", b"\x00" * 8),
        "web.idx",
    ),
    (
        "run --data {tmp}/data model.vocab_size=3",
        lambda t: np.save(setup_text(t, "a.npy", b"") / "a.npy", np.arange(900, dtype=np.uint16)),
        "model.vocab_size=900 or more",
    ),
    # weights files
    (
        "run --weights-from {tmp}/w.json",
        lambda t: weights_file(t / "w.json", dict(zip(brown(3), [0.5, math.nan, 0.5]))),
        "w.json",
    ),
    (
        "run --weights-from {tmp}/w.json",
        lambda t: weights_file(t / "w.json", dict(zip(brown(3), [0.5, -0.2, 0.7]))),
        "w.json",
    ),
    (
        "run --weights-from {tmp}/w.json",
        lambda t: weights_file(t / "w.json", {"klingon": 0.5, "vulcan": 0.5}),
        "klingon",
    ),
    ("run --weights-from {tmp}/w.json", lambda t: (t / "w.json").write_text("{"), "w.json"),
    ("search --init-weights {tmp}/none.json", None, "none.json"),
    # cluster and storage
    ("search --address 127.0.0.1:9", None, "cannot reach a Ray cluster at --address"),
    (
        "search --storage {tmp}/file/runs",
        lambda t: (t / "file").write_text("not a folder"),
        "file",
    ),
    (
        "search --storage {tmp} --name taken",
        lambda t: (t / "taken").mkdir() or (t / "taken" / "x").write_text("earlier"),
        "--resume",
    ),
    # resume
    ("search --resume {tmp}/nothing", None, "no such folder"),
    ("search --resume {tmp}", None, "not a popmix search folder"),
    ("search --resume {tmp} --population 8", None, "drop --population"),
    # init
    ("init --out {tmp}/x.yaml", None, "popmix init needs --data DIR"),
    ("init --data {tmp}/missing --out {tmp}/x.yaml", None, "missing"),
    (
        "init --data {tmp}/data --out {tmp}/x.yaml",
        lambda t: setup_text(t, "a.txt", "alpha beta gamma. " * 400),
        "found one domain (a)",
    ),
    ("init --data {tmp}/data --out {tmp}/data", _two_domains, "exists; give another --out"),
    ("init --data {tmp}/data --out {tmp}/x.txt", _two_domains, "ending .yaml"),
    ("init --data {tmp}/data --out {tmp}/no/x.yaml", _two_domains, "does not exist"),
    ("init --gpus -1", None, "must be at least 0"),
    ("init --budget-minutes 0", None, "more than 0 minutes"),
    # one vocabulary: --seed is one seed, --seeds several; never a prefix of the other
    ("search --seed 3 --seeds 2", None, "--seed S (one seed) or --seeds N|LIST, not both"),
    ("run --seeds 3", None, "popmix run trains one model: give --seed S"),
    ("calibrate --seed 3", None, "a spread over --seeds N seeds"),
    ("confirm {tmp} --seed 3", None, "--seeds N fresh seeds"),
    ("check nowhere", None, "a shipped experiment by name (compare_brown16"),
    # bracket
    ("bracket --at-steps 5,x", None, "--at-steps"),
    ("bracket --validate -1", None, "bracket.validate step sizes must be > 0, got [-1.0]"),
    ("bracket --max-pairs 0", None, "--max-pairs"),
]


@pytest.mark.parametrize("line,prepare,needle", CASES, ids=[c[0][:60] for c in CASES])
def test_catalogue(line, prepare, needle, tmp_path, capsys):
    if prepare is not None:
        prepare(tmp_path)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    args = line.replace("{tmp}", str(tmp_path)).split()
    if args[0] in ("run", "bracket") and not any(a.startswith("--out") for a in args):
        args += ["--out", str(tmp_path / "out")]
    if args[0] == "run":
        args += TINY
    if args[0] == "search" and "--storage" not in args and "--resume" not in args:
        args += ["--storage", str(tmp_path / "runs")]
    try:
        assert main(args) == 2
    except SystemExit as e:  # argparse's own errors (popmix's Parser keeps them one line)
        assert e.code == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert needle in lines[0], lines[0]
    assert "Traceback" not in captured.err
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert after == before  # nothing written, nothing removed


def test_a_full_disk_while_writing_results_is_one_line(tmp_path, capsys, monkeypatch):
    import popmix.train.checkpoint as checkpoint

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "out"))

    monkeypatch.setattr(checkpoint.torch, "save", full)
    out = tmp_path / "out"
    assert main(["run", "--tasks", "2", "--out", str(out), "--save-checkpoint", *TINY]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left on device" in err[0] and "free" in err[0]
    assert not (out / "checkpoint.pt").exists()  # no truncated checkpoint left behind
