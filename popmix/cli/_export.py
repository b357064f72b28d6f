"""``popmix export``: a run's mixture as the user's trainer reads it (HF datasets, Megatron)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from popmix.cli._base import Command, UsageError, positive_int


class ExportCommand(Command):
    name = "export"
    help = "write a run's mixture for your trainer: HF interleave_datasets, Megatron blends, ..."
    description = (
        "Turn the weights a run or search found into your trainer's format: of a search's "
        "folder the mixture it recommends (its summary names it; --method M for another "
        "method's), of a run's or bracket's its weights.json or bracket_schedule.json, or any "
        "popmix weights file. Each "
        "point of the schedule starts a phase that runs to the next (the last to the end of "
        "the budget). hf: a JSON (YAML for a .yaml --out) of the static probabilities and the "
        "phases for datasets.interleave_datasets, and a Python snippet beside it (OUT with the "
        "suffix .py) that builds them; megatron: a --data-path blend string per phase; json "
        "and csv: domain and weight per phase. Without --out the text is printed (hf: the "
        "snippet). Imports neither torch nor Ray."
    )
    reads_experiment = False

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        from popmix.export import FORMATS, UNITS

        p.add_argument(
            "source",
            metavar="RUN_DIR_OR_WEIGHTS_FILE",
            help="a popmix run or search folder, or a popmix weights file",
        )
        p.add_argument("--format", required=True, choices=FORMATS, help="what to write")
        p.add_argument(
            "--method",
            metavar="M",
            help="of a search's folder: export method M's mixture (of its seed best on "
            "validation) instead of the recommended one",
        )
        p.add_argument(
            "--map",
            metavar="YAML",
            help="each domain's data, one `domain: path` line each (a path, dataset name or "
            "Megatron prefix; default: the corpus the search trained on, else the names)",
        )
        p.add_argument("--out", metavar="FILE", help="write here instead of printing")
        p.add_argument(
            "--force", action="store_true", help="replace --out (and its snippet) if they exist"
        )
        p.add_argument(
            "--unit",
            choices=UNITS,
            default="steps",
            help="phase boundaries in optimizer steps or in tokens (default steps)",
        )
        p.add_argument(
            "--total",
            type=positive_int,
            metavar="N",
            help="your run's length in --unit; each phase keeps its share (default: the "
            "run's own budget)",
        )
        p.add_argument(
            "--tokens-per-step",
            type=positive_int,
            metavar="N",
            help="for --unit tokens (default: the run's batch size times its context)",
        )
        p.add_argument(
            "--target-tokens",
            type=positive_int,
            metavar="N",
            help="your run's tokens: one line for every domain the mixture repeats more than "
            "--max-epochs times there (sizes from the run's records)",
        )
        p.add_argument(
            "--max-epochs",
            type=float,
            metavar="E",
            help="passes over a domain allowed at --target-tokens (default: the run's "
            "data.max_epochs, else 1)",
        )
        p.add_argument(
            "--cap",
            action="store_true",
            help="move the mixture within those caps (each phase to its nearest capped "
            "mixture) and say what moved; json records it",
        )

    def run(self, args: argparse.Namespace) -> int:
        from popmix.export import (
            ExportError,
            check_repetition,
            load_mixture,
            to_csv,
            to_hf,
            to_json,
            to_megatron,
        )

        try:
            m = load_mixture(
                args.source,
                unit=args.unit,
                total=args.total,
                map_file=args.map,
                tokens_per_step=args.tokens_per_step,
                method=args.method,
            )
            repetition: list[str] = []
            if args.target_tokens is None and (args.cap or args.max_epochs is not None):
                raise UsageError("--cap and --max-epochs need --target-tokens N (your run's)")
            if args.max_epochs is not None and not args.max_epochs > 0:
                raise UsageError(f"--max-epochs must be > 0, got {args.max_epochs:g}")
            if args.target_tokens is not None:
                m, repetition = check_repetition(
                    m, args.target_tokens, args.max_epochs, cap=args.cap
                )
            files: list[tuple[Path | None, str]]
            out = Path(args.out) if args.out else None
            if args.format == "hf":
                if out is not None and out.suffix == ".py":
                    raise UsageError(
                        f"--out {out}: the hf export writes its settings there and the "
                        f"snippet beside it as {out.with_suffix('.py').name}; give --out "
                        f"{out.with_suffix('.json')} (or .yaml)"
                    )
                as_yaml = out is not None and out.suffix in (".yaml", ".yml")
                config, snippet = to_hf(m, as_yaml=as_yaml)
                if out is None:
                    files = [(None, snippet)]
                else:
                    files = [(out, config), (out.with_suffix(".py"), snippet)]
            else:
                writer = {"megatron": to_megatron, "json": to_json, "csv": to_csv}[args.format]
                files = [(out, writer(m))]
        except ExportError as e:
            raise UsageError(str(e)) from None

        targets = [path for path, _ in files if path is not None]
        if not args.force:
            for path in targets:
                if path.exists():
                    raise UsageError(f"--out: {path} exists; give another --out, or --force")
        for path in targets:
            if not path.parent.is_dir():
                raise UsageError(f"--out: folder {path.parent} does not exist; create it first")
        # what was used goes to stderr, so a printed export stays clean to pipe
        err = sys.stderr if not targets else sys.stdout
        print(
            f"popmix export: {m.source} ({m.method or 'schedule'}, {len(m.domains)} domains, "
            f"{len(m.phases)} phase(s) over {m.total} {m.unit}); data from {m.data_from}",
            file=err,
        )
        if m.chosen:
            print(f"  exported {m.chosen}", file=err)
        for note in m.notes:
            print(f"  note: {note}", file=err)
        for line in repetition:
            print(f"  repetition: {line}", file=err)
        for target, text in files:
            if target is None:
                sys.stdout.write(text)
            else:
                target.write_text(text)
        if targets:
            print(f"wrote {' and '.join(str(t) for t in targets)}")
        return 0
