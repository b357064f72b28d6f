"""``popmix report``: a finished search (or bracket) as one HTML page people can read.

Reads what the run left in its folder (:func:`popmix.reporting.run.read_run`) and draws its
figures (:mod:`popmix.reporting.figures`): ``summary.json`` (the table, the methods' intervals, the
oracle), ``lineage.json`` (PBT's exploits, each member's schedule), ``best_schedule.json``, each
trial's ``result.json`` under the experiment folder's ``seed*/`` (the reports: objective and
weights over steps), and where present ``confirm.json`` (``popmix confirm``),
``surface.json`` (the swarm's fitted surfaces) and ``bracket.json`` (``popmix bracket``; a
bracket folder alone is a report too).

Files written under ``out``: ``report.html``, self-contained (every figure embedded as a base64
PNG, no script, no network), and the same figures beside it as PNGs: ``comparison.png``,
``domain_ppl.png``, ``weights.png``, ``lineage.png``, ``objective.png`` and, where their data is
present, ``confirm.png``, ``oracle.png``, ``surface_sensitivity-seed<S>.png`` and
``surface_slices-seed<S>.png`` (drawn again from ``surface.json``), ``bracket.png``.

Imports neither torch nor Ray; matplotlib only when a figure is drawn.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from popmix.analysis.surface_figures import surface_figures
from popmix.records.summary import (
    MethodResult,
    read_methods,
)
from popmix.records.table import format_oracle, format_table, interval, versus
from popmix.reporting.figures import (
    Figure,
    bracket_figure,
    comparison_figure,
    confirm_figure,
    domain_figure,
    lineage_figure,
    objective_figure,
    oracle_figure,
    weights_figure,
)
from popmix.reporting.run import Run, read_run

REPORT_FILE = "report.html"


_CSS = """
body { font-family: sans-serif; max-width: 1100px; margin: 1.5em auto; padding: 0 1em;
       color: #222; background: #fff; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.8em;
     border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.9em; margin: 0.6em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f7f7f7; padding: 0.6em; overflow-x: auto; font-size: 0.8em; }
img { max-width: 100%; height: auto; display: block; margin: 0.5em 0; }
.caption { color: #555; font-size: 0.9em; }
"""


def _table(header: list[str], rows: list[list[str]], numeric_from: int = 1) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{html.escape(c)}</td>'
            if i >= numeric_from
            else f"<td>{html.escape(c)}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def methods_table(methods: Mapping[str, MethodResult], reference: str) -> str:
    """Each method's intervals over seeds and its paired difference against the reference:
    the printed table's per-method block, cell for cell."""
    rows = [
        [
            name,
            str(m.test_mean_ppl.n),
            interval(m.test_mean_ppl),
            interval(m.test_worst_ppl),
            versus(name, reference, m.vs_reference),
        ]
        for name, m in methods.items()
    ]
    return _table(
        ["method", "seeds", "mean test ppl [95%]", "worst test ppl [95%]", f"vs {reference}"],
        rows,
    )


def _figure_html(fig: Figure) -> str:
    data = base64.b64encode(fig.png).decode("ascii")
    return (
        f'<img src="data:image/png;base64,{data}" alt="{html.escape(fig.title)}">'
        f'<p class="caption">{html.escape(fig.caption)} ({html.escape(fig.name)}.png)</p>'
    )


def _section(title: str, *parts: str) -> str:
    return f"<section><h2>{html.escape(title)}</h2>{''.join(parts)}</section>"


def _pre(text: str) -> str:
    return f"<pre>{html.escape(text)}</pre>"


def _search_sections(run: Run, figures: list[Figure]) -> list[str]:
    assert run.summary is not None
    summary = run.summary
    ref = summary.reference
    out = []

    def add(fig: Figure | None, *before: str, title: str = "") -> None:
        if fig is not None:
            figures.append(fig)
            out.append(_section(fig.title, *before, _figure_html(fig)))
        elif before:
            out.append(_section(title, *before))

    methods = summary.methods
    comparison = comparison_figure(summary)
    table = methods_table(methods, ref) if methods else ""
    if comparison is not None:
        figures.append(comparison)
    out.append(
        _section(
            "Methods compared",
            f"<p>Per method, over its seeds; the reference is {html.escape(ref or '-')}; "
            "differences are paired by seed.</p>",
            table,
            _figure_html(comparison) if comparison is not None else "",
            "<p>The table the search printed, one row per method and seed:</p>",
            _pre(format_table(summary)),
        )
    )
    add(domain_figure(summary))
    add(weights_figure(run))
    lineage = lineage_figure(run)
    if lineage is not None:
        rows = [
            [
                str(r.get("seed")),
                str(r.get("trial_id")),
                str(r.get("donor")),
                str(r.get("donor_step")),
                str(r.get("step_before")),
                f"{r['gain']:.4f}" if isinstance(r.get("gain"), (int, float)) else "-",
                f"{r['margin']:.4f}" if isinstance(r.get("margin"), (int, float)) else "-",
                "skipped (within noise)" if r.get("skipped_within_noise") else "taken",
            ]
            for r in sorted(
                (run.lineage or {}).get("exploits", [])
                + (run.lineage or {}).get("skipped_within_noise", []),
                key=lambda r: (r.get("seed", 0), r.get("time", 0)),
            )
        ]
        exploits = (
            _table(
                ["seed", "copier", "donor", "donor step", "at step", "gain", "margin", ""],
                rows,
                numeric_from=3,
            )
            if rows
            else "<p>No exploit was decided in this search.</p>"
        )
        figures.append(lineage)
        out.append(_section(lineage.title, _figure_html(lineage), exploits))
    add(objective_figure(run))
    if run.confirm and run.confirm.get("methods"):
        c = run.confirm
        agreement = c.get("rank_agreement")
        add(
            confirm_figure(c),
            f"<p>Seeds {html.escape(str(c.get('seeds')))}, {html.escape(str(c.get('steps')))} "
            "steps.</p>",
            methods_table(read_methods(c["methods"]), c.get("reference", ref)),
            _pre("rank agreement with the search: " + json.dumps(agreement, default=str))
            if agreement is not None
            else "",
            title="Confirmation on fresh seeds",
        )
    if summary.oracle:
        fig = oracle_figure(summary)
        if fig is not None:
            figures.append(fig)
        out.append(
            _section(
                "Oracle gap",
                _pre("\n".join(format_oracle(summary))),
                _figure_html(fig) if fig is not None else "",
            )
        )
    if run.surface:
        out += _surface_sections(run.surface, figures)
    return out


def _ci(value: Any, ci: Any, spec: str = ".3f") -> str:
    """``value [lo, hi]`` in ``spec``; ``value`` alone without an interval, "-" without it."""
    number = (int, float)
    if not isinstance(value, number):
        return "-"
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(isinstance(c, number) for c in ci):
        return f"{value:{spec}} [{ci[0]:{spec}}, {ci[1]:{spec}}]"
    return f"{value:{spec}}"


#: the per-domain columns of a surface's table: (surface.json key, number format)
SURFACE_COLUMNS = (("optimum", ".4f"), ("sensitivity", "+.4f"), ("curvature", "+.4f"))


def _surface_cell(surface: dict[str, Any], key: str, i: int, spec: str) -> str:
    """Domain ``i``'s ``key`` with its ``key_ci`` interval, or "-" where the surface has none."""
    value, ci = (
        (surface.get(k) or [])[i] if i < len(surface.get(k) or []) else None
        for k in (key, f"{key}_ci")
    )
    return _ci(value, ci, spec)


def _surface_sections(doc: dict[str, Any], figures: list[Figure]) -> list[str]:
    """Per seed of ``surface.json``: the fit's quality, the predicted optimum, sensitivity and
    curvature per domain with their intervals, and the surface's two figures."""
    out = []
    for seed, surface in sorted((doc.get("seeds") or {}).items(), key=lambda kv: str(kv[0])):
        title = f"The swarm's fitted surface, seed {seed}"
        if not isinstance(surface, dict) or "error" in surface:
            error = surface.get("error") if isinstance(surface, dict) else "not a surface"
            out.append(_section(title, _pre(f"no surface: {error}")))
            continue
        quality = surface.get("quality") or {}
        model = surface.get("model", "?")
        cv = (quality.get("cv") or {}).get(model) or {}
        predicted = _ci(surface.get("predicted"), surface.get("predicted_ci"), ".4f")
        facts = (
            f"<p>Objective {html.escape(str(surface.get('objective')))}; model "
            f"{html.escape(str(model))} (chosen by 5-fold cross-validation over "
            f"{html.escape(str(quality.get('n_runs', surface.get('runs'))))} swarm runs: "
            f"held-out R² {html.escape(_ci(cv.get('r2'), None))}, Spearman "
            f"{html.escape(_ci(cv.get('spearman'), None))}); predicted objective at the "
            f"optimum {html.escape(predicted)}"
            " (at the swarm runs' budget). Intervals: 95% bootstrap over the swarm runs.</p>"
        )
        rows = [
            [name] + [_surface_cell(surface, k, i, f) for k, f in SURFACE_COLUMNS]
            for i, name in enumerate(surface.get("names") or [])
        ]
        table = _table(
            ["domain", "optimum weight", "sensitivity (nats)", "curvature (nats)"], rows
        )
        parts = [facts, table]
        try:
            drawn = surface_figures(surface)
        except ValueError as e:  # not a popmix-surface document: say so, report the rest
            parts.append(_pre(f"cannot draw it: {e}"))
            drawn = []
        for file_name, png in drawn:
            stem = file_name.removesuffix(".png")
            fig = Figure(
                name=f"{stem}-seed{seed}",
                title=title,
                caption=(
                    "Per domain: the optimum weight, the sensitivity and curvature of the "
                    "objective over a move of log-weight, with 95% bootstrap intervals"
                    if "sensitivity" in stem
                    else "The fitted objective along each domain's slice through the optimum, "
                    "with its bootstrap band"
                ),
                png=png,
            )
            figures.append(fig)
            parts.append(_figure_html(fig))
        out.append(_section(title, *parts))
    return out


def _bracket_sections(bracket: dict[str, Any], figures: list[Figure]) -> list[str]:
    fig = bracket_figure(bracket)
    last = (bracket.get("steps") or [{}])[-1]
    scores = last.get("scores") or {}
    rows = [[d, f"{float(scores[d]):+.4g}"] for d in last.get("order") or [] if d in scores]
    parts = [
        f"<p>Target {html.escape(str(bracket.get('target')))}; evaluated at steps "
        f"{html.escape(str([s.get('step') for s in bracket.get('steps') or []]))}"
        + ("" if bracket.get("complete", True) else " (incomplete: interrupted)")
        + ".</p>",
        _table(["domain (helps the target most when early first)", "order score"], rows),
    ]
    if fig is not None:
        figures.append(fig)
        parts.append(_figure_html(fig))
    return [_section("Bracket", *parts)]


def build_report(run: Run) -> tuple[str, list[Figure]]:
    """The report page and its figures (each also embedded in the page)."""
    figures: list[Figure] = []
    sections: list[str] = []
    if run.summary is not None:
        s = run.summary
        title = f"popmix search {s.experiment or run.folder.name}"
        facts = (
            f"{s.benchmark or '?'}, {len(s.domains)} domains, "
            f"{s.steps_per_model or '?'} steps per model, searcher "
            f"{s.searcher or '?'}, objective {s.objective or '?'}, population "
            f"{s.population_method or '?'}"
        )
        if s.interrupted:
            facts += "; interrupted: the rows of seeds that had not started are missing"
        sections.append(f"<p>{html.escape(facts)}. Folder: {html.escape(str(run.folder))}</p>")
        sections += _search_sections(run, figures)
    else:
        title = f"popmix bracket {run.folder.name}"
    if run.bracket is not None:
        sections += _bracket_sections(run.bracket, figures)
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{''.join(sections)}</body></html>\n"
    )
    return page, figures


def write_report(folder: str | Path, out: str | Path | None = None) -> tuple[Path, list[Path]]:
    """Write ``report.html`` and its PNGs for the run in ``folder`` (default ``out``:
    ``folder/report``); returns (the page, the PNGs).

    Raises:
        ReportError: ``folder`` holds no search or bracket (see :func:`read_run`).
    """
    run = read_run(folder)
    target = Path(out) if out is not None else run.folder / "report"
    target.mkdir(parents=True, exist_ok=True)
    page, figures = build_report(run)
    pngs = []
    for fig in figures:
        path = target / f"{fig.name}.png"
        path.write_bytes(fig.png)
        pngs.append(path)
    (target / REPORT_FILE).write_text(page)
    return target / REPORT_FILE, pngs


__all__ = ["REPORT_FILE", "build_report", "methods_table", "write_report"]
