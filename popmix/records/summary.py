"""``summary.json``: what a search found, and its one reader (:func:`read_summary`).

The search writes the file (:func:`popmix.tune.outputs.write_outputs`, format
``popmix-summary/1``); everything that reads a summary back, ``popmix report``, ``popmix
export``, ``popmix confirm``, TensorBoard's comparison and ``popmix search --resume``, reads it
through :meth:`Summary.from_dict` into frozen dataclasses, so a key is spelled in one place.

One name per quantity: test perplexity is ``test_mean_ppl`` / ``test_worst_ppl`` and test
loss ``test_mean_loss``, in the rows as in ``methods``, ``groups`` and ``oracle``. A summary
written before the ``format`` key existed (popmix-summary/0) called the latter
``mean_test_ppl``, ``worst_test_ppl`` and ``mean_test_loss``; it reads the same. A summary of
a format this popmix does not know is refused in one line naming the file and the fix.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

#: the value of the ``format`` key of the summaries this popmix writes
FORMAT = "popmix-summary/1"
#: the file's name, in a search's ``--out`` folder
SUMMARY_FILE = "summary.json"
#: names a summary without a ``format`` key used, and what they are called now
OLD_NAMES = {
    "mean_test_ppl": "test_mean_ppl",
    "worst_test_ppl": "test_worst_ppl",
    "mean_test_loss": "test_mean_loss",
}


class SummaryError(ValueError):
    """A file that is not a summary this popmix can read: one line, naming the file and the fix."""


def _renamed(d: Mapping[str, Any]) -> dict[str, Any]:
    return {OLD_NAMES.get(k, k): v for k, v in d.items()}


def _float(x: Any) -> float | None:
    return None if x is None else float(x)


def _pair(x: Any) -> tuple[float, float] | None:
    return None if x is None else (float(x[0]), float(x[1]))


@dataclass(frozen=True)
class Interval:
    """A mean over seeds with its 95% interval (:func:`popmix._util.stats.mean_ci`): no
    interval below 2 seeds, no mean without one."""

    mean: float | None = None
    std: float | None = None
    ci95: tuple[float, float] | None = None
    n: int = 0

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> Interval:
        d = d or {}
        return cls(
            _float(d.get("mean")), _float(d.get("std")), _pair(d.get("ci95")), int(d.get("n") or 0)
        )


@dataclass(frozen=True)
class Paired:
    """A paired difference over seeds (:func:`popmix._util.stats.paired`), against
    ``reference`` where it is one."""

    diff_mean: float | None = None
    ci95: tuple[float, float] | None = None
    n: int = 0
    verdict: str = "no clear difference"
    reference: str | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> Paired | None:
        if not d:
            return None
        return cls(
            _float(d.get("diff_mean")),
            _pair(d.get("ci95")),
            int(d.get("n") or 0),
            str(d.get("verdict", "no clear difference")),
            d.get("reference"),
        )


@dataclass(frozen=True)
class MethodResult:
    """One method over its seeds (``methods.<method>``): mean and worst test perplexity, the
    paired difference against the reference, the share of the oracle gap it closes."""

    seeds: tuple[int, ...] = ()
    test_mean_ppl: Interval = field(default_factory=Interval)
    test_worst_ppl: Interval = field(default_factory=Interval)
    vs_reference: Paired | None = None
    oracle_gap_closed: Interval | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MethodResult:
        d = _renamed(d)
        gap = d.get("oracle_gap_closed")
        return cls(
            tuple(int(s) for s in d.get("seeds") or ()),
            Interval.from_dict(d.get("test_mean_ppl")),
            Interval.from_dict(d.get("test_worst_ppl")),
            Paired.from_dict(d.get("vs_reference")),
            None if gap is None else Interval.from_dict(gap),
        )


def read_methods(d: Mapping[str, Any] | None) -> dict[str, MethodResult]:
    """A ``methods`` section (``summary.json``'s, or a scale's of ``confirm.json``)."""
    return {str(m): MethodResult.from_dict(e) for m, e in (d or {}).items()}


@dataclass(frozen=True)
class GroupResult:
    """One method on one group of domains: its mean test perplexity over the group's domains
    and the paired difference against the reference."""

    test_mean_ppl: Interval
    vs_reference: Paired | None = None


@dataclass(frozen=True)
class Groups:
    """``groups``: each domain's group, each group's domains, and per method and group its
    result."""

    assignment: dict[str, str]
    members: dict[str, list[str]]
    methods: dict[str, dict[str, GroupResult]]

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> Groups | None:
        if not d:
            return None
        methods = {
            str(m): {
                str(g): GroupResult(
                    Interval.from_dict(_renamed(r).get("test_mean_ppl")),
                    Paired.from_dict(r.get("vs_reference")),
                )
                for g, r in by_group.items()
            }
            for m, by_group in (d.get("methods") or {}).items()
        }
        members = {str(g): list(names) for g, names in (d.get("members") or {}).items()}
        return cls(dict(d.get("assignment") or {}), members, methods)


@dataclass(frozen=True)
class Row:
    """One row of the table (a method on a seed), a population member (``member``), or one
    of best-of-n's draws (``draw``, ``run_seed``). Fields not given in the file are None."""

    method: str
    seed: int
    trial_id: str | None = None
    status: str = "failed"
    objective: float | None = None
    test_mean_ppl: float | None = None
    test_worst_ppl: float | None = None
    test_worst_domain: str | None = None
    #: the evaluation noise of test_mean_ppl: the same model on resampled test windows
    test_mean_ppl_se: float | None = None
    test_mean_loss: float | None = None
    #: per domain
    test_ppl: dict[str, float] | None = None
    test_loss: dict[str, float] | None = None
    steps: int | None = None
    tokens: int | None = None
    train_steps: int | None = None
    extra_step_equivalents: float | None = None
    effective_domains: float | None = None
    grad_norm_max: float | None = None
    grad_norm_std_pooled: float | None = None
    loss_spikes: int | None = None
    diagnostics: dict[str, Any] = field(default_factory=dict)
    train_time_s: float | None = None
    retries: int = 0
    wall_time_s: float | None = None
    params: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    node: str | None = None
    #: a population's (best-of-n's, the swarm's) row: its trials, finished ones, their steps
    members: int | None = None
    members_finished: int | None = None
    population_train_steps: int | None = None
    #: best-of-n's row: the draw it picked, and every draw
    picked_draw: int | None = None
    draws: tuple[Row, ...] = ()
    #: a population member's slot; a draw's number and seed
    member: int | None = None
    draw: int | None = None
    run_seed: int | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Row:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in d.items() if k in known}
        values["draws"] = tuple(cls.from_dict(x) for x in d.get("draws") or ())
        values["diagnostics"] = dict(d.get("diagnostics") or {})
        values["params"] = dict(d.get("params") or {})
        values["retries"] = int(d.get("retries") or 0)
        if values.get("trial_id") is not None:
            values["trial_id"] = str(values["trial_id"])
        return cls(**values)


@dataclass(frozen=True)
class Comparison:
    """``comparisons``: ``method`` against ``against``, paired by seed on ``metric``."""

    method: str
    against: str
    paired: Paired
    metric: str = "test_mean_ppl"
    seeds: tuple[int, ...] = ()
    per_seed: tuple[float | None, ...] = ()

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Comparison:
        return cls(
            str(d["method"]),
            str(d["against"]),
            Paired.from_dict(d) or Paired(),
            OLD_NAMES.get(d.get("metric", ""), d.get("metric", "test_mean_ppl")),
            tuple(int(s) for s in d.get("seeds") or ()),
            tuple(_float(x) for x in d.get("per_seed") or ()),
        )


@dataclass(frozen=True)
class Oracle:
    """``oracle``: the benchmark's shipped oracle mixture, its mean test loss over its seeds,
    and whether it ``applies`` to this search (``why`` not)."""

    weights: dict[str, float]
    test_mean_loss: float | None
    seeds: tuple[int, ...]
    std: float | None
    proxy: dict[str, Any]
    applies: bool
    why: str | None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> Oracle | None:
        if not d:
            return None
        d = _renamed(d)
        return cls(
            dict(d.get("weights") or {}),
            _float(d.get("test_mean_loss")),
            tuple(int(s) for s in d.get("seeds") or ()),
            _float(d.get("std")),
            dict(d.get("proxy") or {}),
            bool(d.get("applies")),
            d.get("why"),
        )


@dataclass(frozen=True)
class Exploits:
    """``exploits``: PBT's exploits taken and those skipped as within the noise of the two
    validation reads, overall and per seed."""

    margin: float | str
    taken: int
    skipped_within_noise: int
    per_seed: dict[str, dict[str, int]]
    #: synchronous rounds: one entry per decided round (``seed``, ``round``, ``step``,
    #: ``decisions``, ``taken``, ``skipped_within_noise``); empty for asynchronous PBT
    rounds: tuple[dict[str, Any], ...] = ()
    #: the median over decisions of the paired margin over the independent-reads one
    paired_margin_ratio_median: float | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> Exploits | None:
        if not d:
            return None
        return cls(
            d.get("margin", 0.0),
            int(d.get("taken") or 0),
            int(d.get("skipped_within_noise") or 0),
            {str(k): dict(v) for k, v in (d.get("per_seed") or {}).items()},
            tuple(dict(r) for r in d.get("rounds") or ()),
            _float(d.get("paired_margin_ratio_median")),
        )

    def per_round(self) -> list[tuple[int, int, int, int]]:
        """(round, decisions, taken, skipped as within noise), summed over seeds."""
        sums: dict[int, list[int]] = {}
        for r in self.rounds:
            acc = sums.setdefault(int(r.get("round") or 0), [0, 0, 0])
            acc[0] += int(r.get("decisions") or 0)
            acc[1] += int(r.get("taken") or 0)
            acc[2] += int(r.get("skipped_within_noise") or 0)
        return [(n, v[0], v[1], v[2]) for n, v in sorted(sums.items())]


def _weights(d: Any) -> dict[str, float] | None:
    return None if d is None else {str(k): float(v) for k, v in d.items()}


@dataclass(frozen=True)
class Evidence:
    """What a recommendation rests on: ``method``'s paired differences of mean test
    perplexity against the reference and against best-of-n (None where that did not run),
    and, where one is unresolved, an estimate of the seeds in all that would resolve it
    (:func:`popmix._util.stats.seeds_to_resolve`; None when the difference points the other
    way, or one seed gives no spread to estimate from)."""

    method: str
    vs_reference: Paired | None = None
    vs_best_of_n: Paired | None = None
    seeds_needed: int | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> Evidence | None:
        if not d:
            return None
        needed = d.get("seeds_needed")
        return cls(
            str(d["method"]),
            Paired.from_dict(d.get("vs_reference")),
            Paired.from_dict(d.get("vs_best_of_n")),
            None if needed is None else int(needed),
        )


@dataclass(frozen=True)
class Recommendation:
    """``recommendation``: the mixture the search recommends and why.

    ``resolved`` is true when ``method`` was resolved better than the reference and than
    best-of-n (where it ran); otherwise ``method`` is the reference, and ``evidence`` is the
    method that came closest. ``file`` is the weights file in the search's folder that
    ``popmix export`` writes by default; ``weights`` its final weights, ``first_weights`` those
    at step 0 where the schedule changes (``phases`` > 1), ``prior`` the proportional mixture.
    ``method`` is None when the reference did not run (``why`` says so)."""

    method: str | None
    reference: str
    resolved: bool = False
    seed: int | None = None
    file: str | None = None
    weights: dict[str, float] | None = None
    first_weights: dict[str, float] | None = None
    phases: int = 1
    prior: dict[str, float] | None = None
    evidence: Evidence | None = None
    why: str = ""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> Recommendation | None:
        if not d:
            return None
        seed = d.get("seed")
        return cls(
            d.get("method"),
            str(d.get("reference") or ""),
            bool(d.get("resolved")),
            None if seed is None else int(seed),
            d.get("file"),
            _weights(d.get("weights")),
            _weights(d.get("first_weights")),
            int(d.get("phases") or 1),
            _weights(d.get("prior")),
            Evidence.from_dict(d.get("evidence")),
            str(d.get("why") or ""),
        )


def _rows(rows: Any) -> tuple[Row, ...]:
    return tuple(Row.from_dict(r) for r in rows)


#: how a section of ``summary.json`` becomes a :class:`Summary` field; any other field is read
#: as written, and one the file does not give (or gives as null) keeps its default
_SECTIONS: dict[str, Callable[[Any], Any]] = {
    "rows": _rows,
    "members": _rows,
    "methods": read_methods,
    "groups": Groups.from_dict,
    "comparisons": lambda items: tuple(Comparison.from_dict(c) for c in items),
    "oracle": Oracle.from_dict,
    "exploits": Exploits.from_dict,
    "recommendation": Recommendation.from_dict,
    "domains": tuple,
    "wall_time_s": _float,
}


@dataclass(frozen=True)
class Summary:
    """A search's ``summary.json``, typed. Sections popmix writes whole and reads as a
    document of their own stay mappings: ``experiment_config`` (the experiment, read by
    :func:`popmix.config.experiment_from_dict`), ``manifest`` and ``sample`` (the data's),
    ``swarm`` (per seed, every swarm run; its surface is ``surface.json``)."""

    rows: tuple[Row, ...]
    population_method: str = ""
    members: tuple[Row, ...] = ()
    best_trial_id: str | None = None
    methods: dict[str, MethodResult] = field(default_factory=dict)
    groups: Groups | None = None
    comparisons: tuple[Comparison, ...] = ()
    reference: str = ""
    oracle: Oracle | None = None
    exploits: Exploits | None = None
    recommendation: Recommendation | None = None
    retries: int = 0
    experiment: str | None = None
    benchmark: str | None = None
    domains: tuple[str, ...] = ()
    sizes: dict[str, float] = field(default_factory=dict)
    sizes_unit: str = "bytes"
    sizes_estimated: bool = False
    manifest: dict[str, Any] | None = None
    sample: dict[str, Any] | None = None
    vocab_size: int | None = None
    entropy_rate: dict[str, float] | None = None
    searcher: str | None = None
    objective: str | None = None
    steps_per_model: int | None = None
    wall_time_s: float | None = None
    interrupted: bool = False
    experiment_dir: str | None = None
    tensorboard: str | None = None
    experiment_config: dict[str, Any] | None = None
    swarm: dict[str, Any] | None = None
    format: str = FORMAT

    @classmethod
    def from_dict(cls, d: Any, source: str = "summary") -> Summary:
        """The summary ``d`` (``summary.json``'s content) holds.

        Raises:
            SummaryError: not a popmix search summary, or of a format this popmix does not
                read; one line starting with ``source``.
        """
        if not isinstance(d, Mapping) or not isinstance(d.get("rows"), list):
            raise SummaryError(
                f"{source}: not a popmix search summary; give the folder of a popmix search "
                "(where its summary.json is)"
            )
        found = d.get("format", "popmix-summary/0")
        if found not in (FORMAT, "popmix-summary/0"):
            raise SummaryError(
                f"{source}: a summary of format {found!r}, which this popmix does not read "
                f"(it reads {FORMAT!r}); upgrade popmix (pip install -U popmix)"
            )
        try:
            return cls._parse(d)
        except (KeyError, TypeError, ValueError) as e:
            raise SummaryError(
                f"{source}: a damaged summary ({type(e).__name__}: {e}); rerun the search"
            ) from None

    @classmethod
    def _parse(cls, d: Mapping[str, Any]) -> Summary:
        given = {f.name: d[f.name] for f in fields(cls) if d.get(f.name) is not None}
        typed = {k: _SECTIONS[k](v) if k in _SECTIONS else v for k, v in given.items()}
        return cls(**{**typed, "format": str(d.get("format", "popmix-summary/0"))})

    def rows_of(self, method: str) -> list[Row]:
        """The table's rows of ``method``, in seed order."""
        return [r for r in self.rows if r.method == method]

    def best_seed(self, method: str) -> int | None:
        """The seed whose run of ``method`` is best on validation (what a search transfers
        of a method with several seeds), else its first seed; None if it did not run."""
        rows = self.rows_of(method)
        return best_seed([(r.seed, r.objective if r.status == "ok" else None) for r in rows])


def best_seed(runs: Sequence[tuple[int, float | None]]) -> int | None:
    """Of (seed, validation objective) pairs, the seed of the lowest finite objective, else
    the first seed; None for none. One rule for the summary's writer and its readers."""
    done = [(obj, seed) for seed, obj in runs if obj is not None and math.isfinite(obj)]
    if done:
        return min(done)[1]
    return runs[0][0] if runs else None


def read_summary(path: str | Path) -> Summary:
    """The summary in ``path`` (a ``summary.json``, or the folder holding one).

    Raises:
        SummaryError: no summary there, one that cannot be read, or of another format; one
            line naming the file and the fix.
    """
    file = Path(path) / SUMMARY_FILE if Path(path).is_dir() else Path(path)
    try:
        return Summary.from_dict(json.loads(file.read_text()), str(file))
    except FileNotFoundError:
        fix = "give the folder of a finished popmix search (where its summary.json is)"
        raise SummaryError(f"{file}: no such file; {fix}") from None
    except (OSError, ValueError) as e:
        if isinstance(e, SummaryError):
            raise
        raise SummaryError(f"{file}: cannot read it ({e}); rerun the search") from None


__all__ = [
    "FORMAT",
    "OLD_NAMES",
    "SUMMARY_FILE",
    "Comparison",
    "Evidence",
    "Exploits",
    "GroupResult",
    "Groups",
    "Interval",
    "MethodResult",
    "Oracle",
    "Paired",
    "Recommendation",
    "Row",
    "Summary",
    "SummaryError",
    "best_seed",
    "read_methods",
    "read_summary",
]
