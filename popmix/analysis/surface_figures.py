"""The swarm's fitted surface as figures: ``surface_sensitivity.png`` and ``surface_slices.png``.

Both read ``surface.json``'s content (:meth:`popmix.records.surface.Surface.to_dict`, extra
keys such as a seed ignored), so a finished search's surface can be drawn again without
refitting:

- ``surface_sensitivity.png``: per domain, the predicted optimum weight, the sensitivity
  (change of the objective per unit of log-weight at the optimum) and, where the surface has
  it, the curvature, each with its bootstrap 95% interval;
- ``surface_slices.png``: per domain, the fitted objective along the slice through the optimum
  that moves that domain's weight (the others rescaled), its bootstrap band, the optimum
  marked. Beyond :data:`MAX_SLICES` domains, the ones with the largest curvature (else
  sensitivity) are drawn, and the title says so.

Imports neither torch nor Ray; matplotlib (Agg) only when a figure is drawn.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from popmix._util import plots
from popmix.records.surface import check_format

SENSITIVITY_FILE = "surface_sensitivity.png"
SLICES_FILE = "surface_slices.png"
#: the most slices one figure draws (a 4 x 4 grid)
MAX_SLICES = 16


def _num(x: Any) -> float:
    return math.nan if x is None else float(x)


def _errors(values: list[float], cis: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Values and matplotlib's (2, n) error lengths from [lo, hi] intervals (0 where unknown)."""
    v = np.array([_num(x) for x in values])
    if len(cis) != len(v):
        return v, np.zeros((2, len(v)))
    lo = np.array([_num(a) for a, _ in cis])
    hi = np.array([_num(b) for _, b in cis])
    err = np.vstack([v - lo, hi - v])
    return v, np.where(np.isfinite(err), np.maximum(err, 0.0), 0.0)


def _title(surface: dict[str, Any]) -> str:
    quality = surface.get("quality") or {}
    model = surface.get("model", "?")
    cv = (quality.get("cv") or {}).get(model) or {}
    r2 = cv.get("r2")
    rho = cv.get("spearman")
    parts = [f"objective {surface.get('objective')}", f"model {model}"]
    if r2 is not None:
        parts.append(f"held-out R² {r2:.2f}")
    if rho is not None:
        parts.append(f"Spearman {rho:.2f}")
    if quality.get("n_runs"):
        parts.append(f"{quality['n_runs']} runs")
    return ", ".join(parts)


def sensitivity_figure(surface: dict[str, Any]) -> bytes:
    """Optimum weights, sensitivities and curvatures per domain with their intervals (PNG)."""
    check_format(surface)
    plt = plots.pyplot()
    names = list(surface["names"])
    panels = [
        ("optimum weight", surface["optimum"], surface.get("optimum_ci", [])),
        (
            "sensitivity: d objective / d log w (nats)",
            surface["sensitivity"],
            surface.get("sensitivity_ci", []),
        ),
    ]
    if surface.get("curvature"):
        panels.append(
            (
                "curvature: d² objective / d (log w)² (nats)",
                surface["curvature"],
                surface.get("curvature_ci", []),
            )
        )
    y = np.arange(len(names))
    fig, axes = plt.subplots(
        1,
        len(panels),
        figsize=(4.2 * len(panels), 1.2 + 0.32 * len(names)),
        sharey=True,
        squeeze=False,
    )
    for ax, (label, values, cis) in zip(axes[0], panels):
        v, err = _errors(values, cis)
        ax.barh(y, np.nan_to_num(v), color="#5969cb", alpha=0.75)
        ax.errorbar(v, y, xerr=err, fmt="none", ecolor="black", capsize=3, lw=1)
        ax.axvline(0.0, color="grey", lw=0.8)
        ax.set_xlabel(label)
        ax.grid(axis="x", ls=":", alpha=0.6)
    axes[0][0].set_yticks(y, names)
    axes[0][0].invert_yaxis()
    fig.suptitle(f"Swarm surface at its predicted optimum ({_title(surface)})", fontsize=10)
    fig.tight_layout()
    return plots.png(fig)


def _slice_order(surface: dict[str, Any]) -> tuple[list[str], bool]:
    names = [n for n in surface["names"] if n in (surface.get("slices") or {})]
    if len(names) <= MAX_SLICES:
        return names, False
    key = "curvature" if surface.get("curvature") else "sensitivity"
    score = {n: abs(_num(x)) for n, x in zip(surface["names"], surface[key])}
    top = sorted(names, key=lambda n: -np.nan_to_num(score.get(n, 0.0)))[:MAX_SLICES]
    return [n for n in names if n in top], True


def slices_figure(surface: dict[str, Any]) -> bytes:
    """One panel per domain: the objective along its slice through the optimum (PNG)."""
    check_format(surface)
    plt = plots.pyplot()
    names, cut = _slice_order(surface)
    if not names:
        raise ValueError("the surface has no slices to draw; refit it with popmix's swarm fit")
    cols = min(4, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.4 * cols, 2.6 * rows + 0.6), squeeze=False, sharey=True
    )
    optimum = dict(zip(surface["names"], surface["optimum"]))
    predicted = _num(surface.get("predicted"))
    for ax, name in zip(axes.flat, names):
        s = surface["slices"][name]
        w = np.exp(np.array([_num(x) for x in s["log_w"]]))
        f = np.array([_num(x) for x in s["objective"]])
        lo = np.array([_num(x) for x in s.get("lo", [])]) if s.get("lo") else None
        hi = np.array([_num(x) for x in s.get("hi", [])]) if s.get("hi") else None
        if lo is not None and hi is not None and len(lo) == len(w) == len(hi):
            ax.fill_between(w, lo, hi, color="#5969cb", alpha=0.25, lw=0, label="95% band")
        ax.plot(w, f, color="#5969cb", lw=1.6, label="fitted")
        ax.axvline(_num(optimum.get(name)), color="#c3364a", ls="--", lw=1, label="optimum")
        if math.isfinite(predicted):
            ax.axhline(predicted, color="grey", ls=":", lw=0.8)
        ax.set_xscale("log")
        ax.set_title(name, fontsize=9)
        ax.grid(ls=":", alpha=0.5)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel(f"{surface.get('objective')} (nats)", fontsize=8)
    for ax in axes[-1, :]:
        ax.set_xlabel("weight (others rescaled)", fontsize=8)
    axes.flat[0].legend(fontsize=7, loc="best")
    head = "Slices of the swarm surface through its optimum"
    if cut:
        head += f" (the {len(names)} of {len(surface['names'])} domains with the largest effect)"
    fig.suptitle(f"{head}\n{_title(surface)}", fontsize=10)
    fig.tight_layout()
    return plots.png(fig)


def surface_figures(surface: dict) -> list[tuple[str, bytes]]:
    """``[(file name, PNG bytes)]``: ``surface_sensitivity.png`` and ``surface_slices.png``.

    Raises:
        ValueError: not a ``popmix-surface/1`` document (one line).
    """
    return [
        (SENSITIVITY_FILE, sensitivity_figure(surface)),
        (SLICES_FILE, slices_figure(surface)),
    ]


def write_surface_plots(surface: dict, folder: Path) -> list[Path]:
    """The figures of :func:`surface_figures` as files in ``folder`` (created); returns them."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, png in surface_figures(surface):
        path = folder / name
        path.write_bytes(png)
        out.append(path)
    return out


__all__ = ["surface_figures", "write_surface_plots"]
