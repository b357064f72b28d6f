"""Ray's schedulers and Optuna searcher, limited to the searched population.

PBT treats every trial of its Tuner as population. popmix runs the baselines in the same Tuner
(so they share the cluster with the population at once) and keeps them out of the population:
a trial whose spec has ``member < 0`` is never scored, never a donor and never exploited, and
ASHA never stops it. The schedulers are Ray's own; these subclasses only filter and log.

A member copies a donor only when the donor is ahead by more than ``exploit_margin``
(:meth:`_LineageLog.margin`): on a noisy validation read the bottom quantile would otherwise
copy members that are better by luck of the windows alone.

Files written: ``lineage-seed<S>.jsonl`` in the experiment folder, one JSON row per exploit
decision (``time``, ``seed``, ``trial_id``, ``donor``, both steps, ``gain`` and ``margin`` in
nats, and either the new searched values or ``skipped_within_noise: true``).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ray.tune.schedulers import ASHAScheduler, PopulationBasedTraining, TrialScheduler
from ray.tune.search import Searcher

from popmix.config import EXPLOIT_Z
from popmix.records.trial import CONFIG_KEY, TrialSpec


def is_member(trial: Any) -> bool:
    return TrialSpec.from_config(trial.config).is_member


class _PopulationOnly:
    """Mixin: results of baseline trials pass straight through as CONTINUE, and a member is
    ranked (and copies) only within its own seed's population when a Tuner runs several."""

    _seed_now: int | None = None
    _trial_state: dict[Any, Any]  # Ray's PBT's own

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        spec = TrialSpec.from_config(trial.config)
        if not spec.is_member:
            return TrialScheduler.CONTINUE
        self._seed_now = spec.seed
        try:
            return super().on_trial_result(tune_controller, trial, result)  # type: ignore[misc]
        finally:
            self._seed_now = None

    def _quantiles(self) -> tuple[list[Any], list[Any]]:
        # Ray's PBT ranks every trial it tracks; it reads them from _trial_state only, so
        # showing it the deciding member's seed ranks that seed's population alone.
        everyone = self._trial_state
        if self._seed_now is None:
            return super()._quantiles()  # type: ignore[misc]
        self._trial_state = {
            t: st
            for t, st in everyone.items()
            if TrialSpec.from_config(t.config).seed == self._seed_now
        }
        try:
            return super()._quantiles()  # type: ignore[misc]
        finally:
            self._trial_state = everyone


def _seed_of(trial: Any) -> int:
    return TrialSpec.from_config(trial.config).seed


def exploit_margin(setting: float | str, own_se: float | None, donor_se: float | None) -> float:
    """The lead (nats) a donor needs before a member copies it: ``setting`` itself, or for
    ``auto`` ``EXPLOIT_Z`` times the combined standard error sqrt(se_own^2 + se_donor^2) of
    the two validation reads (0 where a read has no standard error)."""
    if setting != "auto":
        return float(setting)
    own, donor = own_se or 0.0, donor_se or 0.0
    return EXPLOIT_Z * math.sqrt(own * own + donor * donor)


class _LineageLog:
    """Mixin for PBT/PB2: copy only a donor ahead by more than the margin, log each decision
    to ``lineage_path`` and tell ``on_exploit``."""

    #: the folder of ``lineage-seed<S>.jsonl``, one file per seed
    lineage_dir: Path | None = None
    on_exploit: Callable[[dict[str, Any]], None] | None = None
    #: ``auto``, or the margin in nats (0: Ray's rule); see :func:`exploit_margin`
    margin_setting: float | str = 0.0

    def __setstate__(self, state: dict[str, Any]) -> None:
        from popmix.tune.resume import rebase

        self.__dict__.update(state)
        self.lineage_dir = rebase(getattr(self, "lineage_dir", None))  # resumed elsewhere

    def _exploit(self, tune_controller: Any, trial: Any, trial_to_clone: Any) -> None:
        donor_state = self._trial_state[trial_to_clone]  # type: ignore[attr-defined]
        own_state = self._trial_state[trial]  # type: ignore[attr-defined]
        own, donor = own_state.last_result or {}, donor_state.last_result or {}
        gain = float(own.get("objective", math.nan)) - float(donor.get("objective", math.nan))
        margin = exploit_margin(
            self.margin_setting, own.get("objective_se"), donor.get("objective_se")
        )
        row: dict[str, Any] = {
            "time": time.time(),
            "seed": TrialSpec.from_config(trial.config).seed,
            "trial_id": trial.trial_id,
            "donor": trial_to_clone.trial_id,
            "step_before": own.get("step"),
            "donor_step": donor.get("step"),
            "gain": gain,
            "margin": margin,
        }
        if self.margin_setting != 0 and not gain > margin:
            # Within the noise of the two reads: keep training this member as it is.
            self._log(row | {"skipped_within_noise": True})
            return
        member = TrialSpec.from_config(trial.config).member
        super()._exploit(tune_controller, trial, trial_to_clone)  # type: ignore[misc]
        # The new config is a mutated copy of the donor's; the population slot stays ours.
        spec = TrialSpec.from_config(trial.config).replace(member=member)
        trial.set_config({**trial.config, **spec.to_config()})
        self._log(row | {"new_config": spec.searched()})

    def _log(self, row: dict[str, Any]) -> None:
        if self.lineage_dir is not None:
            with open(self.lineage_dir / f"lineage-seed{row['seed']}.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")
        if self.on_exploit is not None:
            self.on_exploit(row)


class _RestoredState:
    """Mixin for PBT/PB2: a trial added with a result already (a search resumed after its
    driver died: ``Tuner.restore`` re-creates the scheduler empty, ray-project/ray#30838)
    gets its PBT state back from that result, the last one Tune saved: its score and its
    place on the perturbation grid, so it is neither perturbed at once off the grid nor
    left out of the quantiles until its next report."""

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        super().on_trial_add(tune_controller, trial)  # type: ignore[misc]
        if not is_member(trial):
            return  # a baseline is never scored: it must not become a donor on a resume
        result = trial.last_result or {}
        state = self._trial_state.get(trial)  # type: ignore[attr-defined]
        time_attr = self._time_attr  # type: ignore[attr-defined]
        if state is None or time_attr not in result or self._metric not in result:  # type: ignore[attr-defined]
            return
        t = int(result[time_attr])
        interval = int(self._perturbation_interval)  # type: ignore[attr-defined]
        state.last_perturbation_time = t - t % interval
        state.last_train_time = t
        state.last_score = self._metric_op * float(result[self._metric])  # type: ignore[attr-defined]
        state.last_result = dict(result)
        state.last_checkpoint = trial.checkpoint  # a donor at once, like before the stop


class PopulationPBT(_PopulationOnly, _RestoredState, _LineageLog, PopulationBasedTraining):
    """Ray's PopulationBasedTraining over the population members only."""


def make_pb2(**kwargs: Any) -> Any:
    """Ray's PB2 over the population members only (needs scikit-learn)."""
    try:
        import sklearn  # noqa: F401
        from ray.tune.schedulers.pb2 import PB2
    except ImportError:
        raise RuntimeError(
            "searcher pb2 needs scikit-learn: pip install scikit-learn (or use --searcher pbt)"
        ) from None

    class PopulationPB2(_PopulationOnly, _RestoredState, _LineageLog, PB2):
        def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
            # PB2 fills every searched key missing from a config from its bounds; a baseline's
            # spec has none of them (it searches nothing), so only PBT's bookkeeping applies.
            if is_member(trial):
                super().on_trial_add(tune_controller, trial)
            else:
                PopulationBasedTraining.on_trial_add(self, tune_controller, trial)

    return PopulationPB2(**kwargs)


class PopulationASHA(_PopulationOnly, ASHAScheduler):
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
