"""``popmix run``: one proxy model, one mixing method, a per-domain report."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from popmix.cli._base import (
    DATA_FLAGS,
    MODEL_FLAGS,
    OUT_DIR_HELP,
    QUIET_HELP,
    SEED_HELP,
    SINGLE_MODEL_FLAGS,
    Command,
    Flag,
    UsageError,
    add_not_here,
    add_smoke_arg,
    argument_group,
    float_list,
)
from popmix.config import BEST_OF_N, RANDOM, Experiment


def format_table(result: dict[str, Any]) -> str:
    names = result["domains"]
    width = max(8, *(len(n) for n in names))
    lines = [
        f"{'domain':<{width}}  {'tokens':>9}  {'weight':>7}  {'test loss':>9}  {'test ppl':>8}"
    ]
    for n in names:
        lines.append(
            f"{n:<{width}}  {result['sizes'][n]:>9}  {result['weights'][n]:>7.4f}  "
            f"{result['test_loss'][n]:>9.4f}  {result['test_ppl'][n]:>8.3f}"
        )
    lines.append(
        f"mean test ppl {result['test_mean_ppl']:.3f} (evaluation noise "
        f"{result['test_mean_ppl_se']:.3f})   worst {result['test_worst_ppl']:.3f} "
        f"({result['test_worst_domain']})   steps {result['steps']}   tokens "
        f"{result['tokens_seen']}   "
        f"wall {result['wall_time_s']:.1f}s"
    )
    lines.append(
        f"loss spikes {result['loss_spikes']}   largest gradient norm "
        f"{result['grad_norm_max']:.3g} (before clipping)"
        + (
            f", its step-to-step spread {result['grad_norm_std_pooled']:.3g}"
            if result.get("grad_norm_std_pooled") is not None
            else ""
        )
    )
    return "\n".join(lines)


def load_domains_of(exp: Experiment) -> Any:
    """The experiment's domains, checked to hold a window of its model's context."""
    from popmix.data import load_experiment_domains

    domains = load_experiment_domains(exp)
    domains.check(exp.model.seq_len + 1)
    if exp.model.kind != "popmix":
        from popmix.train.custom import check_model

        check_model(exp.model, domains)
    return domains


def describe_sizes(domains: Any) -> str:
    """What the domain sizes are: a corpus's manifest unit, estimated or not, and the
    domains read whole because they are smaller than the sample."""
    manifest = domains.meta.get("manifest")
    if not manifest:
        return f"{int(domains.sizes.sum())} training tokens"
    sample = domains.meta.get("sample", {})
    under = sample.get("under_filled") or []
    return (
        f"{int(domains.sizes.sum())} {manifest['unit']} in the corpus"
        + (", estimated" if manifest["estimated"] else ", exact")
        + f", sampled {sample.get('per_domain')} {sample.get('unit')} per domain"
        + (f", {domains.vocab_size} token ids" if "vocab_size" in domains.meta else "")
        + (f"; read whole, smaller than that: {', '.join(under)}" if under else "")
    )


def train_config_of(exp: Experiment) -> Any:
    """The experiment's train settings with the run's seed (the first of ``seeds``)."""
    import dataclasses

    return dataclasses.replace(exp.train, seed=exp.seeds[0])


class RunCommand(Command):
    name = "run"
    help = "train one proxy model with one mixing method and report per-domain results"
    description = (
        "Train one small byte-level transformer on the experiment's domains with a mixing "
        "method, then print per-domain test loss and perplexity and write OUT/result.json and "
        "OUT/weights.json. The method's parameters are the experiment's baselines.<method> "
        "(the same a search's trial of that method uses), changed by --param or by overrides."
    )
    flags = (
        *DATA_FLAGS,
        *MODEL_FLAGS,
        *SINGLE_MODEL_FLAGS,
        Flag(
            "--apply",
            "train.apply",
            "weights shape the batches (sample) or scale the losses (loss)",
            choices=("sample", "loss"),
        ),
        Flag(
            "--loss-base",
            "train.loss_base",
            "with --apply loss: the batches' distribution",
            choices=("stratified", "proportional"),
        ),
    )

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        g = argument_group(p, "mixing")
        g.add_argument(
            "--method",
            default="stratified",
            help="stratified (default), proportional, temperature, unimax, cooldown, fixed, "
            "doge, aioli or doremi",
        )
        g.add_argument(
            "--reference-checkpoint",
            metavar="PATH",
            help="doremi: its reference model, a finished stratified run's checkpoint (popmix run "
            "--save-checkpoint's checkpoint.pt, or a search trial's state.pt); without it, "
            "popmix run trains that stratified run first and keeps it in OUT/reference/",
        )
        g.add_argument(
            "--param",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="a parameter of the method, repeatable: baselines.<method>.KEY (e.g. mu=0.01)",
        )
        g.add_argument("--seed", type=int, metavar="S", help=SEED_HELP)
        add_not_here(
            g,
            "--seeds",
            "popmix run trains one model: give --seed S (popmix search runs several seeds)",
        )
        g.add_argument("--temperature", type=float, metavar="T", help="temperature: T (3)")
        g.add_argument("--t-start", type=float, metavar="T", help="cooldown: T at the start (5)")
        g.add_argument("--t-end", type=float, metavar="T", help="cooldown: T after the switch (1)")
        g.add_argument(
            "--switch-frac",
            type=float,
            metavar="X",
            help="cooldown: the share of training where T reaches --t-end (0.5)",
        )
        g.add_argument(
            "--cooldown-shape",
            choices=("step", "linear"),
            help="cooldown: step (the paper's, default) or linear",
        )
        g.add_argument(
            "--weights",
            type=float_list,
            metavar="W,W,...",
            help="fixed: the weights, one per domain",
        )
        g.add_argument(
            "--weights-from",
            metavar="FILE",
            help="train on a popmix weights file's mixture (best_schedule.json, weights.json)",
        )
        g.add_argument(
            "--replay",
            default="schedule",
            choices=("schedule", "final"),
            help="with --weights-from: the whole schedule, rescaled to --steps (default), or "
            "its final weights",
        )
        o = argument_group(p, "output")
        o.add_argument(
            "--out", metavar="DIR", help=OUT_DIR_HELP.format(default="runs/<method>-<time>")
        )
        o.add_argument("--quiet", action="store_true", help=QUIET_HELP)
        o.add_argument(
            "--save-checkpoint",
            action="store_true",
            help="also write OUT/checkpoint.pt (for popmix bracket --checkpoint)",
        )
        add_smoke_arg(p, "6 steps, a 1-layer model of width 32, 2 windows per evaluation")

    def extra_overrides(self, args: argparse.Namespace) -> list[tuple[str, Any]]:
        out: list[tuple[str, Any]] = []
        if args.seed is not None:
            out.append(("seeds", [args.seed]))
        named = {
            "temperature": ("temperature", "temperature"),
            "t_start": ("cooldown", "t_start"),
            "t_end": ("cooldown", "t_end"),
            "switch_frac": ("cooldown", "switch_frac"),
            "cooldown_shape": ("cooldown", "shape"),
            "weights": ("fixed", "weights"),
        }
        for dest, (method, key) in named.items():
            if getattr(args, dest) is not None:
                out.append((f"baselines.{method}.{key}", getattr(args, dest)))
        for item in args.param:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise UsageError(f"--param expects KEY=VALUE, got {item!r}")
            out.append((f"baselines.{args.method}.{key}", _yaml_value(value, key)))
        return out

    def run(self, args: argparse.Namespace) -> int:
        from popmix.policies import build_policy
        from popmix.train import run_training
        from popmix.train.run import weight_schedule

        if args.method in (BEST_OF_N, RANDOM):
            raise UsageError(
                f"{args.method} picks the best of n runs, so it runs in a search: popmix search "
                f"--methods pbt,{args.method},stratified (popmix run trains one model)"
            )
        if args.weights_from and args.weights is not None:
            raise UsageError("give either --weights or --weights-from, not both")
        if args.method != "fixed" and args.weights is not None:
            raise UsageError(f"--weights is only used by --method fixed, not {args.method!r}")
        if args.reference_checkpoint is not None and args.method != "doremi":
            raise UsageError(
                f"--reference-checkpoint is only used by --method doremi, not {args.method!r}"
            )
        exp = self.experiment(args)
        if args.method == "fixed" and "weights" not in exp.method_params("fixed"):
            raise UsageError("--method fixed needs --weights w1,w2,... (one per domain)")
        domains = load_domains_of(exp)
        if args.weights_from and not names_its_domains(args):
            replay_exp = experiment_for_weights(exp, args.weights_from, domains.names)
            if replay_exp is not exp:
                exp, domains = replay_exp, load_domains_of(replay_exp)
                if not args.quiet:
                    print(
                        f"popmix run: {args.weights_from} names {len(domains)} domains of "
                        f"{domains.name}: training on those (as --tasks {len(domains)})",
                        flush=True,
                    )
        cfg = train_config_of(exp)
        method, params = args.method, exp.method_params(args.method)
        if args.weights_from:
            method, params = schedule_params(
                args.weights_from, domains.names, cfg.steps, args.replay
            )
        policy = build_policy(method, domains.sizes, cfg.steps, params, cfg.seed)
        policy.bind(domains.names)  # a parameter naming a domain fails here, before any output

        out = Path(args.out or f"runs/{method}-{time.strftime('%Y%m%d-%H%M%S')}")
        out.mkdir(parents=True, exist_ok=True)
        if not args.quiet:
            print(
                f"popmix run: {method} on {domains.name} ({len(domains)} domains, "
                f"{describe_sizes(domains)}), {cfg.steps} steps, "
                f"apply={cfg.apply}, seed {cfg.seed}",
                flush=True,
            )

        def log(record: dict[str, Any]) -> None:
            if not args.quiet:
                print(
                    f"  step {record['step']:>6}  val mean loss {record['val_mean_loss']:.4f}  "
                    f"mean ppl {record['val_mean_ppl']:.3f}  "
                    f"worst ppl {record['val_worst_ppl']:.3f}",
                    flush=True,
                )

        reference = None
        if policy.needs.reference:
            reference = args.reference_checkpoint or train_reference(
                exp, domains, cfg, out / "reference", log, args.quiet
            )
        ckpt = out / "checkpoint.pt" if args.save_checkpoint else None
        result = run_training(
            domains, policy, exp.model, cfg, log=log, checkpoint=ckpt, reference=reference
        )
        (out / "result.json").write_text(json.dumps(result, indent=2))
        (out / "weights.json").write_text(json.dumps(weight_schedule(result), indent=2))
        print(format_table(result))
        if result["extra_step_equivalents"]:
            print(
                f"extra work beyond the training steps: {result['extra_step_equivalents']:.1f} "
                "step-equivalents (evaluations, held-out gradients, a reference model's "
                "forwards and training steps)"
            )
        print(
            f"wrote {out / 'result.json'} and {out / 'weights.json'} (replay or transfer it "
            f"with --weights-from {out / 'weights.json'} [--replay final])"
        )
        return 0


def train_reference(
    exp: Experiment, domains: Any, cfg: Any, folder: Path, log: Any, quiet: bool
) -> Path:
    """DoReMi's reference when none is given: the stratified run of the same seed and budget,
    trained here first; its checkpoint, result and weights are kept in ``folder``."""
    from popmix.policies import build_policy
    from popmix.train import run_training
    from popmix.train.run import weight_schedule

    folder.mkdir(parents=True, exist_ok=True)
    print(
        f"popmix run: doremi needs a reference model: training stratified first (seed "
        f"{cfg.seed}, {cfg.steps} steps), kept in {folder} (reuse it with "
        f"--reference-checkpoint {folder / 'checkpoint.pt'})",
        flush=True,
    )
    params = exp.method_params("stratified")
    policy = build_policy("stratified", domains.sizes, cfg.steps, params, cfg.seed)
    checkpoint = folder / "checkpoint.pt"
    result = run_training(domains, policy, exp.model, cfg, log=log, checkpoint=checkpoint)
    (folder / "result.json").write_text(json.dumps(result, indent=2))
    (folder / "weights.json").write_text(json.dumps(weight_schedule(result), indent=2))
    if not quiet:
        print(f"  reference: mean test ppl {result['test_mean_ppl']:.3f}; now doremi", flush=True)
    return checkpoint


def _yaml_value(text: str, key: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        raise UsageError(f"--param {key}: cannot read value {text!r}") from None


def schedule_params(path: str, names: list[str], steps: int, replay: str) -> tuple[str, dict]:
    """Policy (method, params) replaying a popmix weights file on a run of ``steps`` steps."""
    from popmix.records.weights import WeightsFileError, WeightsSchedule

    try:
        schedule = WeightsSchedule.read(path, names)
    except WeightsFileError as e:
        raise UsageError(f"--weights-from {e}") from None
    return schedule.replay(replay, steps)


#: the settings that say which domains a run trains on
_DOMAIN_KEYS = ("data.tasks", "data.benchmark", "data.path")


def names_its_domains(args: argparse.Namespace) -> bool:
    """Whether the command line says which domains: ``--tasks``, ``--benchmark``, ``--data``
    or one of their ``KEY=VALUE`` overrides."""
    if any(getattr(args, a, None) is not None for a in ("tasks", "benchmark", "data")):
        return True
    keys = [text.partition("=")[0].strip() for text in getattr(args, "overrides", None) or []]
    return any(k in _DOMAIN_KEYS for k in keys)


def experiment_for_weights(exp: Experiment, path: str, in_use: list[str]) -> Experiment:
    """``exp`` on the domains a weights file was made on, when they are not ``in_use``.

    The file's domains must be the first N of a domain set (a search or a run keeps the first
    ``--tasks N``): of the benchmark the file records, else of the experiment's own data, else
    of another built-in benchmark. ``exp`` itself when the file's domains are those in use.

    Raises:
        UsageError: an unreadable file, or domains that are the first N of none of those.
    """
    from popmix.config import with_overrides
    from popmix.data import BENCHMARKS, DataError, load_domains, load_experiment_domains
    from popmix.records.weights import WeightsFileError, WeightsSchedule

    try:
        schedule = WeightsSchedule.read(path)
    except WeightsFileError as e:
        raise UsageError(f"--weights-from {e}") from None
    names, n = set(schedule.domains), len(schedule.domains)
    if names == set(in_use):
        return exp
    recorded = schedule.info.get("benchmark")
    order = [recorded] if recorded in BENCHMARKS else []
    own = "data" if exp.data.path is not None else exp.data.benchmark
    order += [own] if own not in order else []
    order += [b for b in BENCHMARKS if b not in order]
    for source in order:
        try:
            if source == "data":
                every = load_experiment_domains(with_overrides(exp, [("data.tasks", None)]))
            elif source == "synthetic":  # generated: as many domains as asked for
                every = load_domains("synthetic", n if 2 <= n <= 256 else 16)
            else:
                every = load_domains(source)
        except DataError:
            continue
        if set(every.names[:n]) == names:
            changes: list[tuple[str, Any]] = [("data.tasks", n)]
            if source != "data":
                changes += [("data.benchmark", source), ("data.path", None)]
            return with_overrides(exp, changes)
    shown = ", ".join(schedule.domains[:4]) + (f" and {n - 4} more" if n > 4 else "")
    tried = ", ".join("the experiment's data" if s == "data" else s for s in order)
    raise UsageError(
        f"--weights-from {path}: its {n} domains ({shown}) are not the first {n} of {tried}; "
        "give the --benchmark or --data and --tasks it was made with"
    )
