"""``popmix check``: validate an experiment or a search space in a second, without training."""

from __future__ import annotations

import argparse
from pathlib import Path

from popmix.cli._base import Command, UsageError


class CheckCommand(Command):
    name = "check"
    help = "validate an experiment or search-space file (and its overrides) without training"
    description = (
        "Read FILE as popmix search and run would (an experiment, with its search space, or a "
        "search space alone), apply KEY=VALUE overrides, and check every value, key and method "
        "parameter. Prints one line and exits 0 when valid; one line naming the bad value and "
        "exit code 2 otherwise. Imports neither torch nor Ray."
    )
    reads_experiment = False

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "file",
            metavar="FILE",
            help="an experiment or search-space file (or a shipped one by name), or a popmix "
            "weights file (.json)",
        )
        p.add_argument(
            "overrides", nargs="*", metavar="KEY=VALUE", help="overrides, as for run and search"
        )

    def run(self, args: argparse.Namespace) -> int:
        import numpy as np

        from popmix.config import (
            ConfigError,
            check_method_params,
            is_space_file,
            load_experiment,
            load_space,
            read_yaml,
            resolve_experiment_path,
            resolve_space_path,
        )
        from popmix.tune.searchers import searcher_for

        for text in args.overrides:
            if "=" not in text:
                raise UsageError(f"unexpected argument {text!r}: overrides are KEY=VALUE")
        path = resolve_experiment_path(args.file)
        if not path.is_file():  # a shipped search space by name (popmix check sampling)
            try:
                path = resolve_space_path(args.file, None)
            except ConfigError:
                pass
        if path.suffix == ".json":  # a weights file: best_schedule.json, weights.json, ...
            from popmix.records.weights import WeightsFileError, WeightsSchedule

            try:
                schedule = WeightsSchedule.read(path)
            except WeightsFileError as e:
                raise UsageError(str(e)) from None
            print(
                f"{path}: a valid popmix weights file ({len(schedule.domains)} domains, "
                f"{len(schedule.points)} points over {schedule.total_steps} steps; replay it "
                "with popmix run --weights-from)"
            )
            return 0
        if is_space_file(read_yaml(path)):
            space = load_space(path, args.overrides)
            searched = ", ".join(
                k for k in ("sample_weights", "loss_weights", "temperature") if getattr(space, k)
            )
            print(f"{path}: a valid search space (searches {searched})")
            return 0
        exp = load_experiment(path, args.overrides)
        searcher_for(exp)  # config holds no copy of the searchers' names: the registry checks
        space_path = resolve_space_path(exp.search.space, exp.source)
        space = load_space(space_path)
        d = exp.data
        if d.path is not None and not Path(d.path).exists():
            raise UsageError(f"{path}: data.path {d.path!r} does not exist")
        # without a count, check against 16 domains (brown16's, and synthetic's default): the
        # data is not loaded here, so a user folder's real count is not known yet
        k = d.tasks or 16
        space.validate(k)
        # every method the file gives parameters for, run or not: a bad value waiting in the
        # file fails now (a fixed mixture's length needs the real domains when they are unknown)
        unknown_k = d.tasks is None and d.path is not None
        methods = {*exp.baseline_methods(), *exp.baselines} - ({"fixed"} if unknown_k else set())
        check_method_params(exp, np.ones(k), methods=sorted(methods - {"schedule"}))
        data = d.path if d.path is not None else d.benchmark
        domains = f"{d.tasks} domains" if d.tasks else "all domains"
        print(
            f"{path}: a valid experiment {exp.name!r}: {data} ({domains}), methods "
            f"{', '.join(exp.methods)}, {exp.train.steps} steps x {len(exp.seeds)} seed(s), "
            f"space {space_path.name}"
        )
        return 0
