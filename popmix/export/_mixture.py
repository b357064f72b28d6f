"""From a popmix weights file to phases of a user's run: what the exporters write from.

:func:`load_mixture` finds the weights file of a run folder, reads the run's records beside it
(the budget's tokens per step, the corpus it trained on), turns the schedule into
:class:`Phase` s that tile the whole budget, and maps each domain to the user's data
(:func:`read_map`, else the corpus's own files, else the domain's name). NumPy, YAML and JSON
only: no torch, Ray or ``datasets``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from popmix.records.summary import SUMMARY_FILE, SummaryError, read_summary
from popmix.records.weights import WeightsFileError, WeightsSchedule, method_weights_file


class ExportError(ValueError):
    """Input the export cannot use: one line naming the bad value and the fix."""


#: the weights file a folder's command writes, in the order they are looked for
RUN_FILES = (
    ("best_schedule.json", "popmix search"),
    ("swarm_optimum.json", "popmix search --searcher swarm"),
    ("weights.json", "popmix run --out"),
    ("bracket_schedule.json", "popmix bracket"),
)
UNITS = ("steps", "tokens")
#: how far a point's weights may sum from 1 (popmix writes them normalised to float precision;
#: more than this is a hand-edited or foreign file whose meaning is unclear)
SUM_TOLERANCE = 1e-3


@dataclass(frozen=True)
class Phase:
    """The weights in effect over ``[start, end)`` of the budget, in the mixture's unit."""

    start: int
    end: int
    weights: tuple[float, ...]  # in the mixture's domain order, summing to 1
    loss_weights: tuple[float, ...] | None = None


@dataclass(frozen=True)
class Mixture:
    """A schedule as a trainer's phases, with each domain's data.

    ``data[name]`` is what the user's trainer reads for a domain: one or more file paths,
    dataset names or Megatron prefixes (the domain's own name when nothing maps it).
    """

    source: Path
    domains: tuple[str, ...]
    unit: str
    total: int
    phases: tuple[Phase, ...]
    final_weights: tuple[float, ...]
    data: Mapping[str, tuple[str, ...]]
    #: where ``data`` came from: ``--map FILE``, ``the corpus PATH``, or ``domain names``
    data_from: str
    method: str | None = None
    seed: int = 0
    #: tokens per step of the run the file came from, when known
    tokens_per_step: int | None = None
    #: Megatron shard sizes in tokens (prefix -> tokens), for domains of several prefixes
    prefix_tokens: Mapping[str, int] = field(default_factory=dict)
    #: one-line notes for the user (what was assumed, what is not exported)
    notes: tuple[str, ...] = ()
    #: what ``--cap`` did at ``--target-tokens`` (:func:`popmix.export.check_repetition`)
    repetition: Mapping[str, Any] | None = None
    #: which of a search's mixtures this is, in words (None: the file given, or the one
    #: the folder holds)
    chosen: str | None = None


@dataclass(frozen=True)
class RunRecord:
    """What the folder of a weights file says about the run that wrote it."""

    batch_size: int | None = None
    seq_len: int | None = None
    #: the experiment's ``data`` section (``summary.json`` of a search); None for a plain run
    data: Mapping[str, Any] | None = None
    apply: str | None = None
    found_in: str | None = None  # the file these came from

    @property
    def tokens_per_step(self) -> int | None:
        if self.batch_size and self.seq_len:
            return self.batch_size * self.seq_len
        return None


# ---------------------------------------------------------------------------------------------
# the input


def find_weights_file(path: str | Path) -> Path:
    """The weights file of ``path``: the file itself, or the one a run folder holds.

    Raises:
        ExportError: no such path, or a folder that holds no weights file.
    """
    p = Path(path)
    if not p.exists():
        raise ExportError(
            f"{path}: no such file or folder; give a run folder or a popmix weights file"
        )
    if p.is_file():
        if p.name == "summary.json" and (p.parent / RUN_FILES[0][0]).is_file():
            raise ExportError(
                f"{path}: a search's summary, not a weights file; give its folder (or the "
                f"{RUN_FILES[0][0]} beside it)"
            )
        return p
    for name, _ in RUN_FILES:
        if (p / name).is_file():
            return p / name
    members = sorted(p.glob("*_weights-seed*.json"))
    hint = (
        f"; it has per-method files such as {members[0].name}: give one of them" if members else ""
    )
    made_by = ", ".join(f"{name} ({cmd})" for name, cmd in RUN_FILES)
    raise ExportError(f"{path}: holds no weights file ({made_by}){hint}")


def search_choice(folder: Path, method: str | None) -> tuple[Path, str] | None:
    """The file of a search's folder to export, and what it is in words: ``method``'s
    weights (of its seed best on validation), else the mixture the search recommends. None
    for a folder whose summary records no recommendation (a search before it did, a run or a
    bracket folder): :func:`find_weights_file` then picks, as before.

    Raises:
        ExportError: ``method`` is no method of the search, or left no weights file.
    """
    try:
        summary = read_summary(folder / SUMMARY_FILE)
    except SummaryError:
        if method is not None:
            raise ExportError(
                f"--method {method}: {folder} holds no search summary; --method picks a "
                "method of a search's folder"
            ) from None
        return None
    if method is None:
        rec = summary.recommendation
        if rec is None or rec.method is None or not rec.file:
            return None
        kind = (
            "the recommended mixture"
            if rec.resolved
            else "the recommended mixture, the reference's"
        )
        return folder / rec.file, f"{kind}: {rec.method}, {rec.why}"
    methods = list(dict.fromkeys(r.method for r in summary.rows))
    if method not in methods:
        raise ExportError(
            f"--method {method}: not a method of this search (its methods: {', '.join(methods)})"
        )
    seed = summary.best_seed(method)
    path = folder / method_weights_file(method, seed if seed is not None else 0)
    if not path.is_file():
        raise ExportError(
            f"--method {method}: {path} does not exist ({method} did not finish on seed "
            f"{seed}, or the search predates per-method weights files); give a weights file"
        )
    return path, f"{method}'s mixture, of seed {seed} (its best on validation)"


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # a record that cannot be read only costs the defaults it would give


def read_run_record(weights: Path) -> RunRecord:
    """The budget and corpus of the run whose ``weights`` file this is, from ``summary.json``
    (a search's folder) or ``result.json`` (``popmix run --out``) beside it; empty when
    neither is there (a file copied out of its folder, a bracket's schedule)."""
    folder = weights.parent
    try:
        cfg = read_summary(folder / SUMMARY_FILE).experiment_config
    except SummaryError:
        cfg = None  # a record that cannot be read only costs the defaults it would give
    if isinstance(cfg, Mapping):
        train, model = cfg.get("train") or {}, cfg.get("model") or {}
        return RunRecord(
            batch_size=train.get("batch_size"),
            seq_len=model.get("seq_len"),
            data=cfg.get("data") or None,
            apply=train.get("apply"),
            found_in=str(folder / SUMMARY_FILE),
        )
    result = _load_json(folder / "result.json")
    if isinstance(result, Mapping) and isinstance(result.get("train_config"), Mapping):
        return RunRecord(
            batch_size=result["train_config"].get("batch_size"),
            seq_len=(result.get("model_config") or {}).get("seq_len"),
            apply=result["train_config"].get("apply"),
            found_in=str(folder / "result.json"),
        )
    return RunRecord()


def read_schedule(path: Path) -> WeightsSchedule:
    """The weights file, with every point's weights checked to be a mixture (sum ~1).

    Raises:
        ExportError: not a popmix weights file, malformed, or weights that are no mixture.
    """
    try:
        schedule = WeightsSchedule.read(path)
    except WeightsFileError as e:
        raise ExportError(str(e)) from None
    vectors = [(f"point {i} (step {p.step})", p.weights) for i, p in enumerate(schedule.points)]
    vectors.append(("final_weights", schedule.final_weights))
    for what, w in vectors:
        total = math.fsum(w)
        if abs(total - 1.0) > SUM_TOLERANCE:
            raise ExportError(
                f"{path}: {what}: the weights sum to {total:.6g}, not 1; a popmix file's "
                "weights are a mixture: normalise them (each divided by their sum)"
            )
    return schedule


# ---------------------------------------------------------------------------------------------
# phases


def _normalised(w: Sequence[float]) -> tuple[float, ...]:
    total = math.fsum(w)
    return tuple(x / total for x in w)


def schedule_phases(
    schedule: WeightsSchedule, total: int, scale: float | None = None
) -> tuple[Phase, ...]:
    """The schedule as phases tiling ``[0, total)``: each point starts a phase that runs to
    the next point, the last to ``total``.

    A point's step maps to ``step * scale`` when ``scale`` is given (tokens per step, with
    ``total`` the budget in tokens), else to ``round(step * total / schedule.total_steps)``
    (``total`` a run length of the user's: the shares of the budget are kept). Points that
    land on one boundary keep the last (the one in effect there); the first phase starts at 0
    (the first point's weights apply before it: :meth:`WeightsSchedule.weights_at`).
    """
    if total < 1:
        raise ExportError(f"the budget must be at least 1, got {total}")
    starts: dict[int, Any] = {}
    for p in schedule.points:
        if scale is not None:
            s = p.step * scale
        else:
            s = round(p.step * total / schedule.total_steps)
        starts[min(int(s), total)] = p
    bounds = sorted(starts)
    if bounds[0] != 0:  # the first point's weights are in effect from step 0
        starts[0] = starts.pop(bounds[0])
        bounds[0] = 0
    # a point at the very end of the budget would start an empty phase
    if len(bounds) > 1 and bounds[-1] == total:
        bounds.pop()
    phases = []
    for i, start in enumerate(bounds):
        end = bounds[i + 1] if i + 1 < len(bounds) else total
        p = starts[start]
        lw = None if p.loss_weights is None else tuple(p.loss_weights)
        phases.append(Phase(start, end, _normalised(p.weights), lw))
    return tuple(phases)


def check_cover(phases: Sequence[Phase], total: int) -> None:
    """Check that the phases tile ``[0, total)``, each non-empty, without gap or overlap.

    Raises:
        ValueError: where they do not (a bug of the export, never of the input).
    """
    if not phases or phases[0].start != 0:
        raise ValueError("the phases do not start at 0")
    for a, b in zip(phases, phases[1:]):
        if a.end != b.start:
            raise ValueError(f"phase [{a.start}, {a.end}) is followed by [{b.start}, {b.end})")
    if any(p.end <= p.start for p in phases):
        raise ValueError("an empty phase")
    if phases[-1].end != total:
        raise ValueError(f"the phases end at {phases[-1].end}, not at the budget {total}")


# ---------------------------------------------------------------------------------------------
# the domains' data


def read_map(path: str | Path, domains: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """``--map FILE``: a YAML (or JSON) mapping from each domain to a path, dataset name or
    Megatron prefix, or a list of them.

    Raises:
        ExportError: the file is missing or malformed, a domain has no entry, or an entry
            names no domain of the schedule.
    """
    import yaml

    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text())
    except FileNotFoundError:
        raise ExportError(
            f"--map {path}: file not found; write a YAML file of lines `domain: path`"
        ) from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ExportError(f"--map {path}: cannot read it as YAML ({first})") from None
    if not isinstance(raw, Mapping):
        raise ExportError(
            f"--map {path}: expected a mapping of lines `domain: path`, got {type(raw).__name__}"
        )
    out: dict[str, tuple[str, ...]] = {}
    for key, value in raw.items():
        name = str(key)
        if name not in domains:
            raise ExportError(
                f"--map {path}: {name!r} is not a domain of the schedule (its domains: "
                f"{', '.join(domains)}); correct the name or remove the line"
            )
        values = [value] if isinstance(value, str) else value
        if (
            not isinstance(values, list)
            or not values
            or not all(isinstance(v, str) and v.strip() for v in values)
        ):
            raise ExportError(
                f"--map {path}: {name}: expected a path, dataset name or prefix, or a list of "
                f"them, got {value!r:.60}"
            )
        out[name] = tuple(v.strip() for v in values)
    missing = [d for d in domains if d not in out]
    if missing:
        raise ExportError(
            f"--map {path}: no entry for domain {missing[0]!r}"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
            + f"; add a line `{missing[0]}: <path, dataset or prefix>`"
        )
    return out


def corpus_files(data: Mapping[str, Any], domains: Sequence[str]) -> dict[str, list[Path]] | None:
    """Each domain's files in the corpus a search trained on (its ``data.path``, as
    ``summary.json`` records it), found as popmix found them; None for a built-in benchmark,
    a corpus whose records name their domains (one file holds several), or a corpus that is
    no longer there."""
    from popmix.data._discover import discover
    from popmix.data.domains import DataError

    root = data.get("path")
    if not root or data.get("domain_field") or data.get("domain_column"):
        return None
    try:
        layout = discover(Path(root), None, data.get("domains") or None)
    except (DataError, OSError):
        return None
    files: dict[str, list[Path]] = {}
    for shard in layout.shards:
        if shard.domain is not None:
            files.setdefault(shard.domain, []).append(shard.path)
    if not all(d in files for d in domains):
        return None
    return {d: sorted(files[d]) for d in domains}


def megatron_prefix(path: Path) -> str:
    """``PREFIX`` of a Megatron ``PREFIX.bin`` (what ``--data-path`` names)."""
    return str(path.with_suffix("")) if path.suffix == ".bin" else str(path)


def prefix_tokens(prefix: str) -> int | None:
    """Tokens of the Megatron dataset ``prefix`` from its ``.idx`` (None where unreadable)."""
    from popmix.data._formats import megatron_index
    from popmix.data.domains import DataError

    try:
        return megatron_index(Path(prefix + ".bin")).tokens
    except (DataError, OSError, ValueError):
        return None


# ---------------------------------------------------------------------------------------------
# putting it together


def load_mixture(
    path: str | Path,
    unit: str = "steps",
    total: int | None = None,
    map_file: str | Path | None = None,
    tokens_per_step: int | None = None,
    method: str | None = None,
) -> Mixture:
    """The export of ``path`` (a run folder or a weights file).

    Args:
        method: of a search's folder, this method's weights (default: the recommended
            mixture, see :func:`search_choice`).
        unit: ``steps`` or ``tokens`` (steps times the tokens per step).
        total: the user's run length in ``unit``: the phases are rescaled to it, keeping each
            phase's share of the budget; default the run's own budget.
        map_file: ``--map``: domain -> the user's data (see :func:`read_map`).
        tokens_per_step: the user's tokens per step; default the run's batch size times its
            context, where its records say them.

    Raises:
        ExportError: one line for each bad input (see the module docstring).
    """
    if unit not in UNITS:
        raise ExportError(f"unknown unit {unit!r}; use steps or tokens")
    choice = None
    if Path(path).is_dir():
        choice = search_choice(Path(path), method)
    elif method is not None:
        raise ExportError(
            f"--method {method}: {path} is a weights file already; --method picks a method "
            "of a search's folder"
        )
    source = choice[0] if choice else find_weights_file(path)
    schedule = read_schedule(source)
    record = read_run_record(source)
    notes: list[str] = []
    per_step = tokens_per_step or record.tokens_per_step
    if total is not None:
        budget, scale = total, None
    elif unit == "steps":
        budget, scale = schedule.total_steps, 1.0
    else:
        if per_step is None:
            raise ExportError(
                f"{source}: the tokens per step are not recorded beside it (no summary.json "
                "or result.json); give --tokens-per-step N, or --total N tokens"
            )
        budget, scale = schedule.total_steps * per_step, float(per_step)
        if tokens_per_step is None:
            notes.append(
                f"tokens: {schedule.total_steps} steps x {record.batch_size} windows x "
                f"{record.seq_len} tokens per step, the proxy's (from {record.found_in}); give "
                "--total or --tokens-per-step for your own run's"
            )
    phases = schedule_phases(schedule, budget, scale)
    check_cover(phases, budget)

    domains = schedule.domains
    prefix_sizes: dict[str, int] = {}
    if map_file is not None:
        data = read_map(map_file, domains)
        data_from = f"--map {map_file}"
    else:
        files = corpus_files(record.data, domains) if record.data else None
        if files is not None:
            data = {
                d: tuple(megatron_prefix(f) if f.suffix == ".bin" else str(f) for f in files[d])
                for d in domains
            }
            data_from = f"the corpus {record.data['path'] if record.data else ''}"
        else:
            data = {d: (d,) for d in domains}
            data_from = "domain names"
            if record.data and record.data.get("path"):
                notes.append(
                    f"the run's corpus {record.data['path']} is not readable here as one "
                    "folder or glob per domain: the domains are named as they are; give --map"
                )
    for paths in data.values():
        if len(paths) > 1:
            for prefix in paths:
                n = prefix_tokens(prefix)
                if n is not None:
                    prefix_sizes[prefix] = n
    if any(p.loss_weights is not None for p in phases):
        notes.append(
            "the schedule also has per-domain loss weights: only the json and hf files carry "
            "them (as loss_weights); a trainer's sampling weights cannot"
        )
    if record.apply == "loss":
        notes.append(
            "the run applied these weights to the loss (train.apply=loss), not to sampling"
        )
    seed = schedule.info.get("seed", 0)
    return Mixture(
        source=source,
        domains=domains,
        unit=unit,
        total=budget,
        phases=phases,
        final_weights=_normalised(schedule.final_weights),
        data=data,
        data_from=data_from,
        method=schedule.method,
        seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else 0,
        tokens_per_step=per_step,
        prefix_tokens=prefix_sizes,
        notes=tuple(notes),
        chosen=choice[1] if choice else None,
    )
