"""One way to build and run a Tuner (:func:`run_tuner`), for ``popmix search``, ``popmix
calibrate`` and ``popmix confirm``, and the plain per-trial records it returns
(:func:`trial_records`).

Every Tuner popmix runs has the same loggers (Tune's CSV and JSON, popmix's TensorBoard), step
ledger, trial names (``<method>_<trial id>``), failure handling and Ctrl-C: the command's
first Ctrl-C reaches Tune as its own interruption (:class:`popmix.tune.callbacks.
ForwardInterrupt`), so Tune saves its state and leaves unfinished trials unfinished (a search
can be resumed), and :func:`trial_records` marks them ``interrupted``. What differs between
Tuners is a :class:`TunerRun`: its name and folder, its trials (a searcher's
:class:`popmix.tune.searchers.TunerParts`) and how often its trials checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ray import tune
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

from popmix.records.trial import TrialSpec
from popmix.records.weights import WeightsSchedule
from popmix.tune.callbacks import CheckpointRetention, ForwardInterrupt, Interrupted, StepLedger
from popmix.tune.searchers import TunerParts
from popmix.tune.tensorboard import TensorBoardLogger


@dataclass(frozen=True)
class TunerRun:
    """What one Tuner runs, and where.

    Args:
        name: Tune's experiment folder (``seed0``, ``setting1``, ``confirm``).
        storage: the folder it is in (a path, or a path in ``filesystem``).
        tensorboard: the folder of its trials' TensorBoard runs (``seed<S>/<trial name>``).
        parts: its trials, scheduler and search algorithm.
        max_failures: restarts of a trial whose worker process or node dies.
        filesystem: the pyarrow filesystem of a ``--storage`` URI (None: a local folder).
        ledger: the step ledger's file, kept for a resume (None: in memory).
        every_report: checkpoint every report (a search: a dead worker resumes there, and
            PBT perturbs on reports; old checkpoints go through
            :class:`popmix.tune.callbacks.CheckpointRetention`); else only the last one.
        max_concurrent: trials that run at once (None: as many as the cluster holds).
        callbacks: more Tune callbacks (the progress printer, the storage mirror).
    """

    name: str
    storage: str
    tensorboard: Path
    parts: TunerParts
    max_failures: int = 3
    filesystem: Any = None
    ledger: Path | None = None
    every_report: bool = False
    max_concurrent: int | None = None
    callbacks: tuple[Any, ...] = ()

    @property
    def folder(self) -> str:
        return f"{self.storage}/{self.name}"


def _trial_name(trial: Any) -> str:
    return f"{TrialSpec.from_config(trial.config).method}_{trial.trial_id}"


def _new_tuner(trainable: Any, run: TunerRun, ledger: Any, interrupted: Interrupted) -> Any:
    parts = run.parts
    callbacks: list[Any] = [
        ForwardInterrupt(interrupted),
        CSVLoggerCallback(),
        JsonLoggerCallback(),
        TensorBoardLogger(run.tensorboard),
        ledger,
    ]
    if run.every_report:
        checkpoints = tune.CheckpointConfig(
            num_to_keep=None, checkpoint_frequency=1, checkpoint_at_end=True
        )
        callbacks.append(CheckpointRetention(parts.scheduler))
    else:
        checkpoints = tune.CheckpointConfig(num_to_keep=1, checkpoint_at_end=True)
    return tune.Tuner(
        trainable,
        param_space=parts.param_space,
        tune_config=tune.TuneConfig(
            metric="objective",
            mode="min",
            scheduler=parts.scheduler,
            search_alg=parts.search_alg,
            num_samples=parts.num_samples,
            max_concurrent_trials=run.max_concurrent,
            reuse_actors=True,
            trial_name_creator=_trial_name,
            trial_dirname_creator=_trial_name,
        ),
        run_config=tune.RunConfig(
            name=run.name,
            storage_path=run.storage,
            storage_filesystem=run.filesystem,
            verbose=0,
            callbacks=[*callbacks, *run.callbacks],
            checkpoint_config=checkpoints,
            failure_config=tune.FailureConfig(max_failures=run.max_failures),
            sync_config=tune.SyncConfig(sync_period=10),
        ),
    )


def run_tuner(
    trainable: Any, run: TunerRun, interrupted: Interrupted, resume: bool = False
) -> list[dict[str, Any]]:
    """Build (or, with ``resume``, restore) the Tuner of ``run``, fit it, and return a record
    per trial (:func:`trial_records`).

    On a resume, the Tuner Tune saved in the run's folder goes on (unfinished and errored
    trials continue from their last checkpoints) where there is one; Tune's own copy of the
    callbacks, the stopper and the scheduler come back from ``tuner.pkl``, and the ledger,
    TensorBoard and PBT's per-trial state continue from what popmix saved
    (:mod:`popmix.tune.resume`).
    """
    ledger = StepLedger(run.ledger)
    if resume and tune.Tuner.can_restore(run.folder, storage_filesystem=run.filesystem):
        tuner = tune.Tuner.restore(
            run.folder,
            trainable,
            resume_unfinished=True,
            resume_errored=True,
            storage_filesystem=run.filesystem,
        )
    else:
        tuner = _new_tuner(trainable, run, ledger, interrupted)
    grid = tuner.fit()
    ledger.load()  # what the Tuner's own copy of the ledger counted
    return trial_records(grid, ledger, interrupted=interrupted.is_set())


def trial_records(grid: Any, ledger: Any, interrupted: bool = False) -> list[dict[str, Any]]:
    """Plain per-trial records from a ResultGrid (what :mod:`popmix.tune.summarize` reads):
    the trial's spec, status, final metrics, the ledger's steps and times, its final
    schedule, its error's line."""
    records = []
    for result in grid:
        known_id, known_config = ledger.trials.get(result.path, (None, {}))
        config = result.config or known_config
        spec = TrialSpec.from_config(config) if config else TrialSpec("?")
        metrics = dict(result.metrics or {})
        trial_id = metrics.get("trial_id") or known_id or result.path
        schedule, checkpoint = None, None
        if result.checkpoint is not None:
            checkpoint = result.checkpoint.path  # its final one (DoReMi's reference)
            with result.checkpoint.as_directory() as d:
                p = Path(d, "schedule.json")
                if p.is_file():
                    schedule = WeightsSchedule.read(p)
        if result.error is not None:
            status = "error"
        elif metrics.get("diverged"):
            status = "diverged"
        elif "test_mean_ppl" in metrics:
            status = "ok"
        else:
            status = "interrupted" if interrupted else "incomplete"
        records.append(
            {
                "trial_id": trial_id,
                # a member's method is its searcher's name, the population's label
                "method": spec.method,
                "seed": spec.seed,
                "member": spec.member,
                "policy": spec.policy,
                "draw": spec.draw,
                "run_seed": spec.run_seed,
                "status": status,
                "metrics": {k: v for k, v in metrics.items() if k != "config"},
                "train_steps": ledger.steps.get(trial_id),
                "train_time_s": ledger.train_time.get(trial_id),
                "wall_time_s": ledger.wall_time(trial_id),
                "retries": ledger.retries.get(trial_id, 0),
                "schedule": schedule,
                "params": dict(spec.params),
                "error": None if result.error is None else _error_line(result.error),
                "path": result.path,
                "checkpoint": checkpoint,
            }
        )
    return records


def _error_line(error: BaseException) -> str:
    """The line of a trial's error that names its cause: Ray wraps the trial's own exception
    (e.g. popmix's one-line DeviceError) below its own first line ("The actor died because
    of an error raised in its creation task..."), so the last non-empty line."""
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    return (lines[-1] if lines else type(error).__name__)[:300]


__all__ = ["TunerRun", "run_tuner", "trial_records"]
