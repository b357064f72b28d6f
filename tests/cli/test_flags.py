"""Flags over an experiment file change only what the user gave (no search is run here)."""

from __future__ import annotations

from pathlib import Path

import pytest

import popmix.tune.search as search_module
from popmix.cli import main
from popmix.records.summary import Row, Summary

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def captured(monkeypatch):
    """Replace run_search: keep the experiment the CLI resolved, run nothing."""
    seen = {}

    def fake(exp, space, opts):
        seen["exp"] = exp
        return Summary(rows=(Row("stratified", 0),))

    monkeypatch.setattr(search_module, "run_search", fake)
    return seen


def test_tasks_alone_keeps_the_experiment_benchmark(captured):
    experiment = str(ROOT / "experiments" / "synthetic64.yaml")
    rc = main(["search", "--experiment", experiment, "--tasks", "8"])
    assert rc == 0
    data = captured["exp"].data
    assert (data.benchmark, data.tasks, data.path) == ("synthetic", 8, None)


def test_benchmark_flag_replaces_it(captured):
    assert main(["search", "--benchmark", "synthetic"]) == 0
    assert captured["exp"].data.benchmark == "synthetic"
    # a new benchmark means all of its domains (synthetic: 16 generated), not the file's count
    assert captured["exp"].data.tasks is None


def test_a_data_folder_means_all_its_domains(captured, tmp_path):
    for i in range(6):
        (tmp_path / f"d{i}.txt").write_text("some text\n" * 50)
    assert main(["search", "--data", str(tmp_path)]) == 0
    data = captured["exp"].data
    assert (data.path, data.tasks) == (str(tmp_path), None)
    assert main(["search", "--data", str(tmp_path), "--tasks", "4"]) == 0
    assert captured["exp"].data.tasks == 4


# ------------------------------------------------------------------------------------------------
# popmix run and bracket read the same experiment, through the same overrides


@pytest.fixture
def trained(monkeypatch):
    """Replace run_training: keep what popmix run would train, train nothing."""
    import popmix.train as train_module

    seen = {}

    def fake(domains, policy, model_cfg, cfg, log=None, checkpoint=None, reference=None):
        seen.update(domains=domains, policy=policy, model=model_cfg, cfg=cfg)
        raise SystemExit(0)  # stop before any output is written

    monkeypatch.setattr(train_module, "run_training", fake)
    return seen


def _run(args, tmp_path):
    with pytest.raises(SystemExit):
        main(["run", "--out", str(tmp_path / "out"), *args])


def test_run_flags_and_overrides_reach_the_training(trained, tmp_path):
    _run(
        [
            "--method",
            "doge",
            "--steps",
            "7",
            "--param",
            "mu=0.02",
            "--seed",
            "3",
            "model.d_model=64",
            "train.lr=0.01",
            "--tasks",
            "4",
        ],
        tmp_path,
    )
    assert trained["cfg"].steps == 7 and trained["cfg"].lr == 0.01 and trained["cfg"].seed == 3
    assert trained["model"].d_model == 64
    policy = trained["policy"]
    assert policy.mu == 0.02 and policy.target == "validation"  # the rest: policy defaults
    assert len(trained["domains"]) == 4


def test_run_and_search_give_a_method_the_same_parameters(trained, captured, tmp_path):
    experiment = str(ROOT / "experiments" / "compare_brown16.yaml")
    _run(["--experiment", experiment, "--method", "aioli"], tmp_path)
    assert main(["search", "--experiment", experiment]) == 0
    search_params = captured["exp"].method_params("aioli")
    for key, value in search_params.items():
        assert getattr(trained["policy"], key) == value


def test_run_reads_an_experiment_file(trained, tmp_path):
    _run(
        ["--experiment", str(ROOT / "experiments" / "synthetic64.yaml"), "--tasks", "4"], tmp_path
    )
    assert trained["domains"].name.startswith("synthetic") and len(trained["domains"]) == 4


def test_smoke_replaces_the_budget_whatever_the_flags_say(trained, tmp_path):
    _run(["--smoke", "--steps", "500", "train.steps=400", "--tasks", "2"], tmp_path)
    assert trained["cfg"].steps == 6 and trained["model"].d_model == 32


@pytest.mark.parametrize(
    "args,needle",
    [
        (["stray"], "unexpected argument 'stray': settings are given as KEY=VALUE"),
        (["train.lrr=1"], "unknown key 'lrr' in train"),
        (["--param", "nope=1", "--method", "temperature"], "not a parameter of temperature"),
    ],
)
def test_run_bad_overrides_are_one_line(args, needle, capsys, tmp_path):
    assert main(["run", "--out", str(tmp_path / "never"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and "\n" not in err
    assert not (tmp_path / "never").exists()  # nothing written before the settings are valid


# ------------------------------------------------------------------------------------------------
# popmix check


def test_check_accepts_every_shipped_file(capsys):
    for path in sorted((ROOT / "experiments").glob("*.yaml")):
        assert main(["check", str(path)]) == 0, path
    for path in sorted((ROOT / "search_spaces").glob("*.yaml")):
        assert main(["check", str(path)]) == 0, path
    out = capsys.readouterr().out
    assert "a valid experiment 'default'" in out and "a valid search space" in out


@pytest.mark.parametrize(
    "text,needle",
    [
        ("train: {lr: fast}\n", "train.lr: expected a number, got 'fast'"),
        ("baselines: {doge: {mu: -1}}\n", "baselines.doge"),
        ("data: {path: /no/such/folder}\n", "data.path '/no/such/folder' does not exist"),
        ("search: {space: nowhere.yaml}\n", "search space 'nowhere.yaml' not found"),
    ],
)
def test_check_rejects_a_bad_file_in_one_line(tmp_path, capsys, text, needle):
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and "\n" not in err


def test_check_imports_neither_torch_nor_ray():
    import subprocess
    import sys

    code = (
        "import sys; from popmix.cli import main; "
        f"rc = main(['check', {str(ROOT / 'experiments' / 'default.yaml')!r}, 'train.lr=0.01']); "
        "print(rc, [m for m in ('torch', 'ray', 'datasets') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "0 []"


def test_check_reads_a_weights_file(tmp_path, capsys):
    from popmix.records.weights import SchedulePoint, WeightsSchedule

    path = tmp_path / "weights.json"
    WeightsSchedule(
        domains=("a", "b"),
        total_steps=10,
        points=(SchedulePoint(step=0, weights=(0.5, 0.5)),),
        final_weights=(0.5, 0.5),
    ).write(path)
    assert main(["check", str(path)]) == 0
    assert "a valid popmix weights file (2 domains, 1 points" in capsys.readouterr().out
    (tmp_path / "bad.json").write_text("{}")
    assert main(["check", str(tmp_path / "bad.json")]) == 2


# ------------------------------------------------------------------------------------------------
# one vocabulary across commands (issue 32, item 6)


@pytest.fixture
def searched(monkeypatch):
    """Replace run_search: keep the experiment and space the CLI resolved, run nothing."""
    seen = {}

    def fake(exp, space, opts):
        from popmix.records.summary import Row, Summary

        seen.update(exp=exp, space=space)
        return Summary(rows=(Row(method="stratified", seed=0),))

    monkeypatch.setattr(search_module, "run_search", fake)
    return seen


def test_seed_is_one_seed_in_search_as_in_run(searched):
    # argparse would otherwise read --seed 3 as a prefix of --seeds: three seeds 0, 1, 2
    assert main(["search", "--seed", "3"]) == 0
    assert searched["exp"].seeds == (3,)
    assert main(["search", "--seeds", "3"]) == 0
    assert searched["exp"].seeds == (0, 1, 2)


@pytest.mark.parametrize("spelling", ["--weights-from", "--init-weights"])
def test_weights_from_starts_the_population_and_the_old_spelling_still_works(
    searched, tmp_path, spelling
):
    f = tmp_path / "w.json"
    f.write_text("{}")  # read by the search (faked here); the CLI only checks it exists
    assert main(["search", spelling, str(f)]) == 0
    vec = searched["space"].sample_weights
    # the default space starts from anchors: the file becomes the first of them
    assert (vec.init, vec.init_file) == ("anchors", str(f))
    assert main(["search", spelling, str(f), "--space", "sampling_and_loss"]) == 0
    vec = searched["space"].sample_weights  # init: temperature there: the file replaces it
    assert (vec.init, vec.init_file) == ("file", str(f))


def test_shipped_configs_by_bare_name(searched, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no experiments/ here: the shipped files are found by name
    assert main(["search", "--experiment", "smoke", "--space", "temperature"]) == 0
    assert searched["exp"].name == "smoke"
    assert searched["space"].temperature is not None
    assert Path(searched["space"].source).name == "temperature.yaml"
