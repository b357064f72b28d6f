"""``popmix report``: a finished search or bracket as one self-contained HTML page."""

from __future__ import annotations

import argparse

from popmix.cli._base import Command, UsageError


class ReportCommand(Command):
    name = "report"
    help = "write a search's (or bracket's) results as one HTML page with its figures"
    description = (
        "Write RUN_DIR's results as report.html, self-contained (figures embedded, opens "
        "offline), and the figures beside it as PNGs: the methods compared with their "
        "intervals, per-domain test perplexity by method, each method's weights over steps, "
        "the PBT lineage (who copied whom, when), the objective over steps per trial and, "
        "where present, the confirmation (confirm.json), the oracle gap and the bracket's "
        "order matrices (bracket.json). Imports neither torch nor Ray."
    )
    reads_experiment = False

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "run_dir",
            metavar="RUN_DIR",
            help="a finished search's folder (or its summary.json), or a bracket's folder",
        )
        p.add_argument(
            "--out", metavar="DIR", help="write the page and PNGs here (default RUN_DIR/report)"
        )

    def run(self, args: argparse.Namespace) -> int:
        from popmix.reporting.report import write_report
        from popmix.reporting.run import ReportError

        try:
            page, pngs = write_report(args.run_dir, args.out)
        except ReportError as e:
            raise UsageError(str(e)) from None
        print(f"popmix report: wrote {page} and {len(pngs)} figure(s) beside it")
        return 0
