"""``popmix confirm``: retrain what a search found, from scratch, on fresh seeds.

A search's answer is the best member on its own validation reads, from its own seeds. This
retrains, with the search's budget and proxy, on seeds the search never used:

- ``best-schedule``: the best member's weights over steps, replayed (rescaled to the steps);
- ``best-final``: its final weights, static from the first step;
- ``swarm``, when the search ran the swarm: its predicted optimum (``swarm_optimum.json``),
  static from the first step, as PBT's answer is;
- every baseline of the search (best-of-n and random aside: they are the controls for the
  search's selection, and a confirmation selects nothing); DoReMi after the others, in a Tuner
  of its own (``confirm-doremi``), against the stratified trial of the same fresh seed, as in
  the search (:mod:`popmix.tune.reference`);

and, when the experiment's ``confirm`` section names a second scale (``model`` changes,
``steps``), the same there. Every trial of a scale runs in one Tuner, all seeds at once.

Files: ``confirm.json`` beside the search's ``summary.json`` (``methods``, as in
``summary.json``, and ``rank_agreement`` between the search's ranking of the methods and the
confirmation's; a second scale under ``second_scale``); Tune folders ``confirm/`` and
``confirm-second/`` in the experiment folder; TensorBoard runs under its
``tensorboard/confirm/`` and ``tensorboard/confirm-second/``.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ray import tune

from popmix.config import (
    BEST_OF_N,
    CONFIRM_FINAL,
    CONFIRM_SCHEDULE,
    RANDOM,
    SWARM,
    ConfigError,
    Experiment,
    experiment_from_dict,
    with_overrides,
)
from popmix.data import load_experiment_domains
from popmix.data.domains import domain_groups
from popmix.records.summary import Groups, Summary, SummaryError, read_methods, read_summary
from popmix.records.table import format_groups, format_methods
from popmix.records.trial import TrialSpec
from popmix.records.weights import WeightsFileError, WeightsSchedule
from popmix.tune.callbacks import Interrupted, ProgressPrinter, catch_sigint
from popmix.tune.cluster import RaySession, SearchOptions, resolve_cpus, tune_environment
from popmix.tune.reference import DOREMI, doremi_specs, runs_later
from popmix.tune.reference import TUNER_SUFFIX as REFERENCE_SUFFIX
from popmix.tune.runner import TunerRun, run_tuner
from popmix.tune.searchers import TunerParts
from popmix.tune.spec import TrialSettings
from popmix.tune.summarize import group_intervals, method_intervals, summarize
from popmix.tune.trainable import MixtureTrainable

#: which scales ``--scale`` picks from
SCALES = ("search", "second", "both")


@dataclass(frozen=True)
class FinishedSearch:
    """What ``popmix confirm`` reads from a search's output folder."""

    folder: Path  # where summary.json is (the search's --out)
    summary: Summary
    exp: Experiment
    best: WeightsSchedule | None  # None: the search ran no population
    swarm: WeightsSchedule | None = None  # the swarm's predicted optimum (None: no swarm)

    @property
    def exp_dir(self) -> Path:
        return Path(self.summary.experiment_dir or self.folder)


def read_search(run_dir: str | Path) -> FinishedSearch:
    """The finished search in ``run_dir``.

    Raises:
        ConfigError: not a folder, not a popmix search, interrupted or without its outputs.
    """
    folder = Path(run_dir)
    if folder.name == "summary.json" and folder.is_file():
        folder = folder.parent
    fix = "give the folder of a finished popmix search (where its summary.json is)"
    if not folder.is_dir():
        raise ConfigError(f"{run_dir}: no such folder; {fix}")
    path = folder / "summary.json"
    if not path.is_file():
        raise ConfigError(f"{run_dir}: not a popmix search folder (no summary.json); {fix}")
    try:
        summary = read_summary(path)
    except SummaryError as e:
        raise ConfigError(str(e)) from None
    if summary.interrupted:
        raise ConfigError(
            f"{run_dir}: the search was interrupted before it finished; rerun it, then confirm"
        )
    raw = summary.experiment_config
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path} has no experiment_config (written by an older popmix); rerun the search"
        )
    exp = experiment_from_dict(raw, f"{path}: experiment_config")
    domains = list(summary.domains) or None
    best: WeightsSchedule | None = None
    swarm: WeightsSchedule | None = None
    if exp.runs_population():
        why = "no population member finished"
        best = _read_schedule(folder, "best_schedule.json", domains, run_dir, why)
    if exp.runs_swarm():
        why = "the swarm's fit or its optimum's run failed; see summary.json's swarm"
        swarm = _read_schedule(folder, "swarm_optimum.json", domains, run_dir, why)
    return FinishedSearch(folder, summary, exp, best, swarm)


def _read_schedule(
    folder: Path, name: str, domains: Any, run_dir: str | Path, why_missing: str
) -> WeightsSchedule:
    """The search's weights file ``name``, or a ConfigError saying why it is missing or bad."""
    path = folder / name
    if not path.is_file():
        raise ConfigError(f"{run_dir}: no {name} ({why_missing}); rerun the search")
    try:
        return WeightsSchedule.read(path, domains)
    except WeightsFileError as e:
        raise ConfigError(f"{path}: {e}") from None


def confirm_seeds(exp: Experiment, n: int) -> list[int]:
    """``n`` seeds the search never used: its largest seed + 1 onward."""
    start = max(exp.seeds) + 1
    return list(range(start, start + n))


def confirm_methods(exp: Experiment) -> list[str]:
    """What a confirmation trains: the best member's schedule and final weights (when a
    population ran), the swarm's optimum (when a swarm ran), then the search's baselines
    without best-of-n and random (the controls for the search's selection: the answer is
    confirmed as one schedule). DoReMi, when the search ran it, is trained after them
    (:func:`_doremi_after`)."""
    found = [CONFIRM_SCHEDULE, CONFIRM_FINAL] if exp.runs_population() else []
    found += [SWARM] if exp.runs_swarm() else []
    return found + [m for m in exp.baseline_methods() if m not in (BEST_OF_N, RANDOM)]


def confirm_specs(
    exp: Experiment,
    best: WeightsSchedule | None,
    names: list[str],
    seeds: list[int],
    swarm: WeightsSchedule | None = None,
) -> list[TrialSpec]:
    """The trials of one scale: every confirmed method on every seed."""
    specs = []
    for seed in seeds:
        for method in confirm_methods(exp):
            if method == DOREMI:
                continue  # after its reference: _doremi_after
            if method == SWARM:
                assert swarm is not None
                weights = swarm.aligned(names).final_weights
                specs.append(TrialSpec(SWARM, seed, params={"weights": dict(zip(names, weights))}))
            elif method in (CONFIRM_SCHEDULE, CONFIRM_FINAL):
                assert best is not None
                mode = "schedule" if method == CONFIRM_SCHEDULE else "final"
                _, params = best.aligned(names).replay(mode, exp.train.steps)
                if method == CONFIRM_FINAL:
                    params = {"weights": dict(zip(names, params["weights"]))}
                specs.append(TrialSpec(method, seed, params=params))
            else:
                specs.append(TrialSpec.single(exp, method, seed, names))
    return specs


def _ranks(values: list[float]) -> np.ndarray:
    """Ranks 1..n, ties given their mean rank."""
    x = np.asarray(values, dtype=np.float64)
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(1, len(x) + 1)
    for v in np.unique(x):
        tied = x == v
        ranks[tied] = ranks[tied].mean()
    return ranks


def rank_agreement(search: dict[str, float], confirmed: dict[str, float]) -> dict[str, Any]:
    """How far the confirmation orders the methods as the search did (by mean test
    perplexity over seeds; the search's population stands for ``best-schedule``):
    ``spearman`` (the rank correlation) and ``pairwise_accuracy`` (the share of method pairs
    both order the same way), over the methods both have (None below 2 methods)."""
    common = [m for m in confirmed if m in search]
    out: dict[str, Any] = {"methods": common, "spearman": None, "pairwise_accuracy": None}
    if len(common) < 2:
        return out
    a = _ranks([search[m] for m in common])
    b = _ranks([confirmed[m] for m in common])
    if a.std() > 0 and b.std() > 0:
        out["spearman"] = float(np.corrcoef(a, b)[0, 1])
    pairs = list(itertools.combinations(range(len(common)), 2))
    same = sum(np.sign(a[i] - a[j]) == np.sign(b[i] - b[j]) for i, j in pairs)
    out["pairwise_accuracy"] = float(same / len(pairs))
    return out


def _search_means(found: FinishedSearch) -> dict[str, float]:
    population = found.summary.population_method
    out = {}
    for method, entry in found.summary.methods.items():
        mean = entry.test_mean_ppl.mean
        if mean is None or method in (BEST_OF_N, RANDOM):
            continue
        # the population's answer is confirmed as its schedule; the swarm's as itself
        out[CONFIRM_SCHEDULE if method == population != SWARM else method] = float(mean)
    return out


def _run_scale(
    found: FinishedSearch,
    exp: Experiment,
    label: str,
    seeds: list[int],
    domains: Any,
    quiet: bool,
    interrupted: Interrupted,
) -> dict[str, Any]:
    """Train one scale's trials in one Tuner; its section of ``confirm.json``."""
    specs = confirm_specs(exp, found.best, domains.names, seeds, found.swarm)
    cpus = resolve_cpus(exp, len(specs))
    settings = TrialSettings.of(exp, None, cpus)
    trainable = tune.with_resources(
        tune.with_parameters(MixtureTrainable, domains=domains, settings=settings),
        {"cpu": cpus, "gpu": exp.resources.gpus_per_trial},
    )
    folder = "confirm" if label == "search" else "confirm-second"
    progress = ProgressPrinter(exp.train.steps, every_report=False, seed_in_label=True)
    start = time.time()
    run = TunerRun(
        name=folder,
        storage=str(found.exp_dir),
        tensorboard=found.exp_dir / "tensorboard" / folder,
        parts=TunerParts.grid(specs),
        max_failures=exp.resources.max_failures,
        callbacks=() if quiet else (progress,),
    )
    records = run_tuner(trainable, run, interrupted)
    if runs_later(exp) and not interrupted.is_set():
        records += _doremi_after(found, exp, seeds, domains, records, run, interrupted)
    # the population's label: none runs here
    summary = summarize(records, population_method="")
    reference = exp.search.reference
    methods = method_intervals(summary, reference)
    confirmed = {
        m: e.test_mean_ppl.mean
        for m, e in read_methods(methods).items()
        if e.test_mean_ppl.mean is not None
    }
    return {
        "scale": label,
        "model": dataclasses.asdict(exp.model),
        "steps": exp.train.steps,
        "seeds": seeds,
        "reference": reference,
        "rows": summary["rows"],
        "methods": methods,
        "groups": group_intervals(summary, domain_groups(domains, exp.data.groups), reference),
        "rank_agreement": rank_agreement(_search_means(found), confirmed),
        "wall_time_s": time.time() - start,
    }


def _doremi_after(
    found: FinishedSearch,
    exp: Experiment,
    seeds: list[int],
    domains: Any,
    records: list[dict[str, Any]],
    first: TunerRun,
    interrupted: Interrupted,
) -> list[dict[str, Any]]:
    """DoReMi's trials of a scale, in a Tuner of their own after the scale's: each scores its
    batches against the stratified trial of its fresh seed, just trained (the search's rule:
    the reference is the same seed's stratified run at the same budget, never retrained)."""
    specs, missing = doremi_specs(exp, seeds, domains.names, records, found.exp_dir)
    if missing:
        print(
            f"popmix confirm: {DOREMI}: no finished stratified run (its reference) for "
            f"seed(s) {missing}, so no {DOREMI} trial there",
            file=sys.stderr,
            flush=True,
        )
    if not specs:
        return []
    cpus = resolve_cpus(exp, len(specs))
    settings = TrialSettings.of(exp, None, cpus)
    settings = dataclasses.replace(settings, reference_root=str(found.exp_dir))
    trainable = tune.with_resources(
        tune.with_parameters(MixtureTrainable, domains=domains, settings=settings),
        {"cpu": cpus, "gpu": exp.resources.gpus_per_trial},
    )
    run = dataclasses.replace(
        first,
        name=first.name + REFERENCE_SUFFIX,
        parts=TunerParts.grid(specs),
    )
    return run_tuner(trainable, run, interrupted)


def run_confirm(
    run_dir: str | Path,
    opts: SearchOptions,
    n_seeds: int | None = None,
    scale: str | None = None,
    overrides: list[str | tuple[str, Any]] | None = None,
) -> dict[str, Any]:
    """Confirm the search in ``run_dir``; returns what ``confirm.json`` holds (also written).

    Args:
        opts: where Ray runs, and whether to print progress.
        n_seeds: fresh seeds (default: the experiment's ``confirm.seeds``).
        scale: ``search``, ``second`` or ``both`` (default: both when the experiment names a
            second scale, else search).
        overrides: dotted-key changes to the search's experiment (``popmix confirm --smoke``'s
            tiny budget; a confirmation is otherwise the search's own budget and proxy).

    Raises:
        ConfigError, DataError: a missing or incomplete search, a second scale the experiment
            does not name, data that cannot be loaded.
    """
    found = read_search(run_dir)
    exp = with_overrides(found.exp, overrides or [])
    n = n_seeds or exp.confirm.seeds
    if n < 1:
        raise ConfigError(f"--seeds must be at least 1, got {n}")
    scale = scale or ("both" if exp.confirm.second_scale else "search")
    if scale not in SCALES:
        raise ConfigError(f"unknown --scale {scale!r}; use {', '.join(SCALES)}")
    if scale != "search" and not exp.confirm.second_scale:
        raise ConfigError(
            f"--scale {scale}: the experiment names no second scale; give one, e.g. "
            "confirm.model.d_model=256 confirm.steps=2000 (or a confirm: section in the "
            "experiment file)"
        )
    # the search's own sample of a corpus (its budget's), whatever the scale
    domains = load_experiment_domains(found.exp)
    if exp.model.kind != "popmix":
        from popmix.train.custom import check_model

        check_model(exp.model, domains)  # a trainer file since changed or gone, before Ray
    seeds = confirm_seeds(exp, n)
    say = (lambda *a, **k: None) if opts.quiet else print
    out = found.folder / "confirm.json"
    # a scale not rerun keeps what an earlier confirmation found for it
    report: dict[str, Any] = _previous(out)
    report.update(search=str(found.folder), experiment=exp.name)
    scales = [("search", exp)] if scale in ("search", "both") else []
    if scale in ("second", "both"):
        scales.append(("second", exp.second_scale()))
    env, env_defaults = tune_environment(opts)
    with RaySession(opts, env, env_defaults), catch_sigint("popmix confirm") as interrupted:
        for label, variant in scales:
            if interrupted.is_set():
                break
            m = variant.model
            say(
                f"popmix confirm: {', '.join(confirm_methods(variant))} on {domains.name}, "
                f"seeds {seeds} (fresh), {variant.train.steps} steps, model {m.n_layer} layers "
                f"x width {m.d_model} ({label} scale)",
                flush=True,
            )
            section = _run_scale(found, variant, label, seeds, domains, opts.quiet, interrupted)
            if label == "search":
                report.update(section)
            else:
                report["second_scale"] = section
            # the table is the command's result: printed under --quiet too, as search does
            print(format_confirm(section), flush=True)
    out.write_text(json.dumps(report, indent=2, default=str))
    say(f"\nwrote {out}")
    if interrupted.is_set():
        raise KeyboardInterrupt(f"wrote what finished to {out}")
    return report


def _previous(path: Path) -> dict[str, Any]:
    """An earlier ``confirm.json`` of the same folder (empty when there is none)."""
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return old if isinstance(old, dict) else {}


def format_confirm(section: dict[str, Any]) -> str:
    """One scale's methods block and its rank agreement with the search."""
    methods = read_methods(section["methods"])
    lines = ["", *format_methods(methods, section["reference"], always=True)]
    by_group = format_groups(Groups.from_dict(section.get("groups")), section["reference"])
    if by_group:
        lines += ["", *by_group]
    ra = section["rank_agreement"]
    if ra["pairwise_accuracy"] is not None:
        rho = "-" if ra["spearman"] is None else f"{ra['spearman']:+.2f}"
        lines.append(
            f"\nrank agreement with the search over {len(ra['methods'])} methods: Spearman "
            f"{rho}, pairs ordered alike {ra['pairwise_accuracy']:.0%}"
        )
    return "\n".join(lines)


__all__ = ["FinishedSearch", "confirm_seeds", "rank_agreement", "read_search", "run_confirm"]
