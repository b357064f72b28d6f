"""Turn finished trials into the summary (``summary.json``'s content) and the best schedule.

Works on plain dicts (one per trial, :func:`popmix.tune.runner.trial_records`) so it can be
tested without Ray; :mod:`popmix.tune.outputs` writes what it builds and
:mod:`popmix.records.summary` reads it back. The best population member
is chosen on its final *validation* objective and reported on *test*, like every baseline.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from popmix._util.stats import mean_ci, paired, seeds_to_resolve
from popmix.config import BEST_OF_N, BEST_OF_N_POLICY, RANDOM, SWARM, SWARM_RUN
from popmix.records.summary import best_seed
from popmix.records.weights import SchedulePoint, WeightsSchedule, method_weights_file

ROW_KEYS = (
    "method",
    "seed",
    "trial_id",
    "status",
    "objective",
    "test_mean_ppl",
    "test_worst_ppl",
    "test_loss",
    "steps",
    "tokens",
    "train_steps",
    "wall_time_s",
)


def _row(rec: dict[str, Any]) -> dict[str, Any]:
    m = rec.get("metrics") or {}
    return {
        "method": rec["method"],
        "seed": rec["seed"],
        "trial_id": rec["trial_id"],
        "status": rec["status"],
        "objective": m.get("objective"),
        "test_mean_ppl": m.get("test_mean_ppl"),
        "test_worst_ppl": m.get("test_worst_ppl"),
        "test_worst_domain": m.get("test_worst_domain"),
        # the evaluation noise of test_mean_ppl: the same model on resampled test windows
        "test_mean_ppl_se": m.get("test_mean_ppl_se"),
        # per domain, for results by group of domains (group_intervals)
        "test_ppl": m.get("test_ppl"),
        "test_loss": m.get("test_loss"),
        "test_mean_loss": m.get("test_mean_loss"),
        "steps": m.get("step"),
        "tokens": m.get("timesteps_total"),
        "train_steps": rec.get("train_steps"),
        # evaluations and held-out gradients a method needs beyond its training steps
        "extra_step_equivalents": m.get("extra_step_equivalents", 0.0),
        # exp of the entropy of the final weights in effect, and the method's own scalars
        # (DoGE: the shares of its scores cut by the clip)
        "effective_domains": m.get("effective_domains"),
        # the run's health: largest gradient norm before clipping, loss spikes
        # (popmix.train.health)
        "grad_norm_max": m.get("grad_norm_max"),
        "grad_norm_std_pooled": m.get("grad_norm_std_pooled"),
        "loss_spikes": m.get("loss_spikes"),
        "diagnostics": m.get("diagnostics") or {},
        "train_time_s": rec.get("train_time_s"),
        # restarts from the last checkpoint after a dead worker process or node
        "retries": rec.get("retries", 0),
        # the trial's own wall-clock time, first start to last result (pauses included)
        "wall_time_s": rec.get("wall_time_s"),
        "params": rec.get("params", {}),
        "error": rec.get("error"),
        "node": m.get("node"),
    }


def _finished(rec: dict[str, Any]) -> bool:
    m = rec.get("metrics") or {}
    obj = m.get("objective")
    return (
        rec["status"] == "ok"
        and m.get("test_mean_ppl") is not None
        and obj is not None
        and math.isfinite(obj)
    )


def summarize(records: list[dict[str, Any]], population_method: str) -> dict[str, Any]:
    """One row per method and seed, every population member, and the best member overall."""
    rows: list[dict[str, Any]] = []
    members = [r for r in records if r.get("member", -1) >= 0]
    for seed in sorted({r["seed"] for r in members}):
        group = [r for r in members if r["seed"] == seed]
        done = [r for r in group if _finished(r)]
        if done:
            best = min(done, key=lambda r: r["metrics"]["objective"])
            row = _row(best)
        else:
            stopped = any(r["status"] == "interrupted" for r in group)
            row = {
                **_row(group[0]),
                "status": "interrupted" if stopped else "failed",
                "test_mean_ppl": None,
            }
        row["method"] = population_method
        row["members"] = len(group)
        row["members_finished"] = len(done)
        # What the whole population cost, in optimizer steps (replays after exploits included).
        row["population_train_steps"] = sum(r.get("train_steps") or 0 for r in group)
        row["retries"] = sum(r.get("retries") or 0 for r in group)
        rows.append(row)
    rows += _picked_rows(records, BEST_OF_N) + _picked_rows(records, RANDOM)
    for rec in records:
        if rec.get("member", -1) < 0 and rec["method"] not in (
            BEST_OF_N,
            RANDOM,
            SWARM_RUN,
            SWARM,
        ):
            rows.append(_row(rec))
    rows += _swarm_rows(records)
    rows.sort(key=lambda r: (r["seed"], r["method"] != population_method, str(r["method"])))

    finished = [r for r in members if _finished(r)]
    best_member = min(finished, key=lambda r: r["metrics"]["objective"]) if finished else None
    return {
        "population_method": population_method,
        "rows": rows,
        "members": [_row(r) | {"member": r["member"]} for r in members],
        "best_trial_id": best_member["trial_id"] if best_member else None,
    }


def best_of_n_group(records: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """The runs best-of-n picks from on ``seed``: its own draws, and the search's stratified
    trial of that seed as draw 0 when best-of-n did not train a draw 0 itself."""
    draws = [r for r in records if r["method"] == BEST_OF_N and r["seed"] == seed]
    if draws and not any(r.get("draw", 0) == 0 for r in draws):
        draws += [
            r | {"draw": 0}
            for r in records
            if r["method"] == BEST_OF_N_POLICY and r["seed"] == seed and r.get("member", -1) < 0
        ]
    return sorted(draws, key=lambda r: r.get("draw", 0))


def _picked_rows(records: list[dict[str, Any]], method: str) -> list[dict[str, Any]]:
    """One row per seed of best-of-n or random: the draw best on *validation*, reported on
    test, at the cost of all."""
    rows = []
    # a population member is never a draw, even when the population's name is the method's
    # (``searcher: random`` names its population ``random``)
    records = [r for r in records if r.get("member", -1) < 0]
    for seed in sorted({r["seed"] for r in records if r["method"] == method}):
        if method == BEST_OF_N:
            group = best_of_n_group(records, seed)
        else:
            group = sorted(
                (r for r in records if r["method"] == method and r["seed"] == seed),
                key=lambda r: r.get("draw", 0),
            )
        done = [r for r in group if _finished(r)]
        if done:
            best = min(done, key=lambda r: r["metrics"]["objective"])
            row = _row(best) | {"picked_draw": best.get("draw", 0)}
        else:
            row = {**_row(group[0]), "status": "failed", "test_mean_ppl": None}
        row["method"] = method
        row["members"] = len(group)
        row["members_finished"] = len(done)
        row["population_train_steps"] = sum(r.get("train_steps") or 0 for r in group)
        row["draws"] = [
            {"draw": r.get("draw", 0), "run_seed": r.get("run_seed"), **_row(r)} for r in group
        ]
        rows.append(row)
    return rows


def _swarm_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per seed that ran a swarm: its predicted optimum's run, reported on test, at
    the cost of the whole swarm and that run (``population_train_steps``); a seed whose
    optimum never trained (its fit failed) is a failed row."""
    rows = []
    seeds = sorted({r["seed"] for r in records if r["method"] in (SWARM, SWARM_RUN)})
    for seed in seeds:
        runs = [r for r in records if r["method"] == SWARM_RUN and r["seed"] == seed]
        optimum = [r for r in records if r["method"] == SWARM and r["seed"] == seed]
        if optimum:
            row = _row(optimum[0])
        else:
            # no optimum run: nothing of swarm run 0 (its trial, weights, steps) stands for it
            row = {k: None for k in _row(runs[0])} | {"seed": seed, "params": {}}
            stopped = any(r["status"] == "interrupted" for r in runs)
            row["status"] = "interrupted" if stopped else "failed"
            row["diagnostics"] = {}
        row["method"] = SWARM
        row["members"] = len(runs)
        row["members_finished"] = sum(_finished(r) for r in runs)
        row["population_train_steps"] = sum(r.get("train_steps") or 0 for r in runs + optimum)
        row["retries"] = sum(r.get("retries") or 0 for r in runs + optimum)
        rows.append(row)
    return rows


def swarm_section(
    records: list[dict[str, Any]],
    surfaces: dict[int, dict[str, Any]],
    names: list[str],
    exp: Any,
) -> dict[str, Any]:
    """``summary.json``'s ``swarm``: the settings, and per seed every swarm run (its weights,
    final per-domain validation losses, objective, steps, status) and the surface's
    headline (predicted optimum and objective with intervals, fit quality; the whole surface
    is in ``surface.json``)."""
    sw = exp.search.swarm
    per_seed: dict[str, Any] = {}
    for seed in sorted({r["seed"] for r in records if r["method"] == SWARM_RUN}):
        runs = sorted(
            (r for r in records if r["method"] == SWARM_RUN and r["seed"] == seed),
            key=lambda r: r.get("draw", 0),
        )
        surface = surfaces.get(seed) or {}
        per_seed[str(seed)] = {
            "runs": [
                {
                    "draw": r.get("draw", 0),
                    "trial_id": r["trial_id"],
                    "status": r["status"],
                    "weights": [float(r["params"]["weights"][n]) for n in names],
                    "val_loss": (r.get("metrics") or {}).get("val_loss"),
                    "objective": (r.get("metrics") or {}).get("objective"),
                    "train_steps": r.get("train_steps"),
                }
                for r in runs
            ],
            "surface": {
                k: surface.get(k)
                for k in ("optimum", "optimum_ci", "predicted", "predicted_ci", "quality", "error")
                if k in surface
            },
        }
    return {
        "size": sw.size,
        "prior": sw.prior,
        "concentration": sw.concentration,
        "floor": sw.floor,
        "run_steps": sw.run_steps(exp.train.steps, exp.search.population),
        "optimum_steps": exp.train.steps,
        "per_seed": per_seed,
    }


def best_schedule(records: list[dict[str, Any]], names: list[str]) -> WeightsSchedule | None:
    """The best member's weights over steps, loadable by ``popmix run --weights-from``."""
    finished = [r for r in records if r.get("member", -1) >= 0 and _finished(r)]
    finished = [r for r in finished if r.get("schedule")]
    if not finished:
        return None
    best = min(finished, key=lambda r: r["metrics"]["objective"])
    sched: WeightsSchedule = best["schedule"]
    return sched.aligned(names).replace(
        method=best["method"],
        info={
            "seed": best["seed"],
            "trial_id": best["trial_id"],
            "objective": best["metrics"]["objective"],
            "test_mean_ppl": best["metrics"].get("test_mean_ppl"),
        },
    )


#: what the searched population is compared with in every summary, paired by seed: the
#: controls for its selection (best-of-n) and for its exploits and explores (random), and the
#: plain reference
COMPARED_WITH = (BEST_OF_N, RANDOM, BEST_OF_N_POLICY)


def comparisons(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The population (and the swarm, when it ran) against best-of-n, random and stratified
    (where they ran), and the swarm against the population, paired by seed on mean test
    perplexity: the per-seed differences, their mean, 95% interval and verdict
    (:func:`popmix._util.stats.paired`)."""
    by = {(r["method"], r["seed"]): r.get("test_mean_ppl") for r in summary["rows"]}
    population = summary["population_method"]
    out = _paired_against(by, population, COMPARED_WITH)
    if population != SWARM and any(m == SWARM for m, _ in by):
        out += _paired_against(by, SWARM, (population, *COMPARED_WITH))
    return out


def _paired_against(
    by: dict[tuple[str, int], Any], method: str, others: tuple[str, ...]
) -> list[dict[str, Any]]:

    seeds = sorted({s for m, s in by if m == method})
    out = []
    for other in others:
        common = [s for s in seeds if (other, s) in by]
        if not common:
            continue
        a = [by[(method, s)] for s in common]
        b = [by[(other, s)] for s in common]
        diffs = [None if x is None or y is None else x - y for x, y in zip(a, b)]
        out.append(
            {
                "method": method,
                "against": other,
                "metric": "test_mean_ppl",
                "seeds": common,
                "per_seed": diffs,
                **paired(a, b),
            }
        )
    return out


def method_intervals(summary: dict[str, Any], reference: str) -> dict[str, Any]:
    """``summary.json``'s ``methods``: per method, over its seeds, the mean and 95% interval
    of mean and worst test perplexity (``{"mean", "std", "ci95", "n"}``), and the paired
    difference of mean test perplexity against ``reference`` on the seeds both finished
    (``vs_reference``: ``{"reference", "diff_mean", "ci95", "n", "verdict"}``; None for the
    reference itself, or when it did not run)."""

    by = {(r["method"], r["seed"]): r for r in summary["rows"]}
    out: dict[str, Any] = {}
    for method in dict.fromkeys(r["method"] for r in summary["rows"]):
        seeds = sorted(s for m, s in by if m == method)
        entry: dict[str, Any] = {
            "seeds": seeds,
            "test_mean_ppl": mean_ci([by[(method, s)].get("test_mean_ppl") for s in seeds]),
            "test_worst_ppl": mean_ci([by[(method, s)].get("test_worst_ppl") for s in seeds]),
            "vs_reference": None,
        }
        common = [s for s in seeds if (reference, s) in by]
        if method != reference and common:
            p = paired(
                [by[(method, s)].get("test_mean_ppl") for s in common],
                [by[(reference, s)].get("test_mean_ppl") for s in common],
            )
            entry["vs_reference"] = {"reference": reference, **p}
        out[method] = entry
    return out


def group_mean_ppl(row: dict[str, Any], names: list[str]) -> float | None:
    """The mean test perplexity of a row over the domains ``names`` (None if unfinished)."""
    ppl = row.get("test_ppl") or {}
    if not names or any(ppl.get(n) is None for n in names):
        return None
    return float(np.mean([float(ppl[n]) for n in names]))


def group_intervals(
    summary: dict[str, Any], groups: dict[str, str], reference: str
) -> dict[str, Any] | None:
    """``summary.json``'s ``groups``: ``assignment`` (domain -> group) and, per method and
    group, the mean test perplexity over the group's domains with its interval over seeds
    (``test_mean_ppl``) and the paired difference against ``reference`` on the seeds both
    finished (``vs_reference``, as in :func:`method_intervals`). None without groups."""

    if not groups:
        return None
    members: dict[str, list[str]] = {}
    for name, group in groups.items():
        members.setdefault(group, []).append(name)
    by = {(r["method"], r["seed"]): r for r in summary["rows"]}
    methods: dict[str, Any] = {}
    for method in dict.fromkeys(r["method"] for r in summary["rows"]):
        seeds = sorted(s for m, s in by if m == method)
        common = [s for s in seeds if (reference, s) in by]
        entry = {}
        for group, names in members.items():
            values = [group_mean_ppl(by[(method, s)], names) for s in seeds]
            vs = None
            if method != reference and common:
                vs = {
                    "reference": reference,
                    **paired(
                        [group_mean_ppl(by[(method, s)], names) for s in common],
                        [group_mean_ppl(by[(reference, s)], names) for s in common],
                    ),
                }
            entry[group] = {"test_mean_ppl": mean_ci(values), "vs_reference": vs}
        methods[method] = entry
    return {"assignment": dict(groups), "members": members, "methods": methods}


def oracle_gaps(
    summary: dict[str, Any], oracle: dict[str, Any], reference: str = "stratified"
) -> None:
    """Add ``oracle_gap_closed`` to every method of ``summary["methods"]``: per seed, the
    share of the gap from stratified (``reference``) to the oracle's mean test loss that the
    method closes, ``(L_ref - L_method) / (L_ref - L_oracle)`` on mean test loss (1: as good
    as the oracle, 0: no better than stratified, negative: worse), and its mean and 95%
    interval over seeds. None where stratified did not run on the method's seeds, or the
    gap is not positive."""

    by = {(r["method"], r["seed"]): r for r in summary["rows"]}
    target = oracle["test_mean_loss"]
    for method, entry in (summary.get("methods") or {}).items():
        shares = []
        for seed in entry["seeds"]:
            ref = by.get((reference, seed), {}).get("test_mean_loss")
            own = by[(method, seed)].get("test_mean_loss")
            if ref is None or own is None or ref - target <= 0:
                continue
            shares.append((ref - own) / (ref - target))
        entry["oracle_gap_closed"] = mean_ci(shares) if shares else None


def _paired_with_spread(
    by: dict[tuple[str, int], Any], method: str, other: str
) -> tuple[dict[str, Any], float | None] | None:
    """``method - other`` on mean test perplexity over their common seeds (as
    :func:`popmix._util.stats.paired`) and the standard deviation of one seed's difference
    (None below 2 pairs); None when they share no seed."""
    common = sorted(s for m, s in by if m == method and (other, s) in by)
    if not common:
        return None
    a = [by[(method, s)].get("test_mean_ppl") for s in common]
    b = [by[(other, s)].get("test_mean_ppl") for s in common]
    p = paired(a, b)
    diffs = [x - y for x, y in zip(a, b) if x is not None and y is not None]
    spread = float(np.std(diffs, ddof=1)) if len(diffs) >= 2 else None
    return p, spread


def _needed(p: dict[str, Any], spread: float | None) -> int | None:
    """Seeds in all that would resolve ``p``'s difference where it points to better; None
    otherwise (resolved already, pointing to worse, or no spread to estimate from)."""
    d = p.get("diff_mean")
    if p["verdict"] == "better" or d is None or d >= 0 or spread is None:
        return None
    return seeds_to_resolve(d, spread)


def recommend(
    summary: dict[str, Any], records: list[dict[str, Any]], names: list[str], prior: list[float]
) -> dict[str, Any]:
    """``summary.json``'s ``recommendation``: the mixture to take from this search.

    A method is recommended when it is resolved better than the reference and, where
    best-of-n ran on its seeds, than best-of-n (the control for picking the luckiest of
    several runs); of several, the one with the lowest mean difference. Otherwise the
    reference's mixture is, and the evidence is the method with the lowest mean difference
    (the closest to being resolved better) with an estimate of the seeds that would resolve
    it. The weights are those of the method's seed best on validation
    (:func:`popmix.records.summary.best_seed`), from the weights file the search writes for it
    (:func:`popmix.records.weights.method_weights_file`). Needs ``rows`` and ``methods``.
    """
    reference = summary["reference"]
    rows = summary["rows"]
    by = {(r["method"], r["seed"]): r for r in rows}
    evidence: list[dict[str, Any]] = []
    for method, entry in summary["methods"].items():
        vs = entry.get("vs_reference")
        if method in (reference, BEST_OF_N) or vs is None or vs.get("diff_mean") is None:
            continue
        ref = _paired_with_spread(by, method, reference)
        bon = _paired_with_spread(by, method, BEST_OF_N)
        needed = [] if ref is None else [_needed(*ref)]
        needed += [] if bon is None else [_needed(*bon)]
        unresolved = [n for n in needed if n is not None]
        evidence.append(
            {
                "method": method,
                "vs_reference": vs,
                "vs_best_of_n": None if bon is None else bon[0],
                # the harder of the comparisons still open
                "seeds_needed": max(unresolved) if unresolved else None,
            }
        )
    resolved = [
        e
        for e in evidence
        if e["vs_reference"]["verdict"] == "better"
        and (e["vs_best_of_n"] is None or e["vs_best_of_n"]["verdict"] == "better")
    ]
    base: dict[str, Any] = {
        "reference": reference,
        "prior": {n: float(p) for n, p in zip(names, prior)},
    }
    if resolved:
        best = min(resolved, key=lambda e: e["vs_reference"]["diff_mean"])
        chosen = best["method"]
        others = "best-of-n" if best["vs_best_of_n"] else None
        why = f"resolved better than {reference}" + (f" and {others}" if others else "")
        base.update(resolved=True, evidence=best, why=why)
    else:
        closest = min(evidence, key=lambda e: e["vs_reference"]["diff_mean"], default=None)
        chosen = reference
        why = f"no method is resolved better than {reference}"
        base.update(resolved=False, evidence=closest, why=why)
    seed = best_seed(
        [
            (s, r.get("objective") if r["status"] == "ok" else None)
            for (m, s), r in by.items()
            if m == chosen
        ]
    )
    if seed is None:
        return base | {
            "method": None,
            "resolved": False,
            "why": f"the reference {reference} did not run; nothing to recommend",
        }
    schedule = _row_schedule(by[(chosen, seed)], records)
    base.update(method=chosen, seed=seed)
    if schedule is not None:
        final = schedule.aligned(names).final_weights
        base.update(
            file=method_weights_file(chosen, seed),
            weights={n: float(w) for n, w in zip(names, final)},
            phases=len(schedule.points),
        )
        if len(schedule.points) > 1:
            first = schedule.aligned(names).points[0].weights
            base["first_weights"] = {n: float(w) for n, w in zip(names, first)}
    return base


def _row_schedule(row: dict[str, Any], records: list[dict[str, Any]]) -> WeightsSchedule | None:
    """The schedule the trial of a finished table row trained on (None for a row that did
    not finish: a failed run's weights are nothing to transfer)."""
    if row.get("status") != "ok":
        return None
    for r in records:
        if r["trial_id"] == row.get("trial_id") and r.get("schedule") is not None:
            sched: WeightsSchedule = r["schedule"]
            return sched
    return None


def row_schedules(
    summary: dict[str, Any], records: list[dict[str, Any]], names: list[str]
) -> dict[str, WeightsSchedule]:
    """Every row's weights file, by its name (:func:`popmix.records.weights.method_weights_file`):
    the schedule its trial trained on (PBT: the seed's best member's; best-of-n: its pick's;
    the swarm: its optimum's run), in ``names``' order, with where it came from. Points keep
    their step, weights and temperature; a member's file keeps its lineage."""
    out: dict[str, WeightsSchedule] = {}
    for row in summary["rows"]:
        sched = _row_schedule(row, records)
        if sched is None:
            continue
        out[method_weights_file(row["method"], row["seed"])] = sched.aligned(names).replace(
            points=tuple(
                SchedulePoint(p.step, p.weights, temperature=p.temperature)
                for p in sched.aligned(names).points
            ),
            method=row["method"],
            info={
                "seed": row["seed"],
                "trial_id": row["trial_id"],
                "objective": row.get("objective"),
                "test_mean_ppl": row.get("test_mean_ppl"),
            },
        )
    return out


def exploit_counts(lineage: dict[str, Any], margin: float | str) -> dict[str, Any]:
    """``summary.json``'s ``exploits``: PBT's exploits taken and those skipped because the
    donor's lead was within ``margin`` (the noise of the two validation reads), overall and
    per seed."""
    taken, skipped = lineage.get("exploits", []), lineage.get("skipped_within_noise", [])
    rounds = lineage.get("rounds", [])
    seeds = sorted({r.get("seed") for r in taken + skipped + rounds if r.get("seed") is not None})
    out: dict[str, Any] = {
        "margin": margin,
        "taken": len(taken),
        "skipped_within_noise": len(skipped),
        "per_seed": {
            str(seed): {
                "taken": sum(r.get("seed") == seed for r in taken),
                "skipped_within_noise": sum(r.get("seed") == seed for r in skipped),
            }
            for seed in seeds
        },
    }
    if rounds:
        # synchronous rounds: how many each seed decided, and each round's decisions
        for seed in seeds:
            out["per_seed"][str(seed)]["rounds"] = sum(r.get("seed") == seed for r in rounds)
        out["rounds"] = [
            {k: r.get(k) for k in ("seed", "round", "step", "decisions", "taken")}
            | {"skipped_within_noise": r.get("skipped_within_noise", 0)}
            for r in sorted(rounds, key=lambda r: (r.get("seed", 0), r.get("round", 0)))
        ]
    paired = [
        (r["margin_paired"], r["margin_unpaired"])
        for r in taken + skipped
        if r.get("margin_paired") is not None and r.get("margin_unpaired")
    ]
    if paired:
        # how much smaller the paired margin is than the independent-reads one
        out["paired_margin_ratio_median"] = float(np.median([a / b for a, b in paired]))
    return out
