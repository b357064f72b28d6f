"""``key=value`` overrides: one path for every command, changing only what the user gave."""

from __future__ import annotations

import dataclasses

import pytest

from popmix.config import ConfigError, Experiment, load_experiment, load_space, packaged_dir


def test_an_override_changes_its_key_and_nothing_else():
    base = load_experiment()
    exp = load_experiment(None, ["train.lr=0.01", "search.population=8", "baselines.doge.mu=0.05"])
    assert exp.train.lr == 0.01 and isinstance(exp.train.lr, float)
    assert exp.search.population == 8
    assert exp.baselines["doge"]["mu"] == 0.05
    assert exp.baselines["doge"]["target"] == base.baselines["doge"]["target"]
    assert dataclasses.replace(exp.train, lr=base.train.lr) == base.train
    assert dataclasses.replace(exp.search, population=base.search.population) == base.search


def test_overrides_apply_in_order_and_typed_pairs_work_too():
    exp = load_experiment(None, ["train.steps=10", ("train.steps", 20)])
    assert exp.train.steps == 20


@pytest.mark.parametrize(
    "override,needle",
    [
        ("train.lrr=1", "override train.lrr=1: unknown key 'lrr' in train"),
        ("trian.lr=1", "unknown key 'trian' in the top level"),
        ("train.lr=fast", "override train.lr: expected a number, got 'fast'"),
        ("train.steps=1.5", "override train.steps: expected a whole number"),
        ("train.lr.x=1", "train.lr has no keys below it"),
        ("train.seed=1", "unknown key 'seed' in train"),
        ("lr", "expected KEY=VALUE"),
        ("baselines.doge.nope=1", "baselines.doge.nope: not a parameter of doge"),
        ("train.steps=0", "train.steps must be a positive integer"),
    ],
)
def test_bad_overrides_are_one_line_naming_the_override(override, needle):
    with pytest.raises(ConfigError) as info:
        load_experiment(None, [override])
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_tasks_alone_keeps_the_files_benchmark():
    exp = load_experiment(packaged_dir("experiments") / "synthetic64.yaml", ["data.tasks=8"])
    assert (exp.data.benchmark, exp.data.tasks) == ("synthetic", 8)


def test_new_data_means_all_its_domains_unless_tasks_is_given(tmp_path):
    exp = load_experiment(None, [f"data.path={tmp_path}"])
    assert exp.data.path == str(tmp_path) and exp.data.tasks is None
    exp = load_experiment(None, [f"data.path={tmp_path}", "data.tasks=3"])
    assert exp.data.tasks == 3
    assert load_experiment(None, ["data.benchmark=synthetic"]).data.tasks is None


def test_a_string_field_takes_the_text_as_given():
    assert load_experiment(None, ["name=2024"]).name == "2024"
    assert load_experiment(None, ["data.path=5"]).data.path == "5"  # a folder named 5
    assert load_experiment(None, ["data.domain_column=null"]).data.domain_column is None


def test_lists_and_cpus():
    exp = load_experiment(
        None, ["seeds=[0, 5]", "methods=[pbt, doge]", "resources.cpus_per_trial=2"]
    )
    assert exp.seeds == (0, 5) and exp.methods == ("pbt", "doge")
    assert exp.resources.cpus_per_trial == 2.0


def test_space_overrides():
    space = load_space(
        packaged_dir("search_spaces") / "sampling.yaml", ["sample_weights.sigma=0.5"]
    )
    assert space.sample_weights is not None and space.sample_weights.sigma == 0.5
    with pytest.raises(ConfigError, match="unknown key 'sigmaa'"):
        load_space(packaged_dir("search_spaces") / "sampling.yaml", ["sample_weights.sigmaa=1"])


def test_the_built_in_experiment_validates():
    Experiment().validate()
