"""DoReMi: domain reweighting with minimax optimization (Xie et al., NeurIPS 2023)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from popmix.policies._base import DomainSignals, LoopNeeds, MixingPolicy, PolicyError


class DoReMiPolicy(MixingPolicy):
    """Group DRO over domains against a reference model: the proxy's weights α go up where its
    loss exceeds the reference's.

    At every optimizer step of the proxy, on its (stratified) batch, with ℓ_θ and ℓ_ref the
    per-token losses of the proxy and of the frozen reference model on the same tokens (the
    official "doremiv1" rule, ``sangmichaelxie/doremi``, ``doremi/trainer.py``):

    - λ_i = mean over domain i's tokens of max(ℓ_θ − ℓ_ref, 0): the excess is clipped per
      token, before the mean (the loop computes it: :attr:`DomainSignals.excess_loss`); a
      domain absent from the batch keeps its previous λ_i; λ starts at log |V|
      (``vocab_size``);
    - log α ← log α + η λ, normalised with a log-sum-exp; α ← (1 − c) softmax + c / k, and the
      next step starts from the log of these smoothed weights (the official recursion);
    - the model step weighs domain i's loss by α_i (``apply: loss`` over stratified batches);
    - the transferable mixture is the running average ᾱ of α over the steps, counting the
      initial (uniform) weights once, as the official average does (:meth:`final_weights`).

    The reference model is the same seed's stratified run at the same budget; the policy
    never sees it, only the excess losses the loop measures against it.

    Deviations from the official code, on purpose:

    - the proxy loss is popmix's loss mode: the batch mean of k · α_i · ℓ over stratified
      batches (expected value Σ_i α_i L_i), where the official code divides the α-weighted
      token losses by their weights' sum in each batch; the two differ by a batch-dependent
      scalar whose expectation is 1;
    - non-finite excess losses skip the update (counted in ``skipped``), so α stays finite;
      a step without excess losses (no reference) leaves α as it is and is counted too;
    - absent domains are counted in ``state_dict()["missing"]``.

    Args:
        eta: the exponentiated-gradient step size η (the paper's 1; the official default 1.0;
            the Aioli re-implementation's scripts use 0.01).
        smoothing: c, the mix with uniform after each step (the official run scripts' 1e-3;
            its argument's default is 1e-4).
        vocab_size: |V|, for the starting excess log |V|; None: the model's, which the loop
            gives (:meth:`bind_vocab`: 256 for byte-level text, else the tokenizer's).
    """

    name = "doremi"

    def __init__(
        self,
        sizes: np.ndarray,
        total_steps: int,
        seed: int = 0,
        eta: float = 1.0,
        smoothing: float = 1e-3,
        vocab_size: int | None = None,
    ) -> None:
        super().__init__(sizes, total_steps, seed)
        self.eta = eta
        self.smoothing = smoothing
        self.vocab_size = vocab_size
        k = self.n_domains
        self.alpha_now = np.full(k, 1.0 / k)
        self.scores: np.ndarray | None = None  # λ; None: log |V| everywhere (not yet seen)
        self.alpha_avg = np.full(k, 1.0 / k)
        self.n_avg = 1  # the initial weights count once
        self.missing = np.zeros(k, dtype=np.int64)
        self.skipped = 0

    def validate(self) -> None:
        super().validate()
        if not (isinstance(self.eta, (int, float)) and math.isfinite(self.eta) and self.eta > 0):
            raise PolicyError(f"doremi eta must be a positive number, got {self.eta!r}")
        if not (isinstance(self.smoothing, (int, float)) and 0 <= self.smoothing <= 1):
            raise PolicyError(f"doremi smoothing must be in [0, 1], got {self.smoothing!r}")
        if self.vocab_size is None:
            return
        if isinstance(self.vocab_size, bool) or not isinstance(self.vocab_size, int):
            raise PolicyError(f"doremi vocab_size must be a whole number, got {self.vocab_size!r}")
        if self.vocab_size < 2:
            raise PolicyError(f"doremi vocab_size must be at least 2, got {self.vocab_size}")

    def bind_vocab(self, vocab_size: int) -> None:
        if self.vocab_size is None:
            self.vocab_size = int(vocab_size)

    @property
    def needs(self) -> LoopNeeds:
        return LoopNeeds(apply="loss", reference=True)

    def weights(self, step: int) -> np.ndarray:
        return self.alpha_now.copy()

    def final_weights(self, step: int) -> np.ndarray:
        return self.average_weights()

    def average_weights(self) -> np.ndarray:
        """ᾱ: the mean of α over the steps, the initial weights counted once."""
        return self.alpha_avg / self.alpha_avg.sum()

    def step_weights(self, excess: np.ndarray, present: np.ndarray) -> np.ndarray:
        """α after one step with per-domain excess losses ``excess`` (used where ``present``;
        elsewhere the previous λ); updates λ."""
        k = self.n_domains
        vocab = 256 if self.vocab_size is None else self.vocab_size  # unbound: bytes
        previous = np.full(k, math.log(vocab)) if self.scores is None else self.scores
        scores = np.where(present, excess, previous)
        self.scores = scores
        log_alpha = np.log(self.alpha_now) + self.eta * scores
        top = np.max(log_alpha)
        log_alpha -= top + np.log(np.sum(np.exp(log_alpha - top)))  # log-sum-exp
        c = float(self.smoothing)
        return (1.0 - c) * np.exp(log_alpha) + c / k

    def update(self, signals: DomainSignals) -> None:
        excess = signals.excess_loss
        if excess is None:
            self.skipped += 1
            return
        excess = np.asarray(excess, dtype=np.float64)
        counts = None if signals.counts is None else np.asarray(signals.counts)
        present = ~np.isnan(excess) if counts is None else (counts > 0) & ~np.isnan(excess)
        self.missing += ~present
        if not np.all(np.isfinite(excess[present])):
            self.skipped += 1
            return
        alpha = self.step_weights(np.where(present, excess, 0.0), present)
        if not np.all(np.isfinite(alpha)):  # pragma: no cover - guarded by the check above
            self.skipped += 1
            return
        self.alpha_now = alpha
        self.n_avg += 1
        self.alpha_avg = (self.alpha_avg * (self.n_avg - 1) + alpha) / self.n_avg

    def state_dict(self) -> dict[str, Any]:
        return {
            "alpha_now": self.alpha_now.tolist(),
            "scores": None if self.scores is None else self.scores.tolist(),
            "alpha_avg": self.alpha_avg.tolist(),
            "n_avg": self.n_avg,
            "missing": self.missing.tolist(),
            "skipped": self.skipped,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.alpha_now = np.asarray(state["alpha_now"], dtype=np.float64)
        scores = state["scores"]
        self.scores = None if scores is None else np.asarray(scores, dtype=np.float64)
        self.alpha_avg = np.asarray(state["alpha_avg"], dtype=np.float64)
        self.n_avg = int(state["n_avg"])
        self.missing = np.asarray(state["missing"], dtype=np.int64)
        self.skipped = int(state["skipped"])

    def diagnostics(self) -> dict[str, float]:
        """Steps whose update was skipped (no or non-finite excess losses)."""
        return {"skipped_updates": float(self.skipped)}

    def hparams(self) -> dict[str, Any]:
        return {
            "eta": float(self.eta),
            "smoothing": float(self.smoothing),
            "vocab_size": None if self.vocab_size is None else int(self.vocab_size),
        }
