"""The one weights-schedule format: what a run trained on, step by step, and how to read it back.

Every weights file popmix writes is a :class:`WeightsSchedule`: ``weights.json`` (``popmix
run``), a trial checkpoint's ``schedule.json``, ``best_schedule.json``,
``<method>_weights-seed<S>.json`` and the members of ``lineage.json`` (``popmix search``), and
``bracket_schedule.json`` (``popmix bracket``). One writer (:meth:`WeightsSchedule.write`) and
one reader (:meth:`WeightsSchedule.read`), which checks the file and its domains and says in
one line what is wrong (:class:`WeightsFileError`).

The JSON layout::

    {"format": "popmix-weights/1", "method": "pbt", "domains": ["a", "b"],
     "total_steps": 1000,
     "points": [{"step": 0, "weights": [0.5, 0.5], "loss_weights": [...],
                 "temperature": 2.0, "trial_id": "..."}, ...],
     "final_weights": [0.4, 0.6], "lineage": [...], ...anything else (seed, trial_id, ...)}

At step t the last point with ``step <= t`` applies; ``final_weights`` is the mixture to
transfer to a final run (DoGE: its time average). Files written before the ``format`` key
existed have the same keys and read the same. NumPy and JSON only.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

#: the value of the ``format`` key this module writes.
FORMAT = "popmix-weights/1"
_FORMAT_NAME, _VERSION = FORMAT.split("/")
_POINT_KEYS = ("step", "weights", "loss_weights", "temperature", "trial_id")
#: the keys the format defines; any other top-level key of a file is kept in ``info``.
CORE_KEYS = ("format", "method", "domains", "total_steps", "points", "final_weights", "lineage")


def method_weights_file(method: str, seed: int) -> str:
    """The name of the weights file a search writes for ``method`` on ``seed`` (every
    method of the table, one per seed it ran): ``<method>_weights-seed<S>.json``."""
    return f"{method}_weights-seed{seed}.json"


class WeightsFileError(ValueError):
    """A weights file or schedule that cannot be used: one line, naming the file and the fault."""


def _few(names: Sequence[str], n: int = 4) -> str:
    shown = ", ".join(names[:n])
    return shown + (f" and {len(names) - n} more" if len(names) > n else "")


def _vector(value: Any, k: int, what: str) -> tuple[float, ...]:
    """A tuple of k finite non-negative floats with a positive sum."""
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, (Sequence, np.ndarray)):
        raise WeightsFileError(f"{what} must be a list of {k} numbers, got {value!r:.60}")
    try:
        out = tuple(float(x) for x in value)
    except (TypeError, ValueError):
        raise WeightsFileError(f"{what} must be numbers, got {value!r:.60}") from None
    if len(out) != k:
        raise WeightsFileError(f"{what} has {len(out)} entries for {k} domains")
    if not all(math.isfinite(x) and x >= 0 for x in out) or sum(out) <= 0:
        raise WeightsFileError(f"{what} must be finite, >= 0 and sum to a positive number")
    return out


def _whole(value: Any, what: str, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer, float)):
        raise WeightsFileError(f"{what} must be a whole number, got {value!r:.40}")
    if isinstance(value, float) and not value.is_integer():
        raise WeightsFileError(f"{what} must be a whole number, got {value!r}")
    if value < least:
        raise WeightsFileError(f"{what} must be at least {least}, got {int(value)}")
    return int(value)


@dataclass(frozen=True)
class SchedulePoint:
    """The weights in effect from ``step`` on (until the next point)."""

    step: int
    weights: tuple[float, ...]
    loss_weights: tuple[float, ...] | None = None
    temperature: float | None = None
    trial_id: str | None = None  # the trial that trained this stretch (search schedules)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"step": self.step, "weights": list(self.weights)}
        if self.loss_weights is not None:
            out["loss_weights"] = list(self.loss_weights)
        if self.temperature is not None:
            out["temperature"] = self.temperature
        if self.trial_id is not None:
            out["trial_id"] = self.trial_id
        return out

    @classmethod
    def from_dict(cls, data: Any, k: int, what: str = "point") -> SchedulePoint:
        if isinstance(data, SchedulePoint):
            data = data.to_dict()
        if not isinstance(data, Mapping):
            raise WeightsFileError(f"{what} must be an object {{step, weights}}, got {data!r:.40}")
        unknown = [key for key in data if key not in _POINT_KEYS]
        if unknown:
            raise WeightsFileError(
                f"{what}: unknown key {unknown[0]!r} (a point has {', '.join(_POINT_KEYS)})"
            )
        for key in ("step", "weights"):
            if key not in data:
                raise WeightsFileError(f"{what} has no {key!r}")
        temperature = data.get("temperature")
        if temperature is not None:
            if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
                raise WeightsFileError(f"{what}: temperature must be a number")
            temperature = float(temperature)
        trial_id = data.get("trial_id")
        lw = data.get("loss_weights")
        return cls(
            step=_whole(data["step"], f"{what}: step", 0),
            weights=_vector(data["weights"], k, f"{what}: weights"),
            loss_weights=None if lw is None else _vector(lw, k, f"{what}: loss_weights"),
            temperature=temperature,
            trial_id=None if trial_id is None else str(trial_id),
        )


@dataclass(frozen=True)
class WeightsSchedule:
    """A weight schedule over ``total_steps`` steps on ``domains``, checked on construction.

    Points and weights may be given as plain lists and dicts (as the training loop logs them);
    they are stored as :class:`SchedulePoint` and tuples. Without ``points``, the schedule is
    ``final_weights`` from step 0; without ``final_weights``, the last point's weights.

    Raises:
        WeightsFileError: anything malformed (domains, steps, a weight vector).
    """

    domains: tuple[str, ...]
    total_steps: int
    points: tuple[SchedulePoint, ...] = ()
    final_weights: tuple[float, ...] = ()
    method: str | None = None
    #: exploits the schedule's state went through (search members): plain dicts.
    lineage: tuple[Mapping[str, Any], ...] = ()
    #: anything else a writer records (seed, trial_id, objective, test_mean_ppl, order, ...).
    info: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        domains = self.domains
        if isinstance(domains, str) or not isinstance(domains, Iterable):
            raise WeightsFileError("domains must be a list of names")
        domains = tuple(domains)
        if not domains or not all(isinstance(n, str) for n in domains):
            raise WeightsFileError("domains must be a non-empty list of names")
        if len(set(domains)) != len(domains):
            twice = [n for n in dict.fromkeys(domains) if domains.count(n) > 1]
            raise WeightsFileError(f"domains name {_few(twice)} twice")
        k = len(domains)
        total = _whole(self.total_steps, "total_steps", 1)
        points = tuple(
            SchedulePoint.from_dict(p, k, f"point {i}") for i, p in enumerate(self.points or ())
        )
        fw = self.final_weights
        empty = fw is None or (isinstance(fw, (tuple, list, np.ndarray)) and len(fw) == 0)
        final = None if empty else _vector(fw, k, "final_weights")
        if not points:
            if final is None:
                raise WeightsFileError("no points and no final_weights: nothing to replay")
            points = (SchedulePoint(0, final),)
        for i, (a, b) in enumerate(zip(points, points[1:])):
            if b.step <= a.step:
                raise WeightsFileError(
                    f"bad points: point {i + 1} is at step {b.step}, not after point {i}'s "
                    f"step {a.step} (steps must increase)"
                )
        if points[-1].step > total:
            raise WeightsFileError(
                f"bad points: the last point is at step {points[-1].step}, past total_steps "
                f"{total}"
            )
        if self.method is not None and not isinstance(self.method, str):
            raise WeightsFileError(f"method must be a name, got {self.method!r:.40}")
        lineage = tuple(self.lineage or ())
        if not all(isinstance(e, Mapping) for e in lineage):
            raise WeightsFileError("lineage must be a list of objects")
        info = dict(self.info or {})
        clash = [key for key in info if key in CORE_KEYS]
        if clash:
            raise WeightsFileError(f"info may not hold the format's own key {clash[0]!r}")
        set_ = object.__setattr__
        set_(self, "domains", domains)
        set_(self, "total_steps", total)
        set_(self, "points", points)
        set_(self, "final_weights", points[-1].weights if final is None else final)
        set_(self, "lineage", lineage)
        set_(self, "info", info)

    @classmethod
    def build(
        cls,
        domains: Sequence[str],
        total_steps: int,
        points: Iterable[SchedulePoint | Mapping[str, Any]] = (),
        final_weights: Sequence[float] | np.ndarray | None = None,
        method: str | None = None,
        lineage: Iterable[Mapping[str, Any]] = (),
        **info: Any,
    ) -> WeightsSchedule:
        """A schedule from plain values: points as the training loop logs them (dicts of
        lists), weights as lists or arrays, and any further metadata as keywords."""
        return cls(
            domains=tuple(domains),
            total_steps=total_steps,
            points=cast("tuple[SchedulePoint, ...]", tuple(points)),
            final_weights=cast(
                "tuple[float, ...]", () if final_weights is None else final_weights
            ),
            method=method,
            lineage=tuple(lineage),
            info=info,
        )

    # -- conversion ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format": FORMAT}
        if self.method is not None:
            out["method"] = self.method
        out.update(
            domains=list(self.domains),
            total_steps=self.total_steps,
            points=[p.to_dict() for p in self.points],
            final_weights=list(self.final_weights),
        )
        out["lineage"] = [dict(e) for e in self.lineage]
        out.update(self.info)
        return out

    @classmethod
    def from_dict(cls, data: Any) -> WeightsSchedule:
        """A schedule from a file's JSON object (any version this module reads).

        Raises:
            WeightsFileError: not a popmix weights file, a newer format, or malformed content.
        """
        if not isinstance(data, Mapping):
            raise WeightsFileError("not a popmix weights file (not a JSON object)")
        fmt = data.get("format")
        if fmt is not None:
            name, _, version = str(fmt).partition("/")
            if name != _FORMAT_NAME:
                raise WeightsFileError(f"not a popmix weights file (format {fmt!r})")
            if not version.isdigit() or int(version) > int(_VERSION):
                raise WeightsFileError(
                    f"written in format {fmt!r}, newer than this popmix reads ({FORMAT}); "
                    "upgrade popmix"
                )
        if "domains" not in data:
            if "members" in data and "exploits" in data:
                raise WeightsFileError(
                    "a search's lineage file (one schedule per member under 'members'), not "
                    "one schedule; use the search's best_schedule.json"
                )
            if "test_loss" in data and "history" in data:
                raise WeightsFileError(
                    "a run's result.json, not a weights file; use the weights.json beside it"
                )
            raise WeightsFileError("not a popmix weights file (it has no 'domains')")
        points = data.get("points")
        if points is None and data.get("final_weights") is None:
            raise WeightsFileError(
                "not a popmix weights file (it has neither 'points' nor 'final_weights')"
            )
        if points is not None and not isinstance(points, list):
            raise WeightsFileError("bad points: 'points' must be a list of {step, weights}")
        total = data.get("total_steps")
        if total is None:
            if any(isinstance(p, Mapping) and p.get("step", 0) != 0 for p in points or ()):
                raise WeightsFileError("no 'total_steps': a schedule over steps needs its length")
            total = 1  # a constant mixture: its length does not matter
        lineage = data.get("lineage") or ()
        if not isinstance(lineage, list | tuple):
            raise WeightsFileError("lineage must be a list of objects")
        return cls.build(
            domains=data["domains"],
            total_steps=total,
            points=points or (),
            final_weights=data.get("final_weights"),
            method=data.get("method"),
            lineage=lineage,
            **{k: v for k, v in data.items() if k not in CORE_KEYS},
        )

    def write(self, path: str | Path, indent: int | None = 2) -> Path:
        """Write the schedule as JSON (``indent=None``: compact, for files written often)."""
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=indent))
        return path

    @classmethod
    def read(cls, path: str | Path, names: Sequence[str] | None = None) -> WeightsSchedule:
        """Read a weights file; with ``names``, check its domains and put them in that order.

        Raises:
            WeightsFileError: ``<path>: <what is wrong>`` in one line: no such file, not JSON,
                not a popmix weights file, bad points, or domains that differ from ``names``.
        """
        p = Path(path)
        try:
            text = p.read_text()
        except FileNotFoundError:
            raise WeightsFileError(f"{path}: file not found") from None
        except (OSError, UnicodeDecodeError) as e:
            raise WeightsFileError(f"{path}: cannot read it ({e})") from None
        try:
            data = json.loads(text)
        except ValueError as e:
            raise WeightsFileError(f"{path}: not a popmix weights file (not JSON: {e})") from None
        try:
            schedule = cls.from_dict(data)
            return schedule if names is None else schedule.aligned(names)
        except WeightsFileError as e:
            raise WeightsFileError(f"{path}: {e}") from None

    # -- use ------------------------------------------------------------------------------------
    def aligned(self, names: Sequence[str]) -> WeightsSchedule:
        """The schedule over ``names``: the same domains, reordered if they are in another order.

        Raises:
            WeightsFileError: the domains differ (the message says which are on each side).
        """
        names = tuple(names)
        if names == self.domains:
            return self
        if set(names) != set(self.domains) or len(names) != len(self.domains):
            unused = [n for n in self.domains if n not in names]
            missing = [n for n in names if n not in self.domains]
            parts = [f"{len(self.domains)} in the file"]
            if unused:
                parts.append(f"not in use: {_few(unused)}")
            if missing:
                parts.append(f"not in the file: {_few(missing)}")
            raise WeightsFileError(
                f"its domains differ from the {len(names)} in use ({'; '.join(parts)}); use "
                "the same --benchmark/--data and --tasks it was made with"
            )
        order = [self.domains.index(n) for n in names]

        def pick(v: tuple[float, ...]) -> tuple[float, ...]:
            return tuple(v[i] for i in order)

        points = tuple(
            dataclasses.replace(
                p,
                weights=pick(p.weights),
                loss_weights=None if p.loss_weights is None else pick(p.loss_weights),
            )
            for p in self.points
        )
        return dataclasses.replace(
            self, domains=names, points=points, final_weights=pick(self.final_weights)
        )

    def rescaled(self, steps: int) -> WeightsSchedule:
        """The schedule stretched to a run of ``steps`` steps: each point's step scaled by
        ``steps / total_steps`` and rounded; of points that land on one step, the last."""
        steps = _whole(steps, "steps", 1)
        if steps == self.total_steps:
            return self
        scaled: dict[int, SchedulePoint] = {}
        for p in self.points:
            s = round(p.step * steps / self.total_steps)
            scaled[s] = dataclasses.replace(p, step=s)
        return dataclasses.replace(
            self, total_steps=steps, points=tuple(scaled[s] for s in sorted(scaled))
        )

    def replay(self, mode: str, steps: int) -> tuple[str, dict[str, Any]]:
        """The policy (method, params) that trains a run of ``steps`` steps on this schedule:
        ``schedule`` replays the points rescaled to ``steps``; ``final`` trains on
        ``final_weights`` throughout (``fixed``)."""
        if mode == "final":
            return "fixed", {"weights": list(self.final_weights)}
        if mode != "schedule":
            raise ValueError(f"unknown replay mode {mode!r}; use schedule or final")
        points = []
        for p in self.rescaled(steps).points:
            point: dict[str, Any] = {"step": p.step, "weights": list(p.weights)}
            if p.loss_weights is not None:
                point["loss_weights"] = list(p.loss_weights)
            points.append(point)
        return "schedule", {"points": points}

    def weights_at(self, step: int) -> tuple[float, ...]:
        """The weights in effect at ``step`` (the first point's before it)."""
        current = self.points[0]
        for p in self.points:
            if p.step > step:
                break
            current = p
        return current.weights

    def replace(self, **changes: Any) -> WeightsSchedule:
        return dataclasses.replace(self, **changes)


__all__ = [
    "FORMAT",
    "SchedulePoint",
    "WeightsFileError",
    "WeightsSchedule",
    "method_weights_file",
]
