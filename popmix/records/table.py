"""A summary as the printed table: the rows, the methods' intervals and verdicts, the groups,
the oracle, the comparisons and the exploits.

One text for every place a summary is shown: ``popmix search`` prints it, TensorBoard's Text
tab and ``popmix report``'s page carry it, ``popmix confirm`` prints its methods block. It
reads the typed summary (:class:`popmix.records.summary.Summary`), so the table shows what a
reader of ``summary.json`` sees.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from popmix._util.stats import MOST_SEEDS
from popmix.records.summary import (
    Comparison,
    Evidence,
    Exploits,
    Groups,
    Interval,
    MethodResult,
    Paired,
    Recommendation,
    Summary,
)


def exploits_line(exploits: Exploits) -> str:
    """``summary.json``'s ``exploits`` in a line or two (the table, TensorBoard's text): the
    totals and, with synchronous rounds, the decisions of each round summed over seeds."""
    line = (
        f"exploits: {exploits.taken} taken, {exploits.skipped_within_noise} skipped "
        f"as within noise (exploit_margin {exploits.margin})"
    )
    rounds = exploits.per_round()
    if not rounds:
        return line
    seeds = len({r.get("seed") for r in exploits.rounds})
    cells = ", ".join(f"{n}: {d}/{t}/{s}" for n, d, t, s in rounds)
    return (
        f"{line}\n  {len(exploits.rounds)} rounds decided over {seeds} seed(s); per round "
        f"(decisions/taken/skipped, summed over seeds): {cells}"
    )


def interval(stat: Interval | None, spec: str = ".3f") -> str:
    """``mean [lo, hi]`` of an interval over seeds (``-`` if it has no mean)."""
    if stat is None or stat.mean is None:
        return "-"
    if stat.ci95 is None:
        return format(stat.mean, spec)
    lo, hi = stat.ci95
    return f"{stat.mean:{spec}} [{lo:{spec}}, {hi:{spec}}]"


def versus(method: str, reference: str, vs: Paired | None, verdict: bool = True) -> str:
    """A paired difference against the reference as the table prints it."""
    if method == reference:
        return "(reference)"
    if vs is None or vs.diff_mean is None:
        return "-"
    if vs.ci95 is None:
        return f"{vs.diff_mean:+.3f} (1 seed)"
    lo, hi = vs.ci95
    text = f"{vs.diff_mean:+.3f} [{lo:+.3f}, {hi:+.3f}]"
    return f"{text} {vs.verdict}" if verdict else text


def format_methods(
    methods: Mapping[str, MethodResult], reference: str, always: bool = False
) -> list[str]:
    """The per-method block of the table: intervals over seeds and the paired verdict
    against the reference (empty, unless ``always``, when no method has two seeds)."""
    if not methods or (not always and not any(m.test_mean_ppl.n >= 2 for m in methods.values())):
        return []
    head = (
        f"{'method':<14}{'seeds':>6}  {'mean test ppl [95%]':<26}{'worst test ppl [95%]':<26}"
        f"vs {reference} (paired by seed)"
    )
    lines = [head, "-" * len(head)]
    for name, m in methods.items():
        vs_text = versus(name, reference, m.vs_reference)
        lines.append(
            f"{name:<14}{m.test_mean_ppl.n:>6}  "
            f"{interval(m.test_mean_ppl):<26}{interval(m.test_worst_ppl):<26}{vs_text}"
        )
    return lines


def format_comparisons(items: Sequence[Comparison]) -> list[str]:
    """The comparisons' lines: each method against each it is compared with, paired by seed."""
    lines = []
    for c in items:
        p = c.paired
        head = f"{c.method} - {c.against} (mean test ppl, paired by seed): "
        if p.diff_mean is None:
            lines.append(head + "no finished pair")
        elif p.ci95 is None:
            lines.append(head + f"{p.diff_mean:+.3f} on 1 seed (no interval: give --seeds 0,1,2)")
        else:
            lo, hi = p.ci95
            lines.append(
                head + f"{p.diff_mean:+.3f}, 95% interval [{lo:+.3f}, {hi:+.3f}] over "
                f"{p.n} seeds: {p.verdict}"
            )
    return lines


def format_groups(groups: Groups | None, reference: str) -> list[str]:
    """The by-group block of the table: per method and group, the mean test perplexity over
    the group's domains [95% over seeds] and its paired difference against the reference."""
    if not groups:
        return []
    names = list(groups.members)
    head = f"{'by group':<14}"
    for g in names:
        label = f"{g} ({len(groups.members[g])} domains)"
        head += f"{label:<26}{'vs ' + reference:<30}"
    lines = [head, "-" * len(head)]
    for method, entry in groups.methods.items():
        cells = []
        for g in names:
            vs_text = versus(method, reference, entry[g].vs_reference, verdict=False)
            cells.append(f"{interval(entry[g].test_mean_ppl):<26}{vs_text:<30}")
        lines.append(f"{method:<14}" + "".join(cells))
    return lines


def format_oracle(summary: Summary) -> list[str]:
    """The oracle block of the table: the oracle's mean test loss and each method's share of
    the reference-to-oracle gap it closes."""
    oracle = summary.oracle
    if oracle is None:
        return []
    if not oracle.applies:
        return [f"oracle: not measured against ({oracle.why})"]
    lines = [
        f"oracle: mean test loss {_cell(oracle.test_mean_loss, '.4f')} over seeds "
        f"{', '.join(str(s) for s in oracle.seeds)}; share of the stratified-to-oracle "
        "gap each method closes [95% over seeds]:"
    ]
    for method, entry in summary.methods.items():
        lines.append(f"  {method:<14}{interval(entry.oracle_gap_closed, '+.2f')}")
    return lines


def _cell(x: Any, spec: str) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def format_table(summary: Summary) -> str:
    """The table ``popmix search`` prints: a row per method and seed, then the blocks."""
    f = _cell
    header = (
        f"{'method':<14}{'seed':>5}{'mean test ppl':>15}{'worst test ppl':>16}"
        f"{'val objective':>15}{'train steps':>13}{'+extra':>8}{'spikes':>8}{'wall s':>8}  status"
    )
    lines = [header, "-" * len(header)]
    for r in summary.rows:
        steps = r.population_train_steps or r.train_steps
        lines.append(
            f"{r.method:<14}{r.seed:>5}{f(r.test_mean_ppl, '.3f'):>15}"
            f"{f(r.test_worst_ppl, '.3f'):>16}{f(r.objective, '.4f'):>15}"
            f"{f(steps, 'd'):>13}{f(r.extra_step_equivalents or 0.0, '.0f'):>8}"
            f"{f(r.loss_spikes, 'd'):>8}{f(r.wall_time_s, '.0f'):>8}  {r.status}"
            + (f" ({r.retries} retried)" if r.retries else "")
        )
    for block in (
        format_methods(summary.methods, summary.reference),
        format_groups(summary.groups, summary.reference),
        format_oracle(summary),
    ):
        if block:
            lines += ["", *block]
    if summary.manifest:
        sample = summary.sample or {}
        whole = sample.get("read_whole") or []
        # summaries written before the token unit named it bytes_per_domain
        per_domain = sample.get("per_domain", sample.get("bytes_per_domain"))
        unit = sample.get("unit", "bytes")
        lines += [
            "",
            f"domain sizes (the priors' n_i): {summary.sizes_unit} in the corpus, "
            + ("some estimated (manifest)" if summary.sizes_estimated else "exact")
            + f"; trained on a sample of up to {per_domain} {unit} per domain"
            + (f", {summary.vocab_size} token ids" if unit == "tokens" else "")
            + (f", read whole: {', '.join(whole)}" if whole else ""),
        ]
    if summary.comparisons:
        lines += ["", *format_comparisons(summary.comparisons)]
    if summary.exploits:
        lines += ["", exploits_line(summary.exploits)]
    return "\n".join(lines)


def _verdict(p: Paired | None) -> str:
    """A paired difference with its interval and verdict, for the answer."""
    if p is None or p.diff_mean is None:
        return "did not run on the same seeds"
    if p.ci95 is None:
        return f"{p.diff_mean:+.3f} on 1 seed (no interval): {p.verdict}"
    lo, hi = p.ci95
    return f"{p.diff_mean:+.3f} [95% {lo:+.3f}, {hi:+.3f}] over {p.n} seeds: {p.verdict}"


def _mixture_lines(rec: Recommendation, method: str) -> list[str]:
    """The recommended mixture per domain beside the proportional prior (and, for a
    schedule, beside its weights at step 0)."""
    if not rec.weights:
        return [f"  (no weights file: {method} left no finished run to take weights from)"]
    prior = rec.prior or {}
    width = max(len("domain"), *(len(d) for d in rec.weights)) + 2
    cols = [(f"{method} final" if rec.first_weights else method, rec.weights)]
    if rec.first_weights:
        cols.insert(0, (f"{method} step 0", rec.first_weights))
    cols.append(("proportional", prior))
    col = max(14, *(len(name) + 2 for name, _ in cols))
    lines = ["  " + f"{'domain':<{width}}" + "".join(f"{name:>{col}}" for name, _ in cols)]
    for d in rec.weights:
        cells = "".join(f"{_cell(values.get(d), '.4f'):>{col}}" for _, values in cols)
        lines.append("  " + f"{d:<{width}}" + cells)
    if rec.first_weights:
        lines.append(
            f"  a schedule of {rec.phases} phases: its weights at step 0 and its last ones "
            "above; the export writes every phase"
        )
    return lines


def _swarm_optimum_written(swarm: Mapping[str, Any] | None) -> bool:
    """Whether a seed's swarm fit found an optimum (``swarm_optimum.json`` is written)."""
    surfaces = [
        (s or {}).get("surface") or {} for s in ((swarm or {}).get("per_seed") or {}).values()
    ]
    return any("optimum" in f and "error" not in f for f in surfaces)


def format_answer(summary: Summary, folder: str) -> str:
    """The answer ``popmix search`` prints after its table: the recommended mixture per
    domain beside the proportional prior, which method it came from, its verdicts against
    the reference and best-of-n, and the command that exports it (``folder``: the search's
    folder as the user would type it). Empty for a summary without a recommendation."""
    rec = summary.recommendation
    if rec is None:
        return ""
    if rec.method is None:
        return f"answer: none; {rec.why}"
    ref, ev = rec.reference, rec.evidence
    seed = "" if rec.seed is None else f" (its seed-{rec.seed} run)"
    if rec.resolved and ev is not None:
        lines = [
            f"answer: take {rec.method}'s mixture{seed}: {rec.why}",
            f"  vs {ref} (the reference): {_verdict(ev.vs_reference)}",
        ]
        if ev.vs_best_of_n is not None:
            lines.append(f"  vs best-of-n: {_verdict(ev.vs_best_of_n)}")
    else:
        lines = [f"answer: take {ref}'s mixture, the reference: {rec.why}"]
        if ev is not None:
            lines.append(f"  closest: {ev.method}, vs {ref}: {_verdict(ev.vs_reference)}")
            if ev.vs_best_of_n is not None:
                lines.append(f"    vs best-of-n: {_verdict(ev.vs_best_of_n)}")
            lines.append("  " + _seeds_line(ev, ref))
    lines += _mixture_lines(rec, rec.method)
    if rec.file:
        lines.append(
            f"next: popmix export {folder} --format hf --out mix.json   (exports {rec.file}; "
            "--method M for another method's)"
        )
    if _swarm_optimum_written(summary.swarm):
        # measured on oracle16: the swarm's optimum as PBT's first member, kept by the burn-in
        lines.append(
            f"or start PBT at the swarm's optimum: popmix search --weights-from "
            f"{folder}/swarm_optimum.json --burn-in 0.5   (docs/how-to/swarm.md)"
        )
    return "\n".join(lines)


def _seeds_line(ev: Evidence, reference: str) -> str:
    """How many seeds would resolve the closest method's difference: an estimate."""
    p = ev.vs_reference
    worse = [
        x for x in (ev.vs_reference, ev.vs_best_of_n) if x is not None and (x.diff_mean or 0) >= 0
    ]
    if worse:
        against = "best-of-n" if worse[0] is ev.vs_best_of_n else reference
        return (
            f"no estimate of the seeds needed: {ev.method}'s mean is not below {against}'s "
            "(the observed difference points the other way)"
        )
    if ev.seeds_needed is None:
        if p is not None and p.n < 2:
            return "1 seed gives no spread to estimate the seeds needed: run --seeds 3 or more"
        return f"more than {MOST_SEEDS} seeds would be needed to resolve a difference this small"
    more = max(0, ev.seeds_needed - (p.n if p is not None else 0))
    return (
        f"about {ev.seeds_needed} seeds in all ({more} more) would resolve a difference this "
        "size (an estimate, from the observed mean and spread)"
    )


__all__ = [
    "exploits_line",
    "format_answer",
    "format_comparisons",
    "format_groups",
    "format_methods",
    "format_oracle",
    "format_table",
    "interval",
    "versus",
]
