"""Experiment and search-space YAML files, parsed into frozen dataclasses.

Unknown keys and values of the wrong type are rejected with one line that names the file, the
key and what is allowed (nanoGPT's two checks, without its ``exec``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from popmix.policies import POLICIES
from popmix.train.loop import TrainConfig
from popmix.train.model import ModelConfig

SEARCHERS = ("pbt", "pb2", "optuna")
#: methods that run as single trials beside the searched population.
BASELINES = ("stratified", "proportional", "temperature", "cooldown", "doge", "aioli")
#: what ``popmix search`` runs when the experiment does not say.
DEFAULT_METHODS = ("pbt", "stratified", "proportional", "temperature", "cooldown")
POPULATION = "pbt"  # the name of the searched population in ``methods``, whatever the searcher
OBJECTIVES = ("mean", "worst")  # or "domain:<name>"


class ConfigError(ValueError):
    """A bad experiment or search-space file, or a bad override."""


@dataclass(frozen=True)
class DataSpec:
    """Which domains: a built-in benchmark or a path to your own files."""

    benchmark: str = "brown16"
    tasks: int | None = 16
    path: str | None = None
    domain_column: str | None = None
    seed: int = 0  # seed of the synthetic generator


@dataclass(frozen=True)
class SearchSpec:
    """How the population searches.

    Args:
        searcher: ``pbt``, ``pb2`` or ``optuna``.
        space: search-space YAML file (relative paths: to the working directory, then to the
            experiment file, then to the packaged ``search_spaces/``).
        population: members of the PBT/PB2 population, or Optuna trials.
        report_every: optimizer steps between Tune reports (each report validates).
        perturbation_interval: reports between PBT decisions.
        quantile_fraction: bottom fraction that copies the top fraction (PBT).
        resample_probability: chance that explore resamples instead of perturbing.
        objective: ``mean`` (mean per-domain validation loss), ``worst`` or ``domain:<name>``.
        asha: stop bad Optuna trials early with ASHA (never the baselines).
        seed: seed of initial configurations and of the explore step.
    """

    searcher: str = "pbt"
    space: str = "sampling.yaml"
    population: int = 4
    report_every: int = 50
    perturbation_interval: int = 2
    quantile_fraction: float = 0.25
    resample_probability: float = 0.25
    objective: str = "mean"
    asha: bool = False
    seed: int = 0


@dataclass(frozen=True)
class Resources:
    """Per-trial resources. ``cpus_per_trial: auto`` shares the cluster's CPUs among all trials
    of a seed so that they run at once (PBT then compares members at equal progress instead
    of pausing and resuming them); torch threads = max(1, floor(cpus_per_trial))."""

    cpus_per_trial: float | str = "auto"
    gpus_per_trial: float = 0.0


@dataclass(frozen=True)
class Experiment:
    """One experiment file: benchmark, model, budget, methods and resources."""

    name: str = "search"
    data: DataSpec = field(default_factory=DataSpec)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=600, eval_windows=8))
    search: SearchSpec = field(default_factory=SearchSpec)
    methods: tuple[str, ...] = DEFAULT_METHODS
    baselines: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {
            "temperature": {"temperature": 3.0},
            "cooldown": {"t_start": 5.0, "t_end": 1.0, "switch_frac": 0.5},
            # the policy's defaults, the official universal setting (target validation,
            # mu 0.01), so popmix run --method doge and a search's doge trial are the same run
            "doge": {},
            "aioli": {
                "eta": 0.2,
                "lp_rounds": 1,
                "lp_steps": 4,
                "update_steps": 250,
                "one_hot_factor": 0.75,
                "eval_windows": 4,
            },
        }
    )
    seeds: tuple[int, ...] = (0,)
    resources: Resources = field(default_factory=Resources)
    source: str | None = None  # the file it came from (for messages)

    def replace(self, **changes: Any) -> Experiment:
        return dataclasses.replace(self, **changes)

    def validate(self) -> None:
        where = self.source or "experiment"
        try:
            self.model.validate()
            self.train.validate()
        except ValueError as e:
            raise ConfigError(f"{where}: {e}") from None
        s = self.search
        if s.searcher not in SEARCHERS:
            raise ConfigError(
                f"{where}: unknown searcher {s.searcher!r}; choose one of {', '.join(SEARCHERS)}"
            )
        for key in ("population", "report_every", "perturbation_interval"):
            if not isinstance(getattr(s, key), int) or getattr(s, key) < 1:
                raise ConfigError(f"{where}: search.{key} must be a positive integer")
        if not 0 < s.quantile_fraction <= 0.5:
            raise ConfigError(f"{where}: search.quantile_fraction must be in (0, 0.5]")
        if not 0 <= s.resample_probability <= 1:
            raise ConfigError(f"{where}: search.resample_probability must be in [0, 1]")
        if s.objective not in OBJECTIVES and not s.objective.startswith("domain:"):
            raise ConfigError(
                f"{where}: unknown objective {s.objective!r}; use mean, worst or domain:<name>"
            )
        if not self.methods:
            raise ConfigError(f"{where}: methods is empty; name at least one method")
        known = (POPULATION, *SEARCHERS, *BASELINES)
        for m in self.methods:
            if m not in known:
                raise ConfigError(
                    f"{where}: unknown method {m!r}; choose from {', '.join(dict.fromkeys(known))}"
                )
        for m, params in self.baselines.items():
            if m not in BASELINES or not isinstance(params, dict):
                raise ConfigError(
                    f"{where}: baselines.{m}: expected one of {', '.join(BASELINES)} with a "
                    "mapping of parameters"
                )
        if not self.seeds or not all(isinstance(x, int) for x in self.seeds):
            raise ConfigError(f"{where}: seeds must be a non-empty list of whole numbers")
        r = self.resources
        cpus_ok = r.cpus_per_trial == "auto" or (
            isinstance(r.cpus_per_trial, (int, float)) and r.cpus_per_trial > 0
        )
        if not (cpus_ok and isinstance(r.gpus_per_trial, (int, float)) and r.gpus_per_trial >= 0):
            raise ConfigError(
                f"{where}: cpus_per_trial must be > 0 or auto, and gpus_per_trial >= 0; got "
                f"{r.cpus_per_trial!r} and {r.gpus_per_trial!r}"
            )
        for key in ("path", "domain_column"):
            value = getattr(self.data, key)
            if value is not None and not isinstance(value, str):
                raise ConfigError(
                    f"{where}: data.{key} must be a string (a path or a column name) or null, "
                    f"got {value!r}"
                )
        if self.data.tasks is not None and (
            not isinstance(self.data.tasks, int)
            or isinstance(self.data.tasks, bool)
            or self.data.tasks < 1
        ):
            raise ConfigError(f"{where}: data.tasks must be at least 1, got {self.data.tasks}")

    @property
    def population_method(self) -> str:
        """The searcher's name, used as the population's method label."""
        return self.search.searcher

    def baseline_methods(self) -> list[str]:
        return [m for m in self.methods if m in BASELINES]

    def runs_population(self) -> bool:
        return any(m in (POPULATION, *SEARCHERS) for m in self.methods)


# ------------------------------------------------------------------------------------------------
# Search spaces


@dataclass(frozen=True)
class VectorSpec:
    """A per-domain weight vector kept on the simplex.

    Args:
        init: ``dirichlet`` (each member drawn from Dirichlet(init_concentration)), ``uniform``,
            ``proportional``, ``temperature`` or ``file`` (member 0 starts exactly there, the
            others from an explore step of it).
        init_file: for ``init: file``, a popmix weights file (``best_schedule.json``,
            ``bracket_schedule.json``, ``weights.json``, ``doge_weights-seed0.json``): its first
            point's weights are the starting mixture.
        init_concentration: Dirichlet concentration per domain for ``dirichlet`` init.
        init_temperature: T for ``temperature`` init.
        sigma: standard deviation of the log-space perturbation (PBT explore).
        resample_concentration: on resample, draw from Dirichlet(c · k · parent), centred on
            the parent (larger c: closer to it).
        floor: the smallest weight any domain keeps (must be < 1/k).
    """

    init: str = "dirichlet"
    init_file: str = ""
    init_concentration: float = 1.0
    init_temperature: float = 3.0
    sigma: float = 0.3
    resample_concentration: float = 5.0
    floor: float = 1e-3


@dataclass(frozen=True)
class TemperatureSpec:
    """Bounds of the temperature schedule T_start → T_end switched at ``switch_frac``."""

    t_start: tuple[float, float] = (1.0, 10.0)
    t_end: tuple[float, float] = (0.5, 3.0)
    switch_frac: tuple[float, float] = (0.1, 0.9)
    shape: str = "step"

    def bounds(self) -> dict[str, tuple[float, float]]:
        return {"t_start": self.t_start, "t_end": self.t_end, "switch_frac": self.switch_frac}


@dataclass(frozen=True)
class SearchSpace:
    """What the population searches: any of sampling weights, loss weights, temperature."""

    sample_weights: VectorSpec | None = None
    loss_weights: VectorSpec | None = None
    temperature: TemperatureSpec | None = None
    source: str | None = None

    def vectors(self) -> dict[str, VectorSpec]:
        out = {}
        if self.sample_weights is not None:
            out["sample_weights"] = self.sample_weights
        if self.loss_weights is not None:
            out["loss_weights"] = self.loss_weights
        return out

    def validate(self, n_domains: int | None = None) -> None:
        where = self.source or "search space"
        if self.sample_weights is None and self.loss_weights is None and self.temperature is None:
            raise ConfigError(
                f"{where}: searches nothing; give sample_weights, loss_weights or temperature"
            )
        if self.sample_weights is not None and self.temperature is not None:
            raise ConfigError(
                f"{where}: sample_weights and temperature both set the sampling mixture; "
                "keep one (add loss_weights to search both sampling and loss)"
            )
        for key, v in self.vectors().items():
            if v.init not in ("dirichlet", "uniform", "proportional", "temperature", "file"):
                raise ConfigError(
                    f"{where}: {key}.init {v.init!r} is unknown; use dirichlet, uniform, "
                    "proportional, temperature or file"
                )
            if v.init == "file" and not Path(v.init_file).is_file():
                raise ConfigError(
                    f"{where}: {key}.init_file {v.init_file!r} not found (init: file needs a "
                    "popmix weights file)"
                )
            for name in ("init_concentration", "init_temperature", "resample_concentration"):
                if not getattr(v, name) > 0:
                    raise ConfigError(f"{where}: {key}.{name} must be > 0")
            if not v.sigma >= 0:
                raise ConfigError(f"{where}: {key}.sigma must be >= 0")
            if not 0 <= v.floor or (n_domains and v.floor * n_domains >= 1):
                raise ConfigError(
                    f"{where}: {key}.floor {v.floor} must be >= 0 and below 1/k "
                    f"({1 / n_domains if n_domains else 'k = number of domains'})"
                )
        if self.temperature is not None:
            for key, (lo, hi) in self.temperature.bounds().items():
                if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo <= hi):
                    raise ConfigError(
                        f"{where}: temperature.{key} must be [low, high] with 0 < low <= high, "
                        f"got [{lo}, {hi}]"
                    )
            if self.temperature.switch_frac[1] > 1:
                raise ConfigError(f"{where}: temperature.switch_frac must lie in (0, 1]")
            if self.temperature.shape not in ("step", "linear"):
                raise ConfigError(f"{where}: temperature.shape must be step or linear")


# ------------------------------------------------------------------------------------------------
# Parsing


def _build(cls: type, data: Any, where: str, skip: tuple[str, ...] = ()) -> Any:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys and wrong types."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    allowed = {f.name: f for f in fields(cls) if f.name not in skip and f.name != "source"}
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r}; known keys: {', '.join(sorted(allowed))}"
        )
    defaults = cls()
    out = {}
    for key, value in data.items():
        default = getattr(defaults, key)
        out[key] = _coerce(value, default, f"{where}.{key}")
    return dataclasses.replace(defaults, **out)


def _coerce(value: Any, default: Any, where: str) -> Any:
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(default, (int, float)) and not isinstance(default, bool):
        if not isinstance(value, type(default)) or isinstance(value, bool):
            raise ConfigError(f"{where}: expected a {type(default).__name__}, got {value!r}")
        return value
    if isinstance(default, tuple):
        if not isinstance(value, (list, tuple)) or (default and len(value) != len(default)):
            raise ConfigError(f"{where}: expected a list like {list(default)}, got {value!r}")
        return tuple(
            float(v) if isinstance(v, int) and default and isinstance(default[0], float) else v
            for v in value
        )
    if where.endswith("cpus_per_trial"):
        if value == "auto" or (isinstance(value, (int, float)) and not isinstance(value, bool)):
            return float(value) if value != "auto" else value
        raise ConfigError(f"{where}: expected a number or auto, got {value!r}")
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
    return value


def _read_yaml(path: Path) -> Any:
    if not path.is_file():
        raise ConfigError(f"file not found: {path}")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: malformed YAML{at}: {getattr(e, 'problem', e)}") from None


def experiment_from_dict(data: Any, where: str = "experiment") -> Experiment:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping at the top level")
    allowed = {f.name for f in fields(Experiment)} - {"source"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r}; known keys: {', '.join(sorted(allowed))}"
        )
    exp = Experiment(source=where)
    changes: dict[str, Any] = {}
    if "name" in data:
        changes["name"] = _coerce(data["name"], "", f"{where}.name")
    if "data" in data:
        raw = dict(data["data"] or {})
        spec = _build(
            DataSpec,
            {k: v for k, v in raw.items() if k not in ("tasks", "path", "domain_column")},
            f"{where}.data",
        )
        for key in ("tasks", "path", "domain_column"):
            if key in raw:
                spec = dataclasses.replace(spec, **{key: raw[key]})
        changes["data"] = spec
    if "model" in data:
        changes["model"] = _build(ModelConfig, data["model"], f"{where}.model")
    if "train" in data:
        base = Experiment().train
        train = _build(TrainConfig, data["train"], f"{where}.train", skip=("seed", "threads"))
        given = data["train"] or {}
        changes["train"] = dataclasses.replace(base, **{k: getattr(train, k) for k in given})
    if "search" in data:
        changes["search"] = _build(SearchSpec, data["search"], f"{where}.search")
    if "resources" in data:
        changes["resources"] = _build(Resources, data["resources"], f"{where}.resources")
    if "methods" in data:
        if not isinstance(data["methods"], list):
            raise ConfigError(f"{where}.methods: expected a list of method names")
        changes["methods"] = tuple(data["methods"])
    if "seeds" in data:
        seeds = data["seeds"]
        changes["seeds"] = tuple(seeds) if isinstance(seeds, list) else (seeds,)
    if "baselines" in data:
        merged = dict(exp.baselines)
        merged.update(data["baselines"] or {})
        changes["baselines"] = merged
    exp = exp.replace(**changes)
    exp.validate()
    return exp


def load_experiment(path: str | Path) -> Experiment:
    """Read and validate an experiment YAML file."""
    path = Path(path)
    return experiment_from_dict(_read_yaml(path), str(path))


def space_from_dict(data: Any, where: str = "search space") -> SearchSpace:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping at the top level")
    allowed = ("sample_weights", "loss_weights", "temperature")
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; known keys: {', '.join(allowed)}")
    space = SearchSpace(
        sample_weights=(
            _build(VectorSpec, data["sample_weights"], f"{where}.sample_weights")
            if "sample_weights" in data
            else None
        ),
        loss_weights=(
            _build(VectorSpec, data["loss_weights"], f"{where}.loss_weights")
            if "loss_weights" in data
            else None
        ),
        temperature=(
            _build(TemperatureSpec, data["temperature"], f"{where}.temperature")
            if "temperature" in data
            else None
        ),
        source=where,
    )
    space.validate()
    return space


def packaged_dir(kind: str) -> Path:
    """The shipped ``experiments/`` or ``search_spaces/`` folder (package data of popmix)."""
    from importlib.resources import files

    return Path(str(files("popmix.configs") / kind))


def resolve_experiment_path(path: str) -> Path:
    """An experiment file as given, else the shipped one of that name (so
    ``--experiment experiments/smoke.yaml`` works outside the repository too)."""
    p = Path(path)
    if p.is_file() or p.is_absolute():
        return p
    shipped = packaged_dir("experiments") / p.name
    return shipped if shipped.is_file() else p


def resolve_space_path(space: str, experiment_source: str | None) -> Path:
    """Find a search-space file: as given, next to the experiment file, or in search_spaces/."""
    p = Path(space)
    candidates = [p]
    if experiment_source and not p.is_absolute():
        candidates.append(Path(experiment_source).parent.parent / "search_spaces" / p)
        candidates.append(Path(experiment_source).parent / p)
    candidates.append(packaged_dir("search_spaces") / p.name)
    for c in candidates:
        if c.is_file():
            return c
    raise ConfigError(
        f"search space {space!r} not found (looked in the working directory and search_spaces/)"
    )


def load_space(path: str | Path) -> SearchSpace:
    """Read and validate a search-space YAML file."""
    path = Path(path)
    return space_from_dict(_read_yaml(path), str(path))


def check_baseline_params(exp: Experiment, sizes: Any, names: list[str] | None = None) -> None:
    """Build every baseline policy once, so a bad parameter fails before Ray starts."""
    from popmix.policies import PolicyError, build_policy

    for m in exp.baseline_methods():
        try:
            build_policy(m, sizes, exp.train.steps, exp.baselines.get(m, {}))
        except PolicyError as e:
            raise ConfigError(f"{exp.source or 'experiment'}: baselines.{m}: {e}") from None
    target = str(exp.baselines.get("doge", {}).get("target", ""))
    if "doge" in exp.methods and target.startswith("domain:") and names is not None:
        if target.split(":", 1)[1] not in names:
            raise ConfigError(
                f"{exp.source or 'experiment'}: baselines.doge.target {target!r} is not one of "
                f"the domains ({', '.join(names[:4])}...)"
            )
    assert set(BASELINES) <= set(POLICIES)
