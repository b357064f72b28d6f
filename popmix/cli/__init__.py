"""The ``popmix`` command: one module per subcommand, one shared base (:mod:`._base`).

Every user mistake ends as one line on stderr and exit code 2, never a traceback. Heavy imports
(torch, datasets, Ray) happen inside the commands, so ``popmix --help`` and ``popmix check``
stay fast.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
from collections.abc import Sequence

from popmix.cli._base import Command, Parser, UsageError
from popmix.cli._bracket import BracketCommand
from popmix.cli._calibrate import CalibrateCommand
from popmix.cli._check import CheckCommand
from popmix.cli._confirm import ConfirmCommand
from popmix.cli._export import ExportCommand
from popmix.cli._info import InfoCommand
from popmix.cli._init import InitCommand
from popmix.cli._report import ReportCommand
from popmix.cli._run import RunCommand
from popmix.cli._search import SearchCommand

#: the subcommands, in help order; adding one is a module and a line here.
COMMANDS: tuple[Command, ...] = (
    InitCommand(),
    RunCommand(),
    SearchCommand(),
    ConfirmCommand(),
    CalibrateCommand(),
    BracketCommand(),
    ExportCommand(),
    ReportCommand(),
    CheckCommand(),
    InfoCommand(),
)


#: errors of the machine a user can fix, and how
_OS_FIXES = {
    errno.ENOSPC: "free space there (or give another --out/--storage) and run again",
    errno.EDQUOT: "free space within your quota (or give another --out/--storage) and run again",
    errno.EACCES: "give a folder you can write to",
    errno.EROFS: "give a folder on a writable file system",
    errno.ENOTDIR: "a file stands where a folder is needed; give another path",
}


def build_parser() -> Parser:
    from popmix import __version__

    parser = Parser(prog="popmix", description="Find how to mix training data from many domains.")
    parser.add_argument("--version", action="version", version=f"popmix {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for command in COMMANDS:
        command.add_to(sub)
    return parser


def _interrupting_signal() -> int:
    """SIGINT, or SIGTERM when that is what stopped a Ray command (exit 130 or 143)."""
    tune = sys.modules.get("popmix.tune.callbacks")  # loaded only by commands that start Ray
    last = getattr(getattr(tune, "Interrupted", None), "last_signal", None)
    return int(last) if last else int(signal.SIGINT)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``popmix`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    from popmix.config import ConfigError
    from popmix.data.domains import DataError
    from popmix.policies import PolicyError
    from popmix.records.summary import SummaryError

    errors: tuple[type[Exception], ...] = (
        UsageError,
        DataError,
        PolicyError,
        ConfigError,
        SummaryError,
    )
    try:
        return args.command_object.run(args)
    except errors as e:
        print(f"popmix {args.command}: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # the reader went away (popmix ... | head): what it read was all it wanted. Python's
        # own flush of stdout at exit would fail again, so stdout goes to devnull first.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt as e:
        detail = f"; {e}" if str(e) else ""
        signum = _interrupting_signal()
        what = "terminated" if signum == signal.SIGTERM else "interrupted"
        print(f"popmix {args.command}: {what}{detail}", file=sys.stderr)
        return 128 + signum
    except OSError as e:
        # the machine, not the code: a full disk, a read-only or foreign folder
        fix = _OS_FIXES.get(e.errno or 0)
        if fix is None:
            raise
        where = f" ({e.filename})" if e.filename else ""
        print(f"popmix {args.command}: error: {e.strerror}{where}; {fix}", file=sys.stderr)
        return 2
    except Exception as e:
        from popmix.train.loop import Diverged

        if not isinstance(e, Diverged):
            raise
        print(f"popmix {args.command}: diverged: {e}", file=sys.stderr)
        return 1


__all__ = ["COMMANDS", "Command", "UsageError", "build_parser", "main"]


if __name__ == "__main__":
    sys.exit(main())
