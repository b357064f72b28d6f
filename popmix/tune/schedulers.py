"""Ray's schedulers and Optuna searcher, limited to the searched population.

PBT treats every trial of its Tuner as population. popmix runs the baselines in the same Tuner
(so they share the cluster with the population at once) and keeps them out of the population:
a trial whose spec has ``member < 0`` is never scored, never a donor and never exploited, and
ASHA never stops it. A member is ranked, and copies, only within its own seed's population.
The schedulers are Ray's own; these subclasses filter, time the decisions and log.

**Rounds** (``search.rounds``). ``async`` is Ray's own PBT: a member is judged alone when it
reaches its perturbation point, against the other members' last reads. With members that train
in step (``cpus_per_trial: auto``), those reads are a round older, so the reporting member
ranks first and is almost never in the bottom quantile: exploits seldom happen. ``sync``
(:class:`_Rounds`) makes generations: at each perturbation point every member of a seed
waits (paused, its checkpoint saved) until all of that seed's live members have reported the
same step; then the whole population is ranked at once, the bottom quantile copies the top
(subject to the exploit margin) and explores, and every member continues.

A member copies a donor only when the donor is ahead by more than ``exploit_margin``
(:func:`exploit_margin`): on a noisy validation read the bottom quantile would otherwise copy
members that are better by luck of the windows alone. Members of a seed are scored on the same
validation windows, so the margin for ``auto`` comes from the per-window differences between
the two members (a paired standard error); the independent-reads margin is recorded beside it.

**Fitness** (``search.fitness``, :mod:`popmix.tune.fitness`): what a member is ranked on at a
decision. ``last``: the objective of the read at the decision (Ray's rule). ``average``: the
mean objective over the member's last ``search.fitness_reads`` reads (its own, and after an
exploit its donor's before it): less noise per decision. ``forecast``: the member's reads
extrapolated to the run's last step, so a mixture whose curve falls faster is not culled for
reading worse early on.

**Draws.** Ray's PBT draws the donor (``random.choice`` of the top quantile) and mutates the
scalars from Python's and NumPy's global generators, and the explorer from its own: shared
by every seed of the driver, in the order decisions happen to come. So two runs of one
command, or a seed run alone and beside another, or a search and its resume, drew different
values and parted at the first decision where a draw mattered. Every decision here draws
from generators keyed by what the decision is (:func:`seeded_draws`: ``search.seed``, the
seed, the round, or the member and step for ``async``): the same search decides the same
way however its seeds and decisions interleave.

Files written in the experiment folder: ``lineage-seed<S>.jsonl``, one JSON row per exploit
decision (``time``, ``seed``, ``round``, ``trial_id``, ``donor``, both steps, ``gain`` and
``margin`` in nats with ``margin_paired`` and ``margin_unpaired``, the donor's ``checkpoint``,
and either the new searched values or ``skipped_within_noise: true``); with ``sync`` rounds,
``rounds-seed<S>.jsonl``, one row per decided round (its step, the ranking with each member's
fitness, how many exploits were decided, taken and skipped as within noise); and
``reads-seed<S>.jsonl``, each member's reads (``read``) and copies of a donor's reads
(``copied_from``) in the order they happened. Tune restores a search's scheduler empty
(ray-project/ray#30838): replaying that record gives a resumed search the reads its fitness
had, so it ranks as the search would have without the stop.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from ray.tune.experiment import Trial
from ray.tune.schedulers import ASHAScheduler, PopulationBasedTraining, TrialScheduler
from ray.tune.search import Searcher

from popmix.config import EXPLOIT_Z
from popmix.records.trial import CONFIG_KEY, TrialSpec
from popmix.train.objective import paired_standard_error
from popmix.tune.fitness import read_weights

#: the result key of each domain's per-window validation losses (flattened by Tune to
#: ``val_window_loss/<domain>``)
WINDOWS_KEY = "val_window_loss"


def is_member(trial: Any) -> bool:
    return TrialSpec.from_config(trial.config).is_member


def _seed_of(trial: Any) -> int:
    return TrialSpec.from_config(trial.config).seed


def window_losses(result: Mapping[str, Any] | None) -> dict[str, list[float]]:
    """Each domain's per-window validation losses of a result, nested
    (``{"val_window_loss": {d: [...]}}``) or as Tune flattens it for schedulers
    (``{"val_window_loss/d": [...]}``); empty when the result has none."""
    if not result:
        return {}
    nested = result.get(WINDOWS_KEY)
    if isinstance(nested, Mapping):
        return {str(k): list(v) for k, v in nested.items()}
    prefix = WINDOWS_KEY + "/"
    return {k[len(prefix) :]: list(v) for k, v in result.items() if k.startswith(prefix)}


def exploit_margin(
    setting: float | str,
    own_se: float | None,
    donor_se: float | None,
    paired_se: float | None = None,
) -> float:
    """The lead (nats) a donor needs before a member copies it: ``setting`` itself, or for
    ``auto`` ``EXPLOIT_Z`` times the standard error of the difference of the two reads: the
    paired one (``paired_se``, from per-window differences on the same windows) where known,
    else the independent-reads one, sqrt(se_own^2 + se_donor^2) (0 where a read has no
    standard error)."""
    if setting != "auto":
        return float(setting)
    if paired_se is not None:
        return EXPLOIT_Z * paired_se
    own, donor = own_se or 0.0, donor_se or 0.0
    return EXPLOIT_Z * math.sqrt(own * own + donor * donor)


@contextlib.contextmanager
def seeded_draws(scheduler: Any, seed: int, key: list[int]) -> Iterator[None]:
    """Within: Python's and NumPy's global generators (Ray's PBT and PB2 draw from them) and
    seed ``seed``'s explorer seeded by (``scheduler.draw_seed``, ``seed``, ``key``); the
    global generators are given back their state after, so nothing else in the driver is
    moved by a decision."""
    entropy = [int(getattr(scheduler, "draw_seed", 0)), int(seed), *(int(k) for k in key)]
    sequence = np.random.SeedSequence(entropy)
    py_seed, np_seed = (int(x) for x in sequence.generate_state(2))
    saved_py, saved_np = random.getstate(), np.random.get_state()
    random.seed(py_seed)
    np.random.seed(np_seed)
    reseed = getattr(getattr(scheduler, "_custom_explore_fn", None), "reseed", None)
    if reseed is not None:
        reseed(seed, entropy)
    try:
        yield
    finally:
        random.setstate(saved_py)
        np.random.set_state(saved_np)


#: the first key of a decision's draws: one member's (``async``) or a round's (``sync``)
_MEMBER_DRAWS, _ROUND_DRAWS = 1, 2


class _Population:
    """Mixin: results of baseline trials pass straight through as CONTINUE; a member is
    ranked (and copies) only within its own seed's population when a Tuner runs several;
    each member's recent reads are kept for its fitness (``fitness``, ``fitness_reads``)."""

    _seed_now: int | None = None
    _trial_state: dict[Any, Any]  # Ray's PBT's own
    #: ``last``, ``average`` (over the last ``fitness_reads`` reads) or ``forecast`` (to
    #: ``fitness_horizon``, the run's last step); see :mod:`popmix.tune.fitness`
    fitness: str = "last"
    fitness_reads: int = 3
    fitness_horizon: int = 0
    #: the search's objective (``mean``, ``worst``, ``domain:<name>``), for the paired margin
    objective: str = "mean"
    #: ``search.seed``: with the seed and the decision, what a decision's draws are keyed by
    draw_seed: int = 0

    def _reads_of(self, trial: Any) -> list[dict[str, Any]]:
        reads: dict[Any, list[dict[str, Any]]] = self.__dict__.setdefault("_reads", {})
        if trial not in reads:
            # a resumed search starts with an empty scheduler: its members' reads come back
            # from the record the search kept (``reads-seed<S>.jsonl``)
            if "_recorded" not in self.__dict__:
                self.__dict__["_recorded"] = self._replay()
            reads[trial] = self.__dict__["_recorded"].pop(trial.trial_id, [])
        return reads[trial]

    def _add_read(self, reads: list[dict[str, Any]], read: dict[str, Any]) -> None:
        t = read.get("time")
        if t is not None:
            # a member retried from an older checkpoint reports those steps again: its reads
            # from after that checkpoint are replaced, not counted twice
            reads[:] = [r for r in reads if r.get("time") is None or r["time"] < t]
        reads.append(read)
        if self.fitness != "forecast":  # a forecast fits the member's whole curve
            del reads[: -max(1, int(self.fitness_reads))]

    def _note_read(self, trial: Any, result: Mapping[str, Any]) -> None:
        if "objective" not in result:
            return
        t = result.get(getattr(self, "_time_attr", "training_iteration"))
        read = {"objective": float(result["objective"]), "windows": window_losses(result)}
        read |= {"time": t, "step": result.get("step")}
        self._add_read(self._reads_of(trial), read)
        self._record(trial, {"read": read})

    def _copy_reads(self, trial: Any, donor: Any) -> None:
        """After an exploit the member continues the donor's run: its reads are the donor's."""
        self._reads_of(trial)[:] = [dict(r) for r in self._reads_of(donor)]
        self._record(trial, {"copied_from": donor.trial_id})

    def _record(self, trial: Any, row: dict[str, Any]) -> None:
        folder = getattr(self, "lineage_dir", None)
        if folder is not None:
            with open(Path(folder) / f"reads-seed{_seed_of(trial)}.jsonl", "a") as f:
                f.write(json.dumps({"trial_id": trial.trial_id} | row) + "\n")

    def _replay(self) -> dict[str, list[dict[str, Any]]]:
        """Each member's reads (by trial id) as the record leaves them: its reads and its
        copies of a donor's, in the order they happened."""
        out: dict[str, list[dict[str, Any]]] = {}
        folder = getattr(self, "lineage_dir", None)
        for path in sorted(Path(folder).glob("reads-seed*.jsonl")) if folder else []:
            for line in path.read_text().splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # the last line of a driver killed while writing it
                reads = out.setdefault(row["trial_id"], [])
                if "copied_from" in row:
                    reads[:] = [dict(r) for r in out.get(row["copied_from"], [])]
                else:
                    self._add_read(reads, row["read"])
        return out

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        spec = TrialSpec.from_config(trial.config)
        if not spec.is_member:
            return TrialScheduler.CONTINUE
        self._note_read(trial, result)
        self._seed_now = spec.seed
        t = int(result.get(getattr(self, "_time_attr", "training_iteration"), 0))
        try:
            # Ray's asynchronous PBT decides here, for this member alone
            with seeded_draws(self, spec.seed, [_MEMBER_DRAWS, spec.member, t]):
                return super().on_trial_result(tune_controller, trial, result)  # type: ignore[misc]
        finally:
            self._seed_now = None

    def _save_trial_state(self, state: Any, time: int, result: dict, trial: Any) -> Any:
        # Every score Ray (and PB2's model) keeps goes through here: rank on the fitness.
        return super()._save_trial_state(state, time, self._with_fitness(trial, result), trial)  # type: ignore[misc]

    def _with_fitness(self, trial: Any, result: dict) -> dict:
        """``result`` with its ``objective`` replaced by the member's fitness (the read's own
        kept as ``objective_read``) and its window losses by the same weighted sum of its
        reads' windows, so the paired margin is that of the fitness."""
        reads = self._reads_of(trial)
        if self.fitness == "last" or len(reads) < 2:
            return result
        steps = [r.get("step") for r in reads]
        if self.fitness == "forecast" and (
            None in steps or len(set(steps)) < len(steps) or self.fitness_horizon <= 0
        ):
            return result  # reads without their step (an old result): rank on the read
        w = read_weights(self.fitness, steps, self.fitness_horizon, self.fitness_reads)  # type: ignore[arg-type]
        used = [(wi, r) for wi, r in zip(w, reads) if wi != 0]
        out = dict(result)
        out["objective_read"] = result.get("objective")
        out["objective"] = float(sum(wi * r["objective"] for wi, r in used))
        out["fitness_reads"] = len(used)
        windows = [r["windows"] for _, r in used]
        if all(windows):
            prefix = WINDOWS_KEY + "/"
            for key in [k for k in out if k.startswith(prefix) or k == WINDOWS_KEY]:
                del out[key]
            weights = np.array([wi for wi, _ in used])
            out[WINDOWS_KEY] = {
                d: [float(x) for x in weights @ np.array([win[d] for win in windows])]
                for d in windows[-1]
            }
        return out

    def _quantiles(self) -> tuple[list[Any], list[Any]]:
        # Ray's PBT ranks every trial it tracks; it reads them from _trial_state only, so
        # showing it the deciding member's seed ranks that seed's population alone.
        everyone = self._trial_state
        if self._seed_now is None:
            return super()._quantiles()  # type: ignore[misc]
        self._trial_state = {t: st for t, st in everyone.items() if _seed_of(t) == self._seed_now}
        try:
            return super()._quantiles()  # type: ignore[misc]
        finally:
            self._trial_state = everyone


class _LineageLog:
    """Mixin for PBT/PB2: copy only a donor ahead by more than the margin, log each decision
    to ``lineage_dir`` and tell ``on_exploit``."""

    #: the folder of ``lineage-seed<S>.jsonl`` (and ``rounds-seed<S>.jsonl``), one per seed
    lineage_dir: Path | None = None
    on_exploit: Callable[[dict[str, Any]], None] | None = None
    #: ``auto``, or the margin in nats (0: Ray's rule); see :func:`exploit_margin`
    margin_setting: float | str = 0.0
    objective: str = "mean"
    #: the round being decided (``sync`` rounds), for the rows
    _round_now: int | None = None

    def __setstate__(self, state: dict[str, Any]) -> None:
        from popmix.tune.resume import rebase

        self.__dict__.update(state)
        self.lineage_dir = rebase(getattr(self, "lineage_dir", None))  # resumed elsewhere

    def margins(self, own: Mapping[str, Any], donor: Mapping[str, Any]) -> dict[str, Any]:
        """The margin a decision uses and both of its estimates (``margin_paired`` is None
        where the reads carry no per-window losses to pair)."""
        own_w, donor_w = window_losses(own), window_losses(donor)
        paired = None
        if own_w and donor_w and own_w.keys() == donor_w.keys():
            paired = paired_standard_error(own_w, donor_w, list(own_w), self.objective)
        unpaired = exploit_margin("auto", own.get("objective_se"), donor.get("objective_se"))
        return {
            "margin": exploit_margin(
                self.margin_setting, own.get("objective_se"), donor.get("objective_se"), paired
            ),
            "margin_paired": None if paired is None else EXPLOIT_Z * paired,
            "margin_unpaired": unpaired,
        }

    def _exploit(self, tune_controller: Any, trial: Any, trial_to_clone: Any) -> None:
        donor_state = self._trial_state[trial_to_clone]  # type: ignore[attr-defined]
        own_state = self._trial_state[trial]  # type: ignore[attr-defined]
        own, donor = own_state.last_result or {}, donor_state.last_result or {}
        gain = float(own.get("objective", math.nan)) - float(donor.get("objective", math.nan))
        margins = self.margins(own, donor)
        checkpoint = getattr(getattr(donor_state, "last_checkpoint", None), "path", None)
        row: dict[str, Any] = {
            "time": time.time(),
            "seed": TrialSpec.from_config(trial.config).seed,
            "trial_id": trial.trial_id,
            "donor": trial_to_clone.trial_id,
            "step_before": own.get("step"),
            "donor_step": donor.get("step"),
            "gain": gain,
            **margins,
        }
        if self._round_now is not None:
            row["round"] = self._round_now
        if self.margin_setting != 0 and not gain > margins["margin"]:
            # Within the noise of the two reads: keep training this member as it is.
            self._log(row | {"skipped_within_noise": True})
            return
        member = TrialSpec.from_config(trial.config).member
        super()._exploit(tune_controller, trial, trial_to_clone)  # type: ignore[misc]
        # The new config is a mutated copy of the donor's; the population slot stays ours.
        spec = TrialSpec.from_config(trial.config).replace(member=member)
        trial.set_config({**trial.config, **spec.to_config()})
        copy_reads = getattr(self, "_copy_reads", None)
        if copy_reads is not None:
            copy_reads(trial, trial_to_clone)
        self._log(row | {"new_config": spec.searched(), "checkpoint": checkpoint})

    def _log(self, row: dict[str, Any]) -> None:
        self.__dict__.setdefault("_logged", []).append(row)
        if self.lineage_dir is not None:
            with open(self.lineage_dir / f"lineage-seed{row['seed']}.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")
        if self.on_exploit is not None:
            self.on_exploit(row)


class _RestoredState:
    """Mixin for PBT/PB2: a trial added with a result already gets its PBT state back from
    that result, its place on the perturbation grid from the checkpoint it restarts from, so it
    is neither perturbed at once off the grid nor left out of the quantiles until its next
    report. Two ways in: a search resumed after its driver died (``Tuner.restore`` re-creates
    the scheduler empty, ray-project/ray#30838), and a trial retried after its worker died
    (Tune calls ``on_trial_add`` again, and Ray's PBT resets the trial's state). Either way the
    trial trains on from its latest checkpoint, which may be older than its last result: the
    steps in between are reported again, and a perturbation point among them is one it has
    not passed."""

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        super().on_trial_add(tune_controller, trial)  # type: ignore[misc]
        if not is_member(trial):
            return  # a baseline is never scored: it must not become a donor on a resume
        result = trial.last_result or {}
        state = self._trial_state.get(trial)  # type: ignore[attr-defined]
        time_attr = self._time_attr  # type: ignore[attr-defined]
        if state is None or time_attr not in result or self._metric not in result:  # type: ignore[attr-defined]
            return
        t = restart_time(trial)
        interval = int(self._perturbation_interval)  # type: ignore[attr-defined]
        note_read = getattr(self, "_note_read", None)
        if note_read is not None and t == int(result[time_attr]):
            note_read(trial, result)
        state.last_perturbation_time = t - t % interval
        state.last_train_time = t
        state.last_score = self._metric_op * float(result[self._metric])  # type: ignore[attr-defined]
        state.last_result = dict(result)
        state.last_checkpoint = trial.checkpoint  # a donor at once, like before the stop


def restart_time(trial: Any) -> int:
    """The ``training_iteration`` a trial added again (resumed or retried) trains on from:
    its latest checkpoint's, or 0 when it has none; its last result's when the checkpoint's
    record does not say."""
    reported = int((trial.last_result or {}).get("training_iteration", 0))
    if getattr(trial, "checkpoint", None) is None:
        return 0
    saved = _checkpoint_iteration(trial)
    return reported if saved is None else min(saved, reported)


def _checkpoint_iteration(trial: Any) -> int | None:
    """The ``training_iteration`` of the trial's latest registered checkpoint (None when it
    has none or the record does not say)."""
    manager = getattr(getattr(trial, "run_metadata", None), "checkpoint_manager", None)
    latest = getattr(manager, "latest_checkpoint_result", None)
    metrics = getattr(latest, "metrics", None) or {}
    value = metrics.get("training_iteration")
    return None if value is None else int(value)


class _Rounds:
    """Mixin for PBT/PB2 (``search.rounds: sync``): synchronous generations per seed.

    Why not Ray's own ``synch=True`` as it is: Ray waits for every live trial of the Tuner,
    and popmix's Tuner also holds the baselines (which never reach a perturbation point) and,
    when the cluster holds them, other seeds' populations (which must not wait for one
    another); Ray decides as the last member reports, while the others' pause saves may still
    be in flight, so a bottom member whose own save lands after its exploit continues its own
    weights under the donor's config (the race that removed popmix's first prototype); and a
    restored synchronous run hangs (ray-project/ray#48616). So this mixin keeps Ray's
    machinery for what it does (the ranking, ``_checkpoint_or_exploit``, ``_exploit`` of a
    paused trial, the explore step, ``PAUSE``, ``choose_trial_to_run``) and times it itself:

    1. a member that reaches a perturbation point records its fitness and is paused (Tune
       saves its checkpoint, then marks it ``PAUSED``: a paused member's save is done);
    2. on each of Tune's scheduling steps (:meth:`choose_trial_to_run`), a seed whose live
       members are all paused at the same step is decided: ranked, the bottom quantile
       copies the top (subject to the margin) and explores, one row goes to
       ``rounds-seed<S>.jsonl``;
    3. decided members are handed back to Tune to run; a member still waiting for its seed
       is never chosen. Baselines are never paused; a member that failed for good leaves the
       round (it is not live), and one retried after its worker died rejoins it from its
       last checkpoint, so its round still decides.

    On a resume (``Tuner.restore`` re-creates the scheduler empty), a member whose last
    result is an undecided round's, with that round's checkpoint, comes back paused and
    waiting; the rounds already decided are read from ``rounds-seed<S>.jsonl`` and are never
    decided twice; an exploit decided but not yet in Tune's saved experiment state when the
    driver died (its saves run every few seconds) is applied again from its row.
    """

    _seed_now: int | None = None  # _Population's
    _decided: set[tuple[int, int]]
    #: rows of exploits per decided round, read back on a resume: (seed, time) -> rows
    _exploits_of_round: dict[tuple[int, int], list[dict[str, Any]]]

    def _rounds(self) -> set[tuple[int, int]]:
        if "_decided" not in self.__dict__:
            self._decided = set()
            self._exploits_of_round = {}
            self._read_rounds()
        return self._decided

    def _read_rounds(self) -> None:
        folder = getattr(self, "lineage_dir", None)
        if folder is None or not Path(folder).is_dir():
            return
        for path in sorted(Path(folder).glob("rounds-seed*.jsonl")):
            for line in path.read_text().splitlines():
                if line.strip():
                    row = json.loads(line)
                    self._decided.add((int(row["seed"]), int(row["time"])))
        for path in sorted(Path(folder).glob("lineage-seed*.jsonl")):
            for line in path.read_text().splitlines():
                row = json.loads(line) if line.strip() else {}
                if "round_time" in row and not row.get("skipped_within_noise"):
                    key = (int(row["seed"]), int(row["round_time"]))
                    self._exploits_of_round.setdefault(key, []).append(row)

    def _waiting(self, trial: Any) -> bool:
        """A member paused at a perturbation point of a round not yet decided."""
        state = self._trial_state.get(trial)  # type: ignore[attr-defined]
        return (
            state is not None
            and trial.status == Trial.PAUSED
            and is_member(trial)
            and state.last_train_time > state.last_perturbation_time
        )

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        time_attr, metric = self._time_attr, self._metric  # type: ignore[attr-defined]
        if time_attr not in result or metric not in result:
            return TrialScheduler.CONTINUE
        t = int(result[time_attr])
        state = self._trial_state[trial]  # type: ignore[attr-defined]
        if t < self._burn_in_period:  # type: ignore[attr-defined]
            return TrialScheduler.CONTINUE  # Ray's rule: no member is ranked before it
        if t - state.last_perturbation_time < self._perturbation_interval:  # type: ignore[attr-defined]
            return TrialScheduler.CONTINUE
        if (_seed_of(trial), t) in self._rounds():
            # This round was decided before a resume; the member trained up to it again.
            state.last_perturbation_time = t
            return TrialScheduler.CONTINUE
        self._save_trial_state(state, t, result, trial)  # type: ignore[attr-defined]
        return TrialScheduler.NOOP if trial.status == Trial.PAUSED else TrialScheduler.PAUSE

    def choose_trial_to_run(self, tune_controller: Any) -> Any:
        trials = tune_controller.get_trials()
        by_seed: dict[int, list[Any]] = {}
        for t in trials:
            if is_member(t) and not t.is_finished():
                by_seed.setdefault(_seed_of(t), []).append(t)
        for seed, live in by_seed.items():
            if all(self._waiting(t) for t in live):
                self._decide(tune_controller, seed, live)
        candidates = [
            t
            for t in trials
            if t.status == Trial.PENDING or (t.status == Trial.PAUSED and not self._waiting(t))
        ]
        states = self._trial_state  # type: ignore[attr-defined]
        candidates.sort(key=lambda t: states[t].last_train_time if t in states else 0)
        return candidates[0] if candidates else None

    def _decide(self, tune_controller: Any, seed: int, live: list[Any]) -> None:
        states = self._trial_state  # type: ignore[attr-defined]
        times = {states[t].last_train_time for t in live}
        t_round = max(times)
        if len(times) > 1:
            # Members paused at different rounds (never in a run that started synchronous):
            # let the ones behind catch up; the round is decided when all are at t_round.
            for t in live:
                if states[t].last_train_time < t_round:
                    states[t].last_perturbation_time = states[t].last_train_time
            return
        self._seed_now = seed
        try:
            lower, upper = self._quantiles()  # type: ignore[attr-defined]
        finally:
            self._seed_now = None
        for t in live:
            states[t].last_perturbation_time = t_round
        logged: list[dict[str, Any]] = self.__dict__.setdefault("_logged", [])
        first = len(logged)
        interval = int(self._perturbation_interval)  # type: ignore[attr-defined]
        self._round_now = t_round // interval
        try:
            middle = [t for t in live if t not in upper and t not in lower]
            # the top first: their checkpoints are held before the bottom copies them
            with seeded_draws(self, seed, [_ROUND_DRAWS, self._round_now]):
                for t in upper + middle + lower:
                    self._checkpoint_or_exploit(t, tune_controller, upper, lower)  # type: ignore[attr-defined]
        finally:
            self._round_now = None
        rows = [r for r in logged[first:] if r.get("seed") == seed]
        self._rounds().add((seed, t_round))
        ranked = sorted(live, key=lambda t: -(states[t].last_score or -math.inf))
        row = {
            "time": t_round,
            "seed": seed,
            "round": t_round // interval,
            "step": (states[live[0]].last_result or {}).get("step"),
            "wall_time": time.time(),
            "ranking": [
                {
                    "trial_id": t.trial_id,
                    "member": TrialSpec.from_config(t.config).member,
                    "fitness": -states[t].last_score if states[t].last_score is not None else None,
                }
                for t in ranked
            ],
            "decisions": len(rows),
            "taken": sum(1 for r in rows if not r.get("skipped_within_noise")),
            "skipped_within_noise": sum(1 for r in rows if r.get("skipped_within_noise")),
        }
        folder = getattr(self, "lineage_dir", None)
        if folder is not None:
            with open(Path(folder) / f"rounds-seed{seed}.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")

    def _log(self, row: dict[str, Any]) -> None:
        if self._round_now is not None:
            row = row | {"round_time": self._round_now * int(self._perturbation_interval)}  # type: ignore[attr-defined]
        super()._log(row)  # type: ignore[misc]

    _round_now: int | None = None

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        requeued = trial in self._trial_state  # type: ignore[attr-defined]
        super().on_trial_add(tune_controller, trial)  # type: ignore[misc]
        result = trial.last_result or {}
        time_attr = self._time_attr  # type: ignore[attr-defined]
        state = self._trial_state.get(trial)  # type: ignore[attr-defined]
        if not is_member(trial) or state is None or time_attr not in result:
            return
        t = restart_time(trial)
        interval = int(self._perturbation_interval)  # type: ignore[attr-defined]
        if t <= 0 or t % interval:
            return
        key = (_seed_of(trial), t)
        if key in self._rounds():
            state.last_perturbation_time = t
            self._reapply_exploit(trial, key)
        elif _checkpoint_iteration(trial) == t and trial.status == Trial.PENDING:
            # It waited for this round when the driver stopped (or its worker died after the
            # round's checkpoint was saved): it waits again, paused.
            state.last_perturbation_time = t - interval
            state.last_train_time = t
            if requeued:
                # a retry: Tune has filed it as pending already, so move it through Tune
                tune_controller._set_trial_status(trial, Trial.PAUSED)
            else:
                # a resume: Tune files a trial by its status after this hook
                trial.set_status(Trial.PAUSED)

    def _reapply_exploit(self, trial: Any, key: tuple[int, int]) -> None:
        """An exploit of a decided round that Tune's saved state does not hold (the driver
        died between the decision and Tune's next save): the new config and the donor's
        checkpoint again, from the lineage row."""
        rows = [r for r in self._exploits_of_round.get(key, []) if r["trial_id"] == trial.trial_id]
        if not rows or not rows[-1].get("checkpoint"):
            return
        row = rows[-1]
        spec = TrialSpec.from_config(trial.config)
        if spec.searched() == row.get("new_config"):
            return  # Tune saved its state after the exploit
        from ray.train._internal.session import _TrainingResult
        from ray.tune import Checkpoint

        trial.set_config({**trial.config, **spec.replace(params=row["new_config"]).to_config()})
        fs = getattr(getattr(trial, "storage", None), "storage_filesystem", None)
        checkpoint = Checkpoint(row["checkpoint"], filesystem=fs)
        # where Ray's own PBT._exploit puts the donor's checkpoint
        trial.run_metadata.checkpoint_manager._latest_checkpoint_result = _TrainingResult(
            checkpoint=checkpoint, metrics={"training_iteration": key[1]}
        )


class PopulationPBT(_Population, _RestoredState, _LineageLog, PopulationBasedTraining):
    """Ray's PopulationBasedTraining over the population members only (``rounds: async``)."""


class RoundsPBT(_Population, _Rounds, _RestoredState, _LineageLog, PopulationBasedTraining):
    """PBT in synchronous generations per seed (``rounds: sync``; see :class:`_Rounds`)."""

    def __init__(self, **kwargs: Any) -> None:
        # synch: Ray's _exploit then accepts a paused member (every member of a decided round)
        super().__init__(synch=True, **kwargs)


def make_pbt(rounds: str = "sync", **kwargs: Any) -> Any:
    """Ray's PBT over the population: in synchronous rounds or Ray's asynchronous rule."""
    return RoundsPBT(**kwargs) if rounds == "sync" else PopulationPBT(**kwargs)


def make_pb2(rounds: str = "async", **kwargs: Any) -> Any:
    """Ray's PB2 over the population members only (needs scikit-learn)."""
    try:
        import sklearn  # noqa: F401
        from ray.tune.schedulers.pb2 import PB2
    except ImportError:
        raise RuntimeError(
            "searcher pb2 needs scikit-learn: pip install scikit-learn (or use --searcher pbt)"
        ) from None

    class _BaselinesOutOfPB2:
        def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
            # PB2 fills every searched key missing from a config from its bounds; a baseline's
            # spec has none of them (it searches nothing), so only PBT's bookkeeping applies.
            if is_member(trial):
                super().on_trial_add(tune_controller, trial)  # type: ignore[misc]
            else:
                PopulationBasedTraining.on_trial_add(self, tune_controller, trial)  # type: ignore[arg-type]

    # PB2's constructor does not take Ray's burn_in_period; its PBT base reads the attribute
    burn_in = kwargs.pop("burn_in_period", 0)
    if rounds == "sync":

        class RoundsPB2(
            _Population, _Rounds, _RestoredState, _LineageLog, _BaselinesOutOfPB2, PB2
        ):
            def __init__(self, **kw: Any) -> None:
                super().__init__(synch=True, **kw)

        made: Any = RoundsPB2(**kwargs)
    else:

        class PopulationPB2(_Population, _RestoredState, _LineageLog, _BaselinesOutOfPB2, PB2):
            pass

        made = PopulationPB2(**kwargs)
    made._burn_in_period = burn_in
    return made


class PopulationASHA(_Population, ASHAScheduler):
    """ASHA early stopping for searched trials; baselines always run to the end."""


class WithFixedTrials(Searcher):
    """A searcher that first hands out fixed trials (the baselines), then asks ``inner``.

    ``inner`` holds the search space itself (the searched values under ``"spec"``) and the
    Tuner none: Tune merges every suggestion into the Tuner's space, which would give the
    baselines the members' searched keys. Each suggestion of ``inner`` becomes a complete
    spec: ``member`` (the population's method and seed) numbered like a population, with the
    suggested values as its parameters. The fixed trials' results are not told to ``inner``,
    so they never shape its model.

    ``later`` (the swarm's runs) are fixed trials handed out after the ``members`` members
    have been: the population starts beside the baselines, as on PBT's grid, instead of
    waiting behind every swarm run.
    """

    def __init__(
        self,
        inner: Searcher,
        fixed: list[TrialSpec],
        member: TrialSpec,
        later: list[TrialSpec] | None = None,
        members: int = 0,
    ) -> None:
        super().__init__(metric=inner.metric, mode=inner.mode)
        self.inner = inner
        self.fixed = list(fixed)
        self.later = list(later or [])
        self.member = member
        self.members = members
        self._fixed_ids: set[str] = set()
        self._members = 0

    def set_search_properties(self, metric: Any, mode: Any, config: dict, **spec: Any) -> bool:
        ok = self.inner.set_search_properties(metric, mode, config, **spec)
        self._metric, self._mode = self.inner.metric, self.inner.mode
        return ok

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if not self.fixed and self.later and self._members >= self.members:
            self.fixed.append(self.later.pop(0))
        if self.fixed:
            self._fixed_ids.add(trial_id)
            return self.fixed.pop(0).to_config()
        suggestion = self.inner.suggest(trial_id)
        if isinstance(suggestion, dict):
            searched = suggestion.get(CONFIG_KEY, {})
            spec = self.member.replace(member=self._members, params=searched)
            self._members += 1
            return spec.to_config()
        return suggestion

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id not in self._fixed_ids:
            self.inner.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        if trial_id not in self._fixed_ids:
            self.inner.on_trial_complete(trial_id, result, error)

    def save(self, checkpoint_path: str) -> None:
        self.inner.save(checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        self.inner.restore(checkpoint_path)
