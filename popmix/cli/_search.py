"""``popmix search``: the population and the baselines as trials of one Ray Tune experiment."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from popmix.cli._base import (
    DATA_FLAGS,
    MODEL_FLAGS,
    OUT_DIR_HELP,
    SEED_HELP,
    SEEDS_HELP,
    Command,
    Flag,
    UsageError,
    add_alias,
    add_cluster_args,
    add_smoke_arg,
    argument_group,
    cpus,
    margin,
    methods,
    positive_int,
    seeds,
    share,
)
from popmix.config import Experiment
from popmix.tune.fitness import FITNESS_RULES
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
            "--methods",
            "methods",
            "comma-separated methods: pbt, swarm, best-of-n, random (the population's first "
            "draws, held static), stratified, proportional, "
            "temperature, unimax, cooldown, doge, aioli, doremi (after stratified, its "
            "reference), fixed",
            type=methods,
        ),
        Flag("--seeds", "seeds", SEEDS_HELP + " or a list like 0,5,7", type=seeds),
        Flag(
            "--reference",
            "search.reference",
            "the method every other is compared with, paired by seed",
            metavar="METHOD",
        ),
        Flag(
            "--objective",
            "search.objective",
            "what the search minimises on validation",
            metavar="mean|worst|domain:NAME",
        ),
        Flag(
            "--space",
            "search.space",
            "what the population searches: a search-space file, or a shipped one by name",
            metavar="YAML",
        ),
        Flag(
            "--searcher",
            "search.searcher",
            "how the population searches",
            choices=tuple(SEARCHERS),
        ),
        Flag("--population", "search.population", "members (Optuna: trials)", positive_int),
        Flag("--report-every", "search.report_every", "steps between reports", positive_int),
        Flag(
            "--exploit-margin",
            "search.exploit_margin",
            "copy a donor only when it leads by more than this",
            type=margin,
        ),
        Flag(
            "--rounds",
            "search.rounds",
            "when PBT decides: sync (a seed's members ranked on the same step) or async",
            choices=("sync", "async"),
        ),
        Flag(
            "--fitness",
            "search.fitness",
            "what PBT ranks on: last (the read at the decision), average (the last reads) "
            "or forecast (the reads extrapolated to the last step)",
            choices=FITNESS_RULES,
        ),
        Flag(
            "--burn-in",
            "search.burn_in",
            "the share of training before PBT's first decision",
            type=share,
            metavar="SHARE",
        ),
        Flag("--swarm-size", "search.swarm.size", "swarm runs per seed", positive_int),
        Flag(
            "--swarm-prior",
            "search.swarm.prior",
            "the mixtures' mean",
            metavar="stratified|proportional|temperature:T",
        ),
        Flag(
            "--swarm-concentration",
            "search.swarm.concentration",
            "how close the mixtures stay to the prior",
            type=float,
        ),
        Flag(
            "--swarm-steps",
            "search.swarm.steps",
            "steps of each swarm run (default: the equal budget)",
            positive_int,
        ),
        Flag(
            "--confirm-seeds",
            "confirm.seeds",
            "with --confirm: how many fresh seeds",
            positive_int,
        ),
        *DATA_FLAGS,
        *MODEL_FLAGS,
        Flag(
            "--cpus-per-trial",
            "resources.cpus_per_trial",
            "CPUs per trial; auto: share them so every trial runs at once",
            type=cpus,
        ),
        Flag(
            "--gpus-per-trial",
            "resources.gpus_per_trial",
            "GPUs per trial: 0, 1 or a share 1/n",
            type=float,
        ),
        Flag(
            "--max-failures",
            "resources.max_failures",
            "restarts of a trial whose worker dies, from its last checkpoint",
            type=int,
        ),
    )

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        compare = argument_group(p, "what to compare")
        compare.add_argument("--seed", type=int, metavar="S", help=SEED_HELP)
        g = argument_group(p, "the search")
        g.add_argument(
            "--weights-from",
            dest="init_weights",
            metavar="FILE",
            help="start the population from a popmix weights file's mixture",
        )
        add_alias(g, "--init-weights", "--weights-from", dest="init_weights", metavar="FILE")
        g.add_argument("--asha", action="store_true", help="Optuna: stop bad trials early")
        g.add_argument(
            "--dry-run",
            action="store_true",
            help="print the plan (trials, steps, whether they fit, a wall time from steps "
            "timed here) and exit, starting and writing nothing",
        )
        argument_group(p, "confirmation").add_argument(
            "--confirm",
            action="store_true",
            help="then retrain the answer and the baselines on fresh seeds (popmix confirm)",
        )
        argument_group(p, "resume").add_argument(
            "--resume",
            metavar="EXPERIMENT_DIR",
            help="continue a stopped search from its folder (or its storage URI)",
        )
        add_cluster_args(
            p,
            "where trials and checkpoints go; on a cluster, a folder every node reaches",
            "<experiment>-<time>",
            OUT_DIR_HELP.format(default="STORAGE/NAME"),
        )
        add_smoke_arg(
            p,
            "12 steps, population 2, a swarm of 5, the first seed, a 1-layer model of width "
            "32, at least 1 CPU per trial; GPUs are kept",
        )

    def extra_overrides(self, args: argparse.Namespace) -> list[tuple[str, Any]]:
        out: list[tuple[str, Any]] = [("search.asha", True)] if args.asha else []
        if args.seed is not None:
            if args.seeds is not None:
                raise UsageError("give --seed S (one seed) or --seeds N|LIST, not both")
            out.append(("seeds", [args.seed]))
        return out

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
            ("--seed", args.seed is not None),
            ("--weights-from", args.init_weights),
            ("--dry-run", args.dry_run),
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
        from popmix.tune.search import SearchOptions, dry_run, run_search

        if args.resume:
            return self.resume(args)
        if args.init_weights and not Path(args.init_weights).is_file():
            raise UsageError(f"--weights-from {args.init_weights}: file not found")
        exp = self.experiment(args)
        space = load_space(
            resolve_space_path(exp.search.space, exp.source if args.space is None else None)
        )
        if args.init_weights:
            if space.sample_weights is None:
                raise UsageError(
                    "--weights-from needs a search space with sample_weights (e.g. --space "
                    "sampling)"
                )
            # with anchors, the file is one more anchor (the first); otherwise the start
            vec = dataclasses.replace(space.sample_weights, init_file=args.init_weights)
            if vec.init != "anchors":
                vec = dataclasses.replace(vec, init="file")
            space = dataclasses.replace(space, sample_weights=vec)
        opts = SearchOptions(
            address=args.address,
            storage=args.storage,
            name=args.name,
            out=args.out,
            cpus=args.cpus,
            quiet=args.quiet,
        )
        if args.dry_run:
            print(dry_run(exp, space, opts))
            return 0
        summary = run_search(exp, space, opts)
        if not summary.rows:
            return 1
        if args.confirm:
            from popmix.tune.confirm import run_confirm

            # --smoke: one fresh seed, like popmix confirm --smoke (the budget is the search's)
            seeds = 1 if args.smoke else None
            run_confirm(args.out or str(summary.experiment_dir), opts, n_seeds=seeds)
        return 0
