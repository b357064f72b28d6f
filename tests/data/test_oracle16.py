"""The oracle16 benchmark: five kinds of domain, exact floors, a deterministic generator and a
shipped oracle that fits its domains."""

from __future__ import annotations

import math

import numpy as np
import pytest

from popmix.data import load_domains
from popmix.data.oracle16 import KINDS, domain_names, load_oracle16, oracle


@pytest.fixture(scope="module")
def bench():
    return load_oracle16()


def conditional_entropy(tokens: np.ndarray, order: int) -> float:
    """The plug-in H(X_t | previous ``order`` tokens) in nats, from the data."""
    if order == 0:
        _, counts = np.unique(tokens, return_counts=True)
        p = counts / counts.sum()
        return float(-(p * np.log(p)).sum())
    ctx, nxt = tokens[:-1].astype(np.int64), tokens[1:].astype(np.int64)
    joint = np.zeros((256, 256))
    np.add.at(joint, (ctx, nxt), 1)
    joint /= joint.sum()
    marg = joint.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(joint > 0, joint * np.log(joint / marg), 0.0)
    return float(-terms.sum())


def test_sixteen_domains_of_five_kinds_in_their_order(bench):
    assert bench.names == domain_names() and len(bench) == 16
    assert load_domains("oracle16").names == bench.names
    kinds = bench.meta["groups"]
    assert [kinds[n] for n in bench.names] == [k for k, c, *_ in KINDS for _ in range(c)]
    sizes = {d.name: d.n_tokens for d in bench}
    assert sizes["noise0"] == 300_000 and sizes["tiny0"] == 2_000
    for d in bench:
        assert len(d.validation) == len(d.test) == 16_384


def test_noise_and_easy_domains_have_alphabets_of_their_own(bench):
    def alphabet(kind):
        return set(np.concatenate([d.train for d in bench if d.name.startswith(kind)]).tolist())

    structured = alphabet("related") | alphabet("rich") | alphabet("tiny")
    assert not alphabet("noise") & structured and not alphabet("easy") & structured
    assert not alphabet("noise") & alphabet("easy")
    assert len(alphabet("noise")) == 24


def test_each_floor_is_the_chains_entropy_rate_as_measured_on_its_data(bench):
    for d in bench:
        order = bench.meta["kinds"][bench.meta["groups"][d.name]]["order"]
        measured = conditional_entropy(np.concatenate([d.train, d.validation, d.test]), order)
        # the plug-in estimate is biased low by about (cells - 1) / (2 n): small here
        assert measured == pytest.approx(d.entropy_rate, abs=0.03), d.name
    noise = bench[0]
    assert noise.entropy_rate == pytest.approx(math.log(24))


def test_the_generator_is_deterministic_and_its_copies_are_the_callers(bench):
    again = load_oracle16()
    for a, b in zip(bench, again):
        assert np.array_equal(a.train, b.train) and np.array_equal(a.test, b.test)
    again[0].train[:5] = 0  # a fresh copy: writing to it changes nothing for the next caller
    assert np.array_equal(load_oracle16()[0].train, bench[0].train)
    other = load_oracle16(seed=1)
    assert not np.array_equal(other[5].train[:1000], bench[5].train[:1000])


def test_the_shipped_oracle_is_a_mixture_of_these_domains_for_one_proxy(bench):
    found = oracle()
    assert found is not None, "run benchmarks/oracle16_search.py to write the oracle"
    assert list(found["weights"]) == bench.names
    assert sum(found["weights"].values()) == pytest.approx(1.0)
    assert found["test_mean_loss"] == pytest.approx(np.mean(found["per_seed"]))
    # it beats stratified on its own runs: the benchmark's reason to exist
    assert found["test_mean_loss"] < found["stratified"]["test_mean_loss"]
    assert bench.meta["oracle"] == found
    assert "oracle" not in load_oracle16(seed=1).meta  # another draw: no oracle for it
    assert {"model", "train", "data"} <= set(found["proxy"])
