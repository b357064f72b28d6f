"""The ``popmix`` command.

Every user mistake ends as one line on stderr and exit code 2, never a traceback. Heavy imports
(torch, datasets, Ray) happen inside the commands so ``popmix --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn


class UsageError(Exception):
    """A bad command-line value: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but an error is one line (no usage block) and exits with 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _cpus(text: str) -> float | str:
    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or auto, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def _float_list(text: str) -> list[float]:
    try:
        return [float(x) for x in text.replace(" ", "").split(",") if x != ""]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers like 1,2,0.5, got {text!r}"
        ) from None


#: ``--smoke``: the budget of a seconds-long check that a command works end to end. It replaces
#: whatever the command line or the experiment says, so any documented command runs as is.
SMOKE_MODEL: dict[str, Any] = {"n_layer": 1, "n_head": 2, "d_model": 32, "seq_len": 32}
SMOKE_TRAIN: dict[str, Any] = {
    "steps": 6,
    "batch_size": 8,
    "warmup_steps": 2,
    "eval_windows": 2,
    "test_windows": 2,
}
SMOKE_SEARCH: dict[str, Any] = {
    "steps": 12,
    "report_every": 6,
    "perturbation_interval": 1,
    "population": 2,
}
SMOKE_HELP = (
    "a quick end-to-end check: replace the budget with a tiny one ({}), whatever the other "
    "options say"
)


def _add_smoke_arg(p: argparse.ArgumentParser, budget: str) -> None:
    p.add_argument("--smoke", action="store_true", help=SMOKE_HELP.format(budget))


def _apply_smoke(args: argparse.Namespace) -> None:
    """``--smoke`` for run and bracket: shrink the model and training options in place."""
    old_steps = args.steps
    for key, value in SMOKE_TRAIN.items():
        setattr(args, key, value)
    args.eval_interval = 3
    if not getattr(args, "checkpoint", None):  # a checkpoint fixes the model's size
        for key, value in SMOKE_MODEL.items():
            setattr(args, key, value)
    if args.command != "bracket":
        return
    args.windows = 2
    args.max_pairs = 2
    if args.at_steps is not None:
        try:
            at = [int(x) for x in args.at_steps.split(",") if x.strip()]
        except ValueError:
            return  # _cmd_bracket reports it
        scaled = sorted({round(x * args.steps / old_steps) for x in at})
        args.at_steps = ",".join(str(x) for x in scaled)


def _add_data_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument(
        "--benchmark",
        help="built-in domain set: brown16 (the default; 15 Brown genres + Python code) or "
        "synthetic; for search, the experiment file's unless given",
    )
    g.add_argument(
        "--data",
        metavar="PATH",
        help="your own data: a folder with one .txt/.jsonl/.parquet file per domain, or a table "
        "file with a domain column (read offline with HF datasets); overrides --benchmark",
    )
    g.add_argument("--domain-column", help="column naming the domain, for table data")
    g.add_argument(
        "--tasks",
        type=int,
        help="number of domains: the first N of the benchmark (synthetic: N generated)",
    )


def _add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model and training")
    g.add_argument("--steps", type=_positive_int, default=300, help="optimizer steps (300)")
    g.add_argument("--batch-size", type=_positive_int, default=16, help="windows per batch (16)")
    g.add_argument("--seq-len", type=_positive_int, default=128, help="context in bytes (128)")
    g.add_argument("--n-layer", type=_positive_int, default=2, help="transformer blocks (2)")
    g.add_argument("--n-head", type=_positive_int, default=4, help="attention heads (4)")
    g.add_argument("--d-model", type=_positive_int, default=128, help="model width (128)")
    g.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (3e-3)")
    g.add_argument("--warmup-steps", type=int, default=20, help="linear warm-up steps (20)")
    g.add_argument("--eval-interval", type=int, default=50, help="steps between validations (50)")
    g.add_argument(
        "--eval-windows",
        type=_positive_int,
        default=16,
        help="validation windows per domain per evaluation (16)",
    )
    g.add_argument(
        "--test-windows",
        type=_positive_int,
        default=64,
        help="test windows per domain in the final report (64)",
    )
    g.add_argument("--seed", type=int, default=0, help="seed of model init and sampler (0)")
    g.add_argument("--threads", type=_positive_int, help="torch threads (default: all CPUs)")
    g.add_argument("--device", default="cpu", help="cpu, cuda or auto (cpu)")


def _build_parser() -> argparse.ArgumentParser:
    from popmix import __version__

    parser = _Parser(
        prog="popmix",
        description="Find how to mix training data from many domains.",
    )
    parser.add_argument("--version", action="version", version=f"popmix {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    run = sub.add_parser(
        "run",
        help="train one proxy model with one mixing method and report per-domain results",
        description="Train one small byte-level transformer on the chosen domains with a "
        "mixing method, then print per-domain test loss and perplexity and write "
        "OUT/result.json.",
    )
    g = run.add_argument_group("mixing")
    g.add_argument(
        "--method",
        default="stratified",
        help="stratified (default), proportional, temperature, cooldown, fixed, doge or aioli",
    )
    g.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a parameter of the method, repeatable; e.g. doge: mu=0.01 target=validation "
        "grad_clip=1; aioli: eta=0.2 lp_rounds=1 lp_steps=4 update_steps=100 "
        "one_hot_factor=0.75 ema=0.1 eval_windows=4",
    )
    g.add_argument("--temperature", type=float, default=3.0, help="T for temperature (3)")
    g.add_argument("--t-start", type=float, default=5.0, help="cooldown: T at the start (5)")
    g.add_argument("--t-end", type=float, default=1.0, help="cooldown: T after the switch (1)")
    g.add_argument(
        "--switch-frac",
        type=float,
        default=0.5,
        help="cooldown: fraction of training where T reaches t-end (0.5)",
    )
    g.add_argument(
        "--cooldown-shape",
        default="step",
        choices=("step", "linear"),
        help="cooldown: step (the paper's) or linear (step)",
    )
    g.add_argument(
        "--weights", type=_float_list, help="fixed: comma-separated weights, one per domain"
    )
    g.add_argument(
        "--weights-from",
        metavar="FILE",
        help="replay a weight schedule found by popmix search (its best_schedule.json); "
        "sets --method schedule",
    )
    g.add_argument(
        "--replay",
        default="schedule",
        choices=("schedule", "final"),
        help="with --weights-from: replay the whole schedule (rescaled to --steps) or train "
        "with its final weights only (schedule)",
    )
    g.add_argument(
        "--apply",
        default="sample",
        choices=("sample", "loss"),
        help="sample: batches follow the weights; loss: stratified batches, losses scaled by "
        "w=p/q (sample)",
    )
    g.add_argument(
        "--loss-base",
        default="stratified",
        choices=("stratified", "proportional"),
        help="the batch distribution q when --apply loss (stratified)",
    )
    _add_data_args(run)
    _add_model_args(run)
    run.add_argument("--out", metavar="DIR", help="output folder (default: runs/<method>-<time>)")
    run.add_argument("--quiet", action="store_true", help="print only the final table")
    _add_smoke_arg(run, "6 steps, a 1-layer model of width 32, 2 windows per evaluation")
    run.add_argument(
        "--save-checkpoint",
        action="store_true",
        help="also write OUT/checkpoint.pt (the full training state; popmix bracket --checkpoint)",
    )
    run.set_defaults(func=_cmd_run)

    search = sub.add_parser(
        "search",
        help="search mixtures with PBT (or PB2, Optuna) beside the baselines on Ray Tune",
        description="Train a population of proxy models whose mixtures PBT perturbs and copies, "
        "beside the baseline methods, as trials of one Ray Tune experiment; print a comparison "
        "table and write summary.json, best_schedule.json, lineage.json and TensorBoard logs.",
    )
    search.add_argument(
        "--experiment",
        metavar="YAML",
        help="experiment file (default: experiments/default.yaml, or built-in defaults)",
    )
    search.add_argument(
        "--space", metavar="YAML", help="search-space file (overrides the experiment's)"
    )
    search.add_argument(
        "--searcher", choices=("pbt", "pb2", "optuna"), help="how the population searches"
    )
    search.add_argument(
        "--population", type=_positive_int, help="population size (Optuna: trials)"
    )
    search.add_argument("--steps", type=_positive_int, help="optimizer steps per model")
    search.add_argument("--report-every", type=_positive_int, help="steps between reports")
    search.add_argument("--seeds", help="number of seeds (3 = seeds 0,1,2) or a list like 0,5,7")
    search.add_argument(
        "--methods",
        help="comma-separated: pbt (the searched population), stratified, "
        "proportional, temperature, cooldown, doge, aioli",
    )
    search.add_argument("--objective", help="mean (default), worst or domain:<name>")
    search.add_argument("--asha", action="store_true", help="Optuna: stop bad trials early")
    search.add_argument(
        "--init-weights",
        metavar="FILE",
        help="start the population's sampling weights from a popmix weights file (e.g. "
        "popmix bracket's bracket_schedule.json or a best_schedule.json)",
    )
    _add_data_args(search)
    g = search.add_argument_group("cluster and output")
    g.add_argument(
        "--address", help="an existing Ray cluster (host:port or auto); default: start a local Ray"
    )
    g.add_argument("--cpus", type=_positive_int, help="CPUs of the local Ray (default: all)")
    g.add_argument(
        "--cpus-per-trial",
        type=_cpus,
        help="CPUs per trial, or auto: share all CPUs so every "
        "trial runs at once (default); torch threads = max(1, floor(value))",
    )
    g.add_argument("--gpus-per-trial", type=float, help="GPUs per trial; fractions share a GPU")
    g.add_argument(
        "--storage",
        default="runs",
        help="experiment root (runs); on a multi-node cluster a shared folder",
    )
    g.add_argument("--name", help="experiment name (default: <experiment>-<time>)")
    g.add_argument(
        "--out", metavar="DIR", help="where summary files go (default: the experiment folder)"
    )
    g.add_argument("--quiet", action="store_true", help="print only the final table")
    _add_smoke_arg(
        search,
        "12 steps reported every 6, population 2, the first seed only, a 1-layer model of "
        "width 32, 2 windows per evaluation, at least 1 CPU per trial; GPUs are kept",
    )
    search.set_defaults(func=_cmd_search)

    bracket = sub.add_parser(
        "bracket",
        help="which domain should come first? the Lie bracket of domains' gradient fields",
        description="Compute M[a,b] = <grad L_T, H_b g_a - H_a g_b>, the predicted effect on a "
        "target loss of training domain a before b (two plain SGD steps of size eta change the "
        "target by about eta^2 M[a,b]; M[a,b] < 0: a first is better), on a freshly trained "
        "proxy model or a checkpoint. The prediction assumes plain SGD steps.",
    )
    _add_data_args(bracket)
    _add_model_args(bracket)
    g = bracket.add_argument_group("bracket")
    g.add_argument("--checkpoint", metavar="FILE", help="a trainer state (.pt) to start from")
    g.add_argument(
        "--at-steps",
        default=None,
        help="comma-separated training steps at which to compute the matrix (default: --steps)",
    )
    g.add_argument("--target", default="mean", help="a domain name, or mean (default)")
    g.add_argument(
        "--windows",
        type=_positive_int,
        default=8,
        help="fixed windows per domain for each domain's loss (8)",
    )
    g.add_argument(
        "--validate",
        metavar="ETAS",
        type=_float_list,
        help="also take the two SGD steps in both orders for each pair and these step sizes "
        "(e.g. 0.001,0.01,0.1) and print measured vs predicted",
    )
    g.add_argument("--max-pairs", type=_positive_int, help="validate at most this many pairs")
    g.add_argument(
        "--schedule-steps",
        type=_positive_int,
        default=1000,
        help="length of the suggested two-phase schedule (1000)",
    )
    bracket.add_argument(
        "--out", metavar="DIR", help="output folder (default: runs/bracket-<time>)"
    )
    _add_smoke_arg(
        bracket,
        "6 steps, --at-steps rescaled to them, a 1-layer model of width 32 (unless "
        "--checkpoint), 2 windows, at most 2 validated pairs",
    )
    bracket.set_defaults(func=_cmd_bracket)
    return parser


def _schedule_params(path: str, names: list[str], steps: int, replay: str) -> tuple[str, dict]:
    """Policy (method, params) replaying a best_schedule.json on a run of ``steps`` steps."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"--weights-from {path}: file not found")
    try:
        data = json.loads(p.read_text())
        saved = data["domains"]
        points = data["points"]
        total = int(data["total_steps"])
    except (ValueError, KeyError, TypeError) as e:
        raise UsageError(f"--weights-from {path}: not a popmix schedule file ({e})") from None
    if saved != names:
        raise UsageError(
            f"--weights-from {path}: its domains ({len(saved)}: {', '.join(saved[:3])}...) differ "
            f"from this run's ({len(names)}); use the same --benchmark/--data and --tasks"
        )
    if replay == "final":
        return "fixed", {"weights": data["final_weights"]}
    # Rescale the schedule's steps to this run's length; keep the last point per step.
    scaled: dict[int, dict[str, Any]] = {}
    for point in points:
        step = round(point["step"] * steps / total)
        scaled[step] = {k: point[k] for k in ("weights", "loss_weights") if k in point}
    return "schedule", {"points": [{"step": s, **v} for s, v in sorted(scaled.items())]}


def _key_values(items: list[str]) -> dict[str, Any]:
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--param expects KEY=VALUE, got {item!r}")
        try:
            out[key] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise UsageError(f"--param {key}: cannot read value {value!r}") from None
    return out


def _method_params(args: argparse.Namespace) -> dict[str, Any]:
    if args.param and args.method not in ("doge", "aioli"):
        raise UsageError(f"--param is for --method doge or aioli, not {args.method!r}")
    if args.method in ("doge", "aioli"):
        return _key_values(args.param)
    if args.method == "temperature":
        return {"temperature": args.temperature}
    if args.method == "cooldown":
        return {
            "t_start": args.t_start,
            "t_end": args.t_end,
            "switch_frac": args.switch_frac,
            "shape": args.cooldown_shape,
        }
    if args.method == "fixed":
        return {"weights": args.weights}
    return {}


def _format_table(result: dict[str, Any]) -> str:
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
        f"mean test ppl {result['mean_test_ppl']:.3f}   worst {result['worst_test_ppl']:.3f} "
        f"({result['worst_domain']})   steps {result['steps']}   tokens {result['tokens_seen']}   "
        f"wall {result['wall_time_s']:.1f}s"
    )
    return "\n".join(lines)


def _model_data(args: argparse.Namespace, **train: Any) -> tuple[Any, Any, Any]:
    """(ModelConfig, TrainConfig, DomainSet) from the model, training and data options."""
    from popmix.data import load_domains
    from popmix.train import ModelConfig, TrainConfig

    model_cfg = ModelConfig(args.n_layer, args.n_head, args.d_model, args.seq_len)
    cfg = TrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        warmup_steps=args.warmup_steps,
        eval_interval=args.eval_interval,
        eval_windows=args.eval_windows,
        test_windows=args.test_windows,
        seed=args.seed,
        threads=args.threads,
        device=args.device,
        **train,
    )
    try:
        model_cfg.validate()
        cfg.validate()
    except ValueError as e:
        raise UsageError(str(e)) from None
    domains = load_domains(
        args.benchmark or "brown16",
        args.tasks,
        args.data,
        seed=args.seed,
        domain_column=args.domain_column,
    )
    domains.check(model_cfg.seq_len + 1)
    return model_cfg, cfg, domains


def _cmd_run(args: argparse.Namespace) -> int:
    from popmix.policies import build_policy
    from popmix.train import run_training
    from popmix.train.run import weight_schedule

    if args.weights_from and args.weights is not None:
        raise UsageError("give either --weights or --weights-from, not both")
    if args.method == "fixed" and args.weights is None:
        raise UsageError("--method fixed needs --weights w1,w2,... (one per domain)")
    if args.method != "fixed" and args.weights is not None:
        raise UsageError(f"--weights is only used by --method fixed, not {args.method!r}")
    model_cfg, cfg, domains = _model_data(args, apply=args.apply, loss_base=args.loss_base)
    method, params = args.method, _method_params(args)
    if args.weights_from:
        method, params = _schedule_params(
            args.weights_from, domains.names, args.steps, args.replay
        )
    policy = build_policy(method, domains.sizes, args.steps, params, args.seed)
    policy.bind(domains.names)  # a parameter naming a domain fails here, before any output

    out = Path(args.out or f"runs/{method}-{time.strftime('%Y%m%d-%H%M%S')}")
    out.mkdir(parents=True, exist_ok=True)
    if not args.quiet:
        print(
            f"popmix run: {method} on {domains.name} ({len(domains)} domains, "
            f"{int(domains.sizes.sum())} training tokens), {args.steps} steps, apply={args.apply}",
            flush=True,
        )

    def log(record: dict[str, Any]) -> None:
        if not args.quiet:
            print(
                f"  step {record['step']:>6}  val mean loss {record['val_mean_loss']:.4f}  "
                f"mean ppl {record['val_mean_ppl']:.3f}  worst ppl {record['val_worst_ppl']:.3f}",
                flush=True,
            )

    ckpt = out / "checkpoint.pt" if args.save_checkpoint else None
    result = run_training(domains, policy, model_cfg, cfg, log=log, checkpoint=ckpt)
    (out / "result.json").write_text(json.dumps(result, indent=2))
    (out / "weights.json").write_text(json.dumps(weight_schedule(result), indent=2))
    print(_format_table(result))
    if result["extra_step_equivalents"]:
        print(
            f"extra work beyond the training steps: {result['extra_step_equivalents']:.1f} "
            "step-equivalents (evaluations, held-out gradients)"
        )
    print(
        f"wrote {out / 'result.json'} and {out / 'weights.json'} (replay or transfer it with "
        f"--weights-from {out / 'weights.json'} [--replay final])"
    )
    return 0


def _parse_seeds(text: str) -> tuple[int, ...]:
    try:
        if "," in text:
            return tuple(int(x) for x in text.split(",") if x.strip())
        n = int(text)
    except ValueError:
        raise UsageError(
            f"--seeds expects a count like 3 or a list like 0,5,7, got {text!r}"
        ) from None
    if n < 1:
        raise UsageError(f"--seeds must be at least 1, got {n}")
    return tuple(range(n))


def _cmd_bracket(args: argparse.Namespace) -> int:
    import torch

    from popmix.analysis.bracket_model import NOTE, run_bracket
    from popmix.policies import build_policy
    from popmix.train import Trainer

    model_cfg, cfg, domains = _model_data(args)
    if args.target != "mean":
        domains.index(args.target)
    if len(domains) < 2:
        raise UsageError("the bracket compares domains: use --tasks 2 or more")
    try:
        steps = (
            [args.steps]
            if args.at_steps is None
            else [int(x) for x in args.at_steps.split(",") if x.strip()]
        )
    except ValueError:
        raise UsageError(
            f"--at-steps expects steps like 0,100,200, got {args.at_steps!r}"
        ) from None
    if any(s < 0 or s > args.steps for s in steps):
        raise UsageError(f"--at-steps must lie in 0..{args.steps} (--steps), got {args.at_steps}")
    trainer = Trainer(
        domains, build_policy("stratified", domains.sizes, args.steps), model_cfg, cfg
    )
    if args.checkpoint:
        path = Path(args.checkpoint)
        if not path.is_file():
            raise UsageError(f"--checkpoint {path}: file not found")
        state = torch.load(path, map_location=trainer.device, weights_only=False)
        state = state.get("trainer", state)  # a Tune checkpoint's state.pt, or a trainer state
        try:
            trainer.model.load_state_dict(state["model"])
        except (KeyError, RuntimeError) as e:
            raise UsageError(
                f"--checkpoint {path} does not fit this model ({str(e).splitlines()[0]}); give "
                "the same --n-layer/--d-model/--n-head/--seq-len it was trained with"
            ) from None
        trainer.step = int(state.get("step", 0))
        steps = [max(s, trainer.step) for s in steps]
    out = Path(args.out or f"runs/bracket-{time.strftime('%Y%m%d-%H%M%S')}")
    print(f"popmix bracket: {len(domains)} domains of {domains.name}, target {args.target}")
    print(f"  {NOTE}")
    report = run_bracket(
        trainer,
        steps,
        args.target,
        args.windows,
        out,
        validate_etas=args.validate or (),
        max_pairs=args.max_pairs,
        schedule_steps=args.schedule_steps,
    )
    last = report["steps"][-1]
    print(
        f"suggested order (first = helps {args.target} most when early): "
        + ", ".join(last["order"])
    )
    print(
        f"wrote {out / 'bracket.json'}, {out / 'bracket_schedule.json'} (replay with popmix run "
        f"--weights-from), heatmaps and TensorBoard logs in {out}"
    )
    return 0


def _cmd_search(args: argparse.Namespace) -> int:
    import dataclasses

    from popmix.config import (
        Experiment,
        load_experiment,
        load_space,
        packaged_dir,
        resolve_experiment_path,
        resolve_space_path,
    )
    from popmix.tune.search import SearchOptions, run_search

    if args.tasks is not None and args.tasks < 1:
        raise UsageError(f"--tasks must be at least 1, got {args.tasks}")
    if args.experiment:
        exp = load_experiment(resolve_experiment_path(args.experiment))
    elif (packaged_dir("experiments") / "default.yaml").is_file():
        exp = load_experiment(packaged_dir("experiments") / "default.yaml")
    else:
        exp = Experiment()
    data = exp.data
    # Only what the user gave replaces the experiment's data: --tasks alone keeps its benchmark,
    # and --data means all the folder's domains unless --tasks says otherwise.
    if args.data:
        data = dataclasses.replace(
            data, path=args.data, domain_column=args.domain_column, tasks=None
        )
    elif args.benchmark is not None:
        data = dataclasses.replace(data, benchmark=args.benchmark, path=None)
    if args.tasks is not None:
        data = dataclasses.replace(data, tasks=args.tasks)
    search = exp.search
    for key in ("searcher", "population", "report_every", "objective"):
        if getattr(args, key) is not None:
            search = dataclasses.replace(search, **{key: getattr(args, key)})
    if args.asha:
        search = dataclasses.replace(search, asha=True)
    if args.space:
        search = dataclasses.replace(search, space=args.space)
    if args.init_weights and not Path(args.init_weights).is_file():
        raise UsageError(f"--init-weights {args.init_weights}: file not found")
    changes: dict[str, Any] = {"data": data, "search": search}
    if args.steps is not None:
        changes["train"] = dataclasses.replace(exp.train, steps=args.steps)
    if args.seeds is not None:
        changes["seeds"] = _parse_seeds(args.seeds)
    if args.methods is not None:
        changes["methods"] = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    res = exp.resources
    if args.cpus_per_trial is not None:
        res = dataclasses.replace(res, cpus_per_trial=args.cpus_per_trial)
    if args.gpus_per_trial is not None:
        res = dataclasses.replace(res, gpus_per_trial=args.gpus_per_trial)
    changes["resources"] = res
    exp = exp.replace(**changes)
    if args.smoke:
        exp = exp.replace(
            model=dataclasses.replace(exp.model, **SMOKE_MODEL),
            train=dataclasses.replace(
                exp.train,
                **{**SMOKE_TRAIN, "steps": SMOKE_SEARCH["steps"]},
            ),
            search=dataclasses.replace(
                exp.search, **{k: v for k, v in SMOKE_SEARCH.items() if k != "steps"}
            ),
            seeds=exp.seeds[:1],
        )
        cpus = exp.resources.cpus_per_trial
        if not isinstance(cpus, (int, float)) or cpus < 1:  # "auto" or a fraction
            # A tiny trial costs less than starting a worker process for it: with whole CPUs
            # Tune runs trials in turn on reused actors instead of one process per trial.
            exp = exp.replace(resources=dataclasses.replace(exp.resources, cpus_per_trial=1.0))
    exp.validate()
    space = load_space(
        resolve_space_path(exp.search.space, exp.source if args.space is None else None)
    )
    if args.init_weights:
        if space.sample_weights is None:
            raise UsageError("--init-weights needs a search space with sample_weights")
        vec = dataclasses.replace(space.sample_weights, init="file", init_file=args.init_weights)
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
    return 0 if summary["rows"] else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``popmix`` console script; returns the exit code."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    from popmix.data.domains import DataError
    from popmix.policies import PolicyError

    errors: tuple[type[Exception], ...] = (UsageError, DataError, PolicyError)
    if args.command == "search":
        from popmix.config import ConfigError

        errors += (ConfigError,)
    if getattr(args, "smoke", False) and args.command in ("run", "bracket"):
        _apply_smoke(args)
    try:
        return args.func(args)
    except errors as e:
        print(f"popmix {args.command}: error: {e}", file=sys.stderr)
        return 2
    except Exception as e:
        from popmix.train.loop import Diverged

        if not isinstance(e, Diverged):
            raise
        print(f"popmix {args.command}: diverged: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:
        detail = f"; {e}" if str(e) else ""
        print(f"popmix {args.command}: interrupted{detail}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
