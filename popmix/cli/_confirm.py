"""``popmix confirm``: retrain a search's answer and its baselines from scratch, on fresh seeds."""

from __future__ import annotations

import argparse
from typing import Any

from popmix.cli._base import (
    QUIET_HELP,
    SMOKE_MODEL,
    SMOKE_TRAIN,
    Command,
    UsageError,
    add_not_here,
    add_smoke_arg,
    argument_group,
    positive_int,
)


class ConfirmCommand(Command):
    name = "confirm"
    help = "retrain a search's best schedule and baselines on fresh seeds (and a second scale)"
    description = (
        "Retrain, from scratch and with the search's budget, the best member's schedule "
        "(replayed), its final weights (static) and every baseline of a finished search, on "
        "seeds the search did not use; optionally also at the second scale the experiment's "
        "confirm: section names. Prints each method's interval and its paired verdict against "
        "the reference, and how far the ranking agrees with the search's; writes confirm.json "
        "beside the search's summary.json."
    )
    reads_experiment = False  # the search's own experiment, from its summary.json

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("run_dir", metavar="RUN_DIR", help="the search's folder (its summary.json)")
        p.add_argument(
            "overrides",
            nargs="*",
            metavar="confirm.KEY=VALUE",
            help="change the second scale, e.g. confirm.model.d_model=256 confirm.steps=2000 "
            "(only confirm.* keys: the budget and proxy are the search's)",
        )
        g = argument_group(p, "what to retrain")
        g.add_argument(
            "--seeds",
            type=positive_int,
            metavar="N",
            help="how many seeds, fresh ones: the search's largest + 1 on (default: "
            "confirm.seeds, 3)",
        )
        add_not_here(
            g,
            "--seed",
            "popmix confirm retrains on --seeds N fresh seeds (the search's largest + 1 on)",
        )
        g.add_argument(
            "--scale",
            choices=("search", "second", "both"),
            help="the search's scale, the experiment's second scale (confirm.model, "
            "confirm.steps), or both (default: both when a second scale is named)",
        )
        g = argument_group(p, "cluster")
        g.add_argument(
            "--address",
            help="an existing Ray cluster (host:port or auto); default: start a local Ray",
        )
        g.add_argument(
            "--cpus", type=positive_int, metavar="N", help="CPUs of the local Ray (default: all)"
        )
        argument_group(p, "output").add_argument("--quiet", action="store_true", help=QUIET_HELP)
        add_smoke_arg(p, "one fresh seed, 12 steps of a 1-layer model of width 32")

    def run(self, args: argparse.Namespace) -> int:
        from popmix.tune.cluster import SearchOptions
        from popmix.tune.confirm import run_confirm

        opts = SearchOptions(address=args.address, cpus=args.cpus, quiet=args.quiet)
        given: list[str | tuple[str, Any]] = []
        for text in args.overrides:
            if not text.startswith("confirm.") or "=" not in text:
                raise UsageError(
                    f"unexpected argument {text!r}: popmix confirm takes only confirm.KEY=VALUE "
                    "(e.g. confirm.model.d_model=256); the budget and proxy are the search's"
                )
            given.append(text)
        if args.smoke:
            given += [*SMOKE_MODEL.items(), *SMOKE_TRAIN.items()]
        seeds = 1 if args.smoke else args.seeds
        run_confirm(args.run_dir, opts, n_seeds=seeds, scale=args.scale, overrides=given)
        return 0
