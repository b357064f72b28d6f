"""``surface.json``: the swarm's fitted surfaces, one per seed (format ``popmix-surface/1``).

:class:`Surface` is one seed's fit as :func:`popmix.analysis.swarm_fit.fit_surface` returns it;
:meth:`Surface.to_dict` is its document and :meth:`Surface.from_dict` (through
:func:`check_format`) its one reader. The file a search writes (``surface.json``,
:func:`popmix.tune.swarm.write_outputs`) holds ``{"objective", "domains", "seeds": {seed:
document}}``, each document with the seed's own keys beside it (``seed``, ``runs``,
``run_trial_ids``), which the reader ignores. NumPy only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: the value of the ``format`` key of a surface document
FORMAT = "popmix-surface/1"


@dataclass(frozen=True)
class Surface:
    """A fitted swarm surface; :meth:`to_dict` is ``surface.json``'s content.

    Every per-domain tuple is in ``names``' order; intervals are percentile 95% intervals over
    the bootstrap resamples of the runs. ``curvature`` (an addition to the first API) is the
    second difference of the objective in each log-weight over the sensitivity's move.
    ``settings`` records how the fit ran (floor, n_boot, seed, step, law form, time).
    """

    names: tuple[str, ...]
    objective: str
    model: str
    optimum: tuple[float, ...]
    optimum_ci: tuple[tuple[float, float], ...]
    predicted: float
    predicted_ci: tuple[float, float]
    sensitivity: tuple[float, ...]
    sensitivity_ci: tuple[tuple[float, float], ...]
    quality: dict
    slices: dict
    curvature: tuple[float, ...] = ()
    curvature_ci: tuple[tuple[float, float], ...] = ()
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready (floats, lists; a NaN is written as null)."""
        return clean(
            {
                "format": FORMAT,
                "names": list(self.names),
                "objective": self.objective,
                "model": self.model,
                "optimum": list(self.optimum),
                "optimum_ci": [list(x) for x in self.optimum_ci],
                "predicted": self.predicted,
                "predicted_ci": list(self.predicted_ci),
                "sensitivity": list(self.sensitivity),
                "sensitivity_ci": [list(x) for x in self.sensitivity_ci],
                "curvature": list(self.curvature),
                "curvature_ci": [list(x) for x in self.curvature_ci],
                "quality": self.quality,
                "slices": self.slices,
                "settings": self.settings,
            }
        )

    @classmethod
    def from_dict(cls, d: dict) -> Surface:
        """The surface :meth:`to_dict` wrote (extra keys, e.g. a seed, are ignored).

        Raises:
            ValueError: not a ``popmix-surface/1`` document.
        """
        check_format(d)

        def num(x: Any) -> float:
            return math.nan if x is None else float(x)

        def pairs(key: str) -> tuple[tuple[float, float], ...]:
            return tuple((num(a), num(b)) for a, b in d.get(key, []))

        return cls(
            names=tuple(d["names"]),
            objective=str(d["objective"]),
            model=str(d["model"]),
            optimum=tuple(num(x) for x in d["optimum"]),
            optimum_ci=pairs("optimum_ci"),
            predicted=num(d["predicted"]),
            predicted_ci=(num(d["predicted_ci"][0]), num(d["predicted_ci"][1])),
            sensitivity=tuple(num(x) for x in d["sensitivity"]),
            sensitivity_ci=pairs("sensitivity_ci"),
            quality=dict(d.get("quality", {})),
            slices=dict(d.get("slices", {})),
            curvature=tuple(num(x) for x in d.get("curvature", [])),
            curvature_ci=pairs("curvature_ci"),
            settings=dict(d.get("settings", {})),
        )


def clean(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [clean(v) for v in x]
    if isinstance(x, np.ndarray):
        return clean(x.tolist())
    if isinstance(x, bool | np.bool_):
        return bool(x)
    if isinstance(x, int | np.integer):
        return int(x)
    if isinstance(x, float | np.floating):
        return float(x) if math.isfinite(x) else None
    return x


def check_format(d: Any) -> None:
    """Refuse what is not a ``popmix-surface/1`` document, in one line.

    Raises:
        ValueError: naming the format found and the one expected.
    """
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        got = d.get("format") if isinstance(d, dict) else type(d).__name__
        raise ValueError(
            f"not a swarm surface (format {got!r}, expected {FORMAT!r}); give the "
            "surface.json a swarm fit wrote"
        )


__all__ = ["FORMAT", "Surface", "check_format", "clean"]
