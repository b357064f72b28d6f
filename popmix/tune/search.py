"""``popmix search``: the population and the baselines as trials of one Tuner per group of
seeds (one seed at a time unless the cluster holds several seeds' trials at once).

Files written under ``<storage>/<name>/`` (the experiment folder, also TensorBoard's logdir):

- ``seed<S>/`` (``seed<S1>_<S2>_.../`` for seeds run at once): Tune's experiment folder; one
  sub-folder per trial with its ``progress.csv``, ``result.json`` and checkpoints;
- ``tensorboard/seed<S>/<method>[-member<M>|-draw<D>]/``: each trial's TensorBoard events
  (per-domain losses and weights, temperature, objective, HParams), written by the driver as
  results arrive;
- ``lineage-seed<S>.jsonl``: one row per PBT exploit decision (taken, or skipped as within
  the noise of the two validation reads), written as they happen;

and under ``--out`` (default: the experiment folder): ``summary.json``, ``best_schedule.json``,
``lineage.json`` and, for each baseline that learns its weights (DoGE, Aioli),
``<method>_weights-seed<S>.json``; every weights file in :mod:`popmix.records.weights`'s format.

:func:`run_search` runs in three parts: :func:`resolve` (everything checked and loaded, no
Ray), a :class:`RaySession` (what the search changes in this process, restored afterwards) and
one Tuner per group of seeds (:func:`_tuner`), whose trials are
:class:`popmix.tune.spec.TrialSpec`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import math
import os
import random
import signal
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from popmix._util.atomic import write_json
from popmix.config import (
    BEST_OF_N,
    ConfigError,
    Experiment,
    SearchSpace,
    check_method_params,
    experiment_to_dict,
)
from popmix.data import load_experiment_domains, model_vocab
from popmix.data.domains import DomainSet, check_vocab, domain_groups
from popmix.policies import learns_weights
from popmix.records.trial import CONFIG_KEY, TrialSpec
from popmix.records.weights import SchedulePoint, WeightsSchedule
from popmix.tune.explore import Explorer, weights_from_file
from popmix.tune.resume import (
    finished,
    read_search_file,
    rebase,
    rebased,
    write_search_file,
)
from popmix.tune.spec import TrialSettings
from popmix.tune.storage import RemoteStorage, checkpoint_retention, is_uri, mirror_callback


@dataclass
class SearchOptions:
    """Where and how to run (not what): the CLI's cluster and output options."""

    address: str | None = None  # None: start an embedded local Ray
    storage: str = "runs"
    name: str | None = None
    out: str | None = None
    cpus: int | None = None  # CPUs of the embedded Ray (default: all of this machine's)
    quiet: bool = False
    #: continue the search already in <storage>/<name> (:func:`resume_search`)
    resume: bool = False


def baseline_specs(exp: Experiment, seed: int, names: list[str]) -> list[TrialSpec]:
    """The methods that run as single trials, with the experiment's parameters; best-of-n as
    one trial per draw it trains itself (see :meth:`Experiment.best_of_n_draws`)."""
    specs = []
    for method in exp.baseline_methods():
        if method == BEST_OF_N:
            base = TrialSpec.single(exp, method, seed, names)
            specs += [base.replace(draw=k) for k in exp.best_of_n_draws()]
        else:
            specs.append(TrialSpec.single(exp, method, seed, names))
    return specs


def population_specs(exp: Experiment, explorer: Explorer, seed: int) -> list[TrialSpec]:
    """The population's members, each at its first configuration."""
    return [
        TrialSpec(exp.population_method, seed, member=m, params=explorer.initial_config(m))
        for m in range(exp.search.population)
    ]


def _trial_name(trial: Any) -> str:
    return f"{TrialSpec.from_config(trial.config).method}_{trial.trial_id}"


def check_address(address: str) -> None:
    """Fail fast, in one line, when a cluster address does not answer."""
    if address in ("auto", "local") or address.startswith("ray://"):
        return
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=5):
            pass
    except (OSError, ValueError) as e:
        raise ConfigError(
            f"cannot reach a Ray cluster at --address {address!r} ({e}); check the address "
            "(host:port of the head node) or leave out --address to start a local Ray"
        ) from None


def start_ray(opts: SearchOptions) -> bool:
    """Connect to ``opts.address`` or start an embedded local Ray; True if we started it."""
    import ray

    if ray.is_initialized():
        return False
    quiet: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
    if opts.address is None:
        ray.init(
            address="local", num_cpus=opts.cpus or os.cpu_count(), include_dashboard=False, **quiet
        )
    else:
        check_address(opts.address)  # ray.init would retry for minutes
        ray.init(address=opts.address, **quiet)
    return True


def trials_per_seed(exp: Experiment) -> int:
    """Trials of one seed that run at once in its Tuner (the swarm's: as many as it trains at
    once, ``search.swarm.parallel``)."""
    singles = len(exp.baseline_methods()) - (BEST_OF_N in exp.methods)
    population = exp.search.population if exp.runs_population() else 0
    swarm = exp.search.swarm.concurrent(exp.search.population) if exp.runs_swarm() else 0
    return population + singles + len(exp.best_of_n_draws()) + swarm


def _alive_nodes() -> list[dict[str, float]]:
    """Total resources of each alive node (not what is free now: a trial may wait for those)."""
    import ray

    return [dict(n.get("Resources", {})) for n in ray.nodes() if n.get("Alive")]


def resolve_cpus(exp: Experiment, n_trials: int | None = None) -> float:
    """CPUs per trial; ``auto`` splits the cluster's CPUs so that ``n_trials`` (default: every
    trial of a seed) run at once.

    A trial runs on one node, so ``auto`` never asks for more than the largest node has.
    """
    if exp.resources.cpus_per_trial != "auto":
        return float(exp.resources.cpus_per_trial)
    import ray

    total = ray.cluster_resources().get("CPU", 1.0)
    largest = max((n.get("CPU", 0.0) for n in _alive_nodes()), default=total)
    n = trials_per_seed(exp) if n_trials is None else n_trials
    return max(0.01, min(largest, round(total / n, 2)))


def _autoscaler_node_types() -> dict[str, dict[str, float]] | None:
    """Per-node resources of each node type the autoscaler can still add.

    ``{}`` when the cluster autoscales but does not publish its node types (the cluster
    launcher's bootstrap file, the sign Tune itself uses); ``None`` when it does not autoscale,
    or when that cannot be told (then a trial that fits no node fails rather than waits).
    """
    import ray._private.state
    from ray.tune.execution.cluster_info import _is_ray_cluster

    try:
        # Written to the GCS by autoscaler v2 and KubeRay; Ray Train and Data read it the same way.
        config = ray._private.state.state.get_cluster_config()
    except Exception:
        config = None
    if config is not None and config.node_group_configs:
        types = {}
        for group in config.node_group_configs:
            can_add = group.max_count == -1 or group.max_count > group.min_count
            if group.resources and can_add:
                types[group.name or "?"] = {k: float(v) for k, v in group.resources.items()}
        return types
    return {} if _is_ray_cluster() else None


def _fits(request: dict[str, float], node: dict[str, float]) -> bool:
    return all(node.get(k, 0.0) >= v for k, v in request.items() if v > 0)


def _describe(res: dict[str, float], keys: tuple[str, ...]) -> str:
    parts = []
    for k in keys:
        v = float(res.get(k, 0.0))
        if k == "memory":
            parts.append(f"{v / 2**30:.1f} GiB memory")
        else:
            parts.append(f"{v:g} {k}{'s' if k in ('CPU', 'GPU') and v != 1 else ''}")
    return ", ".join(parts)


def check_trial_fits(
    request: dict[str, float],
    nodes: list[dict[str, float]],
    node_types: dict[str, dict[str, float]] | None,
    where: str = "the experiment file",
) -> str | None:
    """Fail fast when no node can ever hold one trial (Tune would wait for it forever).

    Args:
        request: what one trial asks for, in Ray's resource names (``CPU``, ``GPU``, ``memory``).
        nodes: the total resources of every alive node.
        node_types: what the autoscaler can add (see ``_autoscaler_node_types``).
        where: where the user sets ``resources:``, for the message.

    Returns:
        None when a node can hold a trial now; otherwise, on an autoscaling cluster that can (or
        may) add such a node, the line to tell the user that the search waits for nodes.

    Raises:
        ConfigError: no node can hold a trial and none can be added.
    """
    if any(_fits(request, n) for n in nodes):
        return None
    keys = tuple(k for k in ("CPU", "GPU", "memory") if k in request) + tuple(
        k for k in request if k not in ("CPU", "GPU", "memory")
    )
    asked = _describe(request, keys)
    shapes = Counter(_describe(n, keys) for n in nodes)
    have = "; ".join(f"{c} with {d}" for d, c in shapes.items()) or "none alive"
    if node_types is not None:
        addable = [name for name, res in node_types.items() if _fits(request, res)]
        if addable or not node_types:
            to_add = f" of type {', '.join(addable)}" if addable else " that can hold one"
            return (
                f"popmix search: no node can hold a trial yet ({asked}; nodes: {have}); waiting "
                f"for the autoscaler to add a node{to_add}"
            )
    hints = []
    for k, flag in (("CPU", "--cpus-per-trial"), ("GPU", "--gpus-per-trial")):
        most = max((n.get(k, 0.0) for n in nodes), default=0.0)
        if request.get(k, 0.0) > most:
            hints.append(f"{flag} {most:g}" if most > 0 or k == "GPU" else flag)
    fix = " ".join(hints) if hints else "--cpus-per-trial/--gpus-per-trial"
    types = "; ".join(f"{t} with {_describe(r, keys)}" for t, r in (node_types or {}).items())
    raise ConfigError(
        f"each trial asks for {asked}, but no node of the Ray cluster can hold that (nodes: "
        f"{have}{'; the autoscaler can add only ' + types if types else ''}); change "
        f"resources: in {where} or pass {fix}"
    )


class SeedExplorers:
    """PBT's explore step for a Tuner that runs several seeds: each seed's members are
    explored by that seed's own :class:`Explorer` (and so draw the same values as in a Tuner
    of their own)."""

    def __init__(self, by_seed: dict[int, Explorer]) -> None:
        self.by_seed = by_seed

    def __call__(self, config: dict[str, Any]) -> dict[str, Any]:
        return self.by_seed[int(config[CONFIG_KEY]["seed"])](config)


def _scheduler_and_space(
    exp: Experiment,
    space: SearchSpace,
    domains: DomainSet,
    seeds: list[int],
    exp_dir: Path,
    progress: Any,
) -> tuple[Any, Any, dict[str, Any], int]:
    """(scheduler, search_alg, param_space, num_samples) for the Tuner of ``seeds`` (one seed
    for Optuna, whose searcher models one population)."""
    from ray import tune

    from popmix.tune.schedulers import (
        PopulationASHA,
        PopulationPBT,
        WithFixedTrials,
        make_pb2,
    )
    from popmix.tune.swarm import run_specs

    s = exp.search
    names = domains.names
    n_reports = math.ceil(exp.train.steps / s.report_every)
    baselines = [b for seed in seeds for b in baseline_specs(exp, seed, names)]
    # after the baselines and the population: they run from the start, the swarm's short
    # runs fill the rest
    swarm_runs = (
        [r for seed in seeds for r in run_specs(exp, seed, names, domains.sizes)]
        if exp.runs_swarm()
        else []
    )
    explorers = {
        seed: Explorer(
            space,
            names,
            domains.sizes,
            seed=s.seed * 1000 + seed,
            perturb=s.searcher == "pbt",
            resample_probability=s.resample_probability,
        )
        for seed in seeds
    }
    population = (
        [m for seed in seeds for m in population_specs(exp, explorers[seed], seed)]
        if exp.runs_population()
        else []
    )

    if s.searcher == "optuna" and population:
        from ray.tune.search.optuna import OptunaSearch  # imports optuna: only when used

        if len(seeds) != 1:
            raise ValueError("an Optuna search runs one seed per Tuner")
        seed = seeds[0]
        searched: dict[str, Any] = {}
        for key, spec in space.vectors().items():
            low = max(spec.floor, 1e-4)
            searched[key] = {n: tune.loguniform(low, 1.0) for n in names}
        if space.temperature is not None:
            for key, (lo, hi) in space.temperature.bounds().items():
                searched[key] = tune.uniform(lo, hi)
        optuna_space: Any = {CONFIG_KEY: searched}  # Tune's domains, which OptunaSearch takes
        optuna_search = OptunaSearch(
            space=optuna_space,
            metric="objective",
            mode="min",
            seed=s.seed * 1000 + seed,
        )
        member = TrialSpec(exp.population_method, seed, member=0)
        searcher = WithFixedTrials(
            optuna_search, baselines, member, later=swarm_runs, members=s.population
        )
        param_space: dict[str, Any] = {}  # the searcher holds it (see WithFixedTrials)
        asha = None
        if s.asha:
            asha = PopulationASHA(
                time_attr="training_iteration",
                max_t=n_reports,
                grace_period=max(1, n_reports // 4),
                reduction_factor=2,
            )
        return asha, searcher, param_space, len(baselines) + len(swarm_runs) + s.population

    # One grid point per trial, each a complete spec: baselines and members in one Tuner.
    specs = [t.to_config()[CONFIG_KEY] for t in population + baselines + swarm_runs]
    param_space = {CONFIG_KEY: tune.grid_search(specs)}
    if not population:
        return None, None, param_space, 1
    scheduler: Any
    common: dict[str, Any] = dict(
        time_attr="training_iteration",
        perturbation_interval=s.perturbation_interval,
        quantile_fraction=s.quantile_fraction,
        custom_explore_fn=SeedExplorers(explorers),
    )
    if s.searcher == "pbt":
        # Vectors are explored by the Explorer only; scalars by Ray, then clipped by it.
        mutations: dict[str, Any] = {}
        if space.temperature is not None:
            scalars = space.temperature.bounds().items()
            mutations = {"spec": {k: tune.uniform(lo, hi) for k, (lo, hi) in scalars}}
        scheduler = PopulationPBT(
            hyperparam_mutations=mutations, resample_probability=s.resample_probability, **common
        )
    else:
        bounds: dict[str, Any] = {}
        for key, spec in space.vectors().items():
            bounds[key] = {n: [spec.floor, 1.0] for n in names}
        if space.temperature is not None:
            bounds.update({k: list(b) for k, b in space.temperature.bounds().items()})
        scheduler = make_pb2(hyperparam_bounds={"spec": bounds}, **common)
    scheduler.lineage_dir = exp_dir
    scheduler.margin_setting = s.exploit_margin
    scheduler.on_exploit = progress.exploit if progress is not None else None
    return scheduler, None, param_space, 1


def seeds_per_tuner(exp: Experiment) -> int:
    """How many seeds one Tuner runs at once: as many as the cluster holds with every trial
    of each at one CPU (``cpus_per_trial: auto``) or at its fixed request (and its GPUs),
    at least 1. Optuna models one population, so it runs one seed per Tuner."""
    import ray

    n = len(exp.seeds)
    if n == 1 or exp.search.searcher == "optuna":
        return 1
    per_seed = trials_per_seed(exp)
    total = ray.cluster_resources()
    cpus = exp.resources.cpus_per_trial
    fit = int(total.get("CPU", 0.0) // (per_seed * (1.0 if cpus == "auto" else float(cpus))))
    gpus = exp.resources.gpus_per_trial
    if gpus > 0:
        fit = min(fit, int(total.get("GPU", 0.0) // (per_seed * gpus)))
    return max(1, min(n, fit))


def seed_groups(seeds: tuple[int, ...], per_tuner: int) -> list[list[int]]:
    """The seeds in order, ``per_tuner`` to a Tuner."""
    return [list(seeds[i : i + per_tuner]) for i in range(0, len(seeds), per_tuner)]


def tuner_name(seeds: list[int]) -> str:
    """Tune's experiment folder of a Tuner: ``seed3``, or ``seed0_1_2`` for several seeds."""
    return "seed" + "_".join(str(s) for s in seeds)


class StepLedger:
    """Optimizer steps, training seconds and wall-clock time of each trial, from the driver's
    stream of results (replays after an exploit included).

    A Tune callback: trial files can be rewritten when PBT restores a trial, the driver's
    stream of results cannot. The wall-clock time runs from a trial's first start to its last
    result or its end. (Ray's ``time_total_s`` is no trial's total: it counts only time spent
    inside ``step`` and, after a PBT exploit, continues the donor's count.)

    With a ``path``, the ledger is kept in that JSON file after every event and read back when
    a Tuner starts (``setup``): a search resumed after its driver was killed
    (``popmix search --resume``) continues the counts, whose copy of this callback Tune
    unpickles from ``tuner.pkl`` as it was when the search began. Steps trained again after a
    resume (those after a trial's last saved checkpoint) are counted: they were trained.
    Times are wall-clock (``time.time``), so a trial's wall time spans the resume.
    """

    def __new__(cls, path: Path | None = None, clock: Any = time.time) -> Any:
        from ray.tune import Callback

        class _Ledger(Callback):
            def __init__(self) -> None:
                self.path = path
                self.steps: dict[str, int] = {}
                self.train_time: dict[str, float] = {}
                self.started: dict[str, float] = {}
                self.last_seen: dict[str, float] = {}
                # trial path -> (trial_id, config): a trial stopped before its first report
                # has neither in its Result
                self.trials: dict[str, tuple[str, dict[str, Any]]] = {}
                # restarts after a dead worker process or node (FailureConfig)
                self.retries: dict[str, int] = {}
                self.load()

            _FIELDS = ("steps", "train_time", "started", "last_seen", "retries")

            def __setstate__(self, state: dict[str, Any]) -> None:
                self.__dict__.update(state)
                self.path = rebase(self.path)  # resumed in another folder (tune.resume)

            def load(self) -> None:
                if self.path is None or not self.path.is_file():
                    return
                saved = json.loads(self.path.read_text())
                for key in self._FIELDS:
                    getattr(self, key).update(saved.get(key, {}))
                self.trials.update({p: (t, c) for p, (t, c) in saved.get("trials", {}).items()})

            def save(self) -> None:
                if self.path is None:
                    return
                data = {key: getattr(self, key) for key in self._FIELDS}
                data["trials"] = self.trials
                write_json(self.path, data, default=str)  # a kill leaves the previous one

            def setup(self, **info):
                self.load()

            def wall_time(self, trial_id: str) -> float | None:
                if trial_id not in self.started or trial_id not in self.last_seen:
                    return None
                return self.last_seen[trial_id] - self.started[trial_id]

            def _seen(self, trial: Any) -> None:
                now = clock()
                self.started.setdefault(trial.trial_id, now)
                self.last_seen[trial.trial_id] = now
                self.trials[trial.path] = (trial.trial_id, trial.config)

            def on_experiment_end(self, trials, **info):
                self.trials.update({t.path: (t.trial_id, t.config) for t in trials})
                self.save()

            def on_trial_start(self, iteration, trials, trial, **info):
                self.started.setdefault(trial.trial_id, clock())
                self.trials[trial.path] = (trial.trial_id, trial.config)
                self.save()

            def on_trial_result(self, iteration, trials, trial, result, **info):
                tid = trial.trial_id
                self._seen(trial)
                self.steps[tid] = self.steps.get(tid, 0) + int(result.get("steps_this_report", 0))
                t = float(result.get("time_train_s", 0.0))
                self.train_time[tid] = self.train_time.get(tid, 0.0) + t
                self.save()

            def on_trial_complete(self, iteration, trials, trial, **info):
                self._seen(trial)
                self.save()

            def on_trial_recover(self, iteration, trials, trial, **info):
                self.retries[trial.trial_id] = self.retries.get(trial.trial_id, 0) + 1
                self.save()

            def on_trial_error(self, iteration, trials, trial, **info):
                self._seen(trial)
                self.save()

        return _Ledger()


def _records(
    grid: Any, population_method: str, ledger: Any, interrupted: bool = False
) -> list[dict[str, Any]]:
    """Plain per-trial records from a ResultGrid (what reporting/summary.py consumes)."""
    records = []
    for result in grid:
        known_id, known_config = ledger.trials.get(result.path, (None, {}))
        config = result.config or known_config
        spec = TrialSpec.from_config(config) if config else TrialSpec("?")
        metrics = dict(result.metrics or {})
        trial_id = metrics.get("trial_id") or known_id or result.path
        train_steps = ledger.steps.get(trial_id)
        train_time = ledger.train_time.get(trial_id)
        schedule = None
        if result.checkpoint is not None:
            with result.checkpoint.as_directory() as d:
                p = Path(d, "schedule.json")
                if p.is_file():
                    schedule = WeightsSchedule.read(p)
        if result.error is not None:
            status = "error"
        elif metrics.get("diverged"):
            status = "diverged"
        elif "test_mean_ppl" in metrics:
            status = "ok"
        else:
            status = "interrupted" if interrupted else "incomplete"
        records.append(
            {
                "trial_id": trial_id,
                "method": population_method if spec.is_member else spec.method,
                "seed": spec.seed,
                "member": spec.member,
                "policy": spec.policy,
                "draw": spec.draw,
                "run_seed": spec.run_seed,
                "status": status,
                "metrics": {k: v for k, v in metrics.items() if k != "config"},
                "train_steps": train_steps,
                "train_time_s": train_time,
                "wall_time_s": ledger.wall_time(trial_id),
                "retries": ledger.retries.get(trial_id, 0),
                "schedule": schedule,
                "params": dict(spec.params),
                "error": None if result.error is None else _error_line(result.error),
                "path": result.path,
            }
        )
    return records


def _error_line(error: BaseException) -> str:
    """The line of a trial's error that names its cause: Ray wraps the trial's own exception
    (e.g. popmix's one-line DeviceError) below its own first line ("The actor died because
    of an error raised in its creation task..."), so the last non-empty line."""
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    return (lines[-1] if lines else type(error).__name__)[:300]


def oracle_for(exp: Experiment, domains: DomainSet) -> dict[str, Any] | None:
    """``summary.json``'s ``oracle``: the benchmark's shipped oracle mixture (``weights``,
    ``mean_test_loss`` over its ``seeds``, ``std``), and whether it ``applies`` to this
    search: an oracle is the best static mixture for one proxy, so another model, other
    training settings or other domains make it no oracle (``why``). None when the benchmark
    has no oracle."""
    found = domains.meta.get("oracle")
    if not found:
        return None
    proxy = found["proxy"]
    model = dataclasses.asdict(exp.model)
    why = None
    if list(found["weights"]) != domains.names:
        why = "the search's domains are not the oracle's 16"
    else:
        diff = [f"model.{k}" for k in sorted(model) if proxy["model"].get(k) != model[k]]
        diff += [
            f"train.{k}" for k, v in sorted(proxy["train"].items()) if getattr(exp.train, k) != v
        ]
        if diff:
            verb = "differs" if len(diff) == 1 else "differ"
            why = f"{', '.join(diff)} {verb} from the oracle's proxy"
    return {
        "weights": found["weights"],
        "mean_test_loss": found["mean_test_loss"],
        "seeds": found["seeds"],
        "std": found["std"],
        "proxy": proxy,
        "applies": why is None,
        "why": why,
    }


def _write_outputs(
    records: list[dict[str, Any]],
    exp: Experiment,
    domains: DomainSet,
    exp_dir: Path,
    out: Path,
    wall: float,
    interrupted: bool = False,
    surfaces: dict[int, dict[str, Any]] | None = None,
) -> tuple[dict[str, Any], WeightsSchedule | None]:
    """summary.json, best_schedule.json, lineage.json and <method>_weights-seed<S>.json;
    with a swarm, surface.json, swarm_optimum[-seed<S>].json and the surface's plots."""
    from popmix.reporting.summary import (
        best_schedule,
        comparisons,
        exploit_counts,
        group_intervals,
        method_intervals,
        oracle_gaps,
        summarize,
    )
    from popmix.reporting.tensorboard import write_method_summary

    names = domains.names
    summary = summarize(records, exp.population_method)
    if exp.runs_swarm():
        from popmix.reporting.summary import swarm_section

        summary["swarm"] = swarm_section(records, surfaces or {}, names, exp)
    summary["comparisons"] = comparisons(summary)
    summary["reference"] = exp.search.reference
    summary["methods"] = method_intervals(summary, exp.search.reference)
    summary["groups"] = group_intervals(
        summary, domain_groups(domains, exp.data.groups), exp.search.reference
    )
    # restarts after a dead worker process or node, over every trial
    summary["retries"] = sum(r.get("retries") or 0 for r in records)
    summary["oracle"] = oracle_for(exp, domains)
    if summary["oracle"] and summary["oracle"]["applies"]:
        oracle_gaps(summary, summary["oracle"])
    # what popmix confirm retrains from, with the data's folder made absolute
    config = experiment_to_dict(exp)
    if config["data"].get("path"):
        config["data"]["path"] = str(Path(config["data"]["path"]).resolve())
    summary["experiment_config"] = config
    summary.update(
        experiment=exp.name,
        benchmark=domains.name,
        domains=names,
        # what the priors (proportional, temperature, Cooldown) are computed from: a corpus's
        # own sizes (its manifest), in its unit, not the sample's
        sizes={d.name: d.n_tokens for d in domains},
        sizes_unit=(domains.meta.get("manifest") or {}).get("unit", "bytes"),
        sizes_estimated=bool((domains.meta.get("manifest") or {}).get("estimated", False)),
        manifest=domains.meta.get("manifest"),
        sample=domains.meta.get("sample"),
        # the ids the proxy embeds: 256 bytes of text, a tokenizer's, a pre-tokenized
        # corpus's own, or an hf_config's
        vocab_size=check_vocab(domains, model_vocab(exp.model)),
        # the best achievable loss per domain, when known (synthetic domains)
        entropy_rate=(
            {d.name: d.entropy_rate for d in domains}
            if all(d.entropy_rate is not None for d in domains)
            else None
        ),
        searcher=exp.search.searcher,
        objective=exp.search.objective,
        steps_per_model=exp.train.steps,
        wall_time_s=wall,
        # Ctrl-C: the rows of seeds that had not started are missing
        interrupted=interrupted,
        experiment_dir=str(exp_dir),
        tensorboard=f"tensorboard --logdir {exp_dir}",
    )
    # exploits taken, and those skipped as within the noise of the two validation reads
    lineage: dict[str, Any] = {"exploits": [], "skipped_within_noise": [], "members": {}}
    for seed in exp.seeds:
        p = exp_dir / f"lineage-seed{seed}.jsonl"
        if p.is_file():
            for row in (json.loads(x) for x in p.read_text().splitlines() if x):
                kind = "skipped_within_noise" if row.get("skipped_within_noise") else "exploits"
                lineage[kind].append(row)
    for r in records:
        if r["member"] >= 0 and r["schedule"]:
            # each member's schedule in the weights format, with its place in the population
            member = r["schedule"].replace(
                method=r["method"], info={"seed": r["seed"], "member": r["member"]}
            )
            lineage["members"][r["trial_id"]] = member.to_dict()
    (out / "lineage.json").write_text(json.dumps(lineage, indent=2))
    if exp.runs_population() and exp.search.searcher != "optuna":
        summary["exploits"] = exploit_counts(lineage, exp.search.exploit_margin)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    best = best_schedule(records, names)
    if best is not None:
        best.write(out / "best_schedule.json")
    try:
        write_method_summary(exp_dir / "tensorboard" / "methods", summary)
    except Exception as e:  # logging must never lose a search's outputs
        print(f"popmix: could not write the TensorBoard method summary: {e}", file=sys.stderr)
    if surfaces:
        from popmix.tune.swarm import write_outputs

        write_outputs(summary, surfaces, names, exp.train.steps, out, exp_dir / "tensorboard")
    for r in records:
        if r["member"] < 0 and learns_weights(r["policy"]) and r["schedule"]:
            # DoGE's two-stage use: train a final model on these (time-averaged) weights with
            # popmix run --weights-from <file> --replay final.
            sched = r["schedule"]
            sched.replace(
                points=tuple(SchedulePoint(p.step, p.weights) for p in sched.points),
                method=r["method"],
                lineage=(),
                info={"seed": r["seed"], "trial_id": r["trial_id"]},
            ).write(out / f"{r['method']}_weights-seed{r['seed']}.json")
    return summary, best


def tune_environment(opts: SearchOptions) -> tuple[dict[str, str], dict[str, str]]:
    """(set, defaults): the environment variables a search (or a confirmation) sets, and
    those it sets only where the user has not."""
    force = {
        # popmix writes TensorBoard itself (per-domain groups, HParams); CSV/JSON are
        # added back as callbacks.
        "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    }
    defaults = {
        "RAY_AIR_NEW_OUTPUT": "0",
        "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
        "TUNE_GLOBAL_CHECKPOINT_S": "10",
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    if opts.address is None:
        defaults["RAY_AUTH_MODE"] = "disabled"
    return force, defaults


@dataclass(frozen=True)
class ResolvedSearch:
    """A search's inputs, checked and resolved before Ray starts (:func:`resolve`)."""

    exp: Experiment
    space: SearchSpace
    domains: DomainSet
    name: str
    exp_dir: Path  # <storage>/<name>: Tune's folders, TensorBoard, lineage rows
    out: Path  # where summary.json and the weights files go
    #: a --storage URI: Tune writes the trials there, exp_dir is the driver's local copy of
    #: its own files, mirrored there (popmix.tune.storage)
    remote: RemoteStorage | None = None

    def tune_storage(self, seeds: list[int], suffix: str = "") -> tuple[str, Any]:
        """(the folder of the Tuner of ``seeds`` (``suffix``: the swarm optimum's Tuner),
        its pyarrow filesystem or None)."""
        name = tuner_name(seeds) + suffix
        if self.remote is None:
            return str(self.exp_dir / name), None
        return f"{self.remote.path(self.name)}/{name}", self.remote.fs

    def environment(self, opts: SearchOptions) -> tuple[dict[str, str], dict[str, str]]:
        """(set, defaults): the environment variables a search sets (:func:`tune_environment`)."""
        return tune_environment(opts)

    def logger_levels(self) -> dict[str, int]:
        """The loggers a search quietens, and to what."""
        levels = {
            # A restored trial's JSON/CSV logger looks for files it never wrote remotely, and
            # a trial stopped by Ctrl-C before its first report has no results to read; both
            # harmless.
            "ray.tune.logger": logging.ERROR,
            "ray.tune.analysis.experiment_analysis": logging.ERROR,
        }
        if self.exp.search.searcher == "optuna":
            # Optuna logs each study it creates at INFO; popmix prints its own progress.
            levels["optuna"] = logging.WARNING
        return levels


def resolve(exp: Experiment, space: SearchSpace, opts: SearchOptions) -> ResolvedSearch:
    """Check the experiment, the space and the options, and load the domains; no Ray.

    Raises:
        ConfigError, DataError: what is wrong, in one line.
    """
    exp.validate()
    d = exp.data
    domains = load_experiment_domains(exp)
    domains.check(exp.model.seq_len + 1)
    if exp.model.kind != "popmix":
        from popmix.train.custom import check_model

        check_model(exp.model, domains)  # else every trial fails in Ray, one by one
    domain_groups(domains, d.groups)  # a group naming an unknown domain fails before Ray
    space.validate(len(domains))
    if exp.search.objective.startswith("domain:"):
        domains.index(exp.search.objective.split(":", 1)[1])
    check_method_params(exp, domains.sizes, domains.names)
    if exp.runs_population():
        for key, vec in space.vectors().items():
            if vec.init == "file":  # read it now: a bad file fails before Ray starts
                try:
                    weights_from_file(vec.init_file, domains.names)
                except ConfigError as e:
                    raise ConfigError(f"{space.source or 'search space'}: {key}.{e}") from None
    if opts.address is not None:
        check_address(opts.address)  # before anything, also when this process has a Ray
    gpus = exp.resources.gpus_per_trial
    if gpus > 0 and opts.address is None and Path("/proc/driver/nvidia/gpus").is_dir():
        from popmix.train.device import require_cuda

        # This machine has NVIDIA GPUs, which a local Ray gives to trials that run with this
        # machine's torch: fail here, not in every trial. (Without GPUs, no node can hold
        # the trial, which check_trial_fits says once Ray has started.)
        require_cuda(
            f"resources.gpus_per_trial={gpus:g} asks for GPUs of this machine",
            "set --gpus-per-trial 0",
        )
    if exp.runs_swarm():
        from popmix.analysis.swarm_fit import MIN_RUNS
        from popmix.tune.swarm import check_fit_available, full_law_size

        check_fit_available()
        k, size = len(domains), exp.search.swarm.size
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
    if exp.search.searcher == "pb2":
        try:
            import sklearn  # noqa: F401
        except ImportError:
            raise ConfigError(
                "searcher pb2 needs scikit-learn: pip install scikit-learn, or use pbt"
            ) from None
    name = opts.name or f"{exp.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    remote = None
    if is_uri(opts.storage):
        remote = RemoteStorage.open(opts.storage)
        # the driver's own files stay on this machine too (and are mirrored to the storage)
        exp_dir = Path(opts.out).resolve() if opts.out else Path("runs").resolve() / name
        check_storage(exp_dir.parent)
        if not opts.resume and remote.holds(name):
            raise ConfigError(
                f"--name {name}: {remote.uri}/{name} already holds a run; continue it with "
                f"popmix search --resume {remote.uri}/{name}, or give another --name"
            )
    else:
        check_storage(Path(opts.storage))
        exp_dir = Path(opts.storage).resolve() / name
    out = Path(opts.out).resolve() if opts.out else exp_dir
    # an earlier run's results are never overwritten by a new one under the same name
    if opts.resume:
        pass  # the folder is the search to continue (resume_search checked it)
    elif exp_dir.is_dir() and any(exp_dir.iterdir()):
        raise ConfigError(
            f"--name {name}: {exp_dir} already holds a run; continue it with popmix search "
            f"--resume {exp_dir}, give another --name (or none, for a dated one), or remove "
            "that folder"
        )
    elif out != exp_dir and any((out / f).exists() for f in ("summary.json", "calibrate.json")):
        raise ConfigError(
            f"--out {out} already holds a run's results; give another --out, or remove them"
        )
    return ResolvedSearch(exp, space, domains, name, exp_dir, out, remote)


class _TuneNoise(logging.Filter):
    """Drops Tune's notes on an interruption (the stop signal, the unfinished trials, a
    ``Tuner.restore`` call to resume): popmix prints what finished and its own ``popmix
    search --resume`` line."""

    _INTERRUPTION = (
        "Stop signal received",
        "Experiment has been interrupted",
        "Trials did not complete",
    )

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self._INTERRUPTION)


_NOISY_LOGGERS = ("ray.tune.execution.tune_controller", "ray.tune.tune")
_TUNE_NOISE = _TuneNoise()


def check_storage(storage: Path) -> None:
    """Fail in one line, before anything is written, when ``--storage`` cannot hold a search:
    a file where a folder is needed, or a folder this process cannot write to.

    Raises:
        ConfigError: naming the path and the fix.
    """
    existing = storage.resolve()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(
            f"--storage {storage}: {existing} is a file, not a folder; give a folder (on a "
            "multi-node cluster, one every node can reach)"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(
            f"--storage {storage}: {existing} is not writable by this user; give a folder you "
            "can write to"
        )


class RaySession:
    """What a search changes in this process, set on entry and restored on exit, also when
    the search raises: environment variables, logger levels, Python's global random
    generator (Ray's PBT draws donors and resamples from it) and Ray itself (started here,
    embedded or connected to ``opts.address``, unless this process already runs Ray; then
    it is left running).

    Args:
        opts: where Ray runs.
        env: variables to set.
        env_defaults: variables to set only where the environment has none.
        levels: logger name → level while the session lasts.
        random_seed: seed of Python's ``random`` for the session (None: left alone).
    """

    def __init__(
        self,
        opts: SearchOptions,
        env: dict[str, str] | None = None,
        env_defaults: dict[str, str] | None = None,
        levels: dict[str, int] | None = None,
        random_seed: int | None = None,
    ) -> None:
        self.opts = opts
        self.env = dict(env or {})
        self.env_defaults = dict(env_defaults or {})
        self.levels = dict(levels or {})
        self.random_seed = random_seed
        self.started = False
        self._saved_env: dict[str, str | None] = {}
        self._saved_levels: dict[str, int] = {}
        self._saved_random: Any = None

    def __enter__(self) -> RaySession:
        for key, value in {**self.env_defaults, **self.env}.items():
            if key in self.env or key not in os.environ:
                self._saved_env.setdefault(key, os.environ.get(key))
                os.environ[key] = value
        if "optuna" in self.levels:
            import optuna  # noqa: F401  (it sets its own level when first imported)
        # ray.init sets the "ray" logger's level: restored with the others
        for name in ("ray", *self.levels):
            self._saved_levels[name] = logging.getLogger(name).level
        for name, level in self.levels.items():
            logging.getLogger(name).setLevel(level)
        for name in _NOISY_LOGGERS:
            logging.getLogger(name).addFilter(_TUNE_NOISE)
        self._saved_random = random.getstate()
        try:
            self.started = start_ray(self.opts)
        except BaseException:
            self._restore()
            raise
        if self.random_seed is not None:
            # after ray.init, which draws from the same generator
            random.seed(self.random_seed)
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            if self.started:
                import ray

                ray.shutdown()
                self.started = False
        finally:
            self._restore()

    def _restore(self) -> None:
        for name in _NOISY_LOGGERS:
            logging.getLogger(name).removeFilter(_TUNE_NOISE)
        for name, level in self._saved_levels.items():
            logging.getLogger(name).setLevel(level)
        self._saved_levels = {}
        for key, old in self._saved_env.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old
        self._saved_env = {}
        if self._saved_random is not None:
            random.setstate(self._saved_random)
            self._saved_random = None


def _trial_resources(plan: ResolvedSearch, per_tuner: int = 1) -> tuple[float, str | None]:
    """(CPUs per trial with ``per_tuner`` seeds at once, a line to print while the autoscaler
    adds a node, or None).

    Raises:
        ConfigError: no node can ever hold a trial.
    """
    exp = plan.exp
    cpus = resolve_cpus(exp, per_tuner * trials_per_seed(exp))
    request = {"CPU": cpus, "GPU": float(exp.resources.gpus_per_trial)}
    nodes = _alive_nodes()
    waiting = None
    if not any(_fits(request, n) for n in nodes):
        waiting = check_trial_fits(
            request, nodes, _autoscaler_node_types(), exp.source or "the experiment file"
        )
    return cpus, waiting


def _tuner(
    plan: ResolvedSearch,
    seeds: list[int],
    trainable: Any,
    ledger: Any,
    progress: Any,
    interrupted: _Interrupted,
    optimum: list[TrialSpec] | None = None,
) -> Any:
    """The Tuner of ``seeds``: each seed's population, baselines and swarm runs as trials of
    one experiment (a member ranks and copies only within its seed's population); with
    ``optimum``, the Tuner of the swarm's optimum trials instead (:mod:`popmix.tune.swarm`)."""
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    from popmix.reporting.tensorboard import TensorBoardLogger
    from popmix.tune.swarm import TUNER_SUFFIX

    exp = plan.exp
    suffix = ""
    max_concurrent = None
    if optimum is not None:
        scheduler, searcher, num_samples = None, None, 1
        param_space = {CONFIG_KEY: tune.grid_search([t.to_config()[CONFIG_KEY] for t in optimum])}
        suffix = TUNER_SUFFIX
    else:
        scheduler, searcher, param_space, num_samples = _scheduler_and_space(
            exp, plan.space, plan.domains, seeds, plan.exp_dir, progress
        )
        if exp.runs_swarm():
            # the swarm's runs wait for a slot (search.swarm.parallel), not all at once
            max_concurrent = len(seeds) * trials_per_seed(exp)
    folder, fs = plan.tune_storage(seeds, suffix)
    mirror = [] if plan.remote is None else [mirror_callback(plan.remote, plan.exp_dir, plan.name)]
    return tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(
            metric="objective",
            mode="min",
            scheduler=scheduler,
            search_alg=searcher,
            num_samples=num_samples,
            max_concurrent_trials=max_concurrent,
            reuse_actors=True,
            trial_name_creator=_trial_name,
            trial_dirname_creator=_trial_name,
        ),
        run_config=tune.RunConfig(
            name=tuner_name(seeds) + suffix,
            storage_path=folder.rsplit("/", 1)[0],
            storage_filesystem=fs,
            verbose=0,
            callbacks=[
                _ForwardInterrupt(interrupted),
                CSVLoggerCallback(),
                JsonLoggerCallback(),
                TensorBoardLogger(plan.exp_dir / "tensorboard", exp.population_method),
                ledger,
                checkpoint_retention(scheduler),
                *mirror,
                *([progress] if progress else []),
            ],
            # every report: a trial whose worker dies resumes there (FailureConfig), losing at
            # most one report's steps; on PBT's grid, as every perturbation is on a report.
            # Old ones are deleted by checkpoint_retention, not by Tune (see there).
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=None, checkpoint_frequency=1, checkpoint_at_end=True
            ),
            failure_config=tune.FailureConfig(max_failures=exp.resources.max_failures),
            sync_config=tune.SyncConfig(sync_period=10),
        ),
    )


def _restored_or_new(resume: bool, tuner_dir: str, fs: Any, trainable: Any, new: Any) -> Any:
    """On a resume, the Tuner Tune saved in ``tuner_dir`` (unfinished and errored trials go
    on); otherwise, or where none was saved, ``new()``. Tune's own copy of the callbacks, the
    stopper and the scheduler come back from tuner.pkl; the ledger, TensorBoard and PBT's
    per-trial state continue from what popmix saved (popmix.tune.resume)."""
    from ray import tune

    if resume and tune.Tuner.can_restore(tuner_dir, storage_filesystem=fs):
        return tune.Tuner.restore(
            tuner_dir,
            trainable,
            resume_unfinished=True,
            resume_errored=True,
            storage_filesystem=fs,
        )
    return new()


def _swarm_optimum(
    plan: ResolvedSearch,
    seeds: list[int],
    records: list[dict[str, Any]],
    settings: TrialSettings,
    progress: Any,
    interrupted: _Interrupted,
    resume: bool,
    say: Any,
) -> tuple[dict[int, dict[str, Any]], list[dict[str, Any]]]:
    """The swarm's second phase for ``seeds``: each seed's surface fitted on its finished
    swarm runs (or read back, on a resume), then the predicted optima trained in a Tuner of
    their own. Returns (surfaces by seed, the optimum trials' records)."""
    from ray import tune

    from popmix.tune.swarm import TUNER_SUFFIX, optimum_specs, surfaces_for
    from popmix.tune.trainable import MixtureTrainable

    exp, names = plan.exp, plan.domains.names
    surfaces = surfaces_for(exp, records, seeds, names, plan.exp_dir)
    for surface in surfaces.values():
        if "error" in surface:
            print(f"popmix search: swarm: {surface['error']}", file=sys.stderr, flush=True)
        elif surface.get("refitted"):
            print(
                f"popmix search: swarm: seed {surface['seed']}: the saved surface was fitted "
                "on swarm runs this search no longer holds; fitted again on its own runs, and "
                "its optimum is trained anew",
                file=sys.stderr,
                flush=True,
            )
    specs = optimum_specs(surfaces, names)
    if not specs:
        return surfaces, []
    say(f"  swarm: training the predicted optimum of seed(s) {[t.seed for t in specs]}")
    # alone on the cluster now: the optimum trials share all its CPUs
    cpus = resolve_cpus(exp, len(specs))
    trainable = tune.with_resources(
        tune.with_parameters(
            MixtureTrainable,
            domains=plan.domains,
            settings=dataclasses.replace(settings, threads=max(1, int(cpus))),
        ),
        {"cpu": cpus, "gpu": exp.resources.gpus_per_trial},
    )
    name = tuner_name(seeds) + TUNER_SUFFIX
    ledger = StepLedger(plan.exp_dir / f"ledger-{name}.json")
    tuner_dir, fs = plan.tune_storage(seeds, TUNER_SUFFIX)
    # a refitted optimum is a new trial: the saved Tuner trained the stale one
    refitted = any(s.get("refitted") for s in surfaces.values())
    tuner = _restored_or_new(
        resume and not refitted,
        tuner_dir,
        fs,
        trainable,
        functools.partial(
            _tuner, plan, seeds, trainable, ledger, progress, interrupted, optimum=specs
        ),
    )
    grid = tuner.fit()
    ledger.load()
    return surfaces, _records(
        grid, exp.population_method, ledger, interrupted=interrupted.is_set()
    )


def run_search(exp: Experiment, space: SearchSpace, opts: SearchOptions) -> dict[str, Any]:
    """Run the experiment; returns the summary (also written to ``summary.json``).

    In three parts: :func:`resolve` checks everything it can without Ray; a
    :class:`RaySession` sets (and afterwards restores) what the search changes in this
    process; one Tuner per group of seeds (:func:`_tuner`; as many seeds at once as the
    cluster holds, :func:`seeds_per_tuner`) runs the population beside the baselines.

    Raises:
        ConfigError, DataError: bad experiment, space, data or cluster address, or a trial
            that no node of the cluster can hold (before any trial starts).
        KeyboardInterrupt: Ctrl-C (SIGINT): every trial is stopped, no further seed starts,
            and the outputs of what finished are written before it is raised.
    """
    from popmix.reporting.summary import format_table

    plan = resolve(exp, space, opts)
    exp, domains, exp_dir, out = plan.exp, plan.domains, plan.exp_dir, plan.out
    say = (lambda *a, **k: None) if opts.quiet else print
    env, env_defaults = plan.environment(opts)
    session = RaySession(opts, env, env_defaults, plan.logger_levels(), exp.search.seed)
    records: list[dict[str, Any]] = []
    surfaces: dict[int, dict[str, Any]] = {}
    with session, _catch_sigint() as interrupted:
        per_tuner = seeds_per_tuner(exp)
        cpus, waiting = _trial_resources(plan, per_tuner)
        exp_dir.mkdir(parents=True, exist_ok=True)
        out.mkdir(parents=True, exist_ok=True)
        if not opts.resume:
            storage = plan.remote.given if plan.remote else str(exp_dir.parent)
            write_search_file(exp_dir, exp, plan.space, out, storage, plan.name)

        from ray import tune

        from popmix.reporting._trial_progress import ProgressPrinter
        from popmix.tune.trainable import MixtureTrainable

        settings = TrialSettings.of(exp, space, cpus)
        trainable = tune.with_resources(
            tune.with_parameters(MixtureTrainable, domains=domains, settings=settings),
            {"cpu": cpus, "gpu": exp.resources.gpus_per_trial},
        )
        methods = (
            ([exp.population_method] if exp.runs_population() else [])
            + (["swarm"] if exp.runs_swarm() else [])
            + exp.baseline_methods()
        )
        say(
            f"popmix search: {', '.join(methods)} on {domains.name} ({len(domains)} domains), "
            f"{exp.train.steps} steps per model, population {exp.search.population}, "
            f"seeds {list(exp.seeds)}"
        )
        say(f"  experiment folder: {exp_dir}")
        if plan.remote is not None:
            say(f"  trials and a copy of this folder: {plan.remote.uri}/{plan.name}")
        if waiting:
            print(waiting, file=sys.stderr, flush=True)
        from popmix.tune.proxy import calibration_warning

        # calibrations are kept beside the experiment folders, on this machine
        calibrations = exp_dir.parent if plan.remote else Path(opts.storage).resolve()
        unstable = calibration_warning(calibrations, exp, domains.names)
        if unstable:
            print(unstable, file=sys.stderr, flush=True)
        start = time.time()
        groups = seed_groups(exp.seeds, per_tuner)
        try:
            for i, seeds in enumerate(groups):
                if interrupted.is_set():
                    break
                if len(groups) > 1:
                    which = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds}"
                    say(f"  {which} ({i + 1} of {len(groups)})", flush=True)
                elif len(seeds) > 1:
                    say(f"  seeds {seeds} at once", flush=True)
                progress = (
                    None
                    if opts.quiet
                    else ProgressPrinter(exp.train.steps, seed_in_label=len(seeds) > 1)
                )
                ledger = StepLedger(exp_dir / f"ledger-{tuner_name(seeds)}.json")
                tuner_dir, fs = plan.tune_storage(seeds)
                tuner = _restored_or_new(
                    opts.resume,
                    tuner_dir,
                    fs,
                    trainable,
                    functools.partial(
                        _tuner, plan, seeds, trainable, ledger, progress, interrupted
                    ),
                )
                grid = tuner.fit()
                ledger.load()  # what the Tuner's own copy of the ledger counted
                records += _records(
                    grid, exp.population_method, ledger, interrupted=interrupted.is_set()
                )
                if exp.runs_swarm() and not interrupted.is_set():
                    found = _swarm_optimum(
                        plan, seeds, records, settings, progress, interrupted, opts.resume, say
                    )
                    surfaces.update(found[0])
                    records += found[1]
        finally:
            # Whatever finished is written, even after an interrupt or an error.
            wall = time.time() - start
            summary, best = _write_outputs(
                records,
                exp,
                domains,
                exp_dir,
                out,
                wall,
                interrupted=interrupted.is_set(),
                surfaces=surfaces,
            )
            if plan.remote is not None:
                plan.remote.upload(exp_dir, plan.name)
                if out != exp_dir:
                    plan.remote.upload(out, plan.name)
    if records:
        say("")
        print(format_table(summary))
        say(
            f"\nwall time {wall:.0f}s; wrote {out / 'summary.json'}"
            + (f", {out / 'best_schedule.json'}" if best else "")
        )
        say(f"compare every trial: tensorboard --logdir {exp_dir}")
    if interrupted.is_set():
        raise KeyboardInterrupt(
            f"wrote what finished to {out / 'summary.json'}; continue it with popmix search "
            f"--resume {exp_dir}"
        )
    return summary


def resume_search(exp_dir: str | Path, opts: SearchOptions) -> tuple[dict[str, Any], Path]:
    """Continue the search in ``exp_dir`` (``popmix search --resume``) whose driver stopped:
    killed, disconnected, interrupted. Each seed group's Tuner is restored from its folder
    (unfinished and errored trials continue from their last checkpoints, finished ones are
    kept) or, if it never started, started; the outputs are then written as by a search that
    never stopped. ``opts`` gives only where to run (address, CPUs, quiet); what runs comes
    from the folder's ``search.json``.

    Returns:
        The summary and the folder it is in; a search that had finished is not run again
        (``resumed: False``).

    Raises:
        ConfigError: ``exp_dir`` is not a popmix search (see :func:`read_search_file`).
    """
    if is_uri(str(exp_dir)):
        # another machine's search: its driver files come back here, its trials stay there
        base = str(exp_dir).split("?", 1)
        parent, _, name = base[0].rstrip("/").rpartition("/")
        query = f"?{base[1]}" if len(base) > 1 else ""
        remote = RemoteStorage.open(parent + query)
        local = Path("runs").resolve() / name
        remote.download(name, local)
        exp_dir = local
    saved = read_search_file(exp_dir)
    folder = Path(exp_dir).resolve()
    with rebased(saved.exp_dir, folder):
        out = rebase(saved.out)  # moved with the folder, when it was inside it
        if finished(out):
            print(
                f"popmix search: {folder} finished already; its results are in "
                f"{out / 'summary.json'} (nothing to resume)"
            )
            summary = json.loads((out / "summary.json").read_text())
            return {**summary, "resumed": False}, out
        remote_storage = saved.storage if saved.storage and is_uri(saved.storage) else None
        resumed = dataclasses.replace(
            opts,
            storage=remote_storage or str(folder.parent),
            # Tune's folders: <storage>/<name>, the name the search began with at a remote
            # storage; a local folder is where it is now
            name=(saved.name or folder.name) if remote_storage else folder.name,
            out=str(folder if remote_storage else out),
            resume=True,
        )
        if not opts.quiet:
            print(f"popmix search: resuming {folder}")
        return run_search(saved.exp, saved.space, resumed), Path(resumed.out or folder)


class _Interrupted:
    """Set by the first Ctrl-C of a search (a ``threading.Event`` with a printed note)."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def is_set(self) -> bool:
        return self._event.is_set()

    # Tune pickles the stopper into tuner.pkl. A copy unpickled by Tuner.restore (popmix
    # search --resume) shares the running search's flag, so Ctrl-C stops the resumed trials.
    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        current = _Interrupted.current
        self._event = current._event if current is not None else threading.Event()

    #: the flag of the search running in this process (set by :func:`_catch_sigint`)
    current: _Interrupted | None = None

    def __call__(self, signum: int, frame: Any) -> None:
        if self._event.is_set():
            raise KeyboardInterrupt  # the second Ctrl-C: stop at once
        self._event.set()
        print(
            "popmix search: interrupted; stopping all trials and writing what finished "
            "(Ctrl-C again to quit at once)",
            file=sys.stderr,
            flush=True,
        )


class _ForwardInterrupt:
    """A Tune callback that hands the search's Ctrl-C to Tune's own interruption.

    Tune ends ``fit()`` on SIGUSR1 (and on SIGINT, whose handler popmix takes for the whole
    search) the way a resume needs: it saves the experiment state and leaves unfinished
    trials unfinished, where a stopper would mark them terminated and ``Tuner.restore``
    would never continue them. The signal is raised from the controller's loop (the main
    thread), once Tune's handler is in place.
    """

    def __new__(cls, flag: _Interrupted) -> Any:
        from ray.tune import Callback

        class _Forward(Callback):
            sent = False

            def on_step_begin(self, iteration, trials, **info):
                handler = signal.getsignal(signal.SIGUSR1)
                if flag.is_set() and not self.sent and callable(handler):
                    self.sent = True
                    signal.raise_signal(signal.SIGUSR1)

        return _Forward()


@contextlib.contextmanager
def _catch_sigint() -> Iterator[_Interrupted]:
    """Make Ctrl-C end the whole search, not only the running seed's Tuner.

    Tune's own SIGINT handler ends one ``Tuner.fit()`` and lets the caller go on (the next
    seed's Tuner would start); popmix takes SIGINT for the whole search, starts no further
    Tuner and ends the running one through :class:`_ForwardInterrupt` (``popmix search``) or
    :class:`_StopOnInterrupt` (``popmix calibrate``).
    """
    flag = _Interrupted()
    _Interrupted.current = flag
    if threading.current_thread() is not threading.main_thread():
        try:
            yield flag  # signal handlers can only be set from the main thread
        finally:
            _Interrupted.current = None
        return
    previous_env = os.environ.get("TUNE_DISABLE_SIGINT_HANDLER")
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    previous = signal.signal(signal.SIGINT, flag)
    try:
        yield flag
    finally:
        _Interrupted.current = None
        signal.signal(signal.SIGINT, previous)
        if previous_env is None:
            os.environ.pop("TUNE_DISABLE_SIGINT_HANDLER", None)
        else:
            os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = previous_env


class _StopOnInterrupt:
    """A Tune stopper that ends every trial of the Tuner once the search is interrupted."""

    def __new__(cls, flag: _Interrupted) -> Any:
        from ray.tune import Stopper

        class _Stop(Stopper):
            def __call__(self, trial_id: str, result: dict) -> bool:
                return False

            def stop_all(self) -> bool:
                # Tune asks after every event it handles (at least every 0.1 s), not only on
                # results, so trials stop within one training interval.
                return flag.is_set()

        return _Stop()


__all__ = ["SearchOptions", "run_search"]
