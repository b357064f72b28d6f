"""The swarm's response surface: per-domain loss as a function of the mixture, its optimum and
error bars (NumPy, SciPy and scikit-learn only: no torch, no Ray).

Why one module of some 830 lines: the two models, the cross-validation that chooses between
them, the bootstrap behind the error bars and the optimum all work on the same runs and the
same fitted parameters; split, a fit and its error bars would be read in different files.

A swarm is n runs, each trained on one static mixture w (a row of ``weights``) and ending with a
per-domain validation loss (a row of ``losses``, nats). :func:`fit_surface` fits two models and
keeps the one that predicts held-out runs better:

- ``mixing_law``, the Data Mixing Laws form (Ye et al., ICLR 2025), per domain i:
  L_i(r) = c_i + k_i * exp(sum_j t_ij r_j), fitted by non-linear least squares
  (:func:`scipy.optimize.least_squares`, bounds c_i, k_i >= 0). Each domain has k + 2
  parameters, k + 1 of them identifiable on the simplex (sum_j r_j = 1, so a common shift of
  t_i is absorbed by k_i); a ridge of weight :data:`LAW_RIDGE` on t fixes that shift and keeps
  a bootstrap resample with repeated runs finite. The full law is fitted when every
  cross-validation training fold holds at least k + 2 runs (:func:`full_law_runs`); with fewer
  runs the fit falls back to the paper's one-domain form L_i = c_i + k_i * exp(t_i r_i)
  (3 parameters per domain), named ``law_form: "own-weight"`` in the quality.
- ``boosted``, RegMix's non-linear regressor (RegMix uses LightGBM on the mixture): one
  :class:`sklearn.ensemble.GradientBoostingRegressor` on the objective itself, as RegMix
  regresses its target loss directly; a per-domain regressor would cost k times as much in the
  bootstrap and fits a non-smooth ``worst`` no better than a regressor on the max.

The choice is by K-fold cross-validation over runs (K = min(5, n)): the pooled held-out R^2 of
the objective, and the Spearman rank correlation of predicted and observed objective of the
held-out runs, both reported; the higher R^2 wins (a tie keeps the law).

The optimum is searched over the simplex with every weight >= ``floor``: candidates from a
Dirichlet matched to the swarm's mean and spread (as RegMix samples from the swarm's prior) and
the swarm's own mixtures, plus, for the law, uniform ones and the centre (a law extrapolates;
a tree predicts a constant where the swarm has no runs); the law's best candidates are then
refined by SLSQP on the simplex with its exact gradient (``worst`` as the epigraph problem
min s, s >= L_i). A tree model is piecewise constant, so for ``boosted`` the optimum is the mean
of the top :data:`TOP_FRACTION` of candidates, as RegMix averages its top 128 of 100 000.

Intervals: percentile 95% intervals over ``n_boot`` bootstrap resamples of the runs, each
refitted (the chosen model) and re-optimised (on fewer candidates, :data:`BOOT_CANDIDATES`).

Sensitivity: the central difference of the fitted objective in domain i's log-weight at the
optimum, with the others rescaled (w_i -> w_i e^h, then renormalised), over a finite move
h = :data:`SENSITIVITY_STEP` (a factor 1.65 either way). Deviation, and why: the derivative
itself (h -> 0) is zero at an interior optimum for every domain (the first-order condition)
and says nothing about which domains matter there; the finite move keeps the surface's
asymmetry, and :attr:`Surface.curvature` (the second difference over the same move) says how
sharply the objective rises when that domain's weight moves: ~0 for a domain the objective
ignores, and large for one whose weight must be right.

Why one module of some 830 lines: it is one procedure (validate, fit both models, choose by
cross-validation, optimise, bootstrap, measure sensitivity), whose steps share private helpers
and constants and are read in that order; the document it produces is
:class:`popmix.records.surface.Surface`.
"""

from __future__ import annotations

import abc
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from popmix._util.simplex import project_simplex
from popmix.records.surface import Surface

MODELS = ("mixing_law", "boosted")
#: the fewest runs :func:`fit_surface` accepts, whatever the number of domains: below
#: :func:`full_law_runs` the law is fitted per domain on its own weight alone (3 parameters),
#: and cross-validation holds one run out of each fit
MIN_RUNS = 5
#: weight (nats per unit of t) of the ridge on the law's exponents t
LAW_RIDGE = 1e-4
#: the exponent sum_j t_ij r_j is clipped to +-this, so a wild bootstrap fit stays finite
EXP_CLIP = 50.0
#: RegMix's LightGBM ran 1000 rounds at learning rate 0.01 with early stopping on 128 held-out
#: proxies; a swarm has too few runs to hold some out, so fewer rounds at a larger rate
BOOST_PARAMS: dict[str, Any] = {
    "n_estimators": 100,
    "learning_rate": 0.1,
    "max_depth": 3,
    "min_samples_leaf": 2,
}
#: candidates scored for the optimum (RegMix: 100 000), and in each bootstrap refit
MAIN_CANDIDATES = 100_000
BOOT_CANDIDATES = 10_000
#: the boosted optimum averages this fraction of the best candidates (RegMix: 128 / 100 000)
TOP_FRACTION = 128 / 100_000
#: the law's best candidates refined by SLSQP: in the main fit, in each bootstrap refit
MAIN_STARTS = 4
BOOT_STARTS = 1
SENSITIVITY_STEP = 0.5
SLICE_POINTS = 41


# ----------------------------------------------------------------------------- objectives


def objective_of(
    val_loss: np.ndarray | Sequence[float], names: Sequence[str], objective: str
) -> float:
    """The scalar a search minimises: mean, worst or one domain's validation loss.

    The same rule as :func:`popmix.tune.trainable.objective_of`, written again here because the
    analysis layer does not import the Tune layer (a test checks that both agree).
    """
    v = np.asarray(val_loss, dtype=np.float64)
    return float(objective_rows(v[None, :], names, objective)[0])


def objective_rows(losses: np.ndarray, names: Sequence[str], objective: str) -> np.ndarray:
    """:func:`objective_of` of each row of ``losses`` (n, k)."""
    if objective == "mean":
        return np.asarray(np.mean(losses, axis=1))
    if objective == "worst":
        return np.asarray(np.max(losses, axis=1))
    return np.asarray(losses[:, list(names).index(objective.split(":", 1)[1])])


def check_objective(objective: str, names: Sequence[str]) -> None:
    """Raises ValueError (one line) unless ``objective`` is mean, worst or domain:<a name>."""
    if objective in ("mean", "worst"):
        return
    head, _, name = str(objective).partition(":")
    if head == "domain" and name in names:
        return
    choices = ", ".join(f"domain:{n}" for n in list(names)[:4]) + (
        ", ..." if len(names) > 4 else ""
    )
    raise ValueError(f"unknown objective {objective!r}; use mean, worst or one of {choices}")


def full_law_runs(k: int) -> int:
    """The fewest runs for which the full mixing law (k + 2 parameters per domain) is fitted:
    every cross-validation training fold must hold at least k + 2 runs."""
    n = MIN_RUNS
    while _train_size(n) < k + 2:
        n += 1
    return n


def _folds(n: int) -> int:
    return min(5, n)


def _train_size(n: int) -> int:
    """The smallest cross-validation training fold of n runs."""
    return n - math.ceil(n / _folds(n))


# ----------------------------------------------------------------------------- the models


class MixingLaw:
    """L_i(r) = c_i + k_i exp(sum_j t_ij r_j) for every domain i (Data Mixing Laws, eq. 1 of
    the multi-domain law); ``own_weight``: t_ij = 0 for j != i.

    Fitted as c_i + exp(sum_j s_ij r_j), the same functions: on the simplex sum_j r_j = 1, so
    s_ij = t_ij + log k_i; unlike (k_i, t_i), s_i is identifiable, and Gauss-Newton converges
    in a few steps where the paper's redundant form crawls along the flat direction. Reported
    in the paper's form with t_i centred (mean_j t_ij = 0) and k_i = exp(mean_j s_ij).
    """

    def __init__(self, c: np.ndarray, k: np.ndarray, t: np.ndarray, own_weight: bool) -> None:
        self.c = c
        self.k = k
        self.t = t
        self.own_weight = own_weight

    @classmethod
    def fit(
        cls,
        weights: np.ndarray,
        losses: np.ndarray,
        own_weight: bool,
        start: MixingLaw | None = None,
    ) -> MixingLaw:
        from scipy.optimize import least_squares

        n, dims = weights.shape
        c = np.zeros(dims)
        kk = np.zeros(dims)
        t = np.zeros((dims, dims))
        for i in range(dims):
            # exponent = x @ s: full, x = r and s_j = t_ij + log k_i; own weight, x = (1, r_i)
            # and s = (log k_i, t_ii). The ridge acts on t only (centred s in the full law).
            if own_weight:
                x = np.column_stack([np.ones(n), weights[:, i]])
                ridge = np.array([[0.0, LAW_RIDGE]])
            else:
                x = weights
                ridge = LAW_RIDGE * (np.eye(dims) - 1.0 / dims)
            y = losses[:, i]
            if start is not None:
                s0 = (
                    np.array([math.log(max(start.k[i], 1e-300)), start.t[i, i]])
                    if own_weight
                    else start.t[i] + math.log(max(start.k[i], 1e-300))
                )
                x0 = np.concatenate([[start.c[i]], s0])
            else:
                x0 = _law_start(x, y)

            def residuals(
                p: np.ndarray, x: np.ndarray = x, y: np.ndarray = y, ridge: np.ndarray = ridge
            ) -> np.ndarray:
                e = np.exp(np.clip(x @ p[1:], -EXP_CLIP, EXP_CLIP))
                return np.concatenate([p[0] + e - y, ridge @ p[1:]])

            def jac(p: np.ndarray, x: np.ndarray = x, ridge: np.ndarray = ridge) -> np.ndarray:
                e = np.exp(np.clip(x @ p[1:], -EXP_CLIP, EXP_CLIP))
                out = np.zeros((len(x) + len(ridge), x.shape[1] + 1))
                out[: len(x), 0] = 1.0
                out[: len(x), 1:] = e[:, None] * x
                out[len(x) :, 1:] = ridge
                return out

            # Levenberg-Marquardt, unbounded, is a few times faster than a bounded solver;
            # where it ends with c_i >= 0 that is the bounded fit too. Where it does not (a law
            # nearly linear in r runs off towards c_i -> -inf, so it is capped), the bound is
            # active: c_i = 0 and s_i refitted alone, a well-conditioned log-linear fit.
            sol = least_squares(residuals, x0, jac=jac, method="lm", max_nfev=60)
            p = sol.x
            if not (sol.status > 0 and p[0] >= 0 and np.all(np.isfinite(p))):

                def res0(q: np.ndarray, f: Callable = residuals) -> np.ndarray:
                    return f(np.concatenate([[0.0], q]))

                def jac0(q: np.ndarray, f: Callable = jac) -> np.ndarray:
                    return f(np.concatenate([[0.0], q]))[:, 1:]

                q0 = np.linalg.lstsq(x, np.log(y), rcond=None)[0]
                zero = least_squares(res0, q0, jac=jac0, method="lm", max_nfev=200)
                p0 = np.concatenate([[0.0], zero.x])
                feasible = p[0] >= 0 and np.all(np.isfinite(p))
                if not feasible or zero.cost < sol.cost:
                    p = p0
            c[i] = p[0]
            if own_weight:
                kk[i], t[i, i] = math.exp(min(p[1], EXP_CLIP)), p[2]
            else:
                shift = float(np.mean(p[1:]))
                kk[i], t[i] = math.exp(min(shift, EXP_CLIP)), p[1:] - shift
        return cls(c, kk, t, own_weight)

    def losses(self, w: np.ndarray) -> np.ndarray:
        """Predicted per-domain loss (m, k) at mixtures w (m, k)."""
        return self.c + self.k * np.exp(np.clip(w @ self.t.T, -EXP_CLIP, EXP_CLIP))

    def gradients(self, w: np.ndarray) -> np.ndarray:
        """dL_i / dw_j (k, k) at one mixture w (k,)."""
        e = np.exp(np.clip(self.t @ w, -EXP_CLIP, EXP_CLIP))
        return (self.k * e)[:, None] * self.t


def _law_start(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """A starting point (c, s) for one domain's law: for a few trial c, log(y - c) is linear in
    the exponent's features x, so least squares gives s in closed form; the c with the
    smallest residual wins."""
    best: tuple[float, np.ndarray] | None = None
    for frac in (0.0, 0.5, 0.8, 0.9, 0.95):
        c = frac * float(np.min(y))
        s = np.linalg.lstsq(x, np.log(y - c), rcond=None)[0]
        pred = c + np.exp(np.clip(x @ s, -EXP_CLIP, EXP_CLIP))
        sse = float(np.sum((pred - y) ** 2))
        if np.isfinite(sse) and (best is None or sse < best[0]):
            best = (sse, np.concatenate([[c], s]))
    assert best is not None
    return best[1]


class _Fitted(abc.ABC):
    """One fitted model as the optimiser sees it: the objective at many mixtures at once."""

    name: str

    @abc.abstractmethod
    def objective(self, w: np.ndarray) -> np.ndarray:
        """The fitted objective at mixtures w (m, k): shape (m,)."""


class _LawObjective(_Fitted):
    name = "mixing_law"

    def __init__(self, law: MixingLaw, names: Sequence[str], objective: str) -> None:
        self.law = law
        self.names = list(names)
        self.spec = objective

    def objective(self, w: np.ndarray) -> np.ndarray:
        return objective_rows(self.law.losses(w), self.names, self.spec)


class _BoostedObjective(_Fitted):
    name = "boosted"

    def __init__(self, model: Any) -> None:
        self.model = model

    def objective(self, w: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict(w), dtype=np.float64)


def _fit_boosted(weights: np.ndarray, y: np.ndarray, seed: int) -> _BoostedObjective:
    from sklearn.ensemble import GradientBoostingRegressor

    model = GradientBoostingRegressor(**BOOST_PARAMS, random_state=seed)
    model.fit(weights, y)
    return _BoostedObjective(model)


def _fit(
    model: str,
    weights: np.ndarray,
    losses: np.ndarray,
    names: Sequence[str],
    objective: str,
    own_weight: bool,
    seed: int,
    start: _Fitted | None = None,
) -> _Fitted:
    if model == "mixing_law":
        law_start = start.law if isinstance(start, _LawObjective) else None
        law = MixingLaw.fit(weights, losses, own_weight, start=law_start)
        return _LawObjective(law, names, objective)
    return _fit_boosted(weights, objective_rows(losses, names, objective), seed)


# ----------------------------------------------------------------------------- the optimum


def _floored(c: np.ndarray, floor: float) -> np.ndarray:
    """Points of the simplex mapped into {w >= floor, sum w = 1}."""
    return floor + (1.0 - floor * c.shape[-1]) * c


def _project(w: np.ndarray, floor: float) -> np.ndarray:
    """The nearest point of {w >= floor, sum w = 1}."""
    return floor + project_simplex(np.asarray(w) - floor, 1.0 - floor * len(w))


def _swarm_dirichlet(weights: np.ndarray) -> np.ndarray:
    """Dirichlet alpha with the swarm's mean and (by moments, the median over domains) its
    total concentration."""
    mean = weights.mean(axis=0)
    var = weights.var(axis=0)
    ok = var > 1e-12
    if np.any(ok):
        a0 = float(np.median(mean[ok] * (1 - mean[ok]) / var[ok] - 1.0))
    else:
        a0 = 1e3
    a0 = float(np.clip(a0, 0.5, 1e3))
    return np.maximum(mean * a0, 1e-2)


def _candidates(
    weights: np.ndarray, floor: float, count: int, rng: np.random.Generator, model: str
) -> np.ndarray:
    dims = weights.shape[1]
    alpha = _swarm_dirichlet(weights)
    if model == "boosted":
        # a tree predicts a constant where the swarm has no runs: candidates where it has
        draws = rng.dirichlet(alpha, size=count)
    else:
        half = count // 2
        draws = np.concatenate(
            [
                rng.dirichlet(alpha, size=half),
                rng.dirichlet(np.ones(dims), size=count - half),
                np.full((1, dims), 1.0 / dims),
            ]
        )
    draws = np.concatenate([draws, weights])
    return _floored(draws / draws.sum(axis=1, keepdims=True), floor)


def _refine_law(fitted: _LawObjective, w0: np.ndarray, floor: float) -> tuple[np.ndarray, float]:
    """SLSQP from w0 on {w >= floor, sum w = 1} with the law's exact gradient."""
    from scipy.optimize import minimize

    law, names, spec = fitted.law, fitted.names, fitted.spec
    dims = len(w0)
    ones = np.ones(dims)
    bounds = [(floor, 1.0)] * dims
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SLSQP's "values outside bounds" near the floor
        if spec == "worst":
            # the max of smooth functions: min s subject to s >= L_i(w)
            def f(x: np.ndarray) -> float:
                return float(x[-1])

            def fgrad(x: np.ndarray) -> np.ndarray:
                g = np.zeros(dims + 1)
                g[-1] = 1.0
                return g

            cons = [
                {
                    "type": "eq",
                    "fun": lambda x: np.array([x[:-1].sum() - 1.0]),
                    "jac": lambda x: np.concatenate([ones, [0.0]])[None, :],
                },
                {
                    "type": "ineq",
                    "fun": lambda x: x[-1] - law.losses(x[None, :-1])[0],
                    "jac": lambda x: np.column_stack([-law.gradients(x[:-1]), np.ones(dims)]),
                },
            ]
            x0 = np.concatenate([w0, [float(law.losses(w0[None])[0].max())]])
            sol = minimize(
                f,
                x0,
                jac=fgrad,
                bounds=[*bounds, (None, None)],
                constraints=cons,
                method="SLSQP",
                options={"maxiter": 200, "ftol": 1e-10},
            )
            w = sol.x[:-1]
        else:
            idx = None if spec == "mean" else names.index(spec.split(":", 1)[1])

            def f2(w: np.ndarray) -> float:
                return float(fitted.objective(w[None])[0])

            def g2(w: np.ndarray) -> np.ndarray:
                g = law.gradients(w)
                return np.asarray(g.mean(axis=0) if idx is None else g[idx])

            cons = [
                {
                    "type": "eq",
                    "fun": lambda w: np.array([w.sum() - 1.0]),
                    "jac": lambda w: ones[None, :],
                }
            ]
            sol = minimize(
                f2,
                w0,
                jac=g2,
                bounds=bounds,
                constraints=cons,
                method="SLSQP",
                options={"maxiter": 200, "ftol": 1e-12},
            )
            w = sol.x
    w = _project(np.where(np.isfinite(w), w, w0), floor)
    return w, float(fitted.objective(w[None])[0])


def _optimum(
    fitted: _Fitted,
    candidates: np.ndarray,
    floor: float,
    starts: int,
) -> tuple[np.ndarray, float]:
    scores = fitted.objective(candidates)
    if isinstance(fitted, _LawObjective):
        order = np.argsort(scores, kind="stable")
        best_w, best = candidates[order[0]], float(scores[order[0]])
        for j in order[:starts]:
            w, value = _refine_law(fitted, candidates[j], floor)
            if value < best:
                best_w, best = w, value
        return best_w, best
    top = max(1, int(round(TOP_FRACTION * len(candidates))))
    w = candidates[np.argsort(scores, kind="stable")[:top]].mean(axis=0)
    w = _project(w, floor)  # the mean of floored points already is; this only cleans rounding
    return w, float(fitted.objective(w[None])[0])


def law_optimum(
    law: MixingLaw,
    names: Sequence[str],
    objective: str = "mean",
    floor: float = 1e-3,
    seed: int = 0,
    candidates: int = MAIN_CANDIDATES,
    starts: int = MAIN_STARTS,
) -> tuple[np.ndarray, float]:
    """The optimum (weights, objective) of a given law over {w >= floor, sum w = 1}, by the
    optimiser :func:`fit_surface` uses: uniform Dirichlet candidates, the best ``starts``
    refined by SLSQP (a benchmark's oracle on a known law)."""
    check_objective(objective, names)
    dims = len(names)
    rng = np.random.default_rng(seed)
    cands = _floored(rng.dirichlet(np.ones(dims), size=candidates), floor)
    return _optimum(_LawObjective(law, names, objective), cands, floor, starts)


def log_weight_moves(w: np.ndarray, h: float) -> np.ndarray:
    """Rows 2i and 2i + 1: w with w_i multiplied by e^h and by e^-h, all renormalised to sum 1
    (so the others keep their ratios). Shape (2k, k)."""
    dims = len(w)
    out = np.repeat(w[None, :], 2 * dims, axis=0)
    for i in range(dims):
        for row, sign in ((2 * i, 1.0), (2 * i + 1, -1.0)):
            out[row, i] = w[i] * math.exp(sign * h)
    return out / out.sum(axis=1, keepdims=True)


def sensitivities(
    f: Callable[[np.ndarray], np.ndarray], w: np.ndarray, h: float = SENSITIVITY_STEP
) -> tuple[np.ndarray, np.ndarray]:
    """Per domain, the central first and second differences of f in log w_i at w (others
    rescaled): (f(+h) - f(-h)) / 2h and (f(+h) - 2 f(w) + f(-h)) / h^2."""
    moved = f(log_weight_moves(w, h)).reshape(len(w), 2)
    base = float(f(w[None])[0])
    slope = (moved[:, 0] - moved[:, 1]) / (2 * h)
    curvature = (moved[:, 0] - 2 * base + moved[:, 1]) / h**2
    return slope, curvature


def slice_points(w: np.ndarray, floor: float) -> np.ndarray:
    """For each domain i, :data:`SLICE_POINTS` mixtures moving w_i from the floor to
    1 - (k - 1) * floor evenly in log w_i, the others rescaled to keep their ratios.
    Shape (k, SLICE_POINTS, k)."""
    dims = len(w)
    low = max(floor, 1e-4)
    high = 1.0 - (dims - 1) * low
    grid = np.exp(np.linspace(math.log(low), math.log(high), SLICE_POINTS))
    out = np.empty((dims, SLICE_POINTS, dims))
    for i in range(dims):
        rest = np.delete(w, i)
        rest = rest / rest.sum()
        for p, v in enumerate(grid):
            out[i, p] = np.insert(rest * (1.0 - v), i, v)
    return out


def _validate(
    weights: Any,
    losses: Any,
    names: Sequence[str],
    objective: str,
    floor: float,
    n_boot: int | None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    names = [str(n) for n in names]
    try:
        w = np.asarray(weights, dtype=np.float64)
        y = np.asarray(losses, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            "weights and losses must be numeric arrays of shape (runs, domains)"
        ) from None
    dims = len(names)
    if len(set(names)) != dims or dims < 2:
        raise ValueError(f"names {names!r}: give at least two distinct domain names")
    for label, a in (("weights", w), ("losses", y)):
        if a.ndim != 2 or a.shape[1] != dims:
            raise ValueError(
                f"{label} has shape {a.shape}, expected (runs, {dims}) for {dims} domain names"
            )
    if w.shape != y.shape:
        raise ValueError(
            f"weights has {w.shape[0]} runs but losses has {y.shape[0]}; give one row per run"
        )
    if w.shape[0] < MIN_RUNS:
        raise ValueError(
            f"{w.shape[0]} swarm runs are too few to fit a surface; train at least {MIN_RUNS}"
        )
    for label, a in (("weights", w), ("losses", y)):
        bad = np.argwhere(~np.isfinite(a))
        if len(bad):
            r, c = bad[0]
            raise ValueError(
                f"{label}[{r}, {c}] ({names[c]}) is {a[r, c]}; drop run {r} (not finished) "
                "or rerun it"
            )
    if np.any(y <= 0):
        r, c = np.argwhere(y <= 0)[0]
        raise ValueError(
            f"losses[{r}, {c}] ({names[c]}) is {y[r, c]}; losses are validation losses in "
            "nats, which are positive"
        )
    sums = w.sum(axis=1)
    if np.any(w < 0) or np.any(np.abs(sums - 1.0) > 1e-4):
        r = int(np.argmax((w < 0).any(axis=1) | (np.abs(sums - 1.0) > 1e-4)))
        raise ValueError(
            f"weights row {r} (sum {sums[r]:.6g}, min {w[r].min():.6g}) is not a mixture; each "
            "run's weights must be non-negative and sum to 1"
        )
    check_objective(objective, names)
    if not (math.isfinite(floor) and 0 <= floor < 1.0 / dims):
        raise ValueError(
            f"floor {floor!r} leaves no room for {dims} domains; use 0 <= floor < {1 / dims:.4g}"
        )
    if n_boot is not None and (int(n_boot) != n_boot or n_boot < 1):
        raise ValueError(f"n_boot {n_boot!r}: use a positive number of bootstrap resamples")
    return w / sums[:, None], y, names


@dataclass
class _Point:
    """One fit without intervals: the chosen model, its optimum and the CV quality."""

    model: str
    own_weight: bool
    fitted: _Fitted
    optimum: np.ndarray
    predicted: float
    quality: dict


def _cross_validate(
    w: np.ndarray,
    y: np.ndarray,
    names: Sequence[str],
    objective: str,
    own_weight: bool,
    seed: int,
) -> dict:
    from scipy.stats import spearmanr
    from sklearn.metrics import r2_score
    from sklearn.model_selection import KFold

    n = len(w)
    target = objective_rows(y, names, objective)
    held: dict[str, np.ndarray] = {m: np.empty(n) for m in MODELS}
    folds = KFold(n_splits=_folds(n), shuffle=True, random_state=seed)
    for train, test in folds.split(w):
        for m in MODELS:
            fitted = _fit(m, w[train], y[train], names, objective, own_weight, seed)
            held[m][test] = fitted.objective(w[test])
    out: dict[str, dict] = {}
    for m in MODELS:
        pred = held[m]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a constant prediction has no rank correlation
            rho = spearmanr(pred, target).statistic
        out[m] = {
            "r2": float(r2_score(target, pred)),
            "spearman": float(rho) if np.isfinite(rho) else math.nan,
            "rmse": float(np.sqrt(np.mean((pred - target) ** 2))),
        }
    return out


def _fit_point(
    w: np.ndarray,
    y: np.ndarray,
    names: Sequence[str],
    objective: str,
    floor: float,
    seeds: np.random.SeedSequence,
) -> _Point:
    cv_seed, opt_seed = (int(s.generate_state(1)[0]) for s in seeds.spawn(2))
    n = len(w)
    own_weight = _train_size(n) < len(names) + 2
    cv = _cross_validate(w, y, names, objective, own_weight, cv_seed % 2**31)
    model = "boosted" if cv["boosted"]["r2"] > cv["mixing_law"]["r2"] else "mixing_law"
    fitted = _fit(model, w, y, names, objective, own_weight, cv_seed % 2**31)
    rng = np.random.default_rng(opt_seed)
    cands = _candidates(w, floor, MAIN_CANDIDATES, rng, model)
    optimum, predicted = _optimum(fitted, cands, floor, MAIN_STARTS)
    target = objective_rows(y, names, objective)
    best = int(np.argmin(target))
    quality = {
        "cv": cv,
        "chosen": model,
        "folds": _folds(n),
        "n_runs": n,
        "law_form": "own-weight" if own_weight else "full",
        "best_run": best,
        "best_observed": float(target[best]),
    }
    return _Point(model, own_weight, fitted, optimum, predicted, quality)


def _interval(samples: np.ndarray) -> np.ndarray:
    """Percentile 95% interval along axis 0: shape (2, ...)."""
    return np.percentile(samples, [2.5, 97.5], axis=0)


def fit_surface(
    weights: np.ndarray,
    losses: np.ndarray,
    names: Sequence[str],
    objective: str = "mean",
    floor: float = 1e-3,
    seed: int = 0,
    n_boot: int = 200,
) -> Surface:
    """Fit the swarm's surface, find its optimum and bootstrap the intervals.

    Args:
        weights: (n_runs, k) the mixture each run trained on (rows on the simplex).
        losses: (n_runs, k) each run's per-domain validation loss at its end (nats).
        names: the k domain names, in the columns' order.
        objective: ``mean``, ``worst`` or ``domain:<name>`` (as PBT's).
        floor: the smallest weight of the optimum (0 <= floor < 1/k).
        seed: every draw (folds, candidates, resamples) comes from it: same seed, same surface.
        n_boot: bootstrap resamples of the runs.

    Raises:
        ValueError: (one line naming the value and the fix) too few runs (< :data:`MIN_RUNS`),
            shapes that disagree, non-finite or non-positive losses, weights off the simplex,
            an unknown objective, a floor without room, n_boot < 1.
    """
    start = time.perf_counter()
    w, y, names = _validate(weights, losses, names, objective, floor, n_boot)
    main_seq, boot_seq = np.random.SeedSequence(seed).spawn(2)
    point = _fit_point(w, y, names, objective, floor, main_seq)
    h = SENSITIVITY_STEP
    slope, curv = sensitivities(point.fitted.objective, point.optimum, h)
    grids = slice_points(point.optimum, floor)
    dims = len(names)
    slice_values = point.fitted.objective(grids.reshape(-1, dims)).reshape(dims, SLICE_POINTS)

    rng = np.random.default_rng(boot_seq)
    n = len(w)
    boot_opt = np.empty((n_boot, dims))
    boot_pred = np.empty(n_boot)
    boot_slope = np.empty((n_boot, dims))
    boot_curv = np.empty((n_boot, dims))
    boot_slices = np.empty((n_boot, dims, SLICE_POINTS))
    for b in range(n_boot):
        idx = rng.integers(0, n, size=n)
        fitted = _fit(
            point.model,
            w[idx],
            y[idx],
            names,
            objective,
            point.own_weight,
            int(rng.integers(2**31)),
            start=point.fitted,
        )
        cands = _candidates(w[idx], floor, BOOT_CANDIDATES, rng, point.model)
        boot_opt[b], boot_pred[b] = _optimum(fitted, cands, floor, BOOT_STARTS)
        boot_slope[b], boot_curv[b] = sensitivities(fitted.objective, boot_opt[b], h)
        boot_slices[b] = fitted.objective(grids.reshape(-1, dims)).reshape(dims, SLICE_POINTS)
    opt_ci = _interval(boot_opt)
    pred_ci = _interval(boot_pred)
    slope_ci = _interval(boot_slope)
    curv_ci = _interval(boot_curv)
    slice_ci = _interval(boot_slices)
    slices = {
        name: {
            "log_w": np.log(grids[i, :, i]).tolist(),
            "objective": slice_values[i].tolist(),
            "lo": slice_ci[0, i].tolist(),
            "hi": slice_ci[1, i].tolist(),
        }
        for i, name in enumerate(names)
    }
    return Surface(
        names=tuple(names),
        objective=objective,
        model=point.model,
        optimum=tuple(float(x) for x in point.optimum),
        optimum_ci=tuple((float(a), float(b)) for a, b in opt_ci.T),
        predicted=point.predicted,
        predicted_ci=(float(pred_ci[0]), float(pred_ci[1])),
        sensitivity=tuple(float(x) for x in slope),
        sensitivity_ci=tuple((float(a), float(b)) for a, b in slope_ci.T),
        quality=point.quality,
        slices=slices,
        curvature=tuple(float(x) for x in curv),
        curvature_ci=tuple((float(a), float(b)) for a, b in curv_ci.T),
        settings={
            "floor": floor,
            "n_boot": n_boot,
            "seed": seed,
            "sensitivity_step": h,
            "candidates": MAIN_CANDIDATES,
            "boot_candidates": BOOT_CANDIDATES,
            "seconds": round(time.perf_counter() - start, 3),
        },
    )


def settle_curve(
    weights: np.ndarray,
    losses: np.ndarray,
    names: Sequence[str],
    objective: str = "mean",
    floor: float = 1e-3,
    sizes: Sequence[int] | None = None,
    seed: int = 0,
) -> list[dict]:
    """Refit on the first n runs for growing n (no bootstrap): how many swarm runs before the
    predicted optimum stops moving.

    Each row: ``{"runs": n, "model": chosen, "cv_r2": its held-out R^2, "optimum": [...],
    "moved": L1 distance to the optimum found with all runs, "predicted": ...}``. Every n
    runs the whole procedure (cross-validated choice included), as a user with n runs would.
    ``sizes`` default: about 8 sizes from :data:`MIN_RUNS` to all runs, evenly in log n.
    """
    w, y, names = _validate(weights, losses, names, objective, floor, None)
    n = len(w)
    if sizes is None:
        sizes = sorted({int(round(x)) for x in np.geomspace(MIN_RUNS, n, num=8)} | {n})
    sizes = sorted({int(s) for s in sizes})
    if not sizes or sizes[0] < MIN_RUNS or sizes[-1] > n:
        raise ValueError(f"sizes {sizes}: each must be between {MIN_RUNS} and the {n} runs given")
    points = {}
    for s in sorted(set(sizes) | {n}):
        # the seeds fit_surface draws its point fit from: the last row is its optimum
        main_seq = np.random.SeedSequence(seed).spawn(2)[0]
        points[s] = _fit_point(w[:s], y[:s], names, objective, floor, main_seq)
    final = points[n].optimum
    return [
        {
            "runs": s,
            "model": points[s].model,
            "cv_r2": points[s].quality["cv"][points[s].model]["r2"],
            "optimum": [float(x) for x in points[s].optimum],
            "moved": float(np.abs(points[s].optimum - final).sum()),
            "predicted": points[s].predicted,
        }
        for s in sizes
    ]


__all__ = [
    "MIN_RUNS",
    "MixingLaw",
    "Surface",
    "check_objective",
    "fit_surface",
    "full_law_runs",
    "law_optimum",
    "objective_of",
    "objective_rows",
    "sensitivities",
    "settle_curve",
]
