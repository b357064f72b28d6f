"""What a search leaves in its ``--out`` folder once its Tuners have run: ``summary.json``,
``best_schedule.json``, ``lineage.json``, every method's weights per seed, the TensorBoard
comparison across seeds and, with a swarm, its surfaces, optima and figures.

Written from the trials' plain records (:func:`popmix.tune.runner.trial_records`) through the
summary's builder (:mod:`popmix.tune.summarize`); read back by
:mod:`popmix.records.summary`. Also when a search is interrupted or fails: whatever finished
is written.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from popmix.analysis.surface_figures import surface_figures
from popmix.config import SWARM, Experiment, experiment_to_dict
from popmix.data import model_vocab
from popmix.data.domains import DomainSet, check_vocab, domain_groups
from popmix.records.summary import FORMAT, SUMMARY_FILE, Row, Summary
from popmix.records.weights import WeightsSchedule
from popmix.tune.searchers import Searcher, searcher_for
from popmix.tune.summarize import (
    best_schedule,
    comparisons,
    group_intervals,
    method_intervals,
    oracle_gaps,
    recommend,
    row_schedules,
    summarize,
    swarm_section,
)
from popmix.tune.swarm import optimum_schedule
from popmix.tune.tensorboard import write_images, write_method_summary


def oracle_for(exp: Experiment, domains: DomainSet) -> dict[str, Any] | None:
    """``summary.json``'s ``oracle``: the benchmark's shipped oracle mixture (``weights``,
    ``test_mean_loss`` over its ``seeds``, ``std``), and whether it ``applies`` to this
    search: an oracle is the best static mixture for one proxy, so another model, other
    training settings or other domains make it no oracle (``why``). None when the benchmark
    has no oracle."""
    found = domains.meta.get("oracle")
    if not found:
        return None
    proxy = found["proxy"]
    model = dataclasses.asdict(exp.model)
    why = None
    if list(found["weights"]) != domains.names:
        why = "the search's domains are not the oracle's 16"
    else:
        diff = [f"model.{k}" for k in sorted(model) if proxy["model"].get(k) != model[k]]
        diff += [
            f"train.{k}" for k, v in sorted(proxy["train"].items()) if getattr(exp.train, k) != v
        ]
        if diff:
            verb = "differs" if len(diff) == 1 else "differ"
            why = f"{', '.join(diff)} {verb} from the oracle's proxy"
    return {
        "weights": found["weights"],
        "test_mean_loss": found["test_mean_loss"],
        "seeds": found["seeds"],
        "std": found["std"],
        "proxy": proxy,
        "applies": why is None,
        "why": why,
    }


def write_outputs(
    records: list[dict[str, Any]],
    exp: Experiment,
    domains: DomainSet,
    exp_dir: Path,
    out: Path,
    wall: float,
    interrupted: bool = False,
    surfaces: dict[int, dict[str, Any]] | None = None,
    searcher: Searcher | None = None,
) -> tuple[Summary, WeightsSchedule | None]:
    """summary.json (with its recommendation), best_schedule.json, lineage.json and
    <method>_weights-seed<S>.json for every method and seed that finished;
    with a swarm, surface.json, swarm_optimum[-seed<S>].json and the surface's plots.

    Args:
        records: every trial's record (:func:`popmix.tune.runner.trial_records`).
        searcher: the population's searcher, which adds what it records (None: the
            experiment's).

    Returns:
        The summary as written (read back as every reader of the file reads it), and the
        best member's schedule (None without one).
    """
    names = domains.names
    summary: dict[str, Any] = {"format": FORMAT, **summarize(records, exp.population_method)}
    if exp.runs_swarm():
        summary["swarm"] = swarm_section(records, surfaces or {}, names, exp)
    summary["comparisons"] = comparisons(summary)
    summary["reference"] = exp.search.reference
    summary["methods"] = method_intervals(summary, exp.search.reference)
    summary["groups"] = group_intervals(
        summary, domain_groups(domains, exp.data.groups), exp.search.reference
    )
    # restarts after a dead worker process or node, over every trial
    summary["retries"] = sum(r.get("retries") or 0 for r in records)
    sizes = np.asarray(domains.sizes, dtype=np.float64)
    # the answer: what to take from this search, beside the proportional prior
    summary["recommendation"] = recommend(
        summary, records, names, list(sizes / sizes.sum()) if sizes.sum() > 0 else []
    )
    summary["oracle"] = oracle_for(exp, domains)
    if summary["oracle"] and summary["oracle"]["applies"]:
        oracle_gaps(summary, summary["oracle"])
    # what popmix confirm retrains from, with the data's folder made absolute
    config = experiment_to_dict(exp)
    if config["data"].get("path"):
        config["data"]["path"] = str(Path(config["data"]["path"]).resolve())
    summary["experiment_config"] = config
    summary.update(
        experiment=exp.name,
        benchmark=domains.name,
        domains=names,
        # what the priors (proportional, temperature, Cooldown) are computed from: a corpus's
        # own sizes (its manifest), in its unit, not the sample's
        sizes={d.name: d.n_tokens for d in domains},
        sizes_unit=(domains.meta.get("manifest") or {}).get("unit", "bytes"),
        sizes_estimated=bool((domains.meta.get("manifest") or {}).get("estimated", False)),
        manifest=domains.meta.get("manifest"),
        sample=domains.meta.get("sample"),
        # the ids the proxy embeds: 256 bytes of text, a tokenizer's, a pre-tokenized
        # corpus's own, or an hf_config's
        vocab_size=check_vocab(domains, model_vocab(exp.model)),
        # the best achievable loss per domain, when known (synthetic domains)
        entropy_rate=(
            {d.name: d.entropy_rate for d in domains}
            if all(d.entropy_rate is not None for d in domains)
            else None
        ),
        searcher=exp.search.searcher,
        objective=exp.search.objective,
        steps_per_model=exp.train.steps,
        wall_time_s=wall,
        # Ctrl-C: the rows of seeds that had not started are missing
        interrupted=interrupted,
        experiment_dir=str(exp_dir),
        tensorboard=f"tensorboard --logdir {exp_dir}",
    )
    # exploits taken, and those skipped as within the noise of the two validation reads
    # and, with synchronous rounds, each decided round (its ranking and its decisions)
    lineage: dict[str, Any] = {
        "exploits": [],
        "skipped_within_noise": [],
        "rounds": [],
        "members": {},
    }
    for seed in exp.seeds:
        p = exp_dir / f"lineage-seed{seed}.jsonl"
        if p.is_file():
            for row in (json.loads(x) for x in p.read_text().splitlines() if x):
                kind = "skipped_within_noise" if row.get("skipped_within_noise") else "exploits"
                lineage[kind].append(row)
        p = exp_dir / f"rounds-seed{seed}.jsonl"
        if p.is_file():
            lineage["rounds"] += [json.loads(x) for x in p.read_text().splitlines() if x]
    for r in records:
        if r["member"] >= 0 and r["schedule"]:
            # each member's schedule in the weights format, with its place in the population
            member = r["schedule"].replace(
                method=r["method"], info={"seed": r["seed"], "member": r["member"]}
            )
            lineage["members"][r["trial_id"]] = member.to_dict()
    (out / "lineage.json").write_text(json.dumps(lineage, indent=2))
    if exp.runs_population():
        summary.update((searcher or searcher_for(exp)).record(exp, lineage))
    text = json.dumps(summary, indent=2, default=str)
    (out / SUMMARY_FILE).write_text(text)
    # what every reader of the file sees, the TensorBoard text and the printed table included
    written = Summary.from_dict(json.loads(text), str(out / SUMMARY_FILE))
    best = best_schedule(records, names)
    if best is not None:
        best.write(out / "best_schedule.json")
    try:
        write_method_summary(exp_dir / "tensorboard" / "methods", written)
    except Exception as e:  # logging must never lose a search's outputs
        print(f"popmix: could not write the TensorBoard method summary: {e}", file=sys.stderr)
    if surfaces:
        write_swarm(written, surfaces, names, exp.train.steps, out, exp_dir / "tensorboard")
    # every method's weights, one file per seed: the recommended one is among them, and
    # popmix export --method M finds any other (DoGE's, Aioli's time-averaged, for their
    # two-stage use: popmix run --weights-from <file> --replay final)
    for name, sched in row_schedules(summary, records, names).items():
        sched.write(out / name)
    return written, best


def write_swarm(
    summary: Summary,
    surfaces: Mapping[int, Mapping[str, Any]],
    names: Sequence[str],
    steps: int,
    out: Path,
    tensorboard_dir: Path | None = None,
) -> list[Path]:
    """``surface.json`` (every seed's surface), ``swarm_optimum-seed<S>.json`` and
    ``swarm_optimum.json`` (the seed whose optimum trial scored best on validation), the
    surface's PNGs under ``surface/seed<S>/`` and the same figures as TensorBoard images
    (``tensorboard_dir/surface``, tags ``surface/seed<S>/<figure>``). Returns the files
    written."""
    written: list[Path] = []
    doc = {
        "objective": summary.objective,
        "domains": list(names),
        "seeds": {str(seed): dict(s) for seed, s in sorted(surfaces.items())},
    }
    path = out / "surface.json"
    path.write_text(json.dumps(doc, indent=2, default=float))
    written.append(path)
    rows = {r.seed: r for r in summary.rows_of(SWARM)}
    best: tuple[float, int] | None = None
    images: list[tuple[str, bytes]] = []
    for seed, surface in sorted(surfaces.items()):
        if "error" in surface:
            continue
        row = rows.get(seed) or Row(SWARM, seed, trial_id=None)  # no optimum run: nothing known
        sched = optimum_schedule(
            surface,
            names,
            steps,
            seed=seed,
            trial_id=row.trial_id,
            predicted=surface.get("predicted"),
            objective=row.objective,
            test_mean_ppl=row.test_mean_ppl,
        )
        p = sched.write(out / f"swarm_optimum-seed{seed}.json")
        written.append(p)
        obj = row.objective
        if obj is not None and (best is None or obj < best[0]):
            best = (float(obj), seed)
    if best is None:
        ok = [seed for seed, s in sorted(surfaces.items()) if "error" not in s]
        best = (float("nan"), ok[0]) if ok else None
    if best is not None:
        src = out / f"swarm_optimum-seed{best[1]}.json"
        dst = out / "swarm_optimum.json"
        dst.write_text(src.read_text())
        written.append(dst)
    # The pictures last, and never at the cost of the files above (confirm reads them).
    try:
        for seed, surface in sorted(surfaces.items()):
            if "error" in surface:
                continue
            folder = out / f"surface/seed{seed}"
            folder.mkdir(parents=True, exist_ok=True)
            for name, png in surface_figures(dict(surface)):
                (folder / name).write_bytes(png)
                written.append(folder / name)
                images.append((f"surface/seed{seed}/{name}", png))
        if tensorboard_dir is not None and images:
            write_images(tensorboard_dir / "surface", images)
    except Exception as e:
        print(f"popmix: could not draw the swarm's surface: {e}", file=sys.stderr)
    return written


__all__ = ["oracle_for", "write_outputs", "write_swarm"]
