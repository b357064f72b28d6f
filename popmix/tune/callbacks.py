"""The Tune callbacks popmix adds to its Tuners, and Ctrl-C.

- :class:`StepLedger`: optimizer steps, training seconds and wall-clock time per trial;
- :class:`ProgressPrinter`: one short line per report, exploit and trial end;
- :class:`CheckpointRetention`: deletes a trial's old checkpoints in place of ``num_to_keep``;
- :class:`MirrorStorage`: mirrors the driver's files to a ``--storage`` URI;
- :func:`catch_sigint`, :class:`Interrupted` and :class:`ForwardInterrupt`: the first Ctrl-C
  ends the whole command the way a resume needs, the second at once.

(TensorBoard's callback is :class:`popmix.tune.tensorboard.TensorBoardLogger`.) This module
imports Ray: every class here is a Tune callback or serves one.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ray.tune import Callback

from popmix._util.atomic import write_json
from popmix._util.progress import StepsProgress
from popmix.records.trial import TrialSpec
from popmix.tune.resume import rebase
from popmix.tune.storage import MIRROR_EVERY_S, RemoteStorage, in_use, prune


class StepLedger(Callback):
    """Optimizer steps, training seconds and wall-clock time of each trial, from the driver's
    stream of results (replays after an exploit included).

    A Tune callback: trial files can be rewritten when PBT restores a trial, the driver's
    stream of results cannot. The wall-clock time runs from a trial's first start to its last
    result or its end. (Ray's ``time_total_s`` is no trial's total: it counts only time spent
    inside ``step`` and, after a PBT exploit, continues the donor's count.)

    With a ``path``, the ledger is kept in that JSON file after every event and read back when
    a Tuner starts (``setup``): a search resumed after its driver was killed
    (``popmix search --resume``) continues the counts, whose copy of this callback Tune
    unpickles from ``tuner.pkl`` as it was when the search began. Steps trained again after a
    resume (those after a trial's last saved checkpoint) are counted: they were trained.
    Times are wall-clock (``time.time``), so a trial's wall time spans the resume.
    """

    def __init__(self, path: Path | None = None, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.clock = clock
        self.steps: dict[str, int] = {}
        self.train_time: dict[str, float] = {}
        self.started: dict[str, float] = {}
        self.last_seen: dict[str, float] = {}
        # trial path -> (trial_id, config): a trial stopped before its first report
        # has neither in its Result
        self.trials: dict[str, tuple[str, dict[str, Any]]] = {}
        # restarts after a dead worker process or node (FailureConfig)
        self.retries: dict[str, int] = {}
        self.load()

    _FIELDS = ("steps", "train_time", "started", "last_seen", "retries")

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.path = rebase(self.path)  # resumed in another folder (tune.resume)

    def load(self) -> None:
        if self.path is None or not self.path.is_file():
            return
        saved = json.loads(self.path.read_text())
        for key in self._FIELDS:
            getattr(self, key).update(saved.get(key, {}))
        self.trials.update({p: (t, c) for p, (t, c) in saved.get("trials", {}).items()})

    def save(self) -> None:
        if self.path is None:
            return
        data = {key: getattr(self, key) for key in self._FIELDS}
        data["trials"] = self.trials
        write_json(self.path, data, default=str)  # a kill leaves the previous one

    def setup(self, **info):
        self.load()

    def wall_time(self, trial_id: str) -> float | None:
        if trial_id not in self.started or trial_id not in self.last_seen:
            return None
        return self.last_seen[trial_id] - self.started[trial_id]

    def _seen(self, trial: Any) -> None:
        now = self.clock()
        self.started.setdefault(trial.trial_id, now)
        self.last_seen[trial.trial_id] = now
        self.trials[trial.path] = (trial.trial_id, trial.config)

    def on_experiment_end(self, trials, **info):
        self.trials.update({t.path: (t.trial_id, t.config) for t in trials})
        self.save()

    def on_trial_start(self, iteration, trials, trial, **info):
        self.started.setdefault(trial.trial_id, self.clock())
        self.trials[trial.path] = (trial.trial_id, trial.config)
        self.save()

    def on_trial_result(self, iteration, trials, trial, result, **info):
        tid = trial.trial_id
        self._seen(trial)
        self.steps[tid] = self.steps.get(tid, 0) + int(result.get("steps_this_report", 0))
        t = float(result.get("time_train_s", 0.0))
        self.train_time[tid] = self.train_time.get(tid, 0.0) + t
        self.save()

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._seen(trial)
        self.save()

    def on_trial_recover(self, iteration, trials, trial, **info):
        self.retries[trial.trial_id] = self.retries.get(trial.trial_id, 0) + 1
        self.save()

    def on_trial_error(self, iteration, trials, trial, **info):
        self._seen(trial)
        self.save()


class Interrupted:
    """Set by the first Ctrl-C of a command (a ``threading.Event`` with a printed note naming
    ``command``, e.g. ``popmix search``)."""

    def __init__(self, command: str = "popmix") -> None:
        self._event = threading.Event()
        self.command = command

    def is_set(self) -> bool:
        return self._event.is_set()

    # Tune pickles the callbacks (ForwardInterrupt and its flag) into tuner.pkl. A copy
    # unpickled by Tuner.restore (popmix search --resume) shares the running command's flag,
    # so Ctrl-C stops the resumed trials.
    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        current = Interrupted.current
        self._event = current._event if current is not None else threading.Event()
        self.command = current.command if current is not None else "popmix"

    #: the flag of the command running in this process (set by :func:`catch_sigint`)
    current: Interrupted | None = None

    #: the signal that set the last command's flag (the CLI exits 128 + it: 130, 143)
    last_signal: int | None = None

    def __call__(self, signum: int, frame: Any) -> None:
        if self._event.is_set():
            raise KeyboardInterrupt  # the second Ctrl-C: stop at once
        self._event.set()
        Interrupted.last_signal = signum
        what, again = (
            ("terminated", "a second SIGTERM") if signum == signal.SIGTERM else
            ("interrupted", "Ctrl-C again")
        )  # fmt: skip
        print(
            f"{self.command}: {what}; stopping all trials and writing what finished "
            f"({again} to quit at once)",
            file=sys.stderr,
            flush=True,
        )


class ForwardInterrupt(Callback):
    """Hands the command's Ctrl-C to Tune's own interruption.

    Tune ends ``fit()`` on SIGUSR1 (and on SIGINT, whose handler popmix takes for the whole
    command) the way a resume needs: it saves the experiment state and leaves unfinished
    trials unfinished, where a stopper would mark them terminated and ``Tuner.restore``
    would never continue them. The signal is raised from the controller's loop (the main
    thread), once Tune's handler is in place.
    """

    def __init__(self, flag: Interrupted) -> None:
        self.flag = flag
        self.sent = False

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        handler = signal.getsignal(signal.SIGUSR1)
        if self.flag.is_set() and not self.sent and callable(handler):
            self.sent = True
            signal.raise_signal(signal.SIGUSR1)


@contextlib.contextmanager
def catch_sigint(command: str = "popmix") -> Iterator[Interrupted]:
    """Make Ctrl-C end the whole command (``popmix search``, ``calibrate``, ``confirm``), not
    only its running Tuner; a SIGTERM to the driver (``kill PID``) ends it the same way, so
    what finished is written, marked interrupted, and can be resumed. (Ray's driver takes
    SIGTERM to ``sys.exit``, which wrote a summary that claimed a finished search and could
    not be resumed. A SIGTERM to the whole process group, as ``timeout`` sends it, also ends
    Ray's own processes; the driver then dies with them, as after ``kill -9``.)

    Tune's own SIGINT handler ends one ``Tuner.fit()`` and lets the caller go on (the next
    seed's Tuner would start); popmix takes SIGINT for the whole command, which starts no
    further Tuner, and :func:`popmix.tune.runner.run_tuner` ends the running one through
    :class:`ForwardInterrupt`.
    """
    flag = Interrupted(command)
    Interrupted.current = flag
    if threading.current_thread() is not threading.main_thread():
        try:
            yield flag  # signal handlers can only be set from the main thread
        finally:
            Interrupted.current = None
        return
    previous_env = os.environ.get("TUNE_DISABLE_SIGINT_HANDLER")
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    Interrupted.last_signal = None
    previous = signal.signal(signal.SIGINT, flag)
    previous_term = signal.signal(signal.SIGTERM, flag)
    try:
        yield flag
    finally:
        Interrupted.current = None
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, previous_term)
        if previous_env is None:
            os.environ.pop("TUNE_DISABLE_SIGINT_HANDLER", None)
        else:
            os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = previous_env


def trial_label(config: dict[str, Any], seed: bool = False) -> str:
    """The trial's name (:attr:`TrialSpec.name`), with ``s<seed>`` where seeds share a run."""
    spec = TrialSpec.from_config(config)
    return f"{spec.name} s{spec.seed}" if seed else spec.name


class ProgressPrinter(Callback):
    """Prints ``[mm:ss] label step s/N objective x`` as trials report, and trial ends; with
    ``overall`` (the whole search's steps, shared by every seed group's printer), an
    aggregate line ``[mm:ss] all  <group>: P% of all N optimizer steps done, about m:ss left``
    at most every ``overall_every_s`` seconds and when a trial ends."""

    def __init__(
        self,
        total_steps: int,
        every_report: bool = True,
        seed_in_label: bool = False,
        overall: StepsProgress | None = None,
        group: str = "",
        overall_every_s: float = 15.0,
    ) -> None:
        self.total_steps = total_steps
        self.every_report = every_report  # False: only each trial's end
        self.seed_in_label = seed_in_label
        self.start = time.time()
        self.labels: dict[str, str] = {}
        self.overall = overall
        self.group = group  # which seed(s) of how many, for the aggregate line
        self.overall_every_s = overall_every_s

    def _print_overall(self, force: bool = False) -> None:
        if self.overall is None:
            return
        # a trial's end always shows it; between ends, no more than one every overall_every_s
        if self.overall.due(0.0 if force else self.overall_every_s):
            where = f"{self.group}: " if self.group else ""
            self._print(f"{'all':<16} {where}{self.overall.line()}")

    def _print(self, text: str) -> None:
        elapsed = int(time.time() - self.start)
        print(f"  [{elapsed // 60:02d}:{elapsed % 60:02d}] {text}", file=sys.stdout, flush=True)

    def _label(self, trial: Any) -> str:
        if trial.trial_id not in self.labels:
            self.labels[trial.trial_id] = trial_label(trial.config, self.seed_in_label)
        return self.labels[trial.trial_id]

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info):
        if self.overall is not None:
            self.overall.add(int(result.get("steps_this_report", 0)))
        if not self.every_report:
            return
        obj = result.get("objective")
        obj_s = "nan" if obj is None or not math.isfinite(obj) else f"{obj:.4f}"
        extra = f"  T {result['temperature']:.2f}" if "temperature" in result else ""
        total = TrialSpec.from_config(trial.config).steps or self.total_steps  # a swarm run's
        self._print(
            f"{self._label(trial):<16} step {result.get('step', 0):>6}/{total}  "
            f"objective {obj_s}{extra}"
        )
        self._print_overall()

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info):
        r = trial.last_result or {}
        if r.get("diverged"):
            self._print(f"{self._label(trial):<16} diverged: {r.get('error', '')}")
        elif "test_mean_ppl" in r:
            self._print(
                f"{self._label(trial):<16} done: test mean ppl {r['test_mean_ppl']:.3f}, "
                f"worst {r['test_worst_ppl']:.3f}"
            )
        self._print_overall(force=True)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info):
        self._print(f"{self._label(trial):<16} failed (see {trial.path} for its error)")

    def exploit(self, row: dict[str, Any]) -> None:
        target = self.labels.get(row["trial_id"], row["trial_id"])
        donor = self.labels.get(row["donor"], row["donor"])
        lead = ""
        if row.get("gain") is not None and row.get("margin") is not None:
            lead = f" (ahead by {row['gain']:.4f}, margin {row['margin']:.4f})"
        if row.get("skipped_within_noise"):
            self._print(f"exploit skipped: {target} keeps its run, {donor} within noise{lead}")
        else:
            self._print(f"exploit: {target} copies {donor} at step {row.get('donor_step')}{lead}")


class MirrorStorage(Callback):
    """Mirrors the driver's files to a ``--storage`` URI at most every
    :data:`popmix.tune.storage.MIRROR_EVERY_S` s and when its experiment ends, so a killed
    driver leaves them at the storage."""

    def __init__(self, storage: RemoteStorage, local: Path, name: str) -> None:
        self.storage, self.local, self.name = storage, local, name
        self.last = time.monotonic()

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.local = rebase(self.local)  # resumed on another machine
        self.last = time.monotonic()

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        if time.monotonic() - self.last >= MIRROR_EVERY_S:
            self.last = time.monotonic()
            self.storage.upload(self.local, self.name)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.storage.upload(self.local, self.name)


class CheckpointRetention(Callback):
    """Deletes a trial's old checkpoints, in place of Tune's
    ``num_to_keep``.

    Tune deletes a checkpoint as soon as ``num_to_keep`` newer ones exist, but saves its
    experiment state (which names each trial's latest checkpoint) only every few seconds
    (``TUNE_GLOBAL_CHECKPOINT_S``). A driver killed in between leaves a state naming a
    checkpoint that is gone, and Tune cannot resume that trial. So popmix keeps, per trial,
    the :data:`~popmix.tune.storage.KEEP_NEWEST` newest checkpoints and every one written in
    the last :data:`~popmix.tune.storage.KEEP_YOUNGER_S` seconds (several state saves), and
    deletes the rest; Tune itself keeps all (``num_to_keep=None``).

    It also keeps every checkpoint still in use (:func:`~popmix.tune.storage.in_use`): each
    trial's latest, which for a member that just copied a donor is the donor's, and, with
    ``scheduler`` (Ray's PBT), the checkpoint PBT holds for each top member. That one was
    saved at the member's last perturbation decision, not its latest save, so under load it
    can be older than both rules above; deleted, the next exploit of that donor fails ("does
    not exist on storage anymore", seen in a 3-seed search on 2 loaded cores).
    """

    def __init__(self, scheduler: Any = None) -> None:
        # checkpoint path -> when this process saw it written: an object store's
        # "folders" (S3, GCS) have no modification time of their own
        self.seen: dict[str, float] = {}
        self.scheduler = scheduler

    def on_checkpoint(self, iteration: int, trials: list, trial: Any, checkpoint: Any, **info):
        self.seen[checkpoint.path.rstrip("/")] = time.time()
        try:
            prune(
                checkpoint.filesystem,
                checkpoint.path.rsplit("/", 1)[0],
                seen=self.seen,
                keep=in_use(trials, self.scheduler),
            )
        except Exception as e:  # a checkpoint left behind costs space, never a search
            print(f"popmix: could not prune old checkpoints: {e}", file=sys.stderr)


__all__ = [
    "CheckpointRetention",
    "ForwardInterrupt",
    "Interrupted",
    "MirrorStorage",
    "ProgressPrinter",
    "StepLedger",
    "catch_sigint",
    "trial_label",
]
