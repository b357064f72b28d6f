"""``popmix search``: the population and the baselines as trials of one Ray Tune experiment."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from popmix.cli._base import (
    DATA_FLAGS,
    MODEL_FLAGS,
    Command,
    Flag,
    UsageError,
    add_cluster_args,
    add_smoke_arg,
    cpus,
    margin,
    methods,
    positive_int,
    seeds,
)
from popmix.config import Experiment
from popmix.tune.searchers import SEARCHERS

#: ``--smoke`` on a search: a few reports of a tiny model, two members, the first seed.
SMOKE_SEARCH = {
    "train.steps": 12,
    "search.report_every": 6,
    "search.perturbation_interval": 1,
    "search.population": 2,
    # the fit's fewest runs and a few resamples: a smoke swarm checks the path, not the surface
    "search.swarm.size": 5,
    "search.swarm.n_boot": 4,
}


class SearchCommand(Command):
    name = "search"
    help = "search mixtures with PBT (or PB2, Optuna) beside the baselines on Ray Tune"
    description = (
        "Train a population of proxy models whose mixtures PBT perturbs and copies, beside the "
        "baseline methods, as trials of one Ray Tune experiment; print a comparison table and "
        "write summary.json, best_schedule.json, lineage.json and TensorBoard logs."
    )
    flags = (
        Flag(
            "--space",
            "search.space",
            "search-space file (as given, next to the experiment, or a shipped one)",
            metavar="YAML",
        ),
        Flag(
            "--searcher",
            "search.searcher",
            "how the population searches; swarm: short static-mixture runs, a fitted "
            "surface and its predicted optimum in the population's place",
            choices=tuple(SEARCHERS),
        ),
        Flag(
            "--population", "search.population", "population size (Optuna: trials)", positive_int
        ),
        Flag("--report-every", "search.report_every", "steps between reports", positive_int),
        Flag("--objective", "search.objective", "mean, worst or domain:<name>"),
        Flag(
            "--seeds",
            "seeds",
            "number of seeds (3 = seeds 0,1,2) or a list like 0,5,7",
            type=seeds,
        ),
        Flag(
            "--methods",
            "methods",
            "comma-separated: pbt (the searched population), swarm (static-mixture runs, a "
            "fitted surface, its optimum), best-of-n (the best on "
            "validation of n stratified seeds: the control for PBT's selection), stratified, "
            "proportional, temperature, cooldown, doge, aioli, fixed",
            type=methods,
        ),
        Flag("--swarm-size", "search.swarm.size", "swarm runs per seed", positive_int),
        Flag(
            "--swarm-prior",
            "search.swarm.prior",
            "the swarm's Dirichlet mean: stratified, proportional or temperature:<T>",
        ),
        Flag(
            "--swarm-concentration",
            "search.swarm.concentration",
            "the swarm's Dirichlet concentration per domain (larger: closer to the prior)",
            type=float,
        ),
        Flag(
            "--swarm-steps",
            "search.swarm.steps",
            "steps of each swarm run (default: the equal budget, (population - 1) * steps / "
            "swarm size)",
            positive_int,
        ),
        Flag(
            "--reference",
            "search.reference",
            "the method every other is compared with, paired by seed",
        ),
        Flag(
            "--exploit-margin",
            "search.exploit_margin",
            "a member copies a donor only when it is ahead by more than this (nats); auto: "
            "1.96 combined standard errors of the two validation reads; 0: Ray's plain rule",
            type=margin,
        ),
        Flag(
            "--confirm-seeds",
            "confirm.seeds",
            "with --confirm: fresh seeds for the confirmation",
            positive_int,
        ),
        *DATA_FLAGS,
        *MODEL_FLAGS,
        Flag(
            "--cpus-per-trial",
            "resources.cpus_per_trial",
            "CPUs per trial, or auto: share all CPUs so every trial runs at once; torch "
            "threads = max(1, floor(value))",
            type=cpus,
        ),
        Flag(
            "--gpus-per-trial",
            "resources.gpus_per_trial",
            "GPUs per trial; fractions share a GPU",
            type=float,
        ),
        Flag(
            "--max-failures",
            "resources.max_failures",
            "restarts of a trial whose worker process or node dies, each from its last "
            "checkpoint (default 3; 0: a dead worker fails the trial)",
            type=int,
        ),
    )

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--resume",
            metavar="EXPERIMENT_DIR",
            help="continue the search in this experiment folder after its driver stopped "
            "(killed, disconnected, Ctrl-C): unfinished trials go on from their last "
            "checkpoints, finished ones are kept; its settings come from the folder",
        )
        p.add_argument("--asha", action="store_true", help="Optuna: stop bad trials early")
        p.add_argument(
            "--confirm",
            action="store_true",
            help="then retrain the best member's schedule, its final weights and the baselines "
            "from scratch on fresh seeds (popmix confirm; writes confirm.json)",
        )
        p.add_argument(
            "--init-weights",
            metavar="FILE",
            help="start the population's sampling weights from a popmix weights file (e.g. "
            "popmix bracket's bracket_schedule.json or a best_schedule.json)",
        )
        add_cluster_args(
            p,
            "experiment root (runs); on a multi-node cluster a shared folder",
            "<experiment>-<time>",
            "where summary files go (default: the experiment folder)",
        )
        add_smoke_arg(
            p,
            "12 steps reported every 6, population 2, a swarm of 5 runs, the first seed only, a "
            "1-layer model of width 32, 2 windows per evaluation, at least 1 CPU per trial; GPUs "
            "are kept",
        )

    def extra_overrides(self, args: argparse.Namespace) -> list[tuple[str, Any]]:
        return [("search.asha", True)] if args.asha else []

    def smoke_overrides(self, args: argparse.Namespace, exp: Experiment) -> list[tuple[str, Any]]:
        out = [*super().smoke_overrides(args, exp), *SMOKE_SEARCH.items()]
        out.append(("seeds", list(exp.seeds[:1])))
        c = exp.resources.cpus_per_trial
        if not isinstance(c, (int, float)) or c < 1:  # "auto" or a fraction
            # A tiny trial costs less than starting a worker process for it: with whole CPUs
            # Tune runs trials in turn on reused actors instead of one process per trial.
            out.append(("resources.cpus_per_trial", 1.0))
        return out

    def resume(self, args: argparse.Namespace) -> int:
        from popmix.tune.search import SearchOptions, resume_search

        given = [f.flag for f in self.flags if getattr(args, f.dest, None) is not None]
        given += [text.split("=")[0] for text in args.overrides or []]
        for flag, value in (
            ("--experiment", args.experiment),
            ("--smoke", args.smoke),
            ("--asha", args.asha),
            ("--init-weights", args.init_weights),
            ("--name", args.name),
            ("--out", args.out),
            ("--storage", args.storage != "runs"),
        ):
            if value:
                given.append(flag)
        if given:
            raise UsageError(
                f"--resume continues a search with the settings it started with; drop "
                f"{', '.join(given)} (only --address, --cpus, --quiet and --confirm apply)"
            )
        opts = SearchOptions(address=args.address, cpus=args.cpus, quiet=args.quiet)
        summary, out, _ = resume_search(args.resume, opts)
        if not summary.rows:
            return 1
        if args.confirm:
            from popmix.tune.confirm import run_confirm

            run_confirm(str(out), opts)  # where the resumed search wrote its summary
        return 0

    def run(self, args: argparse.Namespace) -> int:
        from popmix.config import load_space, resolve_space_path
        from popmix.tune.search import SearchOptions, run_search

        if args.resume:
            return self.resume(args)
        if args.init_weights and not Path(args.init_weights).is_file():
            raise UsageError(f"--init-weights {args.init_weights}: file not found")
        exp = self.experiment(args)
        space = load_space(
            resolve_space_path(exp.search.space, exp.source if args.space is None else None)
        )
        if args.init_weights:
            if space.sample_weights is None:
                raise UsageError("--init-weights needs a search space with sample_weights")
            vec = dataclasses.replace(
                space.sample_weights, init="file", init_file=args.init_weights
            )
            space = dataclasses.replace(space, sample_weights=vec)
        opts = SearchOptions(
            address=args.address,
            storage=args.storage,
            name=args.name,
            out=args.out,
            cpus=args.cpus,
            quiet=args.quiet,
        )
        summary = run_search(exp, space, opts)
        if not summary.rows:
            return 1
        if args.confirm:
            from popmix.tune.confirm import run_confirm

            # --smoke: one fresh seed, like popmix confirm --smoke (the budget is the search's)
            seeds = 1 if args.smoke else None
            run_confirm(args.out or str(summary.experiment_dir), opts, n_seeds=seeds)
        return 0
