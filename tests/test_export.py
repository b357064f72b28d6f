"""popmix.export: phases that tile the budget, the domain map, and every format's exact text."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from popmix.export import (
    ExportError,
    check_cover,
    find_weights_file,
    load_mixture,
    read_map,
    schedule_phases,
    to_csv,
    to_hf,
    to_json,
    to_megatron,
)
from popmix.records.weights import WeightsSchedule

POINTS = [
    {"step": 0, "weights": [0.5, 0.25, 0.25]},
    {"step": 40, "weights": [0.25, 0.5, 0.25]},
    {"step": 80, "weights": [0.0, 0.25, 0.75]},
]


def write_schedule(folder: Path, name: str = "best_schedule.json", **changes) -> Path:
    data = {
        "format": "popmix-weights/1",
        "method": "pbt",
        "domains": ["a", "b", "c"],
        "total_steps": 100,
        "points": POINTS,
        "final_weights": [0.0, 0.25, 0.75],
        "seed": 3,
    }
    data.update(changes)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(json.dumps(data))
    return path


def write_summary(folder: Path, batch_size: int = 4, seq_len: int = 8, data_path=None) -> None:
    data = {"benchmark": "brown16", "path": data_path, "domains": {}, "domain_field": None}
    config = {
        "data": data,
        "train": {"batch_size": batch_size, "apply": "sample"},
        "model": {"seq_len": seq_len},
    }
    summary = {"format": "popmix-summary/1", "rows": [], "experiment_config": config}
    (folder / "summary.json").write_text(json.dumps(summary))


def write_map(path: Path, entries: dict) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(entries))
    return path


def write_megatron(prefix: Path, lengths: list[int]) -> None:
    """A Megatron ``PREFIX.bin`` + ``PREFIX.idx`` of uint16 tokens, sequences of ``lengths``
    (the documented MMIDIDX layout)."""
    n = len(lengths)
    head = b"MMIDIDX\x00\x00" + np.uint64(1).tobytes() + bytes([8])
    head += np.uint64(n).tobytes() + np.uint64(n + 1).tobytes()
    body = np.array(lengths, np.int32).tobytes()
    body += (np.cumsum([0, *lengths[:-1]]) * 2).astype(np.int64).tobytes()
    body += np.arange(n + 1, dtype=np.int64).tobytes()
    prefix.with_suffix(".idx").write_bytes(head + body)
    prefix.with_suffix(".bin").write_bytes(np.zeros(sum(lengths), np.uint16).tobytes())


# ---------------------------------------------------------------------------------------------
# phases


def test_phases_in_steps_tokens_and_a_users_total(tmp_path):
    path = write_schedule(tmp_path)
    write_summary(tmp_path)  # 4 windows x 8 tokens: 32 tokens a step
    ranges = lambda m: [(p.start, p.end) for p in m.phases]  # noqa: E731
    assert ranges(load_mixture(path)) == [(0, 40), (40, 80), (80, 100)]
    tokens = load_mixture(path, unit="tokens")
    assert ranges(tokens) == [(0, 1280), (1280, 2560), (2560, 3200)] and tokens.total == 3200
    assert "100 steps x 4 windows x 8 tokens per step" in tokens.notes[0]
    assert ranges(load_mixture(path, unit="tokens", tokens_per_step=10)) == [
        (0, 400),
        (400, 800),
        (800, 1000),
    ]
    assert ranges(load_mixture(path, total=1000)) == [(0, 400), (400, 800), (800, 1000)]
    # 40 and 80 of 100 land at 2.8 and 5.6 of 7 steps
    assert ranges(load_mixture(path, total=7)) == [(0, 3), (3, 6), (6, 7)]
    assert load_mixture(path).phases[2].weights == (0.0, 0.25, 0.75)


def test_tokens_need_a_size_per_step(tmp_path):
    path = write_schedule(tmp_path)  # no summary.json beside it
    with pytest.raises(ExportError, match="--tokens-per-step"):
        load_mixture(path, unit="tokens")
    assert load_mixture(path, unit="tokens", total=500).phases[-1].end == 500


def test_phases_cover_the_budget_and_follow_the_schedule():
    """Random schedules, in steps and rescaled: the phases tile [0, total) without gap or
    overlap, and at every step of the run's own budget the phase's weights are the ones the
    schedule has in effect (:meth:`WeightsSchedule.weights_at`)."""
    rng = np.random.default_rng(0)
    for _ in range(200):
        total_steps = int(rng.integers(1, 300))
        n = int(rng.integers(1, min(total_steps, 12) + 1))
        steps = sorted(rng.choice(total_steps + 1, size=n, replace=False).tolist())
        points = [{"step": s, "weights": rng.dirichlet(np.ones(3)).tolist()} for s in steps]
        schedule = WeightsSchedule.build(["a", "b", "c"], total_steps, points)
        phases = schedule_phases(schedule, total_steps, 1.0)
        check_cover(phases, total_steps)
        for t in range(total_steps):
            (phase,) = [p for p in phases if p.start <= t < p.end]
            assert np.allclose(phase.weights, schedule.weights_at(t))
        for total in (1, 7, total_steps * 3 + 1, 10**9):
            check_cover(schedule_phases(schedule, total), total)


def test_check_cover_catches_a_gap_and_an_overlap():
    from popmix.export import Phase

    w = (1.0,)
    with pytest.raises(ValueError, match="followed by"):
        check_cover([Phase(0, 5, w), Phase(6, 10, w)], 10)
    with pytest.raises(ValueError, match="followed by"):
        check_cover([Phase(0, 5, w), Phase(4, 10, w)], 10)
    with pytest.raises(ValueError, match="not at the budget"):
        check_cover([Phase(0, 5, w)], 10)


# ---------------------------------------------------------------------------------------------
# the formats, on the hand-made schedule


@pytest.fixture
def mixture(tmp_path):
    path = write_schedule(tmp_path / "run")
    m = write_map(tmp_path / "domains.yaml", {"a": "/d/a", "b": "/d/b", "c": ["/d/c"]})
    return load_mixture(path, map_file=m)


def test_megatron_blends(mixture):
    lines = to_megatron(mixture).splitlines()
    assert lines[0].startswith("# popmix export: the pbt schedule of ")
    assert "3 phase(s) over 100 steps" in lines[0]
    assert lines[2] == "# static, the final weights for the whole run: 0.25 /d/b 0.75 /d/c"
    assert lines[3:] == [
        "# phase 0: steps [0, 40)",
        "0.5 /d/a 0.25 /d/b 0.25 /d/c",
        "# phase 1: steps [40, 80)",
        "0.25 /d/a 0.5 /d/b 0.25 /d/c",
        "# phase 2: steps [80, 100)",
        "0.25 /d/b 0.75 /d/c",  # a, at weight 0, left out
    ]


def test_megatron_shares_a_domain_among_its_prefixes_by_size(tmp_path):
    for name, lengths in {"a": [10, 10], "b": [5], "c1": [100, 200], "c2": [100]}.items():
        write_megatron(tmp_path / name, lengths)
    path = write_schedule(tmp_path / "run")
    p = str(tmp_path)
    m = write_map(tmp_path / "m.yaml", {"a": f"{p}/a", "b": f"{p}/b", "c": [f"{p}/c1", f"{p}/c2"]})
    last = to_megatron(load_mixture(path, map_file=m)).splitlines()[-1]
    assert last == f"0.25 {p}/b 0.5625 {p}/c1 0.1875 {p}/c2"  # 0.75 split 300:100


def test_megatron_defaults_to_the_searched_corpus_prefixes(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write_megatron(corpus / "a", [4])
    write_megatron(corpus / "b", [4])
    (corpus / "c").mkdir()
    write_megatron(corpus / "c" / "part0", [30])
    write_megatron(corpus / "c" / "part1", [10])
    path = write_schedule(tmp_path / "run")
    write_summary(tmp_path / "run", data_path=str(corpus))
    m = load_mixture(path)
    assert m.data_from == f"the corpus {corpus}"
    assert m.data["a"] == (str(corpus / "a"),)
    c = corpus / "c"
    assert to_megatron(m).splitlines()[-1] == (
        f"0.25 {corpus}/b 0.5625 {c}/part0 0.1875 {c}/part1"
    )


def test_a_swarm_search_folder_exports_its_predicted_optimum(tmp_path):
    # --searcher swarm writes no best_schedule.json: its answer is the fitted optimum
    run = tmp_path / "run"
    write_schedule(run, name="swarm_optimum.json", method="swarm")
    assert find_weights_file(run) == run / "swarm_optimum.json"
    write_schedule(run)  # PBT beside the swarm: PBT's schedule first, as the table leads
    assert find_weights_file(run) == run / "best_schedule.json"


def test_megatron_names_the_text_files_it_cannot_read(tmp_path):
    (tmp_path / "corpus").mkdir()
    for d in "abc":
        (tmp_path / "corpus" / f"{d}.txt").write_text("some text\n")
    path = write_schedule(tmp_path / "run")
    write_summary(tmp_path / "run", data_path=str(tmp_path / "corpus"))
    lines = to_megatron(load_mixture(path)).splitlines()
    assert lines[3].startswith("# 3 path(s) are not Megatron datasets (e.g. ")
    assert "tools/preprocess_data.py" in lines[3]
    assert lines[4] == "# phase 0: steps [0, 40)"


def test_json_and_csv(mixture):
    data = json.loads(to_json(mixture))
    assert data["unit"] == "steps" and data["total"] == 100 and data["domains"] == ["a", "b", "c"]
    assert data["data"] == {"a": ["/d/a"], "b": ["/d/b"], "c": ["/d/c"]}
    assert data["final_weights"] == {"a": 0.0, "b": 0.25, "c": 0.75}
    assert data["phases"] == [
        {"start": 0, "end": 40, "weights": {"a": 0.5, "b": 0.25, "c": 0.25}},
        {"start": 40, "end": 80, "weights": {"a": 0.25, "b": 0.5, "c": 0.25}},
        {"start": 80, "end": 100, "weights": {"a": 0.0, "b": 0.25, "c": 0.75}},
    ]
    rows = list(csv.reader(io.StringIO(to_csv(mixture))))
    assert rows[0] == ["phase", "start", "end", "unit", "domain", "data", "weight"]
    assert rows[1:4] == [
        ["0", "0", "40", "steps", "a", "/d/a", "0.5"],
        ["0", "0", "40", "steps", "b", "/d/b", "0.25"],
        ["0", "0", "40", "steps", "c", "/d/c", "0.25"],
    ]
    assert rows[-1] == ["2", "80", "100", "steps", "c", "/d/c", "0.75"] and len(rows) == 10


def test_hf_config_and_snippet(tmp_path):
    path = write_schedule(tmp_path / "run")
    m = write_map(
        tmp_path / "m.yaml",
        {"a": "/d/a.jsonl", "b": ["/d/b/0.jsonl.zst", "/d/b/1.jsonl.gz"], "c": "org/dataset"},
    )
    text, snippet = to_hf(load_mixture(path, map_file=m))
    config = json.loads(text)
    assert config["probabilities"] == [0.0, 0.25, 0.75]
    assert config["seed"] == 3 and config["stopping_strategy"] == "all_exhausted"
    assert config["data"] == {
        "a": {"builder": "json", "data_files": ["/d/a.jsonl"]},
        "b": {"builder": "json", "data_files": ["/d/b/0.jsonl.zst", "/d/b/1.jsonl.gz"]},
        "c": {"builder": None, "data_files": ["org/dataset"]},
    }
    assert [(p["start"], p["end"], p["probabilities"]) for p in config["phases"]] == [
        (0, 40, [0.5, 0.25, 0.25]),
        (40, 80, [0.25, 0.5, 0.25]),
        (80, 100, [0.0, 0.25, 0.75]),
    ]
    namespace: dict = {}
    exec(compile(snippet.replace("from datasets import", "# "), "snippet", "exec"), namespace)
    assert namespace["SEED"] == 3 and namespace["FINAL"] == {"a": 0.0, "b": 0.25, "c": 0.75}
    assert namespace["PHASES"][1] == [40, 80, {"a": 0.25, "b": 0.5, "c": 0.25}]
    assert namespace["DATA"]["c"] == [None, ["org/dataset"]]
    yaml_text, _ = to_hf(load_mixture(path, map_file=m), as_yaml=True)
    import yaml

    assert yaml.safe_load(yaml_text) == config


def test_hf_refuses_token_files_and_mixed_kinds(tmp_path):
    path = write_schedule(tmp_path / "run")
    for entries, match in (
        ({"a": "/d/a.npy", "b": "/d/b.jsonl", "c": "/d/c.jsonl"}, "token ids"),
        ({"a": ["/d/a.jsonl", "/d/a.parquet"], "b": "b", "c": "c"}, "different kinds"),
    ):
        m = write_map(tmp_path / "m.yaml", entries)
        with pytest.raises(ExportError, match=match):
            to_hf(load_mixture(path, map_file=m))


# ---------------------------------------------------------------------------------------------
# bad input: one line naming the value and the fix


def test_map_errors_name_the_domain_and_the_fix(tmp_path):
    m = write_map(tmp_path / "m.yaml", {"a": "/d/a", "b": "/d/b"})
    with pytest.raises(ExportError, match=r"no entry for domain 'c'; add a line `c: "):
        read_map(m, ["a", "b", "c"])
    write_map(m, {"a": "/d/a", "b": "/d/b", "c": "/d/c", "cc": "/d/cc"})
    with pytest.raises(ExportError, match=r"'cc' is not a domain of the schedule"):
        read_map(m, ["a", "b", "c"])
    write_map(m, {"a": 3, "b": "/d/b", "c": "/d/c"})
    with pytest.raises(ExportError, match=r"a: expected a path"):
        read_map(m, ["a", "b", "c"])
    with pytest.raises(ExportError, match="file not found"):
        read_map(tmp_path / "none.yaml", ["a"])
    m.write_text("- a\n- b\n")
    with pytest.raises(ExportError, match="expected a mapping"):
        read_map(m, ["a"])


@pytest.mark.parametrize(
    "changes,match",
    [
        ({"points": [{"step": 0, "weights": [0.5, 0.5, 0.5]}]}, "sum to 1.5, not 1; .* normalise"),
        ({"points": [{"step": 0, "weights": [0.5, -0.1, 0.6]}]}, "finite, >= 0"),
        ({"final_weights": [0.5, float("nan"), 0.5], "points": []}, "finite, >= 0"),
    ],
)
def test_weights_that_are_no_mixture(tmp_path, changes, match):
    path = write_schedule(tmp_path, **changes)
    with pytest.raises(ExportError, match=match):
        load_mixture(path)


def test_folders_and_files_that_are_no_weights_file(tmp_path):
    with pytest.raises(ExportError, match="no such file or folder"):
        load_mixture(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ExportError, match="holds no weights file .*best_schedule.json"):
        load_mixture(tmp_path / "empty")
    (tmp_path / "empty" / "doge_weights-seed0.json").write_text("{}")
    with pytest.raises(ExportError, match="give one of them"):
        load_mixture(tmp_path / "empty")
    (tmp_path / "x.json").write_text('{"test_loss": {}, "history": []}')
    with pytest.raises(ExportError, match="result.json, not a weights file"):
        load_mixture(tmp_path / "x.json")
    (tmp_path / "y.txt").write_text("hello")
    with pytest.raises(ExportError, match="not JSON"):
        load_mixture(tmp_path / "y.txt")


def test_a_run_folder_uses_its_weights_json(tmp_path):
    write_schedule(tmp_path, name="weights.json", method="stratified")
    (tmp_path / "result.json").write_text(
        json.dumps({"train_config": {"batch_size": 2, "apply": "sample"}, "model_config": {}})
    )
    m = load_mixture(tmp_path)
    assert m.source == tmp_path / "weights.json" and m.method == "stratified"
    write_schedule(tmp_path)
    write_summary(tmp_path)
    assert load_mixture(tmp_path).source == tmp_path / "best_schedule.json"  # a search's first
    with pytest.raises(ExportError, match="a search's summary, not a weights file; give its"):
        load_mixture(tmp_path / "summary.json")
    assert m.data_from == "domain names" and m.data["a"] == ("a",)


def test_import_stays_light():
    code = (
        "import sys, popmix.export; "
        "print([m for m in ('torch', 'ray', 'datasets') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
