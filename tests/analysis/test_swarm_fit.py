"""The swarm's fitted surface against known laws (oracle optima by brute force), hand-computed
sensitivities, and its intervals, file format and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from popmix.analysis.swarm_fit import (
    MIN_RUNS,
    MixingLaw,
    Surface,
    fit_surface,
    full_law_runs,
    log_weight_moves,
    objective_of,
    objective_rows,
    sensitivities,
    settle_curve,
)

NAMES3 = ["a", "b", "c"]
# a 3-domain law with an interior optimum: each domain's loss falls with its own weight, and
# a and b help each other a little
C3 = np.array([2.0, 2.5, 1.8])
K3 = np.array([1.0, 0.8, 1.2])
T3 = np.array([[-4.0, -0.5, 0.0], [-0.8, -3.0, 0.0], [0.0, 0.2, -5.0]])


def law3(w):
    return C3 + K3 * np.exp(np.asarray(w) @ T3.T)


def swarm(law, k, n, noise, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.dirichlet(np.ones(k), size=n)
    return w, law(w) + rng.normal(0.0, noise, size=(n, k))


def simplex_grid(k, steps, floor):
    """Every mixture with weights (floor + i/steps * (1 - k floor)), i integer."""
    import itertools

    pts = [p for p in itertools.product(range(steps + 1), repeat=k - 1) if sum(p) <= steps]
    g = np.array([[*p, steps - sum(p)] for p in pts], dtype=float) / steps
    return floor + (1 - k * floor) * g


def oracle(law, names, objective, floor, k=3, steps=300):
    grid = simplex_grid(k, steps, floor)
    values = objective_rows(law(grid), names, objective)
    i = int(np.argmin(values))
    return grid[i], float(values[i])


def test_objective_rules_agree_with_the_tune_layer():
    from popmix.train.objective import objective_of as tune_objective

    rng = np.random.default_rng(1)
    for _ in range(5):
        v = rng.uniform(1, 5, size=3)
        for obj in ("mean", "worst", "domain:a", "domain:c"):
            assert objective_of(v, NAMES3, obj) == tune_objective(v, NAMES3, obj)
    rows = rng.uniform(1, 5, size=(4, 3))
    np.testing.assert_allclose(
        objective_rows(rows, NAMES3, "worst"), [tune_objective(r, NAMES3, "worst") for r in rows]
    )


def test_the_law_fit_recovers_a_known_law():
    w, y = swarm(law3, 3, 30, noise=1e-3)
    law = MixingLaw.fit(w, y, own_weight=False)
    fresh = np.random.default_rng(9).dirichlet(np.ones(3), size=200)
    np.testing.assert_allclose(law.losses(fresh), law3(fresh), atol=0.01)
    np.testing.assert_allclose(law.c, C3, atol=0.1)
    # t is identifiable up to a common shift absorbed by k: compare centred rows
    centred = T3 - T3.mean(axis=1, keepdims=True)
    np.testing.assert_allclose(law.t, centred, atol=0.3)
    np.testing.assert_allclose(law.t.mean(axis=1), 0.0, atol=1e-9)
    # and the gradient is the law's: dL_i/dw_j = k_i exp(t_i . w) t_ij
    w0 = np.array([0.2, 0.3, 0.5])
    h = 1e-6
    numeric = np.column_stack(
        [
            (law.losses((w0 + h * e)[None])[0] - law.losses((w0 - h * e)[None])[0]) / (2 * h)
            for e in np.eye(3)
        ]
    )
    np.testing.assert_allclose(law.gradients(w0), numeric, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("objective", ["mean", "worst"])
def test_on_a_known_law_cv_picks_the_law_and_the_optimum_is_the_oracle(objective):
    w, y = swarm(law3, 3, 30, noise=3e-3)
    s = fit_surface(w, y, NAMES3, objective=objective, floor=0.01, n_boot=20, seed=0)
    assert s.model == "mixing_law"
    cv = s.quality["cv"]
    assert cv["mixing_law"]["r2"] > 0.97 and cv["mixing_law"]["spearman"] > 0.9
    assert cv["mixing_law"]["r2"] > cv["boosted"]["r2"]
    assert s.quality["law_form"] == "full" and s.quality["folds"] == 5
    best_w, best = oracle(law3, NAMES3, objective, 0.01)
    assert np.abs(np.array(s.optimum) - best_w).sum() < 0.06, (s.optimum, best_w)
    assert abs(s.predicted - best) < 0.01
    # the true objective at the predicted optimum is within a hair of the oracle's
    assert objective_of(law3(np.array(s.optimum)), NAMES3, objective) - best < 2e-3
    assert min(s.optimum) >= 0.01 - 1e-12 and abs(sum(s.optimum) - 1) < 1e-9
    for x, (lo, hi) in zip(s.optimum, s.optimum_ci):
        assert lo - 1e-9 <= x <= hi + 1e-9
    assert s.predicted_ci[0] - 1e-9 <= s.predicted <= s.predicted_ci[1] + 1e-9


def test_a_non_smooth_surface_is_fitted_by_the_boosted_model():
    # a plateau loss: steps in the weights, which no exponential law follows
    def steps(w):
        w = np.asarray(w)
        base = 3.0 + 0.6 * (w[:, [0]] < 0.25) + 0.4 * (w[:, [1]] > 0.5)
        return np.repeat(base, 3, axis=1) + np.array([0.0, 0.1, 0.2])

    w, y = swarm(steps, 3, 60, noise=0.01, seed=3)
    s = fit_surface(w, y, NAMES3, n_boot=10, seed=0)
    cv = s.quality["cv"]
    assert s.model == "boosted"
    assert cv["boosted"]["r2"] > 0.8
    assert cv["boosted"]["r2"] > cv["mixing_law"]["r2"] + 0.2
    # the top-k average lands on the low plateau: w_a >= 0.25 and w_b <= 0.5
    opt = np.array(s.optimum)
    assert opt[0] >= 0.25 and opt[1] <= 0.5
    assert objective_of(steps(opt[None])[0], NAMES3, "mean") == pytest.approx(3.1, abs=1e-9)


def test_log_weight_sensitivity_matches_a_hand_computed_case():
    # F depends on log(w_a / w_c) only; multiplying w_a by e^h and renormalising moves that log
    # ratio by exactly h, so: slope_a = 2 (l - 0.3), curvature_a = 2, the same for c with the
    # sign flipped, and 0 for b (its move keeps w_a / w_c)
    def f(w):
        return (np.log(w[:, 0] / w[:, 2]) - 0.3) ** 2

    w = np.array([0.5, 0.3, 0.2])
    ell = np.log(0.5 / 0.2)
    slope, curv = sensitivities(f, w, h=0.5)
    np.testing.assert_allclose(slope, [2 * (ell - 0.3), 0.0, -2 * (ell - 0.3)], atol=1e-12)
    np.testing.assert_allclose(curv, [2.0, 0.0, 2.0], atol=1e-12)
    moves = log_weight_moves(w, 0.5)
    np.testing.assert_allclose(moves.sum(axis=1), 1.0)
    # the others keep their ratios: b / c after moving a up
    assert moves[0, 1] / moves[0, 2] == pytest.approx(0.3 / 0.2)
    assert moves[0, 0] / moves[0, 1] == pytest.approx(np.exp(0.5) * 0.5 / 0.3)


def test_an_ignored_domain_has_no_effect_and_leaves_its_weight_open():
    # Domains a, b, c follow law3 plus a fourth loss; x's exponent coefficient t_ix equals each
    # domain's exponent at the 3-domain optimum q*, so the objective at any mixture whose
    # (a, b, c) part is q* does not depend on how much x it holds: x is exactly ignored there,
    # and the optimum is a whole segment.
    c4 = np.append(C3, 2.2)
    k4 = np.append(K3, 0.9)
    t_abc = np.vstack([T3, [-1.0, -1.0, -2.0]])
    names = ["a", "b", "c", "x"]

    def sub(q):
        return c4 + k4 * np.exp(np.asarray(q) @ t_abc.T)

    q_star, _ = oracle(sub, names, "mean", 0.0, k=3, steps=400)
    t4 = np.column_stack([t_abc, t_abc @ q_star])

    def law4(w):
        return c4 + k4 * np.exp(np.asarray(w) @ t4.T)

    w, y = swarm(law4, 4, 40, noise=2e-3, seed=5)
    s = fit_surface(w, y, names, floor=0.01, n_boot=30, seed=1)
    assert s.model == "mixing_law"
    curv = dict(zip(names, s.curvature))
    slope = dict(zip(names, s.sensitivity))
    assert abs(curv["x"]) < 1e-3 < 0.01 < min(curv[n] for n in "abc")
    assert abs(slope["x"]) < 1e-3
    assert all(abs(v) < 1e-3 for v in s.curvature_ci[3])
    span = {n: np.ptp(s.slices[n]["objective"]) for n in names}
    assert span["x"] < 0.01 * min(span[n] for n in "abc"), span
    # the (a, b, c) composition of the optimum is q*'s; x's weight is not determined, and
    # its interval says so
    opt = np.array(s.optimum)
    np.testing.assert_allclose(opt[:3] / opt[:3].sum(), q_star, atol=0.03)
    lo, hi = s.optimum_ci[3]
    assert hi - lo > 0.5


def test_a_harmful_domain_at_the_floor_has_a_positive_sensitivity():
    # every loss rises with d's weight, so the optimum holds d at the floor, and more of it
    # raises the objective: a slope whose interval excludes 0
    t = np.array(
        [
            [-4.0, -0.5, 0.0, 2.0],
            [-0.8, -3.0, 0.0, 2.0],
            [0.0, 0.2, -5.0, 2.0],
            [0.0, 0.0, 0.0, 0.5],
        ]
    )
    c = np.array([2.0, 2.5, 1.8, 2.0])
    k = np.array([1.0, 0.8, 1.2, 1.0])
    names = ["a", "b", "c", "d"]

    def law(w):
        return c + k * np.exp(np.asarray(w) @ t.T)

    w, y = swarm(law, 4, 40, noise=3e-3, seed=2)
    s = fit_surface(w, y, names, floor=0.05, n_boot=30, seed=0)
    assert s.optimum[3] == pytest.approx(0.05, abs=1e-6)
    lo, hi = s.sensitivity_ci[3]
    assert lo > 0 and s.sensitivity[3] > 0.01
    # the optimum is unique here: the weights that matter have curvatures clear of 0
    for lo, _hi in s.curvature_ci[:3]:
        assert lo > 0.01


def test_intervals_narrow_with_more_runs():
    widths = []
    for n in (12, 48):
        w, y = swarm(law3, 3, n, noise=0.02, seed=4)
        s = fit_surface(w, y, NAMES3, n_boot=30, seed=0)
        widths.append(np.mean([hi - lo for lo, hi in s.optimum_ci]))
        assert s.predicted_ci[0] <= s.predicted <= s.predicted_ci[1]
    assert widths[1] < 0.7 * widths[0], widths


def test_too_few_runs_for_the_full_law_fall_back_to_the_own_weight_law():
    k = 8
    assert full_law_runs(k) == 13  # 13 - ceil(13 / 5) = 10 = k + 2
    assert full_law_runs(16) == 23 and MIN_RUNS == 5
    rng = np.random.default_rng(0)
    t = np.diag(-rng.uniform(2, 4, k))
    c, kk = rng.uniform(1.5, 2.5, k), rng.uniform(0.5, 1.0, k)

    def law(w):
        return c + kk * np.exp(np.asarray(w) @ t.T)

    names = [f"d{i}" for i in range(k)]
    w, y = swarm(law, k, 12, noise=2e-3, seed=1)
    s = fit_surface(w, y, names, n_boot=10, seed=0)
    assert s.quality["law_form"] == "own-weight"
    assert s.model == "mixing_law" and s.quality["cv"]["mixing_law"]["r2"] > 0.9
    w, y = swarm(law, k, 13, noise=2e-3, seed=1)
    assert fit_surface(w, y, names, n_boot=2, seed=0).quality["law_form"] == "full"


def test_json_round_trip_and_determinism():
    w, y = swarm(law3, 3, 15, noise=0.01)
    s = fit_surface(w, y, NAMES3, objective="domain:b", n_boot=10, seed=7)
    d = json.loads(json.dumps(s.to_dict()))
    assert d["format"] == "popmix-surface/1"
    back = Surface.from_dict({**d, "seed": 3, "runs": 15})  # extra keys, as the search adds
    assert back.to_dict() == d
    assert back.optimum == s.optimum and back.sensitivity_ci == s.sensitivity_ci
    assert set(d["slices"]) == set(NAMES3)
    for sl in d["slices"].values():
        assert len(sl["log_w"]) == len(sl["objective"]) == len(sl["lo"]) == len(sl["hi"])
    again = fit_surface(w, y, NAMES3, objective="domain:b", n_boot=10, seed=7).to_dict()
    d.pop("settings"), again.pop("settings")  # the fit's time differs
    assert again == d
    with pytest.raises(ValueError, match="popmix-surface/1"):
        Surface.from_dict({"format": "other"})


def test_settle_curve_stops_moving():
    w, y = swarm(law3, 3, 30, noise=3e-3, seed=6)
    rows = settle_curve(w, y, NAMES3, sizes=[5, 15, 30], seed=0)
    assert [r["runs"] for r in rows] == [5, 15, 30]
    assert rows[-1]["moved"] == 0.0
    assert rows[1]["moved"] < 0.1
    assert all(abs(sum(r["optimum"]) - 1) < 1e-9 for r in rows)
    # the last row is the full fit's optimum
    full = fit_surface(w, y, NAMES3, n_boot=1, seed=0)
    np.testing.assert_allclose(rows[-1]["optimum"], full.optimum, atol=1e-12)
    with pytest.raises(ValueError, match="between 5 and the 30 runs"):
        settle_curve(w, y, NAMES3, sizes=[3, 30])
    with pytest.raises(ValueError, match="between 5 and the 30 runs"):
        settle_curve(w, y, NAMES3, sizes=[])


def _bad_cases():
    w, y = swarm(law3, 3, 8, noise=0.01)
    nan = y.copy()
    nan[2, 1] = np.nan
    off = w.copy()
    off[1] = [0.5, 0.5, 0.5]
    neg = y.copy()
    neg[0, 0] = -1.0
    return (
        [
            (dict(weights=w[:4], losses=y[:4]), "too few to fit a surface; train at least 5"),
            (dict(losses=y[:7]), "weights has 8 runs but losses has 7"),
            (dict(weights=w[:, :2]), r"weights has shape \(8, 2\), expected \(runs, 3\)"),
            (dict(losses=nan), r"losses\[2, 1\] \(b\) is nan; drop run 2"),
            (dict(weights=off), r"weights row 1 \(sum 1.5, min 0.5\) is not a mixture"),
            (dict(losses=neg), "losses are validation losses in nats"),
            (dict(objective="domain:z"), "unknown objective 'domain:z'; use mean, worst or"),
            (dict(objective="median"), "unknown objective 'median'"),
            (dict(floor=0.5), "floor 0.5 leaves no room for 3 domains"),
            (dict(n_boot=0), "n_boot 0: use a positive number"),
            (dict(names=["a", "a", "c"]), "at least two distinct domain names"),
        ],
        w,
        y,
    )


def test_bad_input_is_one_line_naming_the_value():
    cases, w, y = _bad_cases()
    for override, message in cases:
        kwargs = dict(weights=w, losses=y, names=NAMES3, n_boot=2)
        kwargs.update(override)
        with pytest.raises(ValueError, match=message) as err:
            fit_surface(**kwargs)
        assert "\n" not in str(err.value)
