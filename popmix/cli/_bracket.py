"""``popmix bracket``: which domain should come first (the Lie bracket of gradient fields)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from popmix.cli._base import (
    DATA_FLAGS,
    MODEL_FLAGS,
    OUT_DIR_HELP,
    SEED_HELP,
    SINGLE_MODEL_FLAGS,
    Command,
    Flag,
    UsageError,
    add_not_here,
    add_smoke_arg,
    argument_group,
    float_list,
    int_list,
    positive_int,
)
from popmix.cli._run import load_domains_of, train_config_of
from popmix.config import BracketSpec, Experiment


def pair_count(text: str) -> int | str:
    """``all``, or a whole number of pairs >= 1."""
    if text == "all":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number of pairs or all, got {text!r}"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (or all), got {value}")
    return value


class BracketCommand(Command):
    name = "bracket"
    help = "which domain should come first? the Lie bracket of domains' gradient fields"
    description = (
        "Compute M[a,b] = <grad L_T, H_b g_a - H_a g_b>, the predicted effect on a target loss "
        "of training domain a before b (two plain SGD steps of size eta change the target by "
        "about eta^2 M[a,b]; M[a,b] < 0: a first is better), on a freshly trained proxy model "
        "or a checkpoint. The prediction assumes plain SGD steps."
    )
    flags = (
        *DATA_FLAGS,
        *MODEL_FLAGS,
        *SINGLE_MODEL_FLAGS,
        Flag(
            "--at-steps",
            "bracket.at_steps",
            "training steps at which to compute the matrix (default: --steps)",
            type=int_list,
        ),
        Flag("--target", "bracket.target", "the loss judged: mean, or a domain", metavar="NAME"),
        Flag(
            "--windows",
            "bracket.windows",
            "fixed windows per domain for each domain's loss",
            type=positive_int,
        ),
        Flag(
            "--validate",
            "bracket.validate",
            "also take both orders at these step sizes; print measured against predicted",
            type=float_list,
            metavar="ETAS",
        ),
        Flag(
            "--schedule-steps",
            "bracket.schedule_steps",
            "length of the suggested two-phase schedule",
            type=positive_int,
        ),
    )

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        g = argument_group(p, "the bracket")
        g.add_argument("--seed", type=int, metavar="S", help=SEED_HELP)
        add_not_here(g, "--seeds", "popmix bracket trains one model: give --seed S")
        g.add_argument("--checkpoint", metavar="FILE", help="a trainer state (.pt) to start from")
        g.add_argument(
            "--max-pairs",
            type=pair_count,
            metavar="N|all",
            help="pairs validated per step, large and small predicted effects alike "
            f"(bracket.max_pairs, default {BracketSpec().max_pairs})",
        )
        argument_group(p, "output").add_argument(
            "--out", metavar="DIR", help=OUT_DIR_HELP.format(default="runs/bracket-<time>")
        )
        add_smoke_arg(
            p,
            "6 steps, --at-steps rescaled to them, a 1-layer model of width 32 (unless "
            "--checkpoint), 2 windows, at most 2 validated pairs",
        )

    def extra_overrides(self, args: argparse.Namespace) -> list[tuple[str, Any]]:
        out: list[tuple[str, Any]] = [("seeds", [args.seed])] if args.seed is not None else []
        if args.max_pairs is not None:
            # "all" is bracket.max_pairs: null, which a Flag cannot set (None means "not given")
            out.append(("bracket.max_pairs", None if args.max_pairs == "all" else args.max_pairs))
        return out

    def smoke_overrides(self, args: argparse.Namespace, exp: Experiment) -> list[tuple[str, Any]]:
        out = super().smoke_overrides(args, exp)
        if args.checkpoint:  # a checkpoint fixes the model's size
            out = [(k, v) for k, v in out if not k.startswith("model.")]
        steps = dict(out)["train.steps"]
        scaled = sorted({round(s * steps / exp.train.steps) for s in exp.bracket.at_steps})
        return [
            *out,
            ("bracket.windows", 2),
            ("bracket.max_pairs", 2),
            ("bracket.at_steps", scaled),
        ]

    def run(self, args: argparse.Namespace) -> int:

        from popmix.analysis.bracket_model import NOTE, VALIDATION_WINDOWS, run_bracket
        from popmix.policies import build_policy
        from popmix.train import Trainer
        from popmix.train.checkpoint import CheckpointError, load_state

        exp = self.experiment(args)
        b = exp.bracket
        domains = load_domains_of(exp)
        cfg = train_config_of(exp)
        if b.target != "mean":
            domains.index(b.target)
        if len(domains) < 2:
            raise UsageError("the bracket compares domains: use --tasks 2 or more")
        steps = list(b.at_steps) or [cfg.steps]
        trainer = Trainer(
            domains, build_policy("stratified", domains.sizes, cfg.steps), exp.model, cfg
        )
        if args.checkpoint:
            path = Path(args.checkpoint)
            if not path.is_file():
                raise UsageError(f"--checkpoint {path}: file not found")
            try:
                state = load_state(path, map_location=trainer.device)
            except CheckpointError as e:
                raise UsageError(f"--checkpoint: {e}") from None
            state = state.get("trainer", state)  # a Tune checkpoint's state.pt, or a trainer's
            try:
                trainer.model.load_state_dict(state["model"])
            except (KeyError, RuntimeError) as e:
                raise UsageError(
                    f"--checkpoint {path} does not fit this model ({str(e).splitlines()[0]}); "
                    "give the same --n-layer/--d-model/--n-head/--seq-len (and, for token "
                    "ids, model.vocab_size) it was trained with"
                ) from None
            trainer.step = int(state.get("step", 0))
            steps = [max(s, trainer.step) for s in steps]
        out = Path(args.out or f"runs/bracket-{time.strftime('%Y%m%d-%H%M%S')}")
        print(f"popmix bracket: {len(domains)} domains of {domains.name}, target {b.target}")
        print(f"  {NOTE}")
        if b.validate:
            n_pairs = len(domains) * (len(domains) - 1) // 2
            shown = n_pairs if b.max_pairs is None else min(b.max_pairs, n_pairs)
            print(
                f"  validating {shown} of {n_pairs} pairs per step at eta "
                f"{', '.join(f'{e:g}' for e in b.validate)}, on at most "
                f"{VALIDATION_WINDOWS} windows of the target (--max-pairs all: every pair)",
                flush=True,
            )
        report = run_bracket(
            trainer,
            steps,
            b.target,
            b.windows,
            out,
            validate_etas=b.validate,
            max_pairs=b.max_pairs,
            schedule_steps=b.schedule_steps,
            log=lambda text: print(text, flush=True),
            seed=cfg.seed,
            benchmark=exp.data.benchmark if exp.data.path is None else None,
        )
        last = report["steps"][-1]
        print(
            f"suggested order (first = helps {b.target} most when early): "
            + ", ".join(last["order"])
        )
        print(
            f"wrote {out / 'bracket.json'}, {out / 'bracket_schedule.json'} (replay with popmix "
            f"run --weights-from), heatmaps and TensorBoard logs in {out}"
        )
        return 0
