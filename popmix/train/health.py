"""How a run is going, beyond its loss: the gradient norm and the count of loss spikes.

A proxy that sometimes leaves a plateau early and sometimes crawls along it, or whose loss
jumps now and then, measures seeds rather than mixtures. :class:`TrainingHealth` watches the
two signs from each step's gradient norm (before clipping) and training loss, so every record
(``result.json``, Tune's results, ``summary.json``, TensorBoard) can show them.

A **loss spike** is a step whose training loss (the plain mean over the batch's windows)
exceeds the median of the previous :data:`SPIKE_WINDOW` steps by more than
:data:`SPIKE_ROBUST_STDS` robust standard deviations (1.4826 x the median absolute deviation)
*and* by more than :data:`SPIKE_MIN_RATIO` of that median. The relative floor keeps a batch
that happens to draw a hard domain from counting: batches of a mixture differ by their
composition, so the per-step loss varies anyway. The first :data:`SPIKE_MIN_HISTORY` steps
are never judged (too little to compare with).

The **gradient-norm spread** is the standard deviation of the per-step gradient norms within one
report's steps (``grad_norm_std``), and over the run the root mean of those within-report
variances (``grad_norm_std_pooled``). Taking it within reports keeps the slow fall of the norm
over training out of it, so it measures the step-to-step noise of the mini-batch gradient: what
Li et al. (2025) compare between upsampling and upweighting (their Theorem 2).

NumPy only: the loop hands over each report's steps at once, one device→host copy per report.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

#: steps of recent training losses a step is compared with
SPIKE_WINDOW = 50
#: how far above the recent median a spike lies, in robust standard deviations
SPIKE_ROBUST_STDS = 6.0
#: and at least this share of the median above it
SPIKE_MIN_RATIO = 0.1
#: steps seen before any step is judged
SPIKE_MIN_HISTORY = 20


class TrainingHealth:
    """Running gradient-norm and loss-spike figures of one run, resumable bit for bit."""

    def __init__(self) -> None:
        self.recent: deque[float] = deque(maxlen=SPIKE_WINDOW)
        self.loss_spikes = 0
        self.spike_steps: list[int] = []  # the first few, for a message
        self.grad_norm_max = 0.0
        self.steps_seen = 0
        # within-report gradient-norm variances, summed over reports with two or more steps
        self.grad_norm_var_sum = 0.0
        self.grad_norm_var_reports = 0

    def observe(self, first_step: int, losses: np.ndarray, grad_norms: np.ndarray) -> dict:
        """Take the training losses and gradient norms of consecutive steps from
        ``first_step`` on; returns this stretch's figures (``grad_norm``: their mean,
        ``grad_norm_std``: their spread, None under two steps) and the run's so far
        (``grad_norm_max``, ``loss_spikes``, ``grad_norm_std_pooled``)."""
        losses = np.asarray(losses, dtype=np.float64)
        grad_norms = np.asarray(grad_norms, dtype=np.float64)
        for i, loss in enumerate(losses):
            if len(self.recent) >= SPIKE_MIN_HISTORY and np.isfinite(loss):
                if is_spike(float(loss), np.fromiter(self.recent, dtype=np.float64)):
                    self.loss_spikes += 1
                    if len(self.spike_steps) < 10:
                        self.spike_steps.append(first_step + i)
            if np.isfinite(loss):
                self.recent.append(float(loss))
        finite = grad_norms[np.isfinite(grad_norms)]
        if finite.size:
            self.grad_norm_max = max(self.grad_norm_max, float(finite.max()))
        spread = None
        if finite.size >= 2:
            spread = float(finite.std(ddof=1))
            self.grad_norm_var_sum += spread**2
            self.grad_norm_var_reports += 1
        self.steps_seen += len(losses)
        return {
            "grad_norm": float(finite.mean()) if finite.size else None,
            "grad_norm_std": spread,
            "grad_norm_max": self.grad_norm_max,
            "grad_norm_std_pooled": self.grad_norm_std_pooled,
            "loss_spikes": self.loss_spikes,
        }

    @property
    def grad_norm_std_pooled(self) -> float | None:
        """The run's gradient-norm spread: the root mean within-report variance (docstring)."""
        if not self.grad_norm_var_reports:
            return None
        return float(np.sqrt(self.grad_norm_var_sum / self.grad_norm_var_reports))

    def state_dict(self) -> dict[str, Any]:
        return {
            "recent": list(self.recent),
            "loss_spikes": self.loss_spikes,
            "spike_steps": list(self.spike_steps),
            "grad_norm_max": self.grad_norm_max,
            "steps_seen": self.steps_seen,
            "grad_norm_var_sum": self.grad_norm_var_sum,
            "grad_norm_var_reports": self.grad_norm_var_reports,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.recent = deque((float(x) for x in state["recent"]), maxlen=SPIKE_WINDOW)
        self.loss_spikes = int(state["loss_spikes"])
        self.spike_steps = [int(s) for s in state["spike_steps"]]
        self.grad_norm_max = float(state["grad_norm_max"])
        self.steps_seen = int(state["steps_seen"])
        # (a state saved before the spread was kept has none: it then starts here)
        self.grad_norm_var_sum = float(state.get("grad_norm_var_sum", 0.0))
        self.grad_norm_var_reports = int(state.get("grad_norm_var_reports", 0))


def is_spike(loss: float, recent: np.ndarray) -> bool:
    """Whether ``loss`` is a spike against the ``recent`` steps' losses (module docstring)."""
    median = float(np.median(recent))
    robust_std = 1.4826 * float(np.median(np.abs(recent - median)))
    excess = loss - median
    return excess > SPIKE_ROBUST_STDS * robust_std and excess > SPIKE_MIN_RATIO * abs(median)
