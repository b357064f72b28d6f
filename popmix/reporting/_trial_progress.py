"""Readable progress for ``popmix search``: one short line per report, exploit and end.

A Ray Tune callback, so this module imports Ray; :mod:`popmix._util.progress` re-exports it
on first use, and its progress bar does not need Ray.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

from ray.tune import Callback

from popmix.records.trial import TrialSpec


def trial_label(config: dict[str, Any], seed: bool = False) -> str:
    """The trial's name (:attr:`TrialSpec.name`), with ``s<seed>`` where seeds share a run."""
    spec = TrialSpec.from_config(config)
    return f"{spec.name} s{spec.seed}" if seed else spec.name


class ProgressPrinter(Callback):
    """Prints ``[mm:ss] label step s/N objective x`` as trials report, and trial ends."""

    def __init__(
        self,
        total_steps: int,
        every_report: bool = True,
        seed_in_label: bool = False,
    ) -> None:
        self.total_steps = total_steps
        self.every_report = every_report  # False: only each trial's end
        self.seed_in_label = seed_in_label
        self.start = time.time()
        self.labels: dict[str, str] = {}

    def _print(self, text: str) -> None:
        elapsed = int(time.time() - self.start)
        print(f"  [{elapsed // 60:02d}:{elapsed % 60:02d}] {text}", file=sys.stdout, flush=True)

    def _label(self, trial: Any) -> str:
        if trial.trial_id not in self.labels:
            self.labels[trial.trial_id] = trial_label(trial.config, self.seed_in_label)
        return self.labels[trial.trial_id]

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info):
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

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info):
        r = trial.last_result or {}
        if r.get("diverged"):
            self._print(f"{self._label(trial):<16} diverged: {r.get('error', '')}")
        elif "test_mean_ppl" in r:
            self._print(
                f"{self._label(trial):<16} done: test mean ppl {r['test_mean_ppl']:.3f}, "
                f"worst {r['test_worst_ppl']:.3f}"
            )

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
