"""``popmix search``: the population and the baselines as trials of one Tuner per seed.

Files written under ``<storage>/<name>/`` (the experiment folder, also TensorBoard's logdir):

- ``seed<S>/``: Tune's experiment folder for seed S; one sub-folder per trial with its
  ``progress.csv``, ``result.json`` and checkpoints;
- ``tensorboard/seed<S>/<method>_<trial>/``: each trial's TensorBoard events (per-domain
  losses and weights, temperature, objective, HParams), written by the driver as results arrive;
- ``lineage-seed<S>.jsonl``: one row per PBT exploit, written as they happen;

and under ``--out`` (default: the experiment folder): ``summary.json``, ``best_schedule.json``,
``lineage.json``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from popmix.data import load_domains
from popmix.data.domains import DomainSet
from popmix.tune.config import (
    ConfigError,
    Experiment,
    SearchSpace,
    check_baseline_params,
)
from popmix.tune.explore import Explorer
from popmix.tune.trainable import METHOD_KEYS

CONFIG_KEYS = (
    "temperature",
    "sample_weights",
    "loss_weights",
    "t_start",
    "t_end",
    "switch_frac",
    "params",
)


@dataclass
class SearchOptions:
    """Where and how to run (not what): the CLI's cluster and output options."""

    address: str | None = None  # None: start an embedded local Ray
    storage: str = "runs"
    name: str | None = None
    out: str | None = None
    cpus: int | None = None  # CPUs of the embedded Ray (default: all of this machine's)
    quiet: bool = False


def _blank(**values: Any) -> dict[str, Any]:
    return {"method": None, "seed": 0, "member": -1, **dict.fromkeys(CONFIG_KEYS), **values}


def baseline_configs(exp: Experiment, seed: int) -> list[dict[str, Any]]:
    out = []
    for method in exp.baseline_methods():
        params = dict(exp.baselines.get(method, {}))
        if METHOD_KEYS[method] == ("params",):  # DoGE, Aioli: their whole parameter dict
            out.append(_blank(method=method, seed=seed, params=params))
        else:
            keys = {k: params[k] for k in METHOD_KEYS[method] if k in params}
            out.append(_blank(method=method, seed=seed, **keys))
    return out


def population_configs(exp: Experiment, explorer: Explorer, seed: int) -> list[dict[str, Any]]:
    return [
        _blank(method=exp.population_method, seed=seed, member=m, **explorer.initial_config(m))
        for m in range(exp.search.population)
    ]


def _trial_name(trial: Any) -> str:
    spec = trial.config["spec"]
    return f"{spec['method']}_{trial.trial_id}"


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
    quiet = {"log_to_driver": False, "logging_level": logging.WARNING}
    if opts.address is None:
        ray.init(
            address="local", num_cpus=opts.cpus or os.cpu_count(), include_dashboard=False, **quiet
        )
    else:
        check_address(opts.address)
        ray.init(address=opts.address, **quiet)
    return True


def trials_per_seed(exp: Experiment) -> int:
    return (exp.search.population if exp.runs_population() else 0) + len(exp.baseline_methods())


def resolve_cpus(exp: Experiment) -> float:
    """CPUs per trial; ``auto`` splits the cluster's CPUs so every trial of a seed runs at once."""
    if exp.resources.cpus_per_trial != "auto":
        return float(exp.resources.cpus_per_trial)
    import ray

    total = ray.cluster_resources().get("CPU", 1.0)
    return max(0.01, round(total / trials_per_seed(exp), 2))


def _settings(exp: Experiment, space: SearchSpace, cpus: float) -> dict[str, Any]:
    train = {k: v for k, v in asdict(exp.train).items() if k not in ("seed", "threads", "device")}
    return {
        "model": asdict(exp.model),
        "train": train,
        "report_every": exp.search.report_every,
        "objective": exp.search.objective,
        "threads": max(1, int(cpus)),
        "shape": space.temperature.shape if space.temperature else "step",
    }


def _scheduler_and_space(
    exp: Experiment,
    space: SearchSpace,
    domains: DomainSet,
    seed: int,
    exp_dir: Path,
    progress: Any,
) -> tuple[Any, Any, dict[str, Any], int]:
    """(scheduler, search_alg, param_space, num_samples) for one seed's Tuner."""
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    from popmix.tune.schedulers import (
        PopulationASHA,
        PopulationPBT,
        WithFixedTrials,
        make_pb2,
    )

    s = exp.search
    names = domains.names
    n_reports = math.ceil(exp.train.steps / s.report_every)
    baselines = baseline_configs(exp, seed)
    explorer = Explorer(
        space,
        names,
        domains.sizes,
        seed=s.seed * 1000 + seed,
        perturb=s.searcher == "pbt",
        resample_probability=s.resample_probability,
    )
    population = population_configs(exp, explorer, seed) if exp.runs_population() else []

    if s.searcher == "optuna" and population:
        trial = _blank(method=exp.population_method, seed=seed, member=0)
        for key, spec in space.vectors().items():
            low = max(spec.floor, 1e-4)
            trial[key] = {n: tune.loguniform(low, 1.0) for n in names}
        if space.temperature is not None:
            for key, (lo, hi) in space.temperature.bounds().items():
                trial[key] = tune.uniform(lo, hi)
        searcher = WithFixedTrials(
            OptunaSearch(seed=s.seed * 1000 + seed), [{"spec": b} for b in baselines]
        )
        param_space: dict[str, Any] = {"spec": trial}
        scheduler = None
        if s.asha:
            scheduler = PopulationASHA(
                time_attr="training_iteration",
                max_t=n_reports,
                grace_period=max(1, n_reports // 4),
                reduction_factor=2,
            )
        return scheduler, searcher, param_space, len(baselines) + s.population

    # One grid point per trial, each a complete spec: baselines and members in one Tuner.
    param_space = {"spec": tune.grid_search(population + baselines)}
    if not population:
        return None, None, param_space, 1
    common = dict(
        time_attr="training_iteration",
        perturbation_interval=s.perturbation_interval,
        quantile_fraction=s.quantile_fraction,
        custom_explore_fn=explorer,
    )
    if s.searcher == "pbt":
        # Vectors are explored by the Explorer only; scalars by Ray, then clipped by it.
        mutations = {}
        if space.temperature is not None:
            bounds = space.temperature.bounds().items()
            mutations = {"spec": {k: tune.uniform(lo, hi) for k, (lo, hi) in bounds}}
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
    scheduler.lineage_path = exp_dir / f"lineage-seed{seed}.jsonl"
    scheduler.on_exploit = progress.exploit if progress is not None else None
    return scheduler, None, param_space, 1


class StepLedger:
    """Optimizer steps and training seconds of each trial (replays after an exploit included).

    A Tune callback: trial files can be rewritten when PBT restores a trial, the driver's
    stream of results cannot.
    """

    def __new__(cls) -> Any:
        from ray.tune import Callback

        class _Ledger(Callback):
            def __init__(self) -> None:
                self.steps: dict[str, int] = {}
                self.train_time: dict[str, float] = {}

            def on_trial_result(self, iteration, trials, trial, result, **info):
                tid = trial.trial_id
                self.steps[tid] = self.steps.get(tid, 0) + int(result.get("steps_this_report", 0))
                t = float(result.get("time_train_s", 0.0))
                self.train_time[tid] = self.train_time.get(tid, 0.0) + t

        return _Ledger()


def _records(grid: Any, population_method: str, ledger: Any) -> list[dict[str, Any]]:
    """Plain per-trial records from a ResultGrid (what reporting/summary.py consumes)."""
    records = []
    for result in grid:
        cfg = (result.config or {}).get("spec", {})
        metrics = dict(result.metrics or {})
        train_steps = ledger.steps.get(metrics.get("trial_id", ""))
        train_time = ledger.train_time.get(metrics.get("trial_id", ""))
        schedule = None
        if result.checkpoint is not None:
            with result.checkpoint.as_directory() as d:
                p = Path(d, "schedule.json")
                if p.is_file():
                    schedule = json.loads(p.read_text())
        if result.error is not None:
            status = "error"
        elif metrics.get("diverged"):
            status = "diverged"
        elif "test_mean_ppl" in metrics:
            status = "ok"
        else:
            status = "incomplete"
        member = int(cfg.get("member", -1))
        params = {k: cfg[k] for k in CONFIG_KEYS if cfg.get(k) is not None}
        records.append(
            {
                "trial_id": metrics.get("trial_id") or getattr(result, "path", ""),
                "method": population_method if member >= 0 else cfg.get("method"),
                "seed": int(cfg.get("seed", 0)),
                "member": member,
                "status": status,
                "metrics": {k: v for k, v in metrics.items() if k != "config"},
                "train_steps": train_steps,
                "train_time_s": train_time,
                "wall_time_s": metrics.get("time_total_s"),
                "schedule": schedule,
                "params": params,
                "error": None if result.error is None else str(result.error).splitlines()[0][:300],
                "path": result.path,
            }
        )
    return records


def _write_outputs(
    records: list[dict[str, Any]],
    exp: Experiment,
    domains: DomainSet,
    exp_dir: Path,
    out: Path,
    wall: float,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """summary.json, best_schedule.json, lineage.json and <method>_weights-seed<S>.json."""
    from popmix.reporting.summary import best_schedule, summarize

    names = domains.names
    summary = summarize(records, exp.population_method)
    summary.update(
        experiment=exp.name,
        benchmark=domains.name,
        domains=names,
        sizes={d.name: d.n_tokens for d in domains},
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
        experiment_dir=str(exp_dir),
        tensorboard=f"tensorboard --logdir {exp_dir}",
    )
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    best = best_schedule(records, names)
    if best is not None:
        (out / "best_schedule.json").write_text(json.dumps(best, indent=2))
    lineage: dict[str, Any] = {"exploits": [], "members": {}}
    for seed in exp.seeds:
        p = exp_dir / f"lineage-seed{seed}.jsonl"
        if p.is_file():
            lineage["exploits"] += [json.loads(x) for x in p.read_text().splitlines() if x]
    for r in records:
        if r["member"] >= 0 and r["schedule"]:
            lineage["members"][r["trial_id"]] = {
                "seed": r["seed"],
                "member": r["member"],
                "points": r["schedule"]["points"],
                "lineage": r["schedule"]["lineage"],
            }
    (out / "lineage.json").write_text(json.dumps(lineage, indent=2))
    for r in records:
        if r["method"] in ("doge", "aioli") and r["schedule"]:
            # DoGE's two-stage use: train a final model on these (time-averaged) weights with
            # popmix run --weights-from <file> --replay final.
            sched = r["schedule"]
            exported = {
                "method": r["method"],
                "seed": r["seed"],
                "trial_id": r["trial_id"],
                "domains": names,
                "total_steps": sched["total_steps"],
                "points": [{k: p[k] for k in ("step", "weights")} for p in sched["points"]],
                "final_weights": sched["final_weights"],
            }
            path = out / f"{r['method']}_weights-seed{r['seed']}.json"
            path.write_text(json.dumps(exported, indent=2))
    return summary, best


def run_search(exp: Experiment, space: SearchSpace, opts: SearchOptions) -> dict[str, Any]:
    """Run the experiment; returns the summary (also written to ``summary.json``).

    Raises:
        ConfigError, DataError: bad experiment, space, data or cluster address (before any
            trial starts).
    """
    from popmix.reporting.summary import format_table

    exp.validate()
    d = exp.data
    domains = load_domains(
        d.benchmark, d.tasks, d.path, seed=d.seed, domain_column=d.domain_column
    )
    domains.check(exp.model.seq_len + 1)
    space.validate(len(domains))
    if exp.search.objective.startswith("domain:"):
        domains.index(exp.search.objective.split(":", 1)[1])
    check_baseline_params(exp, domains.sizes, domains.names)
    if exp.search.searcher == "pb2":
        try:
            import sklearn  # noqa: F401
        except ImportError:
            raise ConfigError(
                "searcher pb2 needs scikit-learn: pip install scikit-learn, or use pbt"
            ) from None

    name = opts.name or f"{exp.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    exp_dir = Path(opts.storage).resolve() / name if "://" not in opts.storage else None
    if exp_dir is None:
        raise ConfigError("cloud --storage URIs are not supported yet; give a shared folder")
    exp_dir.mkdir(parents=True, exist_ok=True)
    out = Path(opts.out).resolve() if opts.out else exp_dir
    out.mkdir(parents=True, exist_ok=True)

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # popmix writes TensorBoard itself (per-domain groups, HParams); CSV/JSON are added back.
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "10")
    if opts.address is None:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    started = start_ray(opts)
    # A restored trial's JSON/CSV logger looks for files it never wrote remotely; harmless.
    logging.getLogger("ray.tune.logger").setLevel(logging.ERROR)

    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    from popmix.reporting.progress import ProgressPrinter
    from popmix.reporting.tensorboard import TensorBoardLogger
    from popmix.tune.trainable import MixtureTrainable

    say = (lambda *a: None) if opts.quiet else print
    cpus = resolve_cpus(exp)
    settings = _settings(exp, space, cpus)
    trainable = tune.with_resources(
        tune.with_parameters(MixtureTrainable, domains=domains, settings=settings),
        {"cpu": cpus, "gpu": exp.resources.gpus_per_trial},
    )
    methods = ([exp.population_method] if exp.runs_population() else []) + exp.baseline_methods()
    say(
        f"popmix search: {', '.join(methods)} on {domains.name} ({len(domains)} domains), "
        f"{exp.train.steps} steps per model, population {exp.search.population}, "
        f"seeds {list(exp.seeds)}"
    )
    say(f"  experiment folder: {exp_dir}")

    # Ray's PBT draws donors and resamples from Python's global generator; seed it so a search
    # is as repeatable as Ray allows (popmix's own draws use explicit generators).
    random.seed(exp.search.seed)
    start = time.time()
    records: list[dict[str, Any]] = []
    try:
        for seed in exp.seeds:
            progress = (
                None if opts.quiet else ProgressPrinter(exp.population_method, exp.train.steps)
            )
            ledger = StepLedger()
            scheduler, searcher, param_space, num_samples = _scheduler_and_space(
                exp, space, domains, seed, exp_dir, progress
            )
            tuner = tune.Tuner(
                trainable,
                param_space=param_space,
                tune_config=tune.TuneConfig(
                    metric="objective",
                    mode="min",
                    scheduler=scheduler,
                    search_alg=searcher,
                    num_samples=num_samples,
                    reuse_actors=True,
                    trial_name_creator=_trial_name,
                    trial_dirname_creator=_trial_name,
                ),
                run_config=tune.RunConfig(
                    name=f"seed{seed}",
                    storage_path=str(exp_dir),
                    verbose=0,
                    callbacks=[
                        CSVLoggerCallback(),
                        JsonLoggerCallback(),
                        TensorBoardLogger(
                            exp_dir / "tensorboard" / f"seed{seed}", exp.population_method
                        ),
                        ledger,
                        *([progress] if progress else []),
                    ],
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=4, checkpoint_at_end=True),
                    failure_config=tune.FailureConfig(max_failures=0),
                    sync_config=tune.SyncConfig(sync_period=10),
                ),
            )
            records += _records(tuner.fit(), exp.population_method, ledger)
    finally:
        # Whatever finished is written, even after an interrupt or an error.
        wall = time.time() - start
        summary, best = _write_outputs(records, exp, domains, exp_dir, out, wall)
        if started:
            import ray

            ray.shutdown()
    if records:
        say("")
        print(format_table(summary))
        say(
            f"\nwall time {wall:.0f}s; wrote {out / 'summary.json'}"
            + (f", {out / 'best_schedule.json'}" if best else "")
        )
        say(f"compare every trial: tensorboard --logdir {exp_dir}")
    return summary


__all__ = ["SearchOptions", "run_search"]
