"""What a search will cost before it runs (``popmix search --dry-run``): its trials and
optimizer steps, whether this machine holds its trials, and a wall time from steps timed here.

No Ray and nothing written: the resources are this machine's, reckoned with the same rules the
search applies to the cluster (:mod:`popmix.tune.cluster`), and the pace is a few optimizer
steps of the experiment's own proxy on a small sample of its data. ``popmix init
--budget-minutes`` times its steps here too.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from popmix._util.progress import format_duration
from popmix.config import BEST_OF_N, RANDOM, ConfigError, Experiment, with_overrides
from popmix.tune.cluster import check_trial_fits, cpus_per_trial, seeds_fitting

#: steps timed (after two untimed ones: allocation, first-call costs)
TIMED_STEPS = 8
#: each domain's sample while timing: enough windows, nothing near the corpus's size
_TIMING_SAMPLE = 1 << 16


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def visible_gpus() -> int:
    """GPUs torch can use here (0 with a CPU-only build)."""
    from popmix.train.device import CudaState

    state = CudaState.probe()
    return state.count if state.usable else 0


def seconds_per_step(exp: Experiment, device: str, threads: int | None = None) -> float:
    """One optimizer step of the experiment's proxy on this machine's ``device``, on a small
    sample of the corpus itself (its vocabulary and windows, not their amount, set the cost);
    ``threads``: torch's CPU threads, as a trial gets them (default the experiment's)."""
    import torch

    from popmix.data import load_experiment_domains
    from popmix.policies import build_policy
    from popmix.train import Trainer

    given: list[tuple[str, object]] = [
        ("data.sample_tokens", _TIMING_SAMPLE),
        ("train.device", device),
    ]
    if threads is not None:
        given.append(("train.threads", threads))
    small = with_overrides(exp, given)
    domains = load_experiment_domains(small)
    trainer = Trainer(
        domains,
        build_policy("stratified", domains.sizes, small.train.steps),
        small.model,
        small.train,
    )
    trainer.train(2)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    trainer.train(TIMED_STEPS)
    trainer.pop_train_losses()  # reads the losses back: the device has finished the steps
    return (time.perf_counter() - start) / TIMED_STEPS


@dataclass(frozen=True)
class SearchPlan:
    """A search's cost as ``--dry-run`` prints it (:func:`plan_search`)."""

    #: trials one seed trains, by what they are (population, best-of-n draws, ...)
    trials: dict[str, int]
    #: optimizer steps one seed trains, summed over its trials
    steps_per_seed: int
    seeds: tuple[int, ...]
    #: what the plan reckons with: this machine's CPUs (or --cpus) and GPUs
    cpus: float
    gpus: int
    trials_at_once: int  # of one seed
    seeds_at_once: int
    cpus_per_trial: float
    #: None: a trial fits this machine; else why not, in one line
    misfit: str | None
    device: str
    #: seconds of one optimizer step here (None: not timed, ``why_untimed`` says why)
    step_s: float | None
    why_untimed: str | None = None

    @property
    def total_steps(self) -> int:
        return self.steps_per_seed * len(self.seeds)

    @property
    def threads(self) -> int:
        """torch's CPU threads in one trial (as the search gives them)."""
        return max(1, int(self.cpus_per_trial))

    @property
    def lanes(self) -> int:
        """Trials that step at once at the timed pace: on the CPU as many as the cores hold at
        a trial's threads, on GPUs one per GPU; never more than run at once."""
        running = self.trials_at_once * self.seeds_at_once
        if self.device.startswith("cuda"):
            return max(1, min(self.gpus, running))
        return max(1, min(int(self.cpus // self.threads), running))

    @property
    def wall_s(self) -> float | None:
        if self.step_s is None:
            return None
        return self.total_steps * self.step_s / self.lanes


def trial_counts(exp: Experiment) -> tuple[dict[str, int], int]:
    """(the trials one seed trains, by kind; the optimizer steps they train, summed): every
    trial its ``train.steps`` (a swarm run its own), the population's exploits adding none
    (a member that copies continues from the donor's step)."""
    steps = exp.train.steps
    trials: dict[str, int] = {}
    total = 0
    if exp.runs_population():
        trials[exp.population_method] = exp.search.population
        total += exp.search.population * steps
    singles = [m for m in exp.baseline_methods() if m not in (BEST_OF_N, RANDOM)]
    for m in singles:
        trials[m] = 1
    total += len(singles) * steps
    draws = len(exp.best_of_n_draws())
    if draws:
        trials[f"{BEST_OF_N} draws"] = draws
        total += draws * steps
    if exp.random_draws():
        trials[f"{RANDOM} draws"] = exp.random_draws()
        total += exp.random_draws() * steps
    if exp.runs_swarm():
        sw = exp.search.swarm
        trials["swarm runs and optimum"] = sw.size + 1
        total += sw.size * sw.run_steps(steps, exp.search.population) + steps
    return trials, total


def plan_search(
    exp: Experiment,
    at_once: int,
    cpus: float | None = None,
    time_steps: bool = True,
    per_tuner: Callable[[int], int] = lambda fit: fit,
) -> SearchPlan:
    """The plan of ``exp`` on this machine: ``at_once`` of a seed's trials run together
    (:func:`popmix.tune.trials.trials_per_seed`), ``cpus`` the CPUs the search may use
    (``--cpus``; default all of this machine's), ``per_tuner`` the searcher's limit on the
    seeds that fit at once. With ``time_steps``, a few steps of the proxy are timed here
    (seconds)."""
    trials, per_seed = trial_counts(exp)
    n_cpus = float(cpus) if cpus else float(usable_cpus())
    gpus = visible_gpus() if exp.resources.gpus_per_trial > 0 else 0
    node = {"CPU": n_cpus, "GPU": float(gpus)}
    seeds_at_once = per_tuner(seeds_fitting(exp, at_once, node))
    per_trial = cpus_per_trial(exp, seeds_at_once * at_once, n_cpus, n_cpus)
    request = {"CPU": per_trial, "GPU": float(exp.resources.gpus_per_trial)}
    try:
        misfit = check_trial_fits(request, [node], None, exp.source or "the experiment file")
    except ConfigError as e:
        misfit = str(e)
    device, step_s, why = "cpu", None, None
    if exp.resources.gpus_per_trial > 0:
        device = "cuda"
        if gpus == 0:
            why = "the trials ask for GPUs and torch sees none here: time it where it will run"
    if why is None and time_steps:
        step_s = seconds_per_step(
            exp, device, None if device == "cuda" else max(1, int(per_trial))
        )
    elif why is None:
        why = "not timed"
    return SearchPlan(
        trials=trials,
        steps_per_seed=per_seed,
        seeds=tuple(exp.seeds),
        cpus=n_cpus,
        gpus=gpus,
        trials_at_once=at_once,
        seeds_at_once=seeds_at_once,
        cpus_per_trial=per_trial,
        misfit=misfit,
        device=device,
        step_s=step_s,
        why_untimed=why,
    )


def format_plan(plan: SearchPlan, exp: Experiment, where: str) -> str:
    """The plan as ``popmix search --dry-run`` prints it (``where``: the folder the search
    would write)."""
    kinds = ", ".join(f"{n} {k}" for k, n in plan.trials.items())
    n_trials = sum(plan.trials.values())
    fits = "fits" if plan.misfit is None else f"does not fit: {plan.misfit}"
    gpus = f", {plan.gpus} GPU(s)" if exp.resources.gpus_per_trial > 0 else ""
    lines = [
        "popmix search --dry-run: the plan; nothing started, nothing written",
        f"  trials per seed: {n_trials} ({kinds}), {plan.trials_at_once} at once; "
        f"{len(plan.seeds)} seed(s) {list(plan.seeds)}, {plan.seeds_at_once} at a time",
        f"  optimizer steps: {plan.steps_per_seed:,} per seed, {plan.total_steps:,} in all "
        f"({exp.train.steps} per model, batch {exp.train.batch_size}, context "
        f"{exp.model.seq_len})",
        f"  resources: this machine, {plan.cpus:g} CPUs{gpus}; each trial asks for "
        f"{plan.cpus_per_trial:g} CPU(s) and {exp.resources.gpus_per_trial:g} GPU(s): {fits}",
    ]
    if plan.step_s is None:
        lines.append(f"  wall time: no estimate ({plan.why_untimed})")
    else:
        threads = "" if plan.device.startswith("cuda") else f", {plan.threads} thread(s)"
        lines += [
            f"  a step: {plan.step_s * 1000:.1f} ms here on {plan.device}{threads} "
            f"({TIMED_STEPS} steps of the proxy timed after 2 untimed, on a sample of the data)",
            f"  estimated wall time: about {format_duration(plan.wall_s or 0.0)} of training "
            f"({plan.total_steps:,} steps x {plan.step_s * 1000:.1f} ms / {plan.lanes} trials "
            f"stepping at once); evaluations, checkpoints, Ray's start and other load on this "
            "machine change it: an estimate",
        ]
    lines.append(f"  the search would write into {where}")
    return "\n".join(lines)


__all__ = [
    "TIMED_STEPS",
    "SearchPlan",
    "format_plan",
    "plan_search",
    "seconds_per_step",
    "trial_counts",
    "usable_cpus",
    "visible_gpus",
]
