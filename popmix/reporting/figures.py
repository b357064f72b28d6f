"""The figures of ``popmix report``, each drawn from what :func:`popmix.reporting.run.read_run`
read: the methods compared, per-domain perplexity, weights over steps, PBT's lineage, the
objective over steps, the confirmation, the oracle gap and the bracket's order matrices.

matplotlib (Agg) only when a figure is drawn.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from popmix._util import plots
from popmix.records.summary import (
    Interval,
    MethodResult,
    Summary,
    read_methods,
)
from popmix.records.trial import TrialSpec
from popmix.reporting.run import Run


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


def _interval_plot(stats: Mapping[str, Interval | None], xlabel: str, title: str) -> bytes | None:
    """Each method's mean with its 95% interval over seeds (a dot without one)."""
    names = [m for m, stat in stats.items() if stat is not None and stat.mean is not None]
    if not names:
        return None
    plt = plots.pyplot()
    colors = _colors(list(stats))
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(names) + 1.4))
    for i, name in enumerate(names):
        stat = stats[name]
        assert stat is not None and stat.mean is not None
        ax.plot(stat.mean, i, "o", color=colors[name], markersize=7)
        if stat.ci95 is not None:
            lo, hi = stat.ci95
            ax.plot([lo, hi], [i, i], "-", color=colors[name], linewidth=2.5)
        ax.annotate(
            f" n={stat.n}", (stat.mean, i), textcoords="offset points", xytext=(6, 4), fontsize=8
        )
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return plots.png(fig)


def _interval_figure(
    stats: Mapping[str, Interval | None],
    axes: tuple[str, str],
    name: str,
    title: str,
    caption: str,
) -> Figure | None:
    """:func:`_interval_plot` of ``stats`` (``axes``: its x label and title) as the figure
    ``name`` (file stem) with its heading and caption; None when no method has a value."""
    png = _interval_plot(stats, *axes)
    return None if png is None else Figure(name, title, caption, png)


#: the figures of mean test perplexity per method: file stem -> (heading, plot title, caption)
_PPL_FIGURES = {
    "comparison": (
        "Methods compared",
        "mean test perplexity per method: mean over seeds, bar = 95% interval",
        "Mean test perplexity over the domains, per method: the dot is the mean over seeds, the "
        "bar its 95% interval (none with one seed). The same numbers as the table above.",
    ),
    "confirm": (
        "Confirmation on fresh seeds",
        "confirmation on fresh seeds: mean test perplexity, bar = 95% interval",
        "popmix confirm: the best member's schedule and final weights and the baselines "
        "retrained from scratch on seeds the search never used.",
    ),
}


def _ppl_figure(name: str, methods: Mapping[str, MethodResult]) -> Figure | None:
    title, plot_title, caption = _PPL_FIGURES[name]
    stats = {m: e.test_mean_ppl for m, e in methods.items()}
    axes = ("mean test perplexity (lower is better)", plot_title)
    return _interval_figure(stats, axes, name, title, caption)


def comparison_figure(summary: Summary) -> Figure | None:
    return _ppl_figure("comparison", summary.methods)


def domain_figure(summary: Summary) -> Figure | None:
    """Per-domain test perplexity by method (mean over the method's seeds)."""
    domains = list(summary.domains)
    by: dict[str, dict[str, list[float]]] = {}
    for row in summary.rows:
        for d, v in (row.test_ppl or {}).items():
            if v is not None and math.isfinite(v):
                by.setdefault(row.method, {}).setdefault(d, []).append(float(v))
                if d not in domains:
                    domains.append(d)
    if not by:
        return None
    plt = plots.pyplot()
    colors = _colors(list(dict.fromkeys(r.method for r in summary.rows)))
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
    domains = list(summary.domains)
    panels = []
    for method in dict.fromkeys(r.method for r in summary.rows):
        row = summary.rows_of(method)[0]
        series = weights_series(run, str(row.trial_id), domains) if domains else None
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
            f"{method} (seed {row.seed}, trial {row.trial_id}; from its {source})",
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


def _member_map(summary: Summary) -> dict[str, tuple[int, int]]:
    """Trial id -> (seed, member) of every population member."""
    return {str(m.trial_id): (m.seed, m.member) for m in summary.members if m.member is not None}


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
    total = float(run.summary.steps_per_model or 1)
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
    for row in run.summary.rows:
        seeds[str(row.trial_id)] = row.seed
        for draw in row.draws:
            seeds[str(draw.trial_id)] = row.seed
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
    methods = list(dict.fromkeys([r.method for r in run.summary.rows]))
    methods += [m for _, m, _ in labels.values() if m not in methods]
    colors = _colors(methods)
    fig, axes = plt.subplots(len(seeds), 1, figsize=(9, 3.2 * len(seeds) + 0.6), squeeze=False)
    objective = run.summary.objective or "objective"
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
    return _ppl_figure("confirm", read_methods(confirm.get("methods")))


def oracle_figure(summary: Summary) -> Figure | None:
    oracle = summary.oracle
    if oracle is None or not oracle.applies:
        return None
    loss = math.nan if oracle.test_mean_loss is None else oracle.test_mean_loss
    return _interval_figure(
        {m: e.oracle_gap_closed for m, e in summary.methods.items()},
        (
            "share of the stratified-to-oracle gap closed (1: the oracle, 0: stratified)",
            "oracle gap closed per method: mean over seeds, bar = 95% interval",
        ),
        "oracle",
        "Oracle gap",
        f"The shipped oracle mixture's mean test loss is {loss:.4f}; per method, the share of "
        "the gap from stratified to the oracle it closes, on mean test loss per seed.",
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
        matrix = np.asarray(s["matrix"], dtype=float)
        title = f"step {s.get('step')}"
        im = plots.signed_matrix(ax, matrix, names, title, ("b (second)", "a (first)"))
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


__all__ = [
    "Figure",
    "bracket_figure",
    "comparison_figure",
    "confirm_figure",
    "domain_figure",
    "lineage_figure",
    "objective_figure",
    "oracle_figure",
    "weights_figure",
    "weights_series",
]
