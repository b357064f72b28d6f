"""The fitness rules PBT ranks on, each against a hand-computed case."""

from __future__ import annotations

import pytest

from popmix.tune.fitness import fitness_of, read_weights


def test_last_and_average_weigh_the_reads_they_name():
    assert read_weights("last", [50, 100, 150], 600).tolist() == [0, 0, 1]
    assert read_weights("average", [50, 100, 150], 600, 2).tolist() == [0, 0.5, 0.5]
    assert read_weights("average", [50], 600, 3).tolist() == [1]


def test_forecast_extrapolates_a_power_law_in_steps_to_the_horizon():
    # L(t) = a + b / sqrt(t) through (100, 3.0) and (400, 2.5): 1/sqrt(t) = 0.1 and 0.05, so
    # b = 0.5 / 0.05 = 10, a = 2.0, and at t = 1600 (0.025): 2.0 + 10 * 0.025 = 2.25
    assert fitness_of("forecast", [100, 400], [3.0, 2.5], 1600) == pytest.approx(2.25)
    # as weights: (0.025 - 0.05) / (0.1 - 0.05) = -0.5 on the first read, 1.5 on the second
    assert read_weights("forecast", [100, 400], 1600) == pytest.approx([-0.5, 1.5])
    # reads on the law are recovered exactly; a flat curve forecasts itself
    law = [2.0 + 10 / t**0.5 for t in (100, 400, 900)]
    assert fitness_of("forecast", [100, 400, 900], law, 1600) == pytest.approx(2.25)
    assert fitness_of("forecast", [50, 100, 150], [2.7, 2.7, 2.7], 600) == pytest.approx(2.7)
    assert read_weights("forecast", [50, 100, 150, 200], 600).sum() == pytest.approx(1.0)


def test_a_faster_falling_curve_forecasts_ahead_of_one_that_reads_better_now():
    flat = fitness_of("forecast", [50, 100], [2.80, 2.70], 600)
    falling = fitness_of("forecast", [50, 100], [3.20, 2.75], 600)
    assert falling < flat
    assert fitness_of("last", [50, 100], [3.20, 2.75], 600) > 2.70


def test_bad_rules_and_steps_are_refused_naming_them():
    with pytest.raises(ValueError, match="unknown fitness 'best'"):
        read_weights("best", [1, 2], 10)
    with pytest.raises(ValueError, match="distinct positive steps"):
        read_weights("forecast", [100, 100], 600)
    with pytest.raises(ValueError, match="at least one read"):
        read_weights("last", [], 600)
