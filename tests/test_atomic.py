"""popmix._util.atomic.write_json: the file is whole before and after, and no temporary is left."""

from __future__ import annotations

import json

import pytest

from popmix._util.atomic import write_json


def test_a_write_replaces_the_file_whole_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "state.json"
    write_json(path, {"a": 1}, indent=2)
    assert json.loads(path.read_text()) == {"a": 1} and "\n" in path.read_text()
    write_json(path, {"b": object()}, default=lambda o: "obj")
    assert json.loads(path.read_text()) == {"b": "obj"}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_a_write_that_fails_keeps_the_previous_file(tmp_path):
    path = tmp_path / "state.json"
    write_json(path, {"a": 1})
    with pytest.raises(TypeError):
        write_json(path, {"b": object()})  # not JSON: fails before anything is written
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]
