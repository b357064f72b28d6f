"""The swarm: short static-mixture runs, a fitted response surface and its predicted optimum.

The paradigm of RegMix, Data Mixing Laws and olmix beside PBT's: per seed, ``search.swarm.size``
mixtures are drawn from a Dirichlet around a prior, each trained for a short budget as a
``swarm-run`` trial of the search's own trainable and loop; per-domain validation loss is fitted
as a function of the mixture (:func:`popmix.analysis.swarm_fit.fit_surface`), and the fit's
predicted optimum is trained as the ``swarm`` trial at the full ``train.steps``, one per seed:
a row of the comparison table whose cost counts the whole swarm.

Two phases per group of seeds (:func:`popmix.tune.search.run_search`): the swarm's runs are
trials of the seed group's Tuner, beside the population and the baselines; once that Tuner
has finished, each seed's surface is fitted and the optimum trials run in a second Tuner of
their own (``seed<S>-swarm``). A Ray ``Searcher`` could add them to the first Tuner, but the
population's trials there come from a grid (PBT's trials must exist from the start), and a
second Tuner keeps both phases resumable with what popmix already restores: a resumed search
finds each fitted surface in ``swarm-seed<S>.json`` of the experiment folder (so its optimum
never changes on a resume) and restores or starts the second Tuner.

Mixtures: alpha_i = concentration * k * prior_i (so concentration 1 around the uniform prior
is the flat distribution on the simplex), floored by :func:`popmix._util.simplex.floor_project`
(and kept within ``data.max_epochs``'s caps, as the optimum is: :func:`cap_optimum`),
drawn from a generator seeded by (``search.seed``, the run seed): a search repeats its swarm.
Every swarm run trains with the seed itself (one model initialisation across the swarm, as its
optimum is trained: the fit compares mixtures, not initialisations).

The equal budget: with ``search.swarm.steps`` null each run trains
floor((population - 1) * train.steps / size) steps, so size runs plus the optimum's full run
cost what a PBT population of ``search.population`` does (population * train.steps).

NumPy only at import (no torch, no Ray); the fit's scikit-learn/SciPy are imported when used.
Its files (``surface.json``, the optima, the figures) are written by
:func:`popmix.tune.outputs.write_swarm`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from popmix._util.atomic import write_json
from popmix._util.simplex import floor_project
from popmix.analysis.swarm_fit import MIN_RUNS, fit_surface, full_law_runs
from popmix.config import SWARM, SWARM_RUN, ConfigError, Experiment, SwarmSpec
from popmix.policies import temperature_weights
from popmix.records.trial import TrialSpec
from popmix.records.weights import WeightsSchedule

#: a seed's fitted surface in the experiment folder, kept for a resume
SURFACE_CACHE = "swarm-seed{seed}.json"
#: what the Tuner of the optimum trials is called after the seed group's own (``seed0-swarm``)
TUNER_SUFFIX = "-swarm"


def check_fit_available() -> None:
    """Fail in one line when the fit's libraries are missing (like ``searcher: pb2``).

    Raises:
        ConfigError: scikit-learn or SciPy cannot be imported.
    """
    try:
        import scipy  # noqa: F401
        import sklearn  # noqa: F401
    except ImportError:
        raise ConfigError(
            "the swarm's fit needs scikit-learn and SciPy: pip install 'popmix[swarm]' "
            "(or scikit-learn scipy), or drop swarm from methods"
        ) from None


def check_swarm(exp: Experiment, k: int) -> None:
    """Fail in one line, before Ray starts, on a swarm that cannot run on ``k`` domains (its
    fit's libraries missing, a floor that leaves no room, too few runs to fit); say on
    standard error when the runs are too few for the full mixing law.

    Raises:
        ConfigError: what is wrong, and the fix.
    """
    check_fit_available()
    size = exp.search.swarm.size
    if exp.search.swarm.floor * k >= 1:
        raise ConfigError(
            f"search.swarm.floor {exp.search.swarm.floor:g} leaves no room on {k} domains; "
            f"set it below 1/{k} = {1 / k:.4g}"
        )
    if size < MIN_RUNS:
        raise ConfigError(
            f"search.swarm.size {size} is too small for the fit; set "
            f"search.swarm.size={MIN_RUNS} or more (the full mixing law on {k} domains "
            f"needs {full_law_size(k)})"
        )
    if size < full_law_size(k):
        print(
            f"popmix search: search.swarm.size {size} is below the {full_law_size(k)} runs "
            f"the full mixing law needs on {k} domains; the fit uses its one-domain form",
            file=sys.stderr,
        )


def full_law_size(k: int) -> int:
    """The fewest swarm runs for which the full mixing law (k + 2 parameters per domain) is
    fitted rather than its one-domain form (:func:`popmix.analysis.swarm_fit.full_law_runs`:
    23 for 16 domains)."""
    return int(full_law_runs(k))


def prior(spec: SwarmSpec, sizes: Sequence[float] | np.ndarray) -> np.ndarray:
    """The Dirichlet's mean: uniform, n_i / sum n, or n_i^(1/T) normalised."""
    sizes = np.asarray(sizes, dtype=np.float64)
    t = spec.prior_temperature()
    if t is None:
        return np.full(len(sizes), 1.0 / len(sizes))
    return np.asarray(temperature_weights(sizes, t), dtype=np.float64)


def draw_mixtures(
    spec: SwarmSpec,
    sizes: Sequence[float] | np.ndarray,
    search_seed: int,
    seed: int,
    caps: np.ndarray | None = None,
    fixed: np.ndarray | None = None,
) -> np.ndarray:
    """The swarm's ``spec.size`` mixtures for one seed, shape (size, k): Dirichlet draws of
    alpha = concentration * k * prior, each floored (and moved within ``caps``, the largest
    weight per domain, and to the ``fixed`` weights, when given); the same seeds give the same
    draws."""
    p = prior(spec, sizes)
    k = len(p)
    rng = np.random.default_rng(np.random.SeedSequence([int(search_seed), int(seed), 13]))
    alpha = spec.concentration * k * p
    draws = rng.dirichlet(alpha, size=spec.size)
    return np.stack([floor_project(w, spec.floor, caps, fixed) for w in draws])


def run_specs(exp: Experiment, seed: int, names: Sequence[str], sizes: Any) -> list[TrialSpec]:
    """The swarm-run trials of one seed: draw i trains mixture i for the swarm's steps."""
    s = exp.search
    steps = s.swarm.run_steps(exp.train.steps, s.population)
    caps = exp.weight_caps(names, sizes)
    fixed = exp.weight_fixed(names, sizes, s.swarm.floor)
    mixtures = draw_mixtures(s.swarm, sizes, s.seed, seed, caps, fixed)
    return [
        TrialSpec(
            SWARM_RUN,
            seed,
            draw=i,
            steps=steps,
            params={"weights": {n: float(x) for n, x in zip(names, w)}},
        )
        for i, w in enumerate(mixtures)
    ]


def optimum_spec(seed: int, names: Sequence[str], weights: Sequence[float]) -> TrialSpec:
    """The ``swarm`` trial: the predicted optimum's static weights at the full budget."""
    mixture = {n: float(x) for n, x in zip(names, weights)}
    return TrialSpec(SWARM, seed, params={"weights": mixture})


def swarm_data(
    records: list[dict[str, Any]], seed: int, names: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """(weights (n, k), final per-domain validation losses (n, k), the records) of the
    seed's finished swarm runs, in swarm order."""
    runs = sorted(
        (
            r
            for r in records
            if r["method"] == SWARM_RUN
            and r["seed"] == seed
            and r["status"] == "ok"
            and (r.get("metrics") or {}).get("val_loss")
        ),
        key=lambda r: r.get("draw", 0),
    )
    weights = np.array([[r["params"]["weights"][n] for n in names] for r in runs], dtype=float)
    losses = np.array([[r["metrics"]["val_loss"][n] for n in names] for r in runs], dtype=float)
    return weights.reshape(len(runs), len(names)), losses.reshape(len(runs), len(names)), runs


def cap_optimum(
    surface: dict[str, Any],
    names: Sequence[str],
    floor: float,
    caps: np.ndarray | None,
    fixed: np.ndarray | None = None,
) -> dict[str, Any]:
    """``surface`` with its optimum moved within ``caps`` and to the ``fixed`` weights (the
    nearest such point of the simplex), recording the fitted one as ``optimum_uncapped`` and
    the caps and fixed weights as ``caps`` and ``fixed``; the surface as it is when nothing is
    capped or fixed, or the optimum already meets them.

    The fit's optimum is projected, not searched again within the caps: the nearest capped
    mixture, not necessarily the one the surface predicts best among capped mixtures."""
    if caps is None and fixed is None:
        return surface
    fitted = np.asarray(optimum_weights(surface, names), dtype=np.float64)
    capped = floor_project(fitted, floor, caps, fixed)
    if np.array_equal(capped, fitted):
        return surface
    out = {
        **surface,
        "optimum": [float(x) for x in capped],
        "optimum_uncapped": [float(x) for x in fitted],
    }
    if caps is not None:
        out["caps"] = [float(c) if np.isfinite(c) else None for c in caps]
    if fixed is not None:
        out["fixed"] = [float(f) if np.isfinite(f) else None for f in fixed]
    return out


def fit_seed(
    exp: Experiment,
    records: list[dict[str, Any]],
    seed: int,
    names: Sequence[str],
    caps: np.ndarray | None = None,
    fixed: np.ndarray | None = None,
) -> dict[str, Any]:
    """The fitted surface of one seed's swarm (``Surface.to_dict()``), with how many runs it
    was fitted on; its optimum kept within ``caps`` and at the ``fixed`` weights
    (:func:`cap_optimum`).

    Raises:
        ConfigError: fewer finished swarm runs than the fit needs, or losses it cannot fit.
    """
    weights, losses, runs = swarm_data(records, seed, names)
    need = MIN_RUNS
    if len(runs) < need:
        raise ConfigError(
            f"seed {seed}: only {len(runs)} swarm runs finished, the fit needs {need}; raise "
            "search.swarm.size or see the failed runs in summary.json"
        )
    s = exp.search
    try:
        surface = fit_surface(
            weights,
            losses,
            list(names),
            objective=s.objective,
            floor=s.swarm.floor,
            seed=s.seed * 1000 + seed,
            n_boot=s.swarm.n_boot,
        )
    except ValueError as e:  # the fit's one line, e.g. a diverged run's non-finite loss
        raise ConfigError(f"seed {seed}: the swarm's fit failed: {e}") from None
    return {
        **cap_optimum(surface.to_dict(), names, s.swarm.floor, caps, fixed),
        "seed": seed,
        "runs": len(runs),
        "run_trial_ids": [r["trial_id"] for r in runs],
    }


def surfaces_for(
    exp: Experiment,
    records: list[dict[str, Any]],
    seeds: Sequence[int],
    names: Sequence[str],
    exp_dir: Path,
    caps: np.ndarray | None = None,
    fixed: np.ndarray | None = None,
) -> dict[int, dict[str, Any]]:
    """Each seed's surface: the one fitted before (a resumed search) or fitted now and kept
    in the experiment folder. A seed whose fit fails gets ``{"error": line}``.

    A saved surface is used again only while every run it was fitted on is still one of the
    seed's finished swarm runs: then a resume never moves an optimum that may already be
    training (runs that finished after the fit, e.g. errored ones a resume retried, do not
    refit it). One fitted on runs this search does not hold (its seed group's Tuner was
    rebuilt, so its trials are new) is fitted again, and the surface says
    ``"refitted": true``."""
    out: dict[int, dict[str, Any]] = {}
    for seed in seeds:
        cache = exp_dir / SURFACE_CACHE.format(seed=seed)
        stale = False
        if cache.is_file():
            saved = json.loads(cache.read_text())
            have = {r["trial_id"] for r in swarm_data(records, seed, names)[2]}
            if set(saved.get("run_trial_ids") or ()) <= have:
                out[seed] = saved
                continue
            stale = True
        try:
            surface = fit_seed(exp, records, seed, names, caps, fixed)
        except ConfigError as e:
            out[seed] = {"seed": seed, "error": str(e)}
            continue
        write_json(cache, surface, indent=2)
        # not in the saved file: a later resume uses that file as any other
        out[seed] = {**surface, "refitted": True} if stale else surface
    return out


def fit_notes(surfaces: Mapping[int, Mapping[str, Any]]) -> list[str]:
    """What to tell the user about the seeds' fits: a failed fit's line, and a saved surface
    that was fitted again (:func:`surfaces_for`)."""
    notes = []
    for surface in surfaces.values():
        if "error" in surface:
            notes.append(str(surface["error"]))
        elif surface.get("refitted"):
            notes.append(
                f"seed {surface['seed']}: the saved surface was fitted on swarm runs this "
                "search no longer holds; fitted again on its own runs, and its optimum is "
                "trained anew"
            )
    return notes


def optimum_weights(surface: Mapping[str, Any], names: Sequence[str]) -> list[float]:
    """The surface's predicted optimum in ``names``' order."""
    opt = surface["optimum"]
    if isinstance(opt, Mapping):
        return [float(opt[n]) for n in names]
    return [float(x) for x in opt]


def optimum_specs(
    surfaces: Mapping[int, Mapping[str, Any]], names: Sequence[str]
) -> list[TrialSpec]:
    """The ``swarm`` trials of the seeds whose fit succeeded."""
    return [
        optimum_spec(seed, names, optimum_weights(s, names))
        for seed, s in sorted(surfaces.items())
        if "error" not in s
    ]


def optimum_schedule(
    surface: Mapping[str, Any], names: Sequence[str], steps: int, **info: Any
) -> WeightsSchedule:
    """The predicted optimum as a weights file (``popmix run --weights-from``, ``popmix
    search --init-weights``): the static weights from step 0."""
    return WeightsSchedule.build(
        domains=list(names),
        total_steps=steps,
        final_weights=optimum_weights(surface, names),
        method=SWARM,
        **info,
    )


__all__ = [
    "check_fit_available",
    "cap_optimum",
    "check_swarm",
    "draw_mixtures",
    "fit_notes",
    "fit_seed",
    "optimum_specs",
    "prior",
    "run_specs",
    "surfaces_for",
]
