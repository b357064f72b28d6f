"""``popmix calibrate``: the proxy's seed noise on your data, and the seeds a comparison needs."""

from __future__ import annotations

import argparse
from typing import Any

from popmix.cli._base import (
    DATA_FLAGS,
    MODEL_FLAGS,
    OUT_DIR_HELP,
    Command,
    Flag,
    add_cluster_args,
    add_not_here,
    add_smoke_arg,
    argument_group,
    cpus,
    positive_int,
)
from popmix.config import Experiment


def at_least_two(text: str) -> int:
    value = positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"a spread needs at least 2 seeds, got {value}")
    return value


class CalibrateCommand(Command):
    name = "calibrate"
    help = "measure the proxy's seed noise on your data: spread, splits, seeds a comparison needs"
    description = (
        "Train S seeds of stratified and proportional with the experiment's proxy as trials of "
        "one Ray Tune experiment; report the seed spread of mean and worst test perplexity, "
        "the evaluation noise, whether runs split or spike, and the smallest paired difference "
        "2, 3 and 5 seeds resolve. --sweep also tries the learning rate halved and doubled and "
        "the warm-up doubled, and writes calibrated.yaml with the best setting that meets the "
        "target (seed std <= 1%% of the mean). Writes calibrate.json."
    )
    flags = (
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
    )

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        g = argument_group(p, "what to measure")
        g.add_argument(
            "--seeds",
            type=at_least_two,
            default=5,
            metavar="N",
            help="how many seeds per method and setting, at least 2 (default 5; the "
            "experiment's own seeds are not used)",
        )
        add_not_here(
            g,
            "--seed",
            "popmix calibrate measures a spread over --seeds N seeds (at least 2), not one seed",
        )
        g.add_argument(
            "--sweep",
            action="store_true",
            help="also measure the learning rate halved and doubled and the warm-up doubled",
        )
        g.add_argument(
            "--sweep-grid",
            metavar="GRID",
            help='cross these settings instead, e.g. "train.lr=0.001,0.003 train.steps=1000,2000"',
        )
        add_cluster_args(
            p,
            "where trials go and calibrations are recorded (popmix search and init read them)",
            "calibrate-<experiment>-<time>",
            OUT_DIR_HELP.format(default="STORAGE/NAME"),
        )
        add_smoke_arg(
            p,
            "2 seeds, the proxy of popmix search --smoke: 12 steps, a 1-layer model of width "
            "32, 2 windows per evaluation",
        )

    def smoke_overrides(self, args: argparse.Namespace, exp: Experiment) -> list[tuple[str, Any]]:
        from popmix.cli._search import SMOKE_SEARCH

        # the proxy of popmix search --smoke, so that search finds this calibration
        out = [*super().smoke_overrides(args, exp), *SMOKE_SEARCH.items()]
        c = exp.resources.cpus_per_trial
        if not isinstance(c, (int, float)) or c < 1:
            out.append(("resources.cpus_per_trial", 1.0))
        return out

    def run(self, args: argparse.Namespace) -> int:
        import time

        from popmix.tune.calibrate import default_sweep, parse_grid, run_calibration
        from popmix.tune.cluster import SearchOptions

        exp = self.experiment(args)
        seeds = 2 if args.smoke else args.seeds
        sweep = None
        if args.sweep_grid:
            sweep = parse_grid(args.sweep_grid)
        elif args.sweep:
            sweep = default_sweep(exp)
        opts = SearchOptions(
            address=args.address,
            storage=args.storage,
            name=args.name or f"calibrate-{exp.name}-{time.strftime('%Y%m%d-%H%M%S')}",
            out=args.out,
            cpus=args.cpus,
            quiet=args.quiet,
        )
        report = run_calibration(exp, opts, seeds, sweep)
        return 0 if report["settings"] else 1
