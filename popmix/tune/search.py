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
- ``reads-seed<S>.jsonl``: each PBT member's validation reads and its copies of a donor's,
  as they happen: a resumed search ranks its members on them (:mod:`popmix.tune.schedulers`);

and under ``--out`` (default: the experiment folder) what :mod:`popmix.tune.outputs` writes:
``summary.json`` (with the recommended mixture), ``best_schedule.json``, ``lineage.json`` and,
for every method and seed that finished, ``<method>_weights-seed<S>.json``.

:func:`run_search` runs in three parts: :func:`resolve` (everything checked and loaded, no
Ray), a :class:`popmix.tune.cluster.RaySession` (what the search changes in this process,
restored afterwards) and one Tuner per group of seeds (:func:`popmix.tune.runner.run_tuner`),
whose population the experiment's searcher builds (:mod:`popmix.tune.searchers`) beside the
baselines and the swarm's runs.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

from popmix._util.progress import StepsProgress
from popmix.config import ConfigError, Experiment, SearchSpace, check_method_params
from popmix.data import load_experiment_domains
from popmix.data.domains import domain_groups
from popmix.records.summary import Summary, read_summary
from popmix.records.table import format_answer, format_table
from popmix.tune.callbacks import ProgressPrinter, catch_sigint
from popmix.tune.cluster import (
    RaySession,
    SearchOptions,
    check_address,
    check_storage,
    seeds_that_fit,
    trial_resources,
    tune_environment,
)
from popmix.tune.explore import weights_from_file
from popmix.tune.outputs import write_outputs
from popmix.tune.phases import doremi_phase, swarm_optimum
from popmix.tune.plan import trial_counts
from popmix.tune.proxy import calibration_warning
from popmix.tune.reference import check_reference, runs_later
from popmix.tune.resolved import ResolvedSearch, trainable_for
from popmix.tune.resume import finished, read_search_file, rebase, rebased, write_search_file
from popmix.tune.runner import run_tuner
from popmix.tune.searchers import searcher_for
from popmix.tune.spec import TrialSettings
from popmix.tune.storage import RemoteStorage, is_uri
from popmix.tune.swarm import (
    check_swarm,
)
from popmix.tune.trials import seed_group, seed_groups, trials_per_seed


def resolve(exp: Experiment, space: SearchSpace, opts: SearchOptions) -> ResolvedSearch:
    """Check the experiment, the space and the options, and load the domains; no Ray.

    Raises:
        ConfigError, DataError: what is wrong, in one line.
    """
    exp.validate()
    searcher = searcher_for(exp)
    searcher.check(exp)
    domains = load_experiment_domains(exp)
    domains.check(exp.model.seq_len + 1)
    if exp.model.kind != "popmix":
        from popmix.train.custom import check_model

        check_model(exp.model, domains)  # else every trial fails in Ray, one by one
    domain_groups(domains, exp.data.groups)  # a group naming an unknown domain fails before Ray
    space.validate(len(domains))
    if exp.search.objective.startswith("domain:"):
        domains.index(exp.search.objective.split(":", 1)[1])
    check_method_params(exp, domains.sizes, domains.names)
    if exp.data.fixed_weights:
        if exp.runs_population() and space.sample_weights is None:
            raise ConfigError(
                f"{exp.source or 'experiment'}: data.fixed_weights holds sampling weights, and "
                f"{space.source or 'the search space'} searches none; search sample_weights "
                "or remove data.fixed_weights"
            )
        floor = space.sample_weights.floor if space.sample_weights else 0.0
        exp.weight_fixed(domains.names, domains.sizes, floor)
        if exp.runs_swarm():
            exp.weight_fixed(domains.names, domains.sizes, exp.search.swarm.floor)
    if exp.runs_population():
        for key, vec in space.vectors().items():
            for what, path in vec.weight_files():  # read now: a bad file fails before Ray
                try:
                    weights_from_file(path, domains.names, what)
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
        check_swarm(exp, len(domains))
    check_reference(exp, remote=is_uri(opts.storage))
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
    return ResolvedSearch(exp, searcher, space, domains, name, exp_dir, out, remote)


def _steps_done(exp_dir: Path) -> int:
    """Optimizer steps the ledgers of ``exp_dir`` counted (a resumed search's so far)."""
    done = 0
    for ledger in exp_dir.glob("ledger-*.json"):
        try:
            done += sum(int(n) for n in json.loads(ledger.read_text()).get("steps", {}).values())
        except (OSError, ValueError, AttributeError):
            continue  # a ledger that cannot be read only costs the progress line its start
    return done


def _as_typed(folder: Path) -> str:
    """``folder`` as the user would type it: relative to the working folder when inside it."""
    try:
        return str(folder.relative_to(Path.cwd()))
    except ValueError:
        return str(folder)


def run_search(exp: Experiment, space: SearchSpace, opts: SearchOptions) -> Summary:
    """Run the experiment; returns the summary (also written to ``summary.json``).

    In three parts: :func:`resolve` checks everything it can without Ray; a
    :class:`RaySession` sets (and afterwards restores) what the search changes in this
    process; one Tuner per group of seeds (as many seeds at once as the cluster holds and the
    searcher allows) runs the population beside the baselines.

    Raises:
        ConfigError, DataError: bad experiment, space, data or cluster address, or a trial
            that no node of the cluster can hold (before any trial starts).
        KeyboardInterrupt: Ctrl-C (SIGINT): every trial is stopped, no further seed starts,
            and the outputs of what finished are written before it is raised.
    """
    plan = resolve(exp, space, opts)
    exp, domains, exp_dir, out = plan.exp, plan.domains, plan.exp_dir, plan.out
    searcher = plan.searcher
    say = (lambda *a, **k: None) if opts.quiet else print
    env, env_defaults = tune_environment(opts)
    session = RaySession(opts, env, env_defaults, plan.logger_levels(), exp.search.seed)
    records: list[dict[str, Any]] = []
    surfaces: dict[int, dict[str, Any]] = {}
    with session, catch_sigint("popmix search") as interrupted:
        per_seed = trials_per_seed(exp)
        per_tuner = searcher.seeds_per_tuner(seeds_that_fit(exp, per_seed))
        cpus, waiting = trial_resources(exp, per_tuner * per_seed)
        exp_dir.mkdir(parents=True, exist_ok=True)
        out.mkdir(parents=True, exist_ok=True)
        if not opts.resume:
            storage = plan.remote.given if plan.remote else str(exp_dir.parent)
            write_search_file(exp_dir, exp, plan.space, out, storage, plan.name)
        settings = TrialSettings.of(exp, space, cpus)
        trainable = trainable_for(plan, settings, cpus)
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
        # calibrations are kept beside the experiment folders, on this machine
        calibrations = exp_dir.parent if plan.remote else Path(opts.storage).resolve()
        unstable = calibration_warning(calibrations, exp, domains.names)
        if unstable:
            print(unstable, file=sys.stderr, flush=True)
        start = time.time()
        groups = seed_groups(exp.seeds, per_tuner)
        # the whole search's steps, one aggregate beside the per-trial lines; a resumed
        # search starts from the steps its ledgers counted
        overall = StepsProgress(trial_counts(exp)[1] * len(exp.seeds), done=_steps_done(exp_dir))
        try:
            for i, seeds in enumerate(groups):
                if interrupted.is_set():
                    break
                which = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds}"
                if len(groups) > 1:
                    say(f"  {which} ({i + 1} of {len(groups)})", flush=True)
                elif len(seeds) > 1:
                    say(f"  seeds {seeds} at once", flush=True)
                progress = (
                    None
                    if opts.quiet
                    else ProgressPrinter(
                        exp.train.steps,
                        seed_in_label=len(seeds) > 1,
                        overall=overall,
                        group=f"{which} ({i + 1} of {len(groups)})",
                    )
                )
                group = seed_group(exp, plan.space, domains, seeds, exp_dir, progress)
                # with a swarm, its runs wait for a slot (search.swarm.parallel)
                at_once = len(seeds) * per_seed if exp.runs_swarm() else None
                run = plan.tuner_run(
                    seeds, searcher.tuner_parts(group), progress, max_concurrent=at_once
                )
                records += run_tuner(trainable, run, interrupted, resume=opts.resume)
                if exp.runs_swarm() and not interrupted.is_set():
                    found = swarm_optimum(
                        plan, seeds, records, settings, progress, interrupted, opts.resume, say
                    )
                    surfaces.update(found[0])
                    records += found[1]
                if runs_later(exp) and not interrupted.is_set():
                    records += doremi_phase(
                        plan, seeds, records, settings, progress, interrupted, opts.resume, say
                    )
        finally:
            # Whatever finished is written, even after an interrupt or an error.
            wall = time.time() - start
            summary, best = write_outputs(
                records,
                exp,
                domains,
                exp_dir,
                out,
                wall,
                interrupted=interrupted.is_set(),
                surfaces=surfaces,
                searcher=searcher,
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
        answer = format_answer(summary, _as_typed(out))
        if answer and not interrupted.is_set():
            # the last thing printed: what to take from the search, and the command that does
            print(f"\n{answer}")
    if interrupted.is_set():
        raise KeyboardInterrupt(
            f"wrote what finished to {out / 'summary.json'}; continue it with popmix search "
            f"--resume {exp_dir}"
        )
    return summary


def dry_run(exp: Experiment, space: SearchSpace, opts: SearchOptions) -> str:
    """``popmix search --dry-run``: the plan of the search (:mod:`popmix.tune.plan`), after
    every check :func:`resolve` makes; starts no Ray and writes nothing.

    Raises:
        ConfigError, DataError: as :func:`run_search` would, before it starts.
    """
    from popmix.tune.plan import format_plan, plan_search

    plan = resolve(exp, space, opts)
    found = plan_search(
        plan.exp,
        trials_per_seed(plan.exp),
        cpus=opts.cpus,
        per_tuner=plan.searcher.seeds_per_tuner,
    )
    text = format_plan(found, plan.exp, _as_typed(plan.out))
    if opts.address is not None:
        text += (
            f"\n  (--address {opts.address}: the cluster's nodes are checked when the search "
            "starts; the resources and pace above are this machine's)"
        )
    return text


def resume_search(exp_dir: str | Path, opts: SearchOptions) -> tuple[Summary, Path, bool]:
    """Continue the search in ``exp_dir`` (``popmix search --resume``) whose driver stopped:
    killed, disconnected, interrupted. Each seed group's Tuner is restored from its folder
    (unfinished and errored trials continue from their last checkpoints, finished ones are
    kept) or, if it never started, started; the outputs are then written as by a search that
    never stopped. ``opts`` gives only where to run (address, CPUs, quiet); what runs comes
    from the folder's ``search.json``.

    Returns:
        The summary, the folder it is in, and whether the search ran (a search that had
        finished is not run again).

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
            return read_summary(out), out, False
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
        return run_search(saved.exp, saved.space, resumed), Path(resumed.out or folder), True


__all__ = ["SearchOptions", "dry_run", "resolve", "resume_search", "run_search"]
