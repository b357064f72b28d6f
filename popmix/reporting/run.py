"""What ``popmix report`` reads from a run's folder (:func:`read_run`): ``summary.json`` through
its typed reader, ``lineage.json``, ``best_schedule.json``, ``confirm.json``, ``surface.json``,
``bracket.json``, and each trial's ``result.json`` under the experiment folder's ``seed*/``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from popmix.records.summary import (
    SUMMARY_FILE,
    Summary,
    SummaryError,
    read_summary,
)


class ReportError(Exception):
    """A folder that holds nothing to report on (printed as one line)."""


@dataclass
class Run:
    """What a report reads from a run's folder; None where the file is absent."""

    folder: Path
    summary: Summary | None = None
    lineage: dict[str, Any] | None = None
    best: dict[str, Any] | None = None
    confirm: dict[str, Any] | None = None
    surface: dict[str, Any] | None = None
    bracket: dict[str, Any] | None = None
    #: trial id -> its reports in step order (each a ``result.json`` line)
    reports: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: trial id -> method, from the trial's folder name ``<method>_<trial id>``
    trial_methods: dict[str, str] = field(default_factory=dict)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ReportError(f"{path}: cannot read it ({e})") from None


def _read_reports(path: Path) -> list[dict[str, Any]]:
    out = []
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a line cut short by a killed trial
        if isinstance(row, dict) and "step" in row:
            out.append(row)
    return sorted(out, key=lambda r: r["step"])


def read_run(folder: str | Path) -> Run:
    """The run in ``folder``: a search's ``--out`` or experiment folder, or a bracket's output.

    Raises:
        ReportError: no such folder, or neither ``summary.json`` nor ``bracket.json`` in it, or
            one that is not popmix's.
    """
    path = Path(folder)
    if path.is_file() and path.name in ("summary.json", "bracket.json"):
        path = path.parent
    fix = "give the folder of a finished popmix search or bracket"
    if not path.is_dir():
        raise ReportError(f"{folder}: no such folder; {fix}")
    run = Run(folder=path)
    if (path / SUMMARY_FILE).is_file():
        try:
            run.summary = read_summary(path / SUMMARY_FILE)
        except SummaryError as e:
            raise ReportError(str(e)) from None
    if (path / "bracket.json").is_file():
        bracket = _read_json(path / "bracket.json")
        if not isinstance(bracket, dict) or not isinstance(bracket.get("steps"), list):
            raise ReportError(f"{path / 'bracket.json'}: not a popmix bracket report; {fix}")
        run.bracket = bracket
    if run.summary is None and run.bracket is None:
        raise ReportError(
            f"{folder}: not a popmix search or bracket folder (no summary.json or "
            f"bracket.json); {fix}"
        )
    for name, attr in (
        ("lineage.json", "lineage"),
        ("best_schedule.json", "best"),
        ("confirm.json", "confirm"),
        ("surface.json", "surface"),
    ):
        if (path / name).is_file():
            value = _read_json(path / name)
            setattr(run, attr, value if isinstance(value, dict) else None)
    if run.summary is not None:
        # --out may differ from the experiment folder (where the trials are); a folder moved
        # since keeps its trials beside its summary
        candidates = [path]
        if run.summary.experiment_dir:
            candidates.append(Path(run.summary.experiment_dir))
        for exp_dir in candidates:
            found = sorted(exp_dir.glob("seed*/*/result.json"))
            if not found:
                continue
            for result in found:
                reports = _read_reports(result)
                if not reports:
                    continue
                trial_id = str(reports[-1].get("trial_id", result.parent.name))
                run.reports[trial_id] = reports
                name = result.parent.name
                suffix = f"_{trial_id}"
                run.trial_methods[trial_id] = (
                    name[: -len(suffix)] if name.endswith(suffix) else name
                )
            break
    return run


__all__ = ["ReportError", "Run", "read_run"]
