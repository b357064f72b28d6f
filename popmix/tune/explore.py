"""PBT's explore step for per-domain weights, and the initial population.

Ray's built-in mutation multiplies a value by 0.8 or 1.2 or resamples it; on a weight vector
that leaves the simplex (and on a list it raises). popmix keeps vectors out of
``hyperparam_mutations`` and perturbs them here instead, in log space, renormalising every time,
so every member's weights stay a probability vector with at least ``floor`` per domain. The floor
is a projection (:func:`popmix._util.simplex.floor_project`): a vector that meets it is left
alone, so an exploit without perturbation copies the donor's weights exactly and repeated
exploits do not drift toward uniform. With repetition caps (``data.max_epochs``, see
:meth:`popmix.config.Experiment.weight_caps`) the sampling weights are kept within them too, by
the same projection onto the capped simplex, and fixed weights (``data.fixed_weights``) are
held there by the same projection (their bounds are their weights); loss weights repeat no data
and are neither capped nor fixed. Scalars
(temperature-schedule parameters) use Ray's mutation and are clipped back into their bounds here.

All randomness comes from the explorer's own ``np.random.Generator``: seeded by (``search.seed``,
the seed) for the initial population, and again for each decision by the scheduler
(:meth:`Explorer.reseed`), so a decision's draws depend on which decision it is, not on how
many came before it in this process (a resumed search draws as the uninterrupted one).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from popmix._util.simplex import floor_project
from popmix.config import Experiment, SearchSpace, VectorSpec, anchor_file, anchor_temperature
from popmix.policies import UniMaxPolicy, temperature_weights
from popmix.records.weights import WeightsFileError, WeightsSchedule


def as_dict(names: list[str], w: np.ndarray) -> dict[str, float]:
    return {n: float(x) for n, x in zip(names, w)}


def as_vector(names: list[str], d: dict[str, float]) -> np.ndarray:
    return np.array([d[n] for n in names], dtype=np.float64)


def weights_from_file(path: str, names: list[str], what: str = "init_file ") -> np.ndarray:
    """The first point's weights of a popmix weights file, checked against the domains;
    ``what`` names the setting that gave the file in the error.

    Raises:
        ConfigError: the file cannot be read as a weights file over ``names`` (one line).
    """
    from popmix.config import ConfigError

    try:
        schedule = WeightsSchedule.read(path, names)
    except WeightsFileError as e:
        raise ConfigError(f"{what}{e}") from None
    return np.asarray(schedule.points[0].weights, dtype=np.float64)


class Explorer:
    """The ``custom_explore_fn`` for PBT and PB2, and the initial population.

    Config layout: a vector lives in the trial config as ``{domain name: weight}`` (so PB2 can
    bound it and TensorBoard's HParams shows each weight); scalars as plain floats.

    Args:
        space: what is searched.
        names: domain names, in order.
        sizes: training tokens per domain (for ``proportional`` / ``temperature`` init).
        seed: seed of the explorer's generator.
        perturb: True for PBT (perturb or resample vectors); False for PB2, whose model already
            chose new values and which only needs them put back on the simplex.
        resample_probability: chance that a vector is resampled instead of perturbed.
        caps: the largest sampling weight of each domain (``inf``: none), or None.
        fixed: the sampling weights kept out of the search (``nan``: searched), or None.
        unimax: the ``unimax`` anchor's weights (the experiment's UniMax mixture); None:
            uniform, UniMax's mixture when no budget is known.
    """

    def __init__(
        self,
        space: SearchSpace,
        names: list[str],
        sizes: np.ndarray,
        seed: int = 0,
        perturb: bool = True,
        resample_probability: float = 0.25,
        caps: np.ndarray | None = None,
        fixed: np.ndarray | None = None,
        unimax: np.ndarray | None = None,
    ) -> None:
        self.space = space
        self.unimax = None if unimax is None else np.asarray(unimax, dtype=np.float64)
        self.caps = None if caps is None else np.asarray(caps, dtype=np.float64)
        self.fixed = None if fixed is None else np.asarray(fixed, dtype=np.float64)
        self.names = list(names)
        self.sizes = np.asarray(sizes, dtype=np.float64)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.perturb = perturb
        self.resample_probability = resample_probability

    @classmethod
    def of_seed(
        cls,
        exp: Experiment,
        space: SearchSpace,
        names: list[str],
        sizes: np.ndarray,
        seed: int,
        perturb: bool = True,
    ) -> Explorer:
        """Seed ``seed``'s explorer in ``exp``: its generator seeded by (``search.seed``,
        ``seed``), so a seed draws the same values in any Tuner, and random's draws
        (:func:`popmix.tune.trials.random_specs`) are the population's first values."""
        s = exp.search
        return cls(
            space,
            names,
            sizes,
            seed=s.seed * 1000 + seed,
            perturb=perturb,
            resample_probability=s.resample_probability,
            caps=exp.weight_caps(names, sizes),
            fixed=exp.weight_fixed(
                names, sizes, space.sample_weights.floor if space.sample_weights else 0.0
            ),
            unimax=UniMaxPolicy(
                np.asarray(sizes, dtype=np.float64), exp.train.steps, **exp.method_params("unimax")
            ).weights(0),
        )

    # -- explore ----------------------------------------------------------------------------
    def reseed(self, key: list[int]) -> None:
        """Draw from here on from a generator keyed by this explorer's seed and ``key`` (the
        decision: see :func:`popmix.tune.schedulers.seeded_draws`)."""
        self.rng = np.random.default_rng(np.random.SeedSequence([self.seed, *key]))

    def project(self, w: np.ndarray, spec: VectorSpec) -> np.ndarray:
        """``w`` on the simplex with ``spec``'s floor, and within the caps and at the fixed
        weights when ``spec`` is the space's sampling weights."""
        if spec is not self.space.sample_weights:
            return floor_project(w, spec.floor)
        return floor_project(w, spec.floor, self.caps, self.fixed)

    def explore_vector(self, parent: np.ndarray, spec: VectorSpec) -> np.ndarray:
        k = parent.size
        parent = self.project(parent, spec)
        if self.rng.random() < self.resample_probability:
            # A Dirichlet whose mean is the parent: a big jump that still remembers it.
            child = self.rng.dirichlet(spec.resample_concentration * k * parent)
        else:
            child = parent * np.exp(spec.sigma * self.rng.standard_normal(k))
        return self.project(child, spec)

    def __call__(self, config: dict[str, Any]) -> dict[str, Any]:
        """Explore a trial config ``{"spec": {...}}`` in place (Ray's custom_explore_fn)."""
        trial = config["spec"]
        for key, spec in self.space.vectors().items():
            if not isinstance(trial.get(key), dict):
                continue
            w = as_vector(self.names, trial[key])
            w = self.explore_vector(w, spec) if self.perturb else self.project(w, spec)
            trial[key] = as_dict(self.names, w)
        if self.space.temperature is not None:
            for key, (lo, hi) in self.space.temperature.bounds().items():
                if trial.get(key) is not None:
                    trial[key] = float(np.clip(trial[key], lo, hi))
        return config

    # -- initial population -----------------------------------------------------------------
    def anchor_vectors(self, spec: VectorSpec) -> list[np.ndarray]:
        """The mixtures ``init: anchors`` starts from, in order (a file not named among the
        anchors comes first: the user gave it), each on the simplex with its floor."""
        names = list(spec.anchors)
        if spec.init_file and "file" not in names:
            names.insert(0, "file")
        out = []
        for name in names:
            if name == "file":
                w = weights_from_file(spec.init_file, self.names)
            elif path := anchor_file(name):
                w = weights_from_file(path, self.names, "anchors: file:")
            elif name == "unimax":
                k = len(self.names)
                w = np.full(k, 1.0 / k) if self.unimax is None else self.unimax
            else:
                t = anchor_temperature(name)
                k = len(self.names)
                w = np.full(k, 1.0 / k) if t is None else temperature_weights(self.sizes, t)
            out.append(self.project(np.asarray(w, dtype=np.float64), spec))
        return out

    def _init_vector(self, spec: VectorSpec, member: int) -> np.ndarray:
        k = len(self.names)
        if spec.init == "anchors":
            anchors = self.anchor_vectors(spec)
            start = anchors[member % len(anchors)]
            # the anchors themselves first; then members one explore step from each in turn
            return start if member < len(anchors) else self.explore_vector(start, spec)
        if spec.init == "dirichlet":
            return self.project(self.rng.dirichlet(np.full(k, spec.init_concentration)), spec)
        if spec.init == "file":
            start = weights_from_file(spec.init_file, self.names)
        elif spec.init == "uniform":
            start = np.full(k, 1.0 / k)
        elif spec.init == "proportional":
            start = self.sizes / self.sizes.sum()
        else:
            start = temperature_weights(self.sizes, spec.init_temperature)
        start = self.project(start, spec)
        # Member 0 starts exactly at the named mixture; the others one explore step away.
        return start if member == 0 else self.explore_vector(start, spec)

    def initial_config(self, member: int) -> dict[str, Any]:
        """The searched keys of population member ``member``'s first configuration."""
        config: dict[str, Any] = {}
        for key, spec in self.space.vectors().items():
            config[key] = as_dict(self.names, self._init_vector(spec, member))
        temp = self.space.temperature
        if temp is not None:
            bounds = temp.bounds()
            if temp.init == "anchors" and member < len(temp.anchors):
                for (key, (lo, hi)), value in zip(bounds.items(), temp.anchors[member]):
                    config[key] = float(np.clip(value, lo, hi))
            else:
                for key, (lo, hi) in bounds.items():
                    config[key] = float(self.rng.uniform(lo, hi))
        return config
