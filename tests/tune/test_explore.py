"""The explore step and the initial population, without Ray."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from popmix._util.simplex import floor_project
from popmix.config import SearchSpace, TemperatureSpec, VectorSpec
from popmix.tune.explore import Explorer, as_vector

NAMES = [f"d{i}" for i in range(16)]
SIZES = np.geomspace(1e6, 1e4, 16)


def make(perturb=True, seed=0, **vec):
    space = SearchSpace(
        sample_weights=VectorSpec(**vec),
        loss_weights=VectorSpec(init="uniform"),
        temperature=TemperatureSpec(),
    )
    return Explorer(space, NAMES, SIZES, seed=seed, perturb=perturb, resample_probability=0.25)


def test_vectors_stay_on_simplex_with_floor_over_many_draws():
    ex = make(floor=1e-3, sigma=1.0)
    config = {"spec": ex.initial_config(0)}
    for _ in range(5000):
        config = ex(config)
        for key in ("sample_weights", "loss_weights"):
            w = as_vector(NAMES, config["spec"][key])
            assert abs(w.sum() - 1) < 1e-12
            assert w.min() >= 1e-3 - 1e-15


def test_scalars_are_clipped_into_bounds():
    ex = make()
    bounds = TemperatureSpec().bounds()
    rng = np.random.default_rng(0)
    for _ in range(2000):
        spec = ex.initial_config(1)
        # what Ray's built-in mutation may produce: x0.8, x1.2 of a value, or far outside
        for key, (lo, hi) in bounds.items():
            spec[key] = float(rng.choice([lo * 0.8, hi * 1.2, rng.uniform(-5, 50)]))
        out = ex({"spec": spec})["spec"]
        for key, (lo, hi) in bounds.items():
            assert lo <= out[key] <= hi


def test_resample_is_centred_on_parent():
    spec = VectorSpec(resample_concentration=5.0, floor=0.0)
    ex = make(resample_concentration=5.0, floor=0.0)
    parent = floor_project(np.linspace(1, 16, 16), 0.0)
    ex.resample_probability = 1.0
    draws = np.array([ex.explore_vector(parent, spec) for _ in range(4000)])
    np.testing.assert_allclose(draws.mean(0), parent, atol=0.01)
    # a perturbation moves the weights but keeps their order of magnitude
    ex.resample_probability = 0.0
    child = ex.explore_vector(parent, VectorSpec(sigma=0.3, floor=0.0))
    assert not np.allclose(child, parent) and np.all(np.abs(np.log(child / parent)) < 2.5)


def test_a_decision_s_draws_depend_on_its_key_not_on_the_draws_before_it():
    explored = []
    for draws_before in (0, 5):
        ex = make(sigma=0.5)
        config = {"spec": ex.initial_config(1)}
        for _ in range(draws_before):
            ex({"spec": dict(config["spec"])})
        ex.reseed([0, 3, 2, 4])  # (search seed, seed, the kind of decision, round)
        explored.append(ex({"spec": dict(config["spec"])})["spec"]["sample_weights"])
    assert explored[0] == explored[1]
    ex.reseed([0, 3, 2, 5])  # the next round draws anew
    assert ex({"spec": dict(config["spec"])})["spec"]["sample_weights"] != explored[0]


def test_pb2_mode_only_renormalises():
    ex = make(perturb=False, floor=0.01)
    spec = {
        "sample_weights": {n: 3.0 for n in NAMES},
        "loss_weights": {n: float(i + 1) for i, n in enumerate(NAMES)},
    }
    out = ex({"spec": spec})["spec"]
    np.testing.assert_allclose(as_vector(NAMES, out["sample_weights"]), 1 / 16)
    lw = as_vector(NAMES, out["loss_weights"])
    assert abs(lw.sum() - 1) < 1e-12 and np.all(np.diff(lw) > 0)


def test_initial_population_is_seeded_and_starts_at_the_named_mixture():
    a = [
        make(seed=3, init="temperature", init_temperature=2.0).initial_config(m) for m in range(1)
    ]
    ex = make(seed=3, init="temperature", init_temperature=2.0)
    first, second = ex.initial_config(0), ex.initial_config(1)
    p = SIZES**0.5 / (SIZES**0.5).sum()
    np.testing.assert_allclose(as_vector(NAMES, first["sample_weights"]), floor_project(p, 1e-3))
    assert first["sample_weights"] != second["sample_weights"]
    assert a[0] == first
    other = make(seed=4, init="temperature", init_temperature=2.0)
    other.initial_config(0)
    assert other.initial_config(1) != second


@pytest.mark.parametrize("init", ["dirichlet", "uniform", "proportional", "temperature"])
def test_every_init_is_on_the_simplex(init):
    ex = make(init=init)
    for m in range(6):
        w = as_vector(NAMES, ex.initial_config(m)["sample_weights"])
        assert abs(w.sum() - 1) < 1e-12 and w.min() > 0


def test_init_from_a_weights_file(tmp_path):
    import json

    from popmix.config import ConfigError

    w = np.linspace(1, 2, 16)
    path = tmp_path / "w.json"
    path.write_text(json.dumps({"domains": NAMES, "points": [{"step": 0, "weights": list(w)}]}))
    ex = make(init="file", init_file=str(path), floor=0.0)
    np.testing.assert_allclose(
        as_vector(NAMES, ex.initial_config(0)["sample_weights"]), w / w.sum()
    )
    path.write_text(json.dumps({"domains": NAMES[:3], "final_weights": [1, 1, 1]}))
    with pytest.raises(ConfigError, match="domains differ"):
        make(init="file", init_file=str(path)).initial_config(0)


def test_floor_projection_hand_computed():
    # meets the floor: unchanged, bit for bit
    w = np.array([0.5, 0.3, 0.2])
    assert floor_project(w, 0.1) is not None and np.array_equal(floor_project(w, 0.1), w)
    # below it: raise the low entry to the floor, lower the others by one common amount
    # [0.7, 0.28, 0.02], floor 0.05: the 0.03 missing is taken equally from the two others
    np.testing.assert_allclose(floor_project([0.7, 0.28, 0.02], 0.05), [0.685, 0.265, 0.05])
    # a large entry stays the largest and is not shrunk toward uniform beyond the need
    np.testing.assert_allclose(floor_project([1.0, 0.0, 0.0, 0.0], 0.1), [0.7, 0.1, 0.1, 0.1])


@pytest.mark.parametrize("k", [16, 64, 256])
def test_exploit_without_perturbation_copies_the_donor_exactly(k):
    """Ray's PBT explore with popmix's explorer, perturbation off: the child is the donor."""
    from ray.tune.schedulers.pbt import _explore

    names = [f"d{i}" for i in range(k)]
    spec = VectorSpec(sigma=0.0, floor=1e-3, init="dirichlet")
    space = SearchSpace(sample_weights=spec)
    ex = Explorer(space, names, np.ones(k), seed=1, perturb=True, resample_probability=0.0)
    donor = {"spec": {"member": 0, "sample_weights": ex.initial_config(0)["sample_weights"]}}
    w0 = as_vector(names, donor["spec"]["sample_weights"])
    assert w0.max() > 2 / k  # far from uniform
    config = donor
    for _ in range(10):  # ten exploits in a row
        config, _ = _explore(config, {}, 0.0, (1.2, 0.8), ex)
    np.testing.assert_array_equal(as_vector(names, config["spec"]["sample_weights"]), w0)


def _flagship_explore(perturbation_factors, resample_probability, seed=0, sigma=None):
    """One PBT explore of a member of the shipped flagship space, as the search runs it:
    Ray's mutation of the temperatures, popmix's explorer for the loss weights and clipping."""
    from ray import tune
    from ray.tune.schedulers.pbt import _explore

    from popmix.config import load_space, resolve_space_path

    space = load_space(resolve_space_path("search_spaces/loss_and_temperature.yaml", None))
    assert space.sample_weights is None and space.loss_weights and space.temperature
    if sigma is not None:  # the loss weights' own perturbation
        space = dataclasses.replace(
            space, loss_weights=dataclasses.replace(space.loss_weights, sigma=sigma)
        )
    ex = Explorer(
        space, NAMES, SIZES, seed=seed, perturb=True, resample_probability=resample_probability
    )
    bounds = space.temperature.bounds()
    mutations = {"spec": {k: tune.uniform(lo, hi) for k, (lo, hi) in bounds.items()}}
    donor = {"spec": {"member": 1, **ex.initial_config(1)}}
    child, _ = _explore(donor, mutations, resample_probability, perturbation_factors, ex)
    return donor["spec"], child["spec"], bounds


def test_flagship_exploit_without_perturbation_copies_both_parts():
    # zero perturbation of each part: Ray's factors 1.0 for the temperatures, sigma 0 and no
    # resample for the loss weights
    donor, child, _ = _flagship_explore((1.0, 1.0), 0.0, sigma=0.0)
    for key in ("t_start", "t_end", "switch_frac"):
        assert child[key] == donor[key]
    np.testing.assert_array_equal(
        as_vector(NAMES, child["loss_weights"]), as_vector(NAMES, donor["loss_weights"])
    )


def test_flagship_explore_moves_both_parts_within_their_rules():
    for seed in range(5):
        donor, child, bounds = _flagship_explore((1.2, 0.8), 0.25, seed)
        moved = [k for k in bounds if child[k] != donor[k]]
        assert moved, "no temperature moved"
        for k, (lo, hi) in bounds.items():
            assert lo <= child[k] <= hi
        before = as_vector(NAMES, donor["loss_weights"])
        after = as_vector(NAMES, child["loss_weights"])
        assert not np.allclose(before, after)
        assert abs(after.sum() - 1) < 1e-9 and after.min() >= 1e-3 - 1e-12


def test_anchors_start_from_the_mixtures_a_practitioner_would_try(tmp_path):
    from popmix.policies import temperature_weights

    ex = make(init="anchors", floor=1e-3)
    first = [as_vector(NAMES, ex.initial_config(m)["sample_weights"]) for m in range(7)]
    # stratified, temperature T = 3, proportional: exactly (the floor is met already)
    np.testing.assert_allclose(first[0], np.full(16, 1 / 16))
    np.testing.assert_allclose(first[1], temperature_weights(SIZES, 3.0))
    np.testing.assert_allclose(first[2], SIZES / SIZES.sum())
    # then one explore step from each anchor in turn, on the simplex with its floor
    for m in range(3, 7):
        w = first[m]
        assert abs(w.sum() - 1) < 1e-12 and w.min() >= 1e-3 - 1e-15
        anchor = first[m % 3]
        assert not np.allclose(w, anchor)
        # log-space steps of sigma 0.3 (or a resample centred on the anchor): near it
        assert np.abs(np.log(w / anchor)).mean() < 1.5


def test_a_weights_file_is_the_first_anchor(tmp_path):
    from popmix.records.weights import WeightsSchedule

    w = np.linspace(1, 2, 16)
    w /= w.sum()
    path = tmp_path / "w.json"
    WeightsSchedule.build(
        domains=NAMES, total_steps=10, points=[{"step": 0, "weights": w.tolist()}],
        final_weights=w.tolist(), method="fixed",
    ).write(path)  # fmt: skip
    ex = make(init="anchors", init_file=str(path), anchors=("stratified",))
    np.testing.assert_allclose(as_vector(NAMES, ex.initial_config(0)["sample_weights"]), w)
    np.testing.assert_allclose(as_vector(NAMES, ex.initial_config(1)["sample_weights"]), 1 / 16)


def test_several_weights_files_are_anchors_in_the_order_named(tmp_path):
    from popmix.records.weights import WeightsSchedule

    files = []
    for i, w in enumerate([np.linspace(1, 2, 16), np.linspace(2, 1, 16)]):
        w /= w.sum()
        files.append((tmp_path / f"w{i}.json", w))
        WeightsSchedule.build(
            domains=NAMES, total_steps=10, points=[{"step": 0, "weights": w.tolist()}],
            final_weights=w.tolist(), method="fixed",
        ).write(files[-1][0])  # fmt: skip
    anchors = (f"file:{files[1][0]}", "stratified", f"file:{files[0][0]}")
    ex = make(init="anchors", anchors=anchors)
    first = [as_vector(NAMES, ex.initial_config(m)["sample_weights"]) for m in range(4)]
    np.testing.assert_allclose(first[0], files[1][1])
    np.testing.assert_allclose(first[1], 1 / 16)
    np.testing.assert_allclose(first[2], files[0][1])
    assert not np.allclose(first[3], files[1][1])  # one explore step from the first anchor


def test_temperature_anchors_are_clipped_into_the_bounds_and_the_rest_drawn():
    temp = TemperatureSpec(
        t_end=(0.5, 2.0), init="anchors", anchors=((5.0, 1.0, 0.5), (3.0, 3.0, 0.5))
    )
    ex = Explorer(SearchSpace(temperature=temp), NAMES, SIZES, seed=0)
    assert ex.initial_config(0) == {"t_start": 5.0, "t_end": 1.0, "switch_frac": 0.5}
    assert ex.initial_config(1) == {"t_start": 3.0, "t_end": 2.0, "switch_frac": 0.5}
    third = ex.initial_config(2)
    for key, (lo, hi) in temp.bounds().items():
        assert lo <= third[key] <= hi


@pytest.mark.parametrize(
    ("anchors", "init_file", "message"),
    [
        (("stratified", "warm"), "", "unknown anchor 'warm'"),
        (("temperature:-1",), "", "unknown anchor 'temperature:-1'"),
        (("file",), "", "file needs init_file"),
        (("unimax", "uni-max"), "", "unknown anchor .uni-max.; use .*unimax, file or file:<path>"),
        ((), "", "anchors is empty"),
        (("file:nowhere/w.json",), "", "anchor 'file:nowhere/w.json': 'nowhere/w.json' not found"),
    ],
)
def test_a_bad_anchor_is_one_line_naming_it(anchors, init_file, message):
    from popmix.config import ConfigError

    space = SearchSpace(
        sample_weights=VectorSpec(init="anchors", anchors=anchors, init_file=init_file)
    )
    with pytest.raises(ConfigError, match=message):
        space.validate(16)
