"""Checkpoints hold tensors and plain data, carry a version, and are read without unpickling."""

from __future__ import annotations

import collections

import numpy as np
import pytest
import torch

from popmix.train.checkpoint import VERSION, CheckpointError, load_state, save_state


def test_arrays_numbers_and_tensors_round_trip(tmp_path):
    state = {
        "model": collections.OrderedDict(w=torch.arange(6.0).reshape(2, 3)),
        "counts": np.array([3, 0, 7], dtype=np.int64),
        "weights": np.array([0.25, 0.75]),
        "scalar": np.float64(1.5),
        "rng": np.random.default_rng(3).bit_generator.state,  # Python ints beyond 64 bits
        "log": [{"step": 0, "weights": np.array([0.5, 0.5])}],
        "pair": (1, "a"),
    }
    save_state(state, tmp_path / "s.pt")
    back = load_state(tmp_path / "s.pt")
    assert torch.equal(back["model"]["w"], state["model"]["w"])
    assert back["counts"].dtype == np.int64 and back["counts"].tolist() == [3, 0, 7]
    assert back["weights"].tolist() == [0.25, 0.75] and back["scalar"] == 1.5
    assert back["rng"] == state["rng"] and back["pair"] == (1, "a")
    assert back["log"][0]["weights"].tolist() == [0.5, 0.5]


class Payload:
    def __reduce__(self):  # what a malicious checkpoint does: run code when unpickled
        return (print, ("owned",))


def test_a_pickled_object_is_refused_without_running_it(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"format": "popmix-checkpoint", "version": VERSION, "state": Payload()}, path)
    with pytest.raises(CheckpointError, match="holds Python objects") as e:
        load_state(path)
    assert "owned" not in capsys.readouterr().out
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_other_versions_truncated_corrupt_and_foreign_files_are_one_line_errors(tmp_path):
    good = tmp_path / "good.pt"
    save_state({"x": torch.ones(1000)}, good)
    old = tmp_path / "old.pt"
    torch.save({"format": "popmix-checkpoint", "version": VERSION + 1, "state": {}}, old)
    truncated = tmp_path / "cut.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    corrupt = tmp_path / "noise.pt"
    corrupt.write_bytes(np.random.default_rng(0).bytes(4096))
    foreign = tmp_path / "foreign.pt"
    torch.save({"a": 1}, foreign)
    cases = {
        old: f"format version {VERSION + 1}",
        truncated: "truncated or corrupt",
        corrupt: "truncated or corrupt",
        foreign: "is not a popmix checkpoint",
        tmp_path / "missing.pt": "file not found",
    }
    for path, needle in cases.items():
        with pytest.raises(CheckpointError) as e:
            load_state(path)
        message = str(e.value)
        assert needle in message and str(path) in message and "\n" not in message, message


def test_a_yaml_object_tag_is_refused(tmp_path):
    from popmix.config import ConfigError, load_experiment

    p = tmp_path / "evil.yaml"
    p.write_text('name: !!python/object/apply:os.system ["echo owned"]\n')
    with pytest.raises(ConfigError) as e:
        load_experiment(str(p))
    assert str(p) in str(e.value) and "\n" not in str(e.value)
