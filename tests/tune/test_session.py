"""run_search in parts: resolve without Ray, and a Ray session that restores what it changes."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import random
from pathlib import Path

import pytest

from popmix.config import ConfigError, Resources, SearchSpace, VectorSpec, load_experiment
from popmix.tune.cluster import RaySession, SearchOptions
from popmix.tune.search import resolve, run_search

ROOT = Path(__file__).resolve().parents[2]
LOGGERS = ("ray", "ray.tune.logger", "ray.tune.analysis.experiment_analysis", "optuna")


def state() -> tuple[dict[str, str], dict[str, int], object]:
    return (
        dict(os.environ),
        {n: logging.getLogger(n).level for n in LOGGERS},
        random.getstate(),
    )


def smoke():
    return load_experiment(ROOT / "experiments" / "smoke.yaml")


def test_resolve_checks_everything_before_ray(tmp_path):
    space = SearchSpace(sample_weights=VectorSpec(), source="inline")
    plan = resolve(smoke(), space, SearchOptions(storage=str(tmp_path), name="n", out=None))
    assert plan.exp_dir == tmp_path.resolve() / "n" and plan.out == plan.exp_dir
    assert not plan.exp_dir.exists()  # nothing written yet
    assert len(plan.domains) == smoke().data.tasks
    # a storage URI is opened and reached before Ray (tests/tune/test_storage.py: S3)
    with pytest.raises(ConfigError, match="--storage bogus://bucket: cannot open it"):
        resolve(smoke(), space, SearchOptions(storage="bogus://bucket"))
    # a bad init file fails here, in one line naming the space, the key and the file
    bad = tmp_path / "w.json"
    bad.write_text(json.dumps({"domains": ["x", "y"], "final_weights": [1, 1]}))
    vec = VectorSpec(init="file", init_file=str(bad))
    with pytest.raises(ConfigError) as e:
        resolve(smoke(), SearchSpace(sample_weights=vec, source="s.yaml"), SearchOptions())
    msg = str(e.value)
    assert msg.startswith(f"s.yaml: sample_weights.init_file {bad}: its domains differ")
    assert "\n" not in msg
    # so does a bad file named among the anchors
    vec = VectorSpec(init="anchors", anchors=("stratified", f"file:{bad}"))
    with pytest.raises(ConfigError) as e:
        resolve(smoke(), SearchSpace(sample_weights=vec, source="s.yaml"), SearchOptions())
    msg = str(e.value)
    assert msg.startswith(f"s.yaml: sample_weights.anchors: file:{bad}: its domains differ")
    assert "\n" not in msg


def test_session_sets_and_restores_environment_levels_and_random(ray_session, monkeypatch):
    monkeypatch.setenv("POPMIX_TEST_KEEP", "mine")
    monkeypatch.setenv("POPMIX_TEST_FORCED", "old")
    monkeypatch.delenv("POPMIX_TEST_NEW", raising=False)
    logging.getLogger("ray.tune.logger").setLevel(logging.DEBUG)
    import optuna  # noqa: F401  (its first import sets its logger's level: not the session's doing)

    before = state()
    session = RaySession(
        SearchOptions(),
        env={"POPMIX_TEST_FORCED": "new"},
        env_defaults={"POPMIX_TEST_KEEP": "default", "POPMIX_TEST_NEW": "1"},
        levels={"ray.tune.logger": logging.ERROR, "optuna": logging.WARNING},
        random_seed=7,
    )
    with pytest.raises(RuntimeError, match="boom"):
        with session:
            assert not session.started  # Ray was running already: used, not restarted
            assert os.environ["POPMIX_TEST_FORCED"] == "new"
            assert os.environ["POPMIX_TEST_KEEP"] == "mine"  # a default never overrides
            assert os.environ["POPMIX_TEST_NEW"] == "1"
            assert logging.getLogger("ray.tune.logger").level == logging.ERROR
            assert logging.getLogger("optuna").level == logging.WARNING
            first = random.random()
            random.seed(7)
            assert random.random() == first
            raise RuntimeError("boom")
    assert state() == before
    assert ray_session.is_initialized()
    # and the same when nothing raises
    with session:
        pass
    assert state() == before


def test_a_search_that_fails_after_ray_started_restores_everything(ray_session, tmp_path):
    # no node of the session's Ray (CPUs only) can hold a trial that asks for a GPU
    exp = smoke()
    exp = exp.replace(resources=dataclasses.replace(Resources(), gpus_per_trial=1.0))
    space = SearchSpace(sample_weights=VectorSpec(), source="inline")
    before = state()
    with pytest.raises(ConfigError, match="no node of the Ray cluster can hold"):
        run_search(exp, space, SearchOptions(storage=str(tmp_path), name="gpu", quiet=True))
    assert state() == before
    assert not (tmp_path / "gpu").exists()
