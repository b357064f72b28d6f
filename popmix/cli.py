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


def _float_list(text: str) -> list[float]:
    try:
        return [float(x) for x in text.replace(" ", "").split(",") if x != ""]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers like 1,2,0.5, got {text!r}"
        ) from None


def _add_data_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument(
        "--benchmark",
        default="brown16",
        help="built-in domain set: brown16 (default; 15 Brown genres + Python code) or synthetic",
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
        help="stratified (default), proportional, temperature, cooldown or fixed",
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
    run.set_defaults(func=_cmd_run)
    return parser


def _method_params(args: argparse.Namespace) -> dict[str, Any]:
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


def _cmd_run(args: argparse.Namespace) -> int:
    from popmix.data import load_domains
    from popmix.policies import build_policy
    from popmix.train import ModelConfig, TrainConfig, run_training

    if args.method == "fixed" and args.weights is None:
        raise UsageError("--method fixed needs --weights w1,w2,... (one per domain)")
    if args.method != "fixed" and args.weights is not None:
        raise UsageError(f"--weights is only used by --method fixed, not {args.method!r}")
    model_cfg = ModelConfig(args.n_layer, args.n_head, args.d_model, args.seq_len)
    cfg = TrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        warmup_steps=args.warmup_steps,
        eval_interval=args.eval_interval,
        eval_windows=args.eval_windows,
        test_windows=args.test_windows,
        apply=args.apply,
        loss_base=args.loss_base,
        seed=args.seed,
        threads=args.threads,
        device=args.device,
    )
    try:
        model_cfg.validate()
        cfg.validate()
    except ValueError as e:
        raise UsageError(str(e)) from None
    domains = load_domains(
        args.benchmark, args.tasks, args.data, seed=args.seed, domain_column=args.domain_column
    )
    domains.check(model_cfg.seq_len + 1)
    policy = build_policy(args.method, domains.sizes, args.steps, _method_params(args), args.seed)

    out = Path(args.out or f"runs/{args.method}-{time.strftime('%Y%m%d-%H%M%S')}")
    out.mkdir(parents=True, exist_ok=True)
    if not args.quiet:
        print(
            f"popmix run: {args.method} on {domains.name} ({len(domains)} domains, "
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

    result = run_training(domains, policy, model_cfg, cfg, log=log)
    (out / "result.json").write_text(json.dumps(result, indent=2))
    print(_format_table(result))
    print(f"wrote {out / 'result.json'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``popmix`` console script; returns the exit code."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    from popmix.data.domains import DataError
    from popmix.policies import PolicyError

    try:
        return args.func(args)
    except (UsageError, DataError, PolicyError) as e:
        print(f"popmix {args.command}: error: {e}", file=sys.stderr)
        return 2
    except Exception as e:
        from popmix.train.loop import Diverged

        if not isinstance(e, Diverged):
            raise
        print(f"popmix {args.command}: diverged: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"popmix {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
