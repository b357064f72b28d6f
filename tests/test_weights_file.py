"""The one weights-schedule format: round trip, domain checks, rescaling, old files, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from popmix.records.weights import FORMAT, SchedulePoint, WeightsFileError, WeightsSchedule

NAMES = ["a", "b", "c"]


def schedule(**kw):
    base = dict(
        domains=NAMES,
        total_steps=100,
        points=[
            {"step": 0, "weights": [0.5, 0.25, 0.25], "trial_id": "t1"},
            {"step": 30, "weights": [0.2, 0.3, 0.5], "loss_weights": [0.1, 0.1, 0.8]},
            {"step": 61, "weights": np.array([0.1, 0.1, 0.8]), "temperature": 2.0},
        ],
        final_weights=[0.25, 0.25, 0.5],
        method="pbt",
        lineage=[{"step": 30, "donor": "t0", "trial_id": "t1", "config": {}}],
        info={"seed": 0, "trial_id": "t1", "test_mean_ppl": 3.5},
    )
    return WeightsSchedule(**{**base, **kw})


def test_write_read_round_trip(tmp_path):
    s = schedule()
    path = s.write(tmp_path / "w.json")
    data = json.loads(path.read_text())
    assert data["format"] == FORMAT and data["seed"] == 0 and data["method"] == "pbt"
    back = WeightsSchedule.read(path)
    assert back == s
    assert back.points[2] == SchedulePoint(61, (0.1, 0.1, 0.8), temperature=2.0)
    assert back.points[1].loss_weights == (0.1, 0.1, 0.8)
    assert back.info["test_mean_ppl"] == 3.5 and back.lineage[0]["donor"] == "t0"
    # a compact copy reads the same
    assert WeightsSchedule.read(s.write(tmp_path / "c.json", indent=None)) == s


def test_defaults_without_points_or_final_weights():
    only_final = WeightsSchedule(NAMES, 10, final_weights=[1, 1, 2])
    assert only_final.points == (SchedulePoint(0, (1.0, 1.0, 2.0)),)
    only_points = WeightsSchedule(NAMES, 10, points=[{"step": 0, "weights": [1, 2, 3]}])
    assert only_points.final_weights == (1.0, 2.0, 3.0)
    assert schedule().weights_at(45) == (0.2, 0.3, 0.5) and schedule().weights_at(0)[0] == 0.5


def test_domains_checked_and_reordered(tmp_path):
    path = schedule().write(tmp_path / "w.json")
    with pytest.raises(WeightsFileError) as e:
        WeightsSchedule.read(path, ["a", "b", "c", "d"])
    msg = str(e.value)
    assert msg.startswith(f"{path}: its domains differ from the 4 in use")
    assert "3 in the file; not in the file: d" in msg and "\n" not in msg
    with pytest.raises(WeightsFileError, match="not in use: c; not in the file: x"):
        WeightsSchedule.read(path, ["a", "b", "x"])
    # the same domains in another order: the vectors follow their names
    back = WeightsSchedule.read(path, ["c", "a", "b"])
    assert back.domains == ("c", "a", "b")
    assert back.points[0].weights == (0.25, 0.5, 0.25)
    assert back.points[1].loss_weights == (0.8, 0.1, 0.1)
    assert back.final_weights == (0.5, 0.25, 0.25)


def test_rescaled_and_replay():
    s = schedule()
    assert s.rescaled(100) is s
    r = s.rescaled(10)
    assert r.total_steps == 10 and [p.step for p in r.points] == [0, 3, 6]
    # points landing on one step: the last one wins
    r = s.rescaled(2)
    assert [p.step for p in r.points] == [0, 1] and r.points[1].temperature == 2.0
    method, params = s.replay("schedule", 200)
    assert method == "schedule"
    assert params["points"] == [
        {"step": 0, "weights": [0.5, 0.25, 0.25]},
        {"step": 60, "weights": [0.2, 0.3, 0.5], "loss_weights": [0.1, 0.1, 0.8]},
        {"step": 122, "weights": [0.1, 0.1, 0.8]},
    ]
    assert s.replay("final", 200) == ("fixed", {"weights": [0.25, 0.25, 0.5]})


OLD_FILES = {
    # popmix run's weights.json
    "weights.json": {
        "method": "doge",
        "domains": NAMES,
        "total_steps": 24,
        "points": [{"step": 0, "weights": [0.3, 0.3, 0.4]}, {"step": 1, "weights": [1, 1, 1]}],
        "final_weights": [0.2, 0.4, 0.4],
    },
    # popmix search's best_schedule.json
    "best_schedule.json": {
        "method": "pbt",
        "seed": 0,
        "trial_id": "x_1",
        "domains": NAMES,
        "total_steps": 60,
        "objective": 1.5,
        "mean_test_ppl": 4.2,
        "points": [
            {"step": 0, "weights": [0.3, 0.3, 0.4], "loss_weights": [1, 1, 1], "trial_id": "x_0"}
        ],
        "final_weights": [0.3, 0.3, 0.4],
        "lineage": [{"step": 6, "donor": "x_0", "trial_id": "x_1", "config": {}}],
    },
    # a trial checkpoint's schedule.json
    "schedule.json": {
        "trial_id": "x_1",
        "domains": NAMES,
        "step": 12,
        "total_steps": 12,
        "points": [{"step": 0, "weights": [0.3, 0.3, 0.4], "trial_id": "x_1"}],
        "lineage": [],
        "final_weights": [0.3, 0.3, 0.4],
        "extra": {"eval_windows": 0},
    },
    # popmix bracket's bracket_schedule.json
    "bracket_schedule.json": {
        "method": "bracket",
        "domains": NAMES,
        "total_steps": 1000,
        "points": [{"step": 0, "weights": [0.5, 0.3, 0.2]}, {"step": 500, "weights": [1, 2, 3]}],
        "final_weights": [1, 2, 3],
        "order": ["a", "b", "c"],
        "note": "...",
    },
}


@pytest.mark.parametrize("name", sorted(OLD_FILES))
def test_files_of_the_previous_format_read(tmp_path, name):
    path = tmp_path / name
    path.write_text(json.dumps(OLD_FILES[name]))
    s = WeightsSchedule.read(path, NAMES)
    old = OLD_FILES[name]
    assert [p.to_dict() for p in s.points] == old["points"]
    assert list(s.final_weights) == old["final_weights"]
    # every key survives a rewrite in the current format
    rewritten = s.to_dict()
    assert rewritten.pop("format") == FORMAT
    assert rewritten == {"lineage": [], **old}


def test_hand_written_constant_mixture(tmp_path):
    path = tmp_path / "w.json"
    path.write_text(json.dumps({"domains": NAMES, "points": [{"step": 0, "weights": [1, 1, 1]}]}))
    assert WeightsSchedule.read(path).total_steps == 1
    path.write_text(json.dumps({"domains": NAMES, "final_weights": [1, 1, 1]}))
    assert WeightsSchedule.read(path).points[0].weights == (1.0, 1.0, 1.0)


@pytest.mark.parametrize(
    "content,needle",
    [
        ("{not json", "not a popmix weights file (not JSON"),
        ("[1, 2]", "not a popmix weights file (not a JSON object)"),
        ('{"rows": []}', "not a popmix weights file (it has no 'domains')"),
        ('{"exploits": [], "members": {}}', "a search's lineage file"),
        ('{"test_loss": {}, "history": []}', "use the weights.json beside it"),
        ('{"format": "other/1", "domains": ["a"]}', "not a popmix weights file (format"),
        ('{"format": "popmix-weights/9", "domains": ["a"]}', "newer than this popmix reads"),
        ('{"domains": ["a", "b", "c"], "total_steps": 5}', "neither 'points' nor"),
        ('{"domains": ["a", "a"], "final_weights": [1, 1]}', "domains name a twice"),
        (
            '{"domains": ["a","b","c"], "total_steps": 9, "points": '
            '[{"step": 4, "weights": [1,1,1]}, {"step": 4, "weights": [1,1,1]}]}',
            "bad points: point 1 is at step 4, not after point 0's step 4",
        ),
        (
            '{"domains": ["a","b","c"], "total_steps": 9, "points": '
            '[{"step": 0, "weights": [1]}]}',
            "point 0: weights has 1 entries for 3 domains",
        ),
        (
            '{"domains": ["a","b","c"], "total_steps": 9, "points": '
            '[{"step": 0, "weights": [1, -1, 1]}]}',
            "point 0: weights must be finite, >= 0",
        ),
        (
            '{"domains": ["a","b","c"], "total_steps": 9, "points": [{"step": 0}]}',
            "point 0 has no 'weights'",
        ),
        (
            '{"domains": ["a","b","c"], "total_steps": 9, "points": '
            '[{"step": 0, "weights": [1,1,1], "colour": 1}]}',
            "point 0: unknown key 'colour'",
        ),
        (
            '{"domains": ["a","b","c"], "total_steps": 9, "points": [{"step": 10, '
            '"weights": [1,1,1]}]}',
            "past total_steps 9",
        ),
        (
            '{"domains": ["a","b","c"], "points": [{"step": 3, "weights": [1,1,1]}]}',
            "no 'total_steps'",
        ),
        ('{"domains": ["a"], "total_steps": 0, "final_weights": [1]}', "total_steps must be at"),
    ],
)
def test_bad_files_are_one_line_naming_the_file(tmp_path, content, needle):
    path = tmp_path / "w.json"
    path.write_text(content)
    with pytest.raises(WeightsFileError) as e:
        WeightsSchedule.read(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: ") and needle in msg and "\n" not in msg
    assert isinstance(e.value, ValueError)


def test_missing_file(tmp_path):
    with pytest.raises(WeightsFileError, match="file not found"):
        WeightsSchedule.read(tmp_path / "nope.json")
