"""What every command shares: the parser, the flags that are overrides, and reading the config.

A command's flags are spellings of the experiment's dotted keys (``--steps 300`` is
``train.steps=300``); they and positional ``KEY=VALUE`` overrides go through
:func:`popmix.config.load_experiment`, the one path that reads settings. The CLI holds no
defaults of its own: a flag left out keeps the experiment file's value, else the built-in one.
"""

from __future__ import annotations

import abc
import argparse
import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, NoReturn

from popmix.config import ConfigError, Experiment, load_experiment


class UsageError(Exception):
    """A bad command-line value: printed as one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    """argparse, but an error is one line (no usage block) and exits with 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


def cpus(text: str) -> float | str:
    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or auto, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def margin(text: str) -> float | str:
    """``auto`` or a number of nats >= 0."""
    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected auto or a number, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _comma_list(convert: Callable[[str], Any], example: str) -> Callable[[str], list[Any]]:
    def parse(text: str) -> list[Any]:
        try:
            return [convert(x) for x in text.replace(" ", "").split(",") if x != ""]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated {example}, got {text!r}"
            ) from None

    return parse


float_list = _comma_list(float, "numbers like 1,2,0.5")
int_list = _comma_list(int, "steps like 0,100,200")


def seeds(text: str) -> list[int]:
    """``3`` → seeds 0, 1, 2; ``0,5,7`` → those seeds."""
    try:
        if "," in text:
            return [int(x) for x in text.split(",") if x.strip()]
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a count like 3 or a list like 0,5,7, got {text!r}"
        ) from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return list(range(n))


def methods(text: str) -> list[str]:
    return [m.strip() for m in text.split(",") if m.strip()]


@dataclasses.dataclass(frozen=True)
class Flag:
    """A command-line flag that sets one dotted key of the experiment."""

    flag: str
    key: str
    help: str
    type: Callable[[str], Any] | None = None
    choices: Sequence[str] | None = None
    metavar: str | None = None
    action: str | None = None  # "store_true": a switch that sets the key to True

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


def _default_of(key: str) -> Any:
    value: Any = Experiment()
    for part in key.split("."):
        value = getattr(value, part, None) if not isinstance(value, dict) else value.get(part)
    return value


DATA_FLAGS = (
    Flag(
        "--benchmark",
        "data.benchmark",
        "built-in domain set: brown16 (15 Brown genres + Python code), multilingual (16 "
        "languages in 11 scripts, 153x size range, high/low-resource groups), oracle16 (five "
        "kinds of synthetic domain, with a shipped oracle mixture) or synthetic",
    ),
    Flag(
        "--data",
        "data.path",
        "your own data: a folder with one file or folder of shards per domain (.txt, .jsonl, "
        ".json plain/gzip/zstd, .parquet, .csv), or a table file with a domain field; all of "
        "its domains unless --tasks; overrides --benchmark",
        metavar="PATH",
    ),
    Flag(
        "--domain-field",
        "data.domain_field",
        "the record field naming each record's domain, a dotted path (meta.pile_set_name); "
        "for tables and sharded corpora that mix their domains",
        metavar="FIELD",
    ),
    Flag("--domain-column", "data.domain_column", "the same as --domain-field", metavar="FIELD"),
    Flag(
        "--rescan",
        "data.rescan",
        "count the data's sizes again instead of using the cached manifest",
        action="store_true",
    ),
    Flag(
        "--tasks",
        "data.tasks",
        "number of domains: the first N of the data (synthetic: N generated)",
        type=positive_int,
    ),
)

MODEL_FLAGS = (
    Flag("--steps", "train.steps", "optimizer steps per model", type=positive_int),
    Flag("--batch-size", "train.batch_size", "windows per batch", type=positive_int),
    Flag("--seq-len", "model.seq_len", "context in bytes", type=positive_int),
    Flag("--n-layer", "model.n_layer", "transformer blocks", type=positive_int),
    Flag("--n-head", "model.n_head", "attention heads", type=positive_int),
    Flag("--d-model", "model.d_model", "model width", type=positive_int),
    Flag("--lr", "train.lr", "peak learning rate", type=float),
    Flag(
        "--warmup-frac",
        "train.warmup_frac",
        "linear warm-up over this share of the steps",
        type=float,
    ),
    Flag(
        "--warmup-steps",
        "train.warmup_steps",
        "linear warm-up in steps instead of a share",
        type=non_negative_int,
    ),
    Flag(
        "--eval-windows",
        "train.eval_windows",
        "validation windows per domain per evaluation",
        type=positive_int,
    ),
    Flag(
        "--test-windows",
        "train.test_windows",
        "test windows per domain in the final report",
        type=positive_int,
    ),
)

#: flags of the single-model commands (run, bracket), not of a search (whose resources set
#: threads and device per trial, and whose validations follow its reports).
SINGLE_MODEL_FLAGS = (
    Flag(
        "--eval-interval",
        "train.eval_interval",
        "steps between validations",
        type=non_negative_int,
    ),
    Flag("--threads", "train.threads", "torch threads (default: all CPUs)", type=positive_int),
    Flag("--device", "train.device", "cpu, cuda, cuda:N or auto"),
)

#: ``--smoke``: the budget of a seconds-long check that a command works end to end. It is
#: applied last, so it replaces whatever the file, the flags or the overrides say.
SMOKE_MODEL = {"model.n_layer": 1, "model.n_head": 2, "model.d_model": 32, "model.seq_len": 32}
SMOKE_TRAIN = {
    "train.steps": 6,
    "train.batch_size": 8,
    "train.warmup_steps": 2,
    "train.eval_windows": 2,
    "train.test_windows": 2,
    "train.eval_interval": 3,
}


class Command(abc.ABC):
    """One ``popmix`` subcommand: its flags, and what it does with the parsed arguments."""

    name: ClassVar[str]
    help: ClassVar[str]
    description: ClassVar[str]
    #: flags that set experiment keys, in help order
    flags: ClassVar[tuple[Flag, ...]] = ()
    #: whether it reads an experiment (``--experiment`` and ``KEY=VALUE`` overrides)
    reads_experiment: ClassVar[bool] = True

    def add_to(self, sub: Any) -> None:
        p = sub.add_parser(self.name, help=self.help, description=self.description)
        if self.reads_experiment:
            p.add_argument(
                "--experiment",
                metavar="YAML",
                help="experiment file (default: the shipped experiments/default.yaml); flags "
                "and KEY=VALUE overrides change it",
            )
            p.add_argument(
                "overrides",
                nargs="*",
                metavar="KEY=VALUE",
                help="override any setting of the experiment by its dotted key, e.g. "
                "train.lr=0.01 model.d_model=64 baselines.doge.mu=0.05 (see popmix check)",
            )
        groups: dict[str, Any] = {}
        for f in self.flags:
            section = f.key.split(".")[0]
            if section not in groups:
                groups[section] = p.add_argument_group(f"{section} (sets {section}.*)")
            default = _default_of(f.key)
            shown = (
                f" ({f.key}, default {default})"
                if default not in (None, "", ())
                else (f" ({f.key})")
            )
            if f.action is not None:  # a switch: absent means the file's value, not False
                groups[section].add_argument(
                    f.flag, dest=f.dest, action=f.action, default=None, help=f.help + shown
                )
                continue
            groups[section].add_argument(
                f.flag,
                dest=f.dest,
                type=f.type,
                choices=f.choices,
                metavar=f.metavar,
                help=f.help + shown,
            )
        self.add_arguments(p)
        p.set_defaults(command_object=self)

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        """Flags of this command that are not experiment keys."""
        return None

    def overrides(self, args: argparse.Namespace) -> list[tuple[str, Any]]:
        """The flags given, as (dotted key, value), in the order of :attr:`flags`."""
        out = []
        for f in self.flags:
            value = getattr(args, f.dest, None)
            if value is not None:
                out.append((f.key, value))
        if getattr(args, "benchmark", None) is not None and getattr(args, "data", None) is None:
            out.append(("data.path", None))  # a benchmark named on the command line is used
        return out

    def extra_overrides(self, args: argparse.Namespace) -> list[tuple[str, Any]]:
        """Overrides derived from this command's own flags (e.g. run's ``--temperature``)."""
        return []

    def smoke_overrides(self, args: argparse.Namespace, exp: Experiment) -> list[tuple[str, Any]]:
        return [*SMOKE_MODEL.items(), *SMOKE_TRAIN.items()]

    def experiment(self, args: argparse.Namespace) -> Experiment:
        """The experiment file (or the default) with the flags, then the ``KEY=VALUE``
        overrides, then ``--smoke`` applied: the one way a command reads its settings."""
        positional = list(getattr(args, "overrides", []) or [])
        for text in positional:
            if "=" not in text:
                raise UsageError(
                    f"unexpected argument {text!r}: settings are given as KEY=VALUE (e.g. "
                    "train.lr=0.01) or as flags"
                )
        given: list[str | tuple[str, Any]] = [
            *self.overrides(args),
            *self.extra_overrides(args),
            *positional,
        ]
        exp = load_experiment(getattr(args, "experiment", None), given)
        if getattr(args, "smoke", False):
            exp = load_experiment(
                getattr(args, "experiment", None), [*given, *self.smoke_overrides(args, exp)]
            )
        return exp

    @abc.abstractmethod
    def run(self, args: argparse.Namespace) -> int:
        """Do the command; return the exit code. Raise UsageError (and the layers' one-line
        errors) for bad input."""


def add_cluster_args(
    p: argparse.ArgumentParser, storage_help: str, name_default: str, out_help: str
) -> None:
    """The Ray and output options every Tune command shares (``search``, ``calibrate``)."""
    g = p.add_argument_group("cluster and output")
    g.add_argument(
        "--address",
        help="an existing Ray cluster (host:port or auto); default: start a local Ray",
    )
    g.add_argument("--cpus", type=positive_int, help="CPUs of the local Ray (default: all)")
    g.add_argument("--storage", default="runs", help=storage_help)
    g.add_argument("--name", help=f"experiment name (default: {name_default})")
    g.add_argument("--out", metavar="DIR", help=out_help)
    g.add_argument("--quiet", action="store_true", help="print only the final table")


def add_smoke_arg(p: argparse.ArgumentParser, budget: str) -> None:
    p.add_argument(
        "--smoke",
        action="store_true",
        help=f"a quick end-to-end check: replace the budget with a tiny one ({budget}), "
        "whatever the other options say",
    )


__all__ = [
    "DATA_FLAGS",
    "MODEL_FLAGS",
    "SINGLE_MODEL_FLAGS",
    "Command",
    "ConfigError",
    "Flag",
    "Parser",
    "UsageError",
    "add_smoke_arg",
]
