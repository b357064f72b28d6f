"""The Tuners a search runs after a seed group's, on what the group finished: the swarm's
predicted optimum (fitted on its short runs) and DoReMi (against the group's stratified run).
Each runs alone on the cluster, so its trials share all of its CPUs."""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

from popmix.tune.callbacks import Interrupted
from popmix.tune.cluster import resolve_cpus
from popmix.tune.reference import TUNER_SUFFIX as DOREMI_SUFFIX
from popmix.tune.reference import doremi_specs
from popmix.tune.resolved import ResolvedSearch, trainable_for
from popmix.tune.runner import run_tuner
from popmix.tune.searchers import TunerParts
from popmix.tune.spec import TrialSettings
from popmix.tune.swarm import TUNER_SUFFIX, fit_notes, optimum_specs, surfaces_for


def swarm_optimum(
    plan: ResolvedSearch,
    seeds: list[int],
    records: list[dict[str, Any]],
    settings: TrialSettings,
    progress: Any,
    interrupted: Interrupted,
    resume: bool,
    say: Any,
) -> tuple[dict[int, dict[str, Any]], list[dict[str, Any]]]:
    """The swarm's second phase for ``seeds``: each seed's surface fitted on its finished
    swarm runs (or read back, on a resume), then the predicted optima trained in a Tuner of
    their own. Returns (surfaces by seed, the optimum trials' records)."""
    exp, names = plan.exp, plan.domains.names
    caps = exp.weight_caps(names, plan.domains.sizes)
    fixed = exp.weight_fixed(names, plan.domains.sizes, exp.search.swarm.floor)
    surfaces = surfaces_for(exp, records, seeds, names, plan.exp_dir, caps, fixed)
    for note in fit_notes(surfaces):
        print(f"popmix search: swarm: {note}", file=sys.stderr, flush=True)
    specs = optimum_specs(surfaces, names)
    if not specs:
        return surfaces, []
    say(f"  swarm: training the predicted optimum of seed(s) {[t.seed for t in specs]}")
    # alone on the cluster now: the optimum trials share all its CPUs
    cpus = resolve_cpus(exp, len(specs))
    threads = dataclasses.replace(settings, threads=max(1, int(cpus)))
    run = plan.tuner_run(seeds, TunerParts.grid(specs), progress, suffix=TUNER_SUFFIX)
    # a refitted optimum is a new trial: the saved Tuner trained the stale one
    refitted = any(s.get("refitted") for s in surfaces.values())
    trainable = trainable_for(plan, threads, cpus)
    return surfaces, run_tuner(trainable, run, interrupted, resume=resume and not refitted)


def doremi_phase(
    plan: ResolvedSearch,
    seeds: list[int],
    records: list[dict[str, Any]],
    settings: TrialSettings,
    progress: Any,
    interrupted: Interrupted,
    resume: bool,
    say: Any,
) -> list[dict[str, Any]]:
    """DoReMi's trials of ``seeds``, in a Tuner of their own after the group's: each scores
    its batches against its seed's finished stratified trial (the reference, trained once in
    the group's Tuner and read from its final checkpoint, never retrained). Returns their
    records."""
    names = plan.domains.names
    specs, missing = doremi_specs(plan.exp, seeds, names, records, plan.exp_dir)
    if missing:
        print(
            f"popmix search: doremi: no finished stratified run (its reference) for seed(s) "
            f"{missing}, so no doremi trial there",
            file=sys.stderr,
            flush=True,
        )
    if not specs:
        return []
    say(
        f"  doremi: training against the stratified reference of seed(s) {[t.seed for t in specs]}"
    )
    # alone on the cluster now: the DoReMi trials share all its CPUs; their references'
    # paths are relative to the experiment folder, wherever it is now
    cpus = resolve_cpus(plan.exp, len(specs))
    later = dataclasses.replace(
        settings, threads=max(1, int(cpus)), reference_root=str(plan.exp_dir)
    )
    run = plan.tuner_run(seeds, TunerParts.grid(specs), progress, suffix=DOREMI_SUFFIX)
    return run_tuner(trainable_for(plan, later, cpus), run, interrupted, resume=resume)
