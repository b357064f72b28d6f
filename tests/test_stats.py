"""Intervals, paired verdicts, resolvable differences and robust outliers against hand values."""

from __future__ import annotations

import math

import pytest

from popmix._util.stats import (
    mean_ci,
    paired,
    resolvable_difference,
    split_seeds,
    t975,
)


def test_t_quantiles_match_the_tables():
    # Student's t, two-sided 95%: the table values
    for df, t in ((1, 12.706), (2, 4.303), (4, 2.776), (10, 2.228), (20, 2.086), (30, 2.042)):
        assert t975(df) == pytest.approx(t, abs=1.5e-3)
    assert t975(10_000) == pytest.approx(1.960, abs=1e-3)
    with pytest.raises(ValueError):
        t975(0)


def test_mean_and_interval_by_hand():
    s = mean_ci([1.0, 2.0, 3.0])  # mean 2, sd 1, half-width 4.303 / sqrt(3) = 2.4843
    assert s["mean"] == 2.0 and s["std"] == 1.0 and s["n"] == 3
    assert s["ci95"] == pytest.approx([2 - 2.4843, 2 + 2.4843], abs=1e-4)
    assert mean_ci([5.0])["ci95"] is None and mean_ci([])["n"] == 0
    assert mean_ci([1.0, float("nan"), 3.0])["n"] == 2


def test_paired_difference_and_verdicts():
    a, b = [6.60, 6.74, 6.96], [6.89, 6.84, 6.69]  # the PBT and stratified
    out = paired(a, b)
    assert out["diff_mean"] == pytest.approx((-0.29 - 0.10 + 0.27) / 3)
    assert out["verdict"] == "no clear difference" and out["n"] == 3
    assert paired([1.0, 1.1, 0.9], [2.0, 2.05, 1.95])["verdict"] == "better"
    assert paired([2.0, 2.1, 1.9], [1.0, 1.05, 0.95])["verdict"] == "worse"
    assert paired([1.0], [2.0])["verdict"] == "no clear difference"  # one pair: no interval
    assert paired([1.0, None, 1.0], [2.0, 2.0, 2.1])["n"] == 2  # a missing side is dropped
    with pytest.raises(ValueError):
        paired([1.0], [1.0, 2.0])


def test_resolvable_difference_shrinks_with_seeds():
    sd = 0.1
    assert resolvable_difference(sd, 2) == pytest.approx(12.706 * 0.1 / math.sqrt(2))
    assert resolvable_difference(sd, 5) == pytest.approx(2.776 * 0.1 / math.sqrt(5))
    two, three, five = (resolvable_difference(sd, n) for n in (2, 3, 5))
    assert five < three < two


def test_a_split_is_a_gap_many_within_cluster_spreads_wide():
    assert split_seeds([31.704, 31.701, 31.713, 29.141, 31.709]) == [3]  # synthetic, before
    assert split_seeds([6.9, 10.2, 7.0, 10.1, 7.1]) == [1, 3]  # two stay on a plateau
    # seeds that merely spread, even with three bunched together (MAD would flag the tails)
    assert split_seeds([10.072, 10.096, 10.255, 9.911, 10.074]) == []
    assert split_seeds([6.887, 6.830, 6.686, 6.670, 6.684]) == []  # brown16, 20 warm-up steps
    assert split_seeds([1.0, 1.0, 1.0, 1.0]) == []
    # tight seeds whose largest gap is wide against their spread but 0.5% of the value
    assert split_seeds([7.874, 7.875, 7.863, 7.924, 7.913]) == []
    assert split_seeds([80.4, 81.6, 91.5]) == []  # too few to tell


def test_seeds_to_resolve_by_hand():
    from popmix._util.stats import seeds_to_resolve

    # difference 1, spread 2: 17 seeds give 2.120 * 2 / sqrt 17 = 1.028 > 1, 18 give
    # 2.110 * 2 / sqrt 18 = 0.995 < 1 (t table, 16 and 17 degrees of freedom)
    assert seeds_to_resolve(-1.0, 2.0) == 18
    assert seeds_to_resolve(1.0, 2.0) == 18  # the size matters, not the sign
    assert seeds_to_resolve(0.0, 2.0) is None
    assert seeds_to_resolve(-1e-6, 2.0) is None  # beyond a thousand seeds
    # no spread: any two seeds resolve it
    assert seeds_to_resolve(-0.5, 0.0) == 2
