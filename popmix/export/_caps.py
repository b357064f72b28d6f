"""Repetition at the user's budget: how many passes over each domain an exported mixture asks
for at ``--target-tokens``, and (``--cap``) the mixture moved within ``max_epochs``.

A domain of n_i tokens given weight w_i by a phase covering a share s of a run of B tokens is
read s · w_i · B / n_i times there; over the run, the sum over phases. ``--cap`` projects each
phase's weights onto {w >= 0, w_i <= max_epochs_i · n_i / B, Σ w = 1}
(:func:`popmix._util.simplex.floor_project`): a phase within its caps keeps the whole run within
them, so every phase is moved alone (the nearest capped mixture per phase, not the schedule's
nearest capped schedule as a whole). NumPy and JSON only.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from popmix._util.simplex import epoch_caps, floor_project
from popmix.config import DataSpec
from popmix.export._mixture import ExportError, Mixture
from popmix.records.summary import SUMMARY_FILE, SummaryError, read_summary

#: the passes over a domain allowed when neither ``--max-epochs`` nor the run's
#: ``data.max_epochs`` says: any repetition is reported
DEFAULT_MAX_EPOCHS = 1.0


def recorded_sizes(weights: Path) -> tuple[dict[str, float], Any]:
    """(domain sizes, the run's ``data.max_epochs``) from the records beside a weights file:
    ``summary.json`` of a search, ``result.json`` of ``popmix run``; empty and None where
    neither says."""
    folder = weights.parent
    try:
        summary = read_summary(folder / SUMMARY_FILE)
    except SummaryError:
        summary = None
    if summary is not None and summary.sizes:
        data = (summary.experiment_config or {}).get("data") or {}
        return {k: float(v) for k, v in summary.sizes.items()}, data.get("max_epochs")
    try:
        result = json.loads((folder / "result.json").read_text())
    except (OSError, ValueError):
        return {}, None
    sizes = result.get("sizes") if isinstance(result, Mapping) else None
    return ({k: float(v) for k, v in sizes.items()} if isinstance(sizes, Mapping) else {}), None


def _limits(domains: Sequence[str], given: float | None, recorded: Any) -> np.ndarray:
    if given is not None:
        return np.full(len(domains), float(given))
    if recorded is None:
        return np.full(len(domains), DEFAULT_MAX_EPOCHS)
    try:
        spec = DataSpec(max_epochs=recorded)
        spec.validate()
        return spec.epoch_limits(list(domains))
    except (ValueError, TypeError):
        raise ExportError(
            f"the run's data.max_epochs {recorded!r} does not fit its domains; give --max-epochs"
        ) from None


def epochs_per_domain(m: Mixture, sizes: np.ndarray, target_tokens: int) -> np.ndarray:
    """Passes over each domain that ``m``'s phases ask for in a run of ``target_tokens``."""
    shares = np.array([(p.end - p.start) / m.total for p in m.phases])
    tokens = target_tokens * (shares[:, None] * np.array([p.weights for p in m.phases])).sum(0)
    return tokens / sizes


def check_repetition(
    m: Mixture,
    target_tokens: int,
    max_epochs: float | None = None,
    cap: bool = False,
    sizes: Mapping[str, float] | None = None,
) -> tuple[Mixture, list[str]]:
    """(the mixture, moved within the caps with ``cap``; one line per domain repeated more
    than its cap, and with ``cap`` one line saying what moved).

    The move is recorded in the mixture's ``repetition`` (written by the json export): the
    target, each domain's cap in epochs, its passes before and after.

    Raises:
        ExportError: the domains' sizes are not recorded beside the weights file (and not
            given), or the caps leave no mixture at that budget.
    """
    if sizes is None:
        sizes, recorded = recorded_sizes(m.source)
    else:
        recorded = None
    missing = [d for d in m.domains if d not in sizes]
    if missing:
        raise ExportError(
            f"{m.source}: the size of domain {missing[0]!r} is not recorded beside it (no "
            "summary.json or result.json with sizes), so its repetition is unknown"
        )
    n = np.array([sizes[d] for d in m.domains], dtype=np.float64)
    limits = _limits(m.domains, max_epochs, recorded)
    before = epochs_per_domain(m, n, target_tokens)
    lines = [
        f"{d}: {e:.3g} epochs over its {n[i]:.4g} tokens at {target_tokens:.4g} tokens, more "
        f"than the cap of {limits[i]:g}"
        for i, (d, e) in enumerate(zip(m.domains, before))
        if e > limits[i] * (1 + 1e-9)
    ]
    if not cap:
        return m, lines
    caps = epoch_caps(n, target_tokens, limits)
    if caps.sum() < 1.0:
        raise ExportError(
            f"--cap: {target_tokens} tokens need {1 / caps.sum():.3g}x more passes over the "
            "data than --max-epochs allows; raise it or lower --target-tokens"
        )

    def capped(w: Sequence[float]) -> tuple[float, ...]:
        return tuple(float(x) for x in floor_project(np.asarray(w, dtype=np.float64), 0.0, caps))

    out = dataclasses.replace(
        m,
        phases=tuple(dataclasses.replace(p, weights=capped(p.weights)) for p in m.phases),
        final_weights=capped(m.final_weights),
    )
    after = epochs_per_domain(out, n, target_tokens)
    moved = [
        f"{d} {a:.4g} -> {b:.4g}"
        for d, a, b in zip(m.domains, m.final_weights, out.final_weights)
        if abs(a - b) > 5e-5
    ]
    lines.append(
        f"--cap moved the final weights: {', '.join(moved)}" if moved else "--cap moved nothing"
    )
    record = {
        "target_tokens": int(target_tokens),
        "max_epochs": {d: float(x) for d, x in zip(m.domains, limits)},
        "epochs_before": {d: float(x) for d, x in zip(m.domains, before)},
        "epochs_after": {d: float(x) for d, x in zip(m.domains, after)},
        "final_weights_before": dict(zip(m.domains, m.final_weights)),
    }
    return dataclasses.replace(out, repetition=record), lines
