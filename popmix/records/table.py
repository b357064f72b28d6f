"""A summary as the printed table: the rows, the methods' intervals and verdicts, the groups,
the oracle, the comparisons and the exploits.

One text for every place a summary is shown: ``popmix search`` prints it, TensorBoard's Text
tab and ``popmix report``'s page carry it, ``popmix confirm`` prints its methods block. NumPy
free; works on the summary as written (``summary.json``'s content).
"""

from __future__ import annotations

import math
from typing import Any


def exploits_line(exploits: dict[str, Any]) -> str:
    """``summary.json``'s ``exploits`` as one line (the table, TensorBoard's text)."""
    return (
        f"exploits: {exploits['taken']} taken, {exploits['skipped_within_noise']} skipped "
        f"as within noise (exploit_margin {exploits['margin']})"
    )


def interval(stat: dict[str, Any] | None, spec: str = ".3f") -> str:
    """``mean [lo, hi]`` of a :func:`popmix._util.stats.mean_ci` result (``-`` if empty)."""
    if not stat or stat.get("mean") is None:
        return "-"
    if stat.get("ci95") is None:
        return format(stat["mean"], spec)
    lo, hi = stat["ci95"]
    return f"{stat['mean']:{spec}} [{lo:{spec}}, {hi:{spec}}]"


def versus(method: str, reference: str, vs: dict[str, Any] | None, verdict: bool = True) -> str:
    """A paired difference against the reference as the table prints it."""
    if method == reference:
        return "(reference)"
    if not vs or vs.get("diff_mean") is None:
        return "-"
    if vs.get("ci95") is None:
        return f"{vs['diff_mean']:+.3f} (1 seed)"
    lo, hi = vs["ci95"]
    text = f"{vs['diff_mean']:+.3f} [{lo:+.3f}, {hi:+.3f}]"
    return f"{text} {vs['verdict']}" if verdict else text


def format_methods(methods: dict[str, Any], reference: str, always: bool = False) -> list[str]:
    """The per-method block of the table: intervals over seeds and the paired verdict
    against the reference (empty, unless ``always``, when no method has two seeds)."""
    if not methods or (
        not always and not any((m["mean_test_ppl"].get("n") or 0) >= 2 for m in methods.values())
    ):
        return []
    head = (
        f"{'method':<14}{'seeds':>6}  {'mean test ppl [95%]':<26}{'worst test ppl [95%]':<26}"
        f"vs {reference} (paired by seed)"
    )
    lines = [head, "-" * len(head)]
    for name, m in methods.items():
        vs_text = versus(name, reference, m.get("vs_reference"))
        lines.append(
            f"{name:<14}{m['mean_test_ppl'].get('n') or 0:>6}  "
            f"{interval(m['mean_test_ppl']):<26}{interval(m['worst_test_ppl']):<26}{vs_text}"
        )
    return lines


def format_comparisons(items: list[dict[str, Any]]) -> list[str]:
    lines = []
    for c in items:
        head = f"{c['method']} - {c['against']} (mean test ppl, paired by seed): "
        if c["diff_mean"] is None:
            lines.append(head + "no finished pair")
        elif c["ci95"] is None:
            lines.append(
                head + f"{c['diff_mean']:+.3f} on 1 seed (no interval: give --seeds 0,1,2)"
            )
        else:
            lo, hi = c["ci95"]
            lines.append(
                head + f"{c['diff_mean']:+.3f}, 95% interval [{lo:+.3f}, {hi:+.3f}] over "
                f"{c['n']} seeds: {c['verdict']}"
            )
    return lines


def format_table(summary: dict[str, Any]) -> str:
    def f(x: Any, spec: str) -> str:
        return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)

    header = (
        f"{'method':<14}{'seed':>5}{'mean test ppl':>15}{'worst test ppl':>16}"
        f"{'val objective':>15}{'train steps':>13}{'+extra':>8}{'spikes':>8}{'wall s':>8}  status"
    )
    lines = [header, "-" * len(header)]
    for r in summary["rows"]:
        steps = r.get("population_train_steps") or r.get("train_steps")
        lines.append(
            f"{r['method']:<14}{r['seed']:>5}{f(r['test_mean_ppl'], '.3f'):>15}"
            f"{f(r['test_worst_ppl'], '.3f'):>16}{f(r['objective'], '.4f'):>15}"
            f"{f(steps, 'd'):>13}{f(r.get('extra_step_equivalents') or 0.0, '.0f'):>8}"
            f"{f(r.get('loss_spikes'), 'd'):>8}{f(r['wall_time_s'], '.0f'):>8}  {r['status']}"
            + (f" ({r['retries']} retried)" if r.get("retries") else "")
        )
    block = format_methods(summary.get("methods") or {}, summary.get("reference", ""))
    if block:
        lines += ["", *block]
    by_group = format_groups(summary.get("groups"), summary.get("reference", ""))
    if by_group:
        lines += ["", *by_group]
    oracle = format_oracle(summary)
    if oracle:
        lines += ["", *oracle]
    if summary.get("manifest"):
        sample = summary.get("sample") or {}
        whole = sample.get("read_whole") or []
        # summaries written before the token unit named it bytes_per_domain
        per_domain = sample.get("per_domain", sample.get("bytes_per_domain"))
        unit = sample.get("unit", "bytes")
        lines += [
            "",
            f"domain sizes (the priors' n_i): {summary['sizes_unit']} in the corpus, "
            + ("some estimated (manifest)" if summary.get("sizes_estimated") else "exact")
            + f"; trained on a sample of up to {per_domain} {unit} per domain"
            + (f", {summary.get('vocab_size')} token ids" if unit == "tokens" else "")
            + (f", read whole: {', '.join(whole)}" if whole else ""),
        ]
    compared = summary.get("comparisons") or []
    if compared:
        lines += ["", *format_comparisons(compared)]
    exploits = summary.get("exploits")
    if exploits:
        lines += ["", exploits_line(exploits)]
    return "\n".join(lines)


def format_groups(groups: dict[str, Any] | None, reference: str) -> list[str]:
    """The by-group block of the table: per method and group, the mean test perplexity over
    the group's domains [95% over seeds] and its paired difference against the reference."""
    if not groups:
        return []
    names = list(groups["members"])
    head = f"{'by group':<14}"
    for g in names:
        label = f"{g} ({len(groups['members'][g])} domains)"
        head += f"{label:<26}{'vs ' + reference:<30}"
    lines = [head, "-" * len(head)]
    for method, entry in groups["methods"].items():
        cells = []
        for g in names:
            vs_text = versus(method, reference, entry[g]["vs_reference"], verdict=False)
            cells.append(f"{interval(entry[g]['mean_test_ppl']):<26}{vs_text:<30}")
        lines.append(f"{method:<14}" + "".join(cells))
    return lines


def format_oracle(summary: dict[str, Any]) -> list[str]:
    """The oracle block of the table: the oracle's mean test loss and each method's share of
    the reference-to-oracle gap it closes."""
    oracle = summary.get("oracle")
    if not oracle:
        return []
    if not oracle.get("applies"):
        return [f"oracle: not measured against ({oracle.get('why')})"]
    lines = [
        f"oracle: mean test loss {oracle['mean_test_loss']:.4f} over seeds "
        f"{', '.join(str(s) for s in oracle['seeds'])}; share of the stratified-to-oracle "
        "gap each method closes [95% over seeds]:"
    ]
    for method, entry in (summary.get("methods") or {}).items():
        lines.append(f"  {method:<14}{interval(entry.get('oracle_gap_closed'), '+.2f')}")
    return lines


__all__ = [
    "exploits_line",
    "format_comparisons",
    "format_groups",
    "format_methods",
    "format_oracle",
    "format_table",
    "interval",
    "versus",
]
