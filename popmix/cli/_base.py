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
import math
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, NoReturn

from popmix.config import ConfigError, Experiment, load_experiment


class UsageError(Exception):
    """A bad command-line value: printed as one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    """argparse, but an error is one line (no usage block) and exits with 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _whole(text: str) -> int:
    """``text`` as a whole number: ``1000``, ``1_000``, or a count of tokens written the way
    one says it, ``1e9`` (an integral float)."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value != int(value):
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    return int(value)


def positive_int(text: str) -> int:
    value = _whole(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    value = _whole(text)
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


def share(text: str) -> float:
    """A share of training, from 0 to below 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number like 0.25, got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be from 0 to below 1, got {value:g}")
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


#: the help group of a flag, by the first of these key prefixes its key starts with: every
#: command groups its flags alike, and a key's full description is in the configuration
#: reference (docs/reference/config.md, generated from popmix/config/_schema.py)
GROUPS = (
    ("methods", "what to compare"),
    ("seeds", "what to compare"),
    ("search.reference", "what to compare"),
    ("search.objective", "what to compare"),
    ("search.swarm.", "the swarm"),
    ("search.", "the search"),
    ("confirm.", "confirmation"),
    ("data.", "data"),
    ("model.", "model and budget"),
    ("train.", "model and budget"),
    ("bracket.", "the bracket"),
    ("resources.", "resources"),
)

#: a flag's metavar from its value type: ``--population N``, not ``--population POPULATION``
METAVARS: dict[Any, str] = {
    positive_int: "N",
    non_negative_int: "N",
    int: "N",
    float: "X",
    cpus: "N|auto",
    margin: "NATS|auto",
    float_list: "X,X,...",
    int_list: "N,N,...",
    seeds: "N|LIST",
    methods: "LIST",
}


def group_of(key: str) -> str:
    """The help group of the flag that sets ``key``."""
    return next(title for prefix, title in GROUPS if key == prefix or key.startswith(prefix))


def argument_group(p: argparse.ArgumentParser, title: str) -> Any:
    """``p``'s argument group of that title, made the first time it is asked for."""
    for g in p._action_groups:
        if g.title == title:
            return g
    return p.add_argument_group(title)


def add_alias(group: Any, old: str, new: str, **kwargs: Any) -> None:
    """An old spelling of an option, kept for scripts: it sets what ``new`` sets and is left
    out of ``--help``; the generated CLI reference and CHANGELOG.md list it."""
    action = group.add_argument(old, help=argparse.SUPPRESS, **kwargs)
    action.popmix_alias_of = new  # read by the reference generator (popmix.cli._reference)


class _NotHere(argparse.Action):
    """An option that a neighbouring command has but this one cannot honour: one line naming
    what to give instead (and no silent prefix match: argparse would read ``--seed 3`` as
    ``--seeds 3``, three seeds, where ``popmix run --seed 3`` is seed 3)."""

    def __init__(self, *args: Any, fix: str = "", **kwargs: Any) -> None:
        self.fix = fix
        super().__init__(*args, **kwargs)

    def __call__(self, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
        parser.error(f"{option} {values}: {self.fix}")


def add_not_here(group: Any, option: str, fix: str) -> None:
    group.add_argument(option, action=_NotHere, fix=fix, help=argparse.SUPPRESS)


#: the same option in every command says the same thing
SEED_HELP = "one seed: model initialisation and batches (sets seeds: [S])"
SEEDS_HELP = "how many seeds (3: seeds 0, 1, 2)"
OUT_DIR_HELP = "write this command's files here (default: {default})"
QUIET_HELP = "print only the final table"


@dataclasses.dataclass(frozen=True)
class Flag:
    """A command-line flag that sets one dotted key of the experiment.

    ``help`` is one short line; ``--help`` adds the key and its default, and the key's full
    description is its entry in the configuration reference.
    """

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

    @property
    def shown_metavar(self) -> str | None:
        if self.metavar is not None or self.choices is not None:
            return self.metavar
        return METAVARS.get(self.type, "VALUE")


def default_of(key: str) -> Any:
    """The built-in default of a dotted experiment key."""
    value: Any = Experiment()
    for part in key.split("."):
        value = getattr(value, part, None) if not isinstance(value, dict) else value.get(part)
    return value


def shown_default(value: Any) -> str | None:
    """A default as a user would type it (``pbt,stratified``, not a tuple); None: none."""
    if value is None or value is False or (isinstance(value, (str, tuple)) and not value):
        return None
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value)
    return str(value)


DATA_FLAGS = (
    Flag(
        "--benchmark",
        "data.benchmark",
        "a built-in domain set: brown16, multilingual, oracle16 or synthetic",
        metavar="NAME",
    ),
    Flag(
        "--data",
        "data.path",
        "your corpus: a folder with a file or folder per domain, or a table",
        metavar="PATH",
    ),
    Flag(
        "--domain-field",
        "data.domain_field",
        "the record field that names each record's domain (a dotted path)",
        metavar="FIELD",
    ),
    Flag("--domain-column", "data.domain_column", "the same as --domain-field", metavar="FIELD"),
    Flag(
        "--rescan",
        "data.rescan",
        "count the corpus's sizes again (not from the cache)",
        action="store_true",
    ),
    Flag("--tasks", "data.tasks", "use the first N domains", type=positive_int),
)

MODEL_FLAGS = (
    Flag("--steps", "train.steps", "optimizer steps per model", type=positive_int),
    Flag("--batch-size", "train.batch_size", "windows per batch", type=positive_int),
    Flag("--seq-len", "model.seq_len", "context in tokens (bytes of text)", type=positive_int),
    Flag("--n-layer", "model.n_layer", "transformer blocks", type=positive_int),
    Flag("--n-head", "model.n_head", "attention heads", type=positive_int),
    Flag("--d-model", "model.d_model", "model width", type=positive_int),
    Flag("--lr", "train.lr", "peak learning rate", type=float),
    Flag("--warmup-frac", "train.warmup_frac", "warm-up as a share of the steps", type=float),
    Flag(
        "--warmup-steps",
        "train.warmup_steps",
        "warm-up in steps instead of a share",
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
    Flag("--device", "train.device", "cpu, cuda, cuda:N or auto", metavar="DEVICE"),
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
            g = argument_group(p, "experiment")
            g.add_argument(
                "--experiment",
                metavar="YAML",
                help="an experiment file, or a shipped one by name (default: default)",
            )
            g.add_argument(
                "overrides",
                nargs="*",
                metavar="KEY=VALUE",
                help="set any key of the experiment, e.g. train.lr=0.01 model.d_model=64",
            )
        for f in self.flags:
            group = argument_group(p, group_of(f.key))
            shown = shown_default(default_of(f.key))
            where = f" ({f.key}, default {shown})" if shown is not None else f" ({f.key})"
            if f.action is not None:  # a switch: absent means the file's value, not False
                group.add_argument(
                    f.flag, dest=f.dest, action=f.action, default=None, help=f.help + where
                )
                continue
            group.add_argument(
                f.flag,
                dest=f.dest,
                type=f.type,
                choices=f.choices,
                metavar=f.shown_metavar,
                help=f.help + where,
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
    g = argument_group(p, "cluster")
    g.add_argument(
        "--address",
        help="an existing Ray cluster (host:port or auto); default: start a local Ray",
    )
    g.add_argument(
        "--cpus", type=positive_int, metavar="N", help="CPUs of the local Ray (default: all)"
    )
    o = argument_group(p, "output")
    o.add_argument(
        "--storage", default="runs", metavar="DIR|URI", help=storage_help + " (default: runs)"
    )
    o.add_argument("--name", help=f"the experiment folder's name (default: {name_default})")
    o.add_argument("--out", metavar="DIR", help=out_help)
    o.add_argument("--quiet", action="store_true", help=QUIET_HELP)


def add_smoke_arg(p: argparse.ArgumentParser, budget: str) -> None:
    argument_group(p, "experiment").add_argument(
        "--smoke",
        action="store_true",
        help=f"check in seconds that the command works: a tiny budget ({budget})",
    )


__all__ = [
    "DATA_FLAGS",
    "GROUPS",
    "MODEL_FLAGS",
    "SINGLE_MODEL_FLAGS",
    "Command",
    "ConfigError",
    "Flag",
    "Parser",
    "UsageError",
    "add_alias",
    "add_not_here",
    "add_smoke_arg",
    "argument_group",
    "default_of",
    "group_of",
]
