"""Every YAML file in the repo loads and validates; bad files give one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from popmix.config import (
    ConfigError,
    Experiment,
    load_experiment,
    load_space,
    resolve_space_path,
)

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = sorted((ROOT / "experiments").glob("*.yaml"))
SPACES = sorted((ROOT / "search_spaces").glob("*.yaml"))


def test_the_repo_ships_the_promised_files():
    names = {p.stem for p in EXPERIMENTS}
    assert {"default", "smoke", "gpu_cluster16", "synthetic64"} <= names
    assert {"sampling", "loss", "temperature"} <= {p.stem for p in SPACES}


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.name)
def test_every_experiment_loads_and_says_how_to_launch_it(path):
    first = path.read_text().splitlines()[0]
    assert first.startswith("#")
    assert "popmix search" in path.read_text().split("\n\n")[0] or "Launch:" in path.read_text()
    exp = load_experiment(path)
    exp.validate()
    load_space(resolve_space_path(exp.search.space, exp.source))


@pytest.mark.parametrize("path", SPACES, ids=lambda p: p.name)
def test_every_search_space_loads(path):
    assert path.read_text().startswith("#")
    assert "Launch:" in path.read_text()
    load_space(path)


def test_default_yaml_is_the_built_in_defaults():
    """default.yaml documents the defaults; it must not hold different ones (a command given no
    file and the dataclasses' defaults are the same experiment)."""
    exp = load_experiment(ROOT / "experiments" / "default.yaml")
    built_in = Experiment(source=exp.source)
    # default.yaml spells out brown16's 16 domains and each baseline's (policy-default) values
    assert exp.replace(data=built_in.data, baselines={}) == built_in
    assert exp.data.tasks == 16 and exp.data.benchmark == built_in.data.benchmark
    from popmix.policies import POLICIES

    for method, params in exp.baselines.items():
        cls = POLICIES[method]
        import inspect

        defaults = inspect.signature(cls.__init__).parameters
        for key, value in params.items():
            assert defaults[key].default == value, f"default.yaml {method}.{key} != policy default"


@pytest.mark.parametrize(
    "text,needle",
    [
        ("name: x\nsearch: {populaton: 4}\n", "unknown key 'populaton'"),
        ("name: x\nbogus: 1\n", "unknown key 'bogus'"),
        ("search: {population: four}\n", "search.population: expected a whole number, got 'four'"),
        ("methods: [pbt, magic]\n", "unknown method 'magic'"),
        ("train: {steps: 0}\n", "train.steps must be a positive integer"),
        ("search: {objective: median}\n", "unknown search.objective 'median'"),
        ("resources: {cpus_per_trial: lots}\n", "expected a number or one of auto"),
        ("name: [unclosed\n", "malformed YAML at line"),
        ("data: {path: 5}\n", "data.path: expected a string or null, got 5"),
        ("data: {domain_column: [a]}\n", "data.domain_column: expected a string or null"),
        ("data: {tasks: true}\n", "data.tasks: expected a whole number or null, got True"),
        ("train: {seed: 3}\n", "train.seed is set by seeds"),
        ("train: {apply: both}\n", "train.apply: 'both' is not one of sample, loss"),
        ("seeds: [0, x]\n", "seeds[1]: expected a whole number"),
        ("baselines: {doge: {muu: 1}}\n", "baselines.doge.muu: not a parameter of doge"),
        ("baselines: {magic: {}}\n", "baselines.magic: not a method"),
        ("baselines: {best-of-n: {n: 1}}\n", "baselines.best-of-n.n must be a whole number of"),
        ("baselines: {best-of-n: {m: 3}}\n", "baselines.best-of-n.m: not a parameter of"),
        ("model: {d_model: 30, n_head: 4}\n", "must be a multiple of"),
    ],
)
def test_bad_experiment_files(tmp_path, text, needle):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_experiment(p)
    assert needle in str(info.value) and "\n" not in str(info.value)
    assert str(p) in str(info.value)


@pytest.mark.parametrize(
    "text,needle",
    [
        ("sample_weights: {sigma: -1}\n", "sigma must be >= 0"),
        ("sample_weights: {}\ntemperature: {}\n", "keep one"),
        ("temperature: {t_start: [5, 1]}\n", "0 < low <= high"),
        ("weights: {}\n", "unknown key 'weights'"),
        ("{}\n", "searches nothing"),
    ],
)
def test_bad_space_files(tmp_path, text, needle):
    p = tmp_path / "space.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=".*") as info:
        load_space(p)
    assert needle in str(info.value)


def test_shipped_files_are_package_data_found_from_any_folder(tmp_path, monkeypatch):
    import popmix
    from popmix.config import packaged_dir, resolve_experiment_path, resolve_space_path

    package = Path(popmix.__file__).resolve().parent
    assert packaged_dir("experiments").resolve().is_relative_to(package)
    monkeypatch.chdir(tmp_path)  # outside the repository
    assert resolve_experiment_path("experiments/smoke.yaml").is_file()
    assert resolve_space_path("sampling.yaml", None).is_file()
    assert not resolve_experiment_path("experiments/nowhere.yaml").is_file()
    # by bare name, as --experiment default and --space sampling give them
    assert resolve_experiment_path("default") == packaged_dir("experiments") / "default.yaml"
    assert resolve_space_path("sampling", None) == packaged_dir("search_spaces") / "sampling.yaml"
    (tmp_path / "default.yaml").write_text("name: mine\n")  # a file of one's own comes first
    assert resolve_experiment_path("default") == Path("default.yaml")
