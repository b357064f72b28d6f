"""``popmix report``: a finished search (or bracket) as one HTML page people can read.

Reads what the run left in its folder: ``summary.json`` (the table, the methods' intervals, the
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
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from popmix._util import plots
from popmix.analysis.surface_figures import surface_figures
from popmix.records.table import format_oracle, format_table, interval, versus
from popmix.records.trial import TrialSpec
from popmix.tune.summarize import method_intervals

REPORT_FILE = "report.html"


class ReportError(Exception):
    """A folder that holds nothing to report on (printed as one line)."""


@dataclass
class Run:
    """What a report reads from a run's folder; None where the file is absent."""

    folder: Path
    summary: dict[str, Any] | None = None
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
    if (path / "summary.json").is_file():
        summary = _read_json(path / "summary.json")
        if not isinstance(summary, dict) or not isinstance(summary.get("rows"), list):
            raise ReportError(f"{path / 'summary.json'}: not a popmix search summary; {fix}")
        run.summary = summary
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
        if run.summary.get("experiment_dir"):
            candidates.append(Path(run.summary["experiment_dir"]))
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


# ---------------------------------------------------------------------------------- figures


@dataclass
class Figure:
    """One figure of the report: its file stem, heading, caption and PNG bytes."""

    name: str
    title: str
    caption: str
    png: bytes


def _colors(methods: list[str]) -> dict[str, Any]:
    cmap = plots.pyplot().get_cmap("tab10")
    return {m: cmap(i % 10) for i, m in enumerate(methods)}


def _methods(summary: dict[str, Any]) -> dict[str, Any]:
    """summary.json's ``methods`` (computed from its rows for a summary written without it)."""
    if summary.get("methods"):
        return dict(summary["methods"])
    return method_intervals(summary, summary.get("reference", ""))


def _interval_plot(methods: dict[str, Any], key: str, xlabel: str, title: str) -> bytes | None:
    """Each method's mean of ``key`` with its 95% interval over seeds (a dot without one)."""
    names = [m for m, e in methods.items() if (e.get(key) or {}).get("mean") is not None]
    if not names:
        return None
    plt = plots.pyplot()
    colors = _colors(list(methods))
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(names) + 1.4))
    for i, name in enumerate(names):
        stat = methods[name][key]
        ax.plot(stat["mean"], i, "o", color=colors[name], markersize=7)
        if stat.get("ci95") is not None:
            lo, hi = stat["ci95"]
            ax.plot([lo, hi], [i, i], "-", color=colors[name], linewidth=2.5)
        seeds = stat.get("n") or 0
        ax.annotate(
            f" n={seeds}", (stat["mean"], i), textcoords="offset points", xytext=(6, 4), fontsize=8
        )
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return plots.png(fig)


def comparison_figure(summary: dict[str, Any]) -> Figure | None:
    png = _interval_plot(
        _methods(summary),
        "mean_test_ppl",
        "mean test perplexity (lower is better)",
        "mean test perplexity per method: mean over seeds, bar = 95% interval",
    )
    if png is None:
        return None
    return Figure(
        "comparison",
        "Methods compared",
        "Mean test perplexity over the domains, per method: the dot is the mean over seeds, the "
        "bar its 95% interval (none with one seed). The same numbers as the table above.",
        png,
    )


def domain_figure(summary: dict[str, Any]) -> Figure | None:
    """Per-domain test perplexity by method (mean over the method's seeds)."""
    domains = list(summary.get("domains") or [])
    by: dict[str, dict[str, list[float]]] = {}
    for row in summary["rows"]:
        for d, v in (row.get("test_ppl") or {}).items():
            if v is not None and math.isfinite(v):
                by.setdefault(row["method"], {}).setdefault(d, []).append(float(v))
                if d not in domains:
                    domains.append(d)
    if not by:
        return None
    plt = plots.pyplot()
    colors = _colors(list(dict.fromkeys(r["method"] for r in summary["rows"])))
    fig, ax = plt.subplots(figsize=(max(8, 0.55 * len(domains) + 2), 4.8))
    x = np.arange(len(domains))
    width = 0.8 / len(by)
    for i, (method, per) in enumerate(by.items()):
        values = [np.mean(per[d]) if d in per else np.nan for d in domains]
        ax.bar(x - 0.4 + (i + 0.5) * width, values, width, label=method, color=colors[method])
    ax.set_xticks(x, domains, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("test perplexity")
    finite = [v for per in by.values() for vals in per.values() for v in vals]
    lo, hi = min(finite), max(finite)
    # bars that all start at 0 would hide differences of a few percent
    ax.set_ylim(max(0.0, lo - 0.15 * (hi - lo + 1e-9) - 0.02 * lo), hi + 0.05 * (hi - lo + 1e-9))
    ax.legend(fontsize=8, ncol=min(4, len(by)))
    ax.set_title("test perplexity per domain, by method (mean over seeds)", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return Figure(
        "domain_ppl",
        "Per-domain test perplexity",
        "Each domain's test perplexity, one bar per method (its mean over seeds; the "
        "population's bar is its best member on validation). The y axis does not start at 0.",
        plots.png(fig),
    )


def _schedule_series(sched: dict[str, Any], domains: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """A weights file's points as a step function to its total_steps: (steps, weights)."""
    names = list(sched.get("domains") or domains)
    order = [names.index(d) for d in domains if d in names]
    points = sorted(sched.get("points") or [], key=lambda p: p["step"])
    total = int(sched.get("total_steps") or (points[-1]["step"] if points else 0))
    xs: list[float] = []
    ws: list[np.ndarray] = []
    for i, p in enumerate(points):
        end = points[i + 1]["step"] if i + 1 < len(points) else max(total, p["step"])
        w = np.asarray(p["weights"], dtype=float)[order]
        xs += [p["step"], end]
        ws += [w, w]
    return np.asarray(xs, dtype=float), np.asarray(ws, dtype=float)


def weights_series(
    run: Run, trial_id: str, domains: list[str]
) -> tuple[np.ndarray, np.ndarray, str] | None:
    """A trial's weights over steps: from its reports (the weights in effect at each report),
    else its schedule in lineage.json or best_schedule.json; (steps, weights, source)."""
    reports = [r for r in run.reports.get(trial_id, []) if isinstance(r.get("weight"), dict)]
    if reports:
        steps = np.asarray([r["step"] for r in reports], dtype=float)
        w = np.asarray([[float(r["weight"].get(d, 0.0)) for d in domains] for r in reports])
        return steps, w, "reports"
    sched = ((run.lineage or {}).get("members") or {}).get(trial_id)
    if sched is None and run.best and (run.best.get("info") or {}).get("trial_id") == trial_id:
        sched = run.best
    if sched and sched.get("points"):
        steps, w = _schedule_series(sched, domains)
        return steps, w, "schedule"
    return None


def weights_figure(run: Run) -> Figure | None:
    """Each method's weights over steps as stacked areas (its first seed's trial)."""
    assert run.summary is not None
    summary = run.summary
    domains = list(summary.get("domains") or [])
    panels = []
    for method in dict.fromkeys(r["method"] for r in summary["rows"]):
        row = next(r for r in summary["rows"] if r["method"] == method)
        series = weights_series(run, str(row.get("trial_id")), domains) if domains else None
        if series is not None:
            panels.append((method, row, *series))
    if not panels:
        return None
    plt = plots.pyplot()
    cmap = plt.get_cmap("tab20")
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(9, 2.2 * len(panels) + 1.2), sharex=True, squeeze=False
    )
    for ax, (method, row, steps, w, source) in zip(axes[:, 0], panels):
        ax.stackplot(steps, w.T, colors=[cmap(i % 20) for i in range(len(domains))])
        ax.set_ylim(0, 1)
        ax.set_xlim(steps.min(), steps.max() if steps.max() > steps.min() else steps.min() + 1)
        ax.set_ylabel("weight")
        ax.set_title(
            f"{method} (seed {row.get('seed')}, trial {row.get('trial_id')}; from its {source})",
            fontsize=9,
        )
    axes[-1, 0].set_xlabel("optimizer step")
    fig.legend(
        [plt.Rectangle((0, 0), 1, 1, color=cmap(i % 20)) for i in range(len(domains))],
        domains,
        loc="lower center",
        ncol=min(6, len(domains)),
        fontsize=7,
    )
    fig.tight_layout(rect=(0, 0.04 + 0.025 * math.ceil(len(domains) / 6), 1, 1))
    return Figure(
        "weights",
        "Weights over steps",
        "The sampling weights each method trained on, stacked (they sum to 1), for the trial "
        "in the table's row of its first seed (the population: its best member). From the "
        "trial's reports, the weights in effect at each report; a trial without reports "
        "here shows its recorded schedule.",
        plots.png(fig),
    )


def _member_map(summary: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """Trial id -> (seed, member) of every population member."""
    return {
        str(m["trial_id"]): (int(m["seed"]), int(m["member"]))
        for m in summary.get("members") or []
        if m.get("member") is not None
    }


def lineage_figure(run: Run) -> Figure | None:
    """PBT's lineage: each member's span of steps, an arrow from donor to copier per exploit."""
    assert run.summary is not None
    members = _member_map(run.summary)
    if not members:
        return None
    lineage = run.lineage or {}
    taken = lineage.get("exploits") or []
    skipped = lineage.get("skipped_within_noise") or []
    seeds = sorted({s for s, _ in members.values()})
    plt = plots.pyplot()
    n_members = max(m for _, m in members.values()) + 1
    fig, axes = plt.subplots(
        len(seeds), 1, figsize=(9, 0.45 * n_members * len(seeds) + 1.6), squeeze=False
    )
    total = float(run.summary.get("steps_per_model") or 1)
    for ax, seed in zip(axes[:, 0], seeds):
        for tid, (s, m) in members.items():
            if s != seed:
                continue
            steps = [r["step"] for r in run.reports.get(tid, [])] or [0, total]
            ax.plot([0, max(steps)], [m, m], "-", color="0.75", linewidth=6, solid_capstyle="butt")
            ax.annotate(f"{tid}", (0, m), xytext=(2, 5), textcoords="offset points", fontsize=7)
        for row in taken:
            if row.get("seed") != seed or row.get("trial_id") not in members:
                continue
            donor = members.get(str(row.get("donor")))
            if donor is None:
                continue
            before = row.get("step_before")
            x0 = float(row["donor_step"] if row.get("donor_step") is not None else before or 0)
            x1 = float(before if before is not None else x0)  # step 0 is a step
            ax.annotate(
                "",
                xy=(x1, members[row["trial_id"]][1]),
                xytext=(x0, donor[1]),
                arrowprops={"arrowstyle": "->", "color": "C3", "linewidth": 1.6},
            )
        for row in skipped:
            if row.get("seed") == seed and row.get("trial_id") in members:
                ax.plot(
                    float(row.get("step_before") or 0),
                    members[row["trial_id"]][1],
                    "x",
                    color="C0",
                )
        ax.set_yticks(range(n_members), [f"member {i}" for i in range(n_members)])
        ax.set_ylim(n_members - 0.5, -0.5)
        ax.set_xlim(0, total * 1.02)
        n_taken = sum(r.get("seed") == seed for r in taken)
        n_skip = sum(r.get("seed") == seed for r in skipped)
        ax.set_title(
            f"seed {seed}: {n_taken} exploit(s) taken (red arrow: donor -> copier), "
            f"{n_skip} skipped as within noise (blue x)",
            fontsize=9,
        )
    axes[-1, 0].set_xlabel("optimizer step")
    fig.tight_layout()
    return Figure(
        "lineage",
        "PBT lineage",
        "Who copied whom, and when: one bar per population member over the steps it trained; a "
        "red arrow runs from the donor at the step it was copied to the member that took its "
        "weights and (mutated) searched values; a blue x is an exploit skipped because the "
        "donor's lead was within the noise of the two validation reads.",
        plots.png(fig),
    )


def _trial_labels(run: Run) -> dict[str, tuple[int | None, str, str]]:
    """Trial id -> (seed, method, label) for every trial with reports."""
    assert run.summary is not None
    members = _member_map(run.summary)
    seeds: dict[str, int] = {}
    for row in run.summary["rows"]:
        seeds[str(row.get("trial_id"))] = row["seed"]
        for draw in row.get("draws") or []:
            seeds[str(draw.get("trial_id"))] = row["seed"]
    out = {}
    for tid, reports in run.reports.items():
        method = run.trial_methods.get(tid, "?")
        seed = members[tid][0] if tid in members else seeds.get(tid)
        config = reports[-1].get("config") or {}
        spec = config.get("spec") or {}
        if seed is None:
            seed = spec.get("seed")
        if "method" in spec:  # the trial's own name, as TensorBoard and the progress lines give it
            label = TrialSpec.from_config(config).name
        else:
            label = f"{method}-member{members[tid][1]}" if tid in members else method
        out[tid] = (seed, method, label)
    return out


def objective_figure(run: Run) -> Figure | None:
    """The objective over steps, one line per trial, one panel per seed."""
    if not run.reports:
        return None
    labels = _trial_labels(run)
    seeds = sorted({s for s, _, _ in labels.values() if s is not None})
    if not seeds:
        return None
    plt = plots.pyplot()
    assert run.summary is not None
    methods = list(dict.fromkeys([r["method"] for r in run.summary["rows"]]))
    methods += [m for _, m, _ in labels.values() if m not in methods]
    colors = _colors(methods)
    fig, axes = plt.subplots(len(seeds), 1, figsize=(9, 3.2 * len(seeds) + 0.6), squeeze=False)
    objective = run.summary.get("objective") or "objective"
    for ax, seed in zip(axes[:, 0], seeds):
        styles = ["-", "--", ":", "-."]
        seen: dict[str, int] = {}
        for tid, (s, method, label) in sorted(labels.items(), key=lambda kv: kv[1][2]):
            if s != seed:
                continue
            pts = [
                (r["step"], r["objective"])
                for r in run.reports[tid]
                if isinstance(r.get("objective"), (int, float)) and math.isfinite(r["objective"])
            ]
            if not pts:
                continue
            k = seen.setdefault(method, 0)
            seen[method] += 1
            xs, ys = zip(*pts)
            ax.plot(
                xs, ys, styles[k % 4], marker=".", color=colors[method], label=label, linewidth=1.4
            )
        ax.set_ylabel(f"{objective} (val)")
        ax.set_title(f"seed {seed}", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=3)
    axes[-1, 0].set_xlabel("optimizer step")
    fig.tight_layout()
    return Figure(
        "objective",
        "Objective over steps",
        f"The searched objective ({objective}, on validation; lower is better) at each report "
        "of every trial, one panel per seed; population members are labelled method#member.",
        plots.png(fig),
    )


def confirm_figure(confirm: dict[str, Any]) -> Figure | None:
    png = _interval_plot(
        confirm.get("methods") or {},
        "mean_test_ppl",
        "mean test perplexity (lower is better)",
        "confirmation on fresh seeds: mean test perplexity, bar = 95% interval",
    )
    if png is None:
        return None
    return Figure(
        "confirm",
        "Confirmation on fresh seeds",
        "popmix confirm: the best member's schedule and final weights and the baselines "
        "retrained from scratch on seeds the search never used.",
        png,
    )


def oracle_figure(summary: dict[str, Any]) -> Figure | None:
    oracle = summary.get("oracle") or {}
    if not oracle.get("applies"):
        return None
    png = _interval_plot(
        _methods(summary),
        "oracle_gap_closed",
        "share of the stratified-to-oracle gap closed (1: the oracle, 0: stratified)",
        "oracle gap closed per method: mean over seeds, bar = 95% interval",
    )
    if png is None:
        return None
    return Figure(
        "oracle",
        "Oracle gap",
        f"The shipped oracle mixture's mean test loss is {oracle['mean_test_loss']:.4f}; per "
        "method, the share of the gap from stratified to the oracle it closes, on mean test "
        "loss per seed.",
        png,
    )


def bracket_figure(bracket: dict[str, Any]) -> Figure | None:
    """The bracket's order matrices, one heatmap per evaluated step (up to the last four)."""
    steps = [s for s in bracket.get("steps") or [] if s.get("matrix")][-4:]
    if not steps:
        return None
    names = list(bracket.get("domains") or [])
    k = len(names)
    plt = plots.pyplot()
    side = 2.2 + 0.38 * k
    fig, axes = plt.subplots(1, len(steps), figsize=(side * len(steps), side), squeeze=False)
    for ax, s in zip(axes[0], steps):
        m = np.asarray(s["matrix"], dtype=float)
        lim = float(np.abs(m).max()) or 1.0
        im = ax.imshow(m, cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set_xticks(range(k), names, rotation=90, fontsize=7)
        ax.set_yticks(range(k), names, fontsize=7)
        ax.set_xlabel("b (second)")
        ax.set_ylabel("a (first)")
        ax.set_title(f"step {s.get('step')}", fontsize=9)
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.suptitle(f"order effects on target {bracket.get('target')}", fontsize=10)
    fig.tight_layout()
    return Figure(
        "bracket",
        "Bracket: order effects",
        "M[a, b] < 0 (blue): training on a before b lowers the target loss; one matrix per "
        "evaluated step.",
        plots.png(fig),
    )


# ------------------------------------------------------------------------------------- HTML


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


def methods_table(methods: dict[str, Any], reference: str) -> str:
    """Each method's intervals over seeds and its paired difference against the reference:
    the printed table's per-method block, cell for cell."""
    rows = [
        [
            name,
            str(m["mean_test_ppl"].get("n") or 0),
            interval(m["mean_test_ppl"]),
            interval(m["worst_test_ppl"]),
            versus(name, reference, m.get("vs_reference")),
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
    ref = summary.get("reference", "")
    out = []

    def add(fig: Figure | None, *before: str, title: str = "") -> None:
        if fig is not None:
            figures.append(fig)
            out.append(_section(fig.title, *before, _figure_html(fig)))
        elif before:
            out.append(_section(title, *before))

    methods = _methods(summary)
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
            methods_table(c["methods"], c.get("reference", ref)),
            _pre("rank agreement with the search: " + json.dumps(agreement, default=str))
            if agreement is not None
            else "",
            title="Confirmation on fresh seeds",
        )
    oracle = summary.get("oracle")
    if oracle:
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
        title = f"popmix search {s.get('experiment') or run.folder.name}"
        facts = (
            f"{s.get('benchmark', '?')}, {len(s.get('domains') or [])} domains, "
            f"{s.get('steps_per_model', '?')} steps per model, searcher "
            f"{s.get('searcher', '?')}, objective {s.get('objective', '?')}, population "
            f"{s.get('population_method', '?')}"
        )
        if s.get("interrupted"):
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
