"""DoGE: domain reweighting with generalization estimation (Fan, Pagliardini, Jaggi 2024)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from popmix.policies._base import (
    DomainSignals,
    GradientNeeds,
    LoopNeeds,
    MixingPolicy,
    PolicyError,
    softmax,
)

TARGETS = ("others", "validation")


class DoGEPolicy(MixingPolicy):
    """Mirror descent on domain weights α from per-domain gradient alignment.

    At every step, with g_i the gradient of domain i's mean loss on its part of the (stratified)
    batch, each clipped to norm ``grad_clip`` (official code: ``max_grad_norm``, before the dot
    products; the target gradient is clipped the same way):

    - scores W_i = ⟨g_i, g_T⟩ for a target gradient g_T (``target="validation"``, the default:
      the gradient of the mean loss over a held-out batch drawn from every domain, the official
      universal setting with its held-out "mix" domain; ``target="domain:<name>"``: that
      domain's validation batch, the OOD setting, and that domain is then *not trained on*: its
      α stays 0 and the batches hold only the other domains), or
      W_i = (Σ_{j≠i} ⟨g_i, g_j⟩) / (n − 1) over the n domains present (``target="others"``:
      train and target sets coincide; the *mean* over the others keeps W in the units of one
      target gradient, so μ and the score clip mean what they mean with a held-out target);
    - s_i = lr_t · W_i / (mean_i ‖g_i‖ + 1e-6), clipped to [lr_t · dw_min, lr_t · dw_max];
    - log α ← log α + s / μ, α = softmax(log α), α ← (1 − ε) α + ε / k, and log α ← log α (of
      the mixed weights, as the official recursion does);
    - the model step uses Σ_i α_i g_i with the *new* α (the loop does this);
    - the output is the time average of α (DoGE's transferred weights), :meth:`average_weights`.

    α starts uniform (over the trained domains). The share of scores that hit the clip's upper
    bound (lr · dw_max) and its lower bound (lr · dw_min) is counted: a clip every domain hits
    means the weights barely move (see :meth:`diagnostics`).

    Deviations from the reference code, on purpose:

    - a domain absent from a step's batch (batch smaller than k) gets g_i = 0 explicitly (the
      official code silently reuses a stale gradient); its score is 0, so it is not up-weighted
      that step; the mean gradient norm is taken over the domains present; absences are counted
      in ``state_dict()["missing"]``.
    - ``others`` takes the mean, not the sum, over the other domains (the official code's sum
      branch is unreachable in its shipped configurations; a sum is k − 1 times larger and
      saturates the score clip at k = 16).
    - non-finite gradient products skip the update (counted in ``skipped``), so α stays finite.

    Args:
        mu: mirror-descent step size μ (official universal config 0.01; OOD 0.05).
        dw_min, dw_max: score clip, in units of the current LR (0 and 5 in the reference).
        eps: mixing with uniform after each step (``reweight_eps``, 0 in the reference).
        grad_clip: per-domain gradient clip before the dot products (1.0; 5.0 universal).
        target: ``validation`` (default), ``others`` or ``domain:<name>``.
        target_batch: windows in the held-out batch that gives g_T; None: the smallest
            multiple of k that is at least 8, so every domain is in it (a validation target
            needs at least k windows).
    """

    name = "doge"

    def __init__(
        self,
        sizes: np.ndarray,
        total_steps: int,
        seed: int = 0,
        mu: float = 0.01,
        dw_min: float = 0.0,
        dw_max: float = 5.0,
        eps: float = 0.0,
        grad_clip: float = 1.0,
        target: str = "validation",
        target_batch: int | None = None,
    ) -> None:
        super().__init__(sizes, total_steps, seed)
        self.mu = mu
        self.dw_min = dw_min
        self.dw_max = dw_max
        self.eps = eps
        self.grad_clip = grad_clip
        self.target = target
        self.target_batch = target_batch
        #: index of the OOD target domain (``target="domain:<name>"``), set by :meth:`bind`.
        self.held_out: int | None = None
        k = self.n_domains
        self.log_alpha = np.zeros(k)
        self.alpha_sum = np.zeros(k)
        self.n_updates = 0
        self.missing = np.zeros(k, dtype=np.int64)
        self.skipped = 0
        self.clipped_high = 0
        self.clipped_low = 0
        self.scored = 0

    @property
    def target_windows(self) -> int:
        """Windows in the held-out batch for g_T."""
        if self.target_batch is not None:
            return int(self.target_batch)
        k = self.n_domains
        return k * max(1, math.ceil(8 / k))

    def bind(self, names: list[str]) -> None:
        if not str(self.target).startswith("domain:"):
            return
        name = str(self.target).split(":", 1)[1]
        if name not in names:
            raise PolicyError(
                f"doge target {self.target!r}: no domain {name!r}; use one of "
                f"{', '.join(names[:6])}{'...' if len(names) > 6 else ''}"
            )
        if len(names) < 2:
            raise PolicyError("doge target domain:<name> needs at least 2 domains (one trained)")
        self.held_out = names.index(name)

    @property
    def trained(self) -> np.ndarray:
        """Which domains are trained on: all but the OOD target."""
        mask = np.ones(self.n_domains, dtype=bool)
        if self.held_out is not None:
            mask[self.held_out] = False
        return mask

    def validate(self) -> None:
        super().validate()
        for key in ("mu", "grad_clip"):
            value = getattr(self, key)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise PolicyError(f"doge {key} must be a positive number, got {value!r}")
        if not self.dw_min <= self.dw_max:
            raise PolicyError(
                f"doge dw_min ({self.dw_min}) must not exceed dw_max ({self.dw_max})"
            )
        if self.target_batch is not None and (
            not isinstance(self.target_batch, int) or self.target_batch < 1
        ):
            raise PolicyError(
                f"doge target_batch must be a positive integer or null, got {self.target_batch!r}"
            )
        if self.target == "validation" and self.target_windows < self.n_domains:
            raise PolicyError(
                f"doge target_batch {self.target_batch} is below the {self.n_domains} domains: "
                f"a validation target needs every domain; use target_batch >= "
                f"{self.n_domains} (or null)"
            )
        if not 0 <= self.eps <= 1:
            raise PolicyError(f"doge eps must be in [0, 1], got {self.eps!r}")
        if self.target not in TARGETS and not str(self.target).startswith("domain:"):
            raise PolicyError(
                f"unknown doge target {self.target!r}; use others, validation or domain:<name>"
            )

    @property
    def needs(self) -> LoopNeeds:
        # Stratified batches (loss mode); α acts on the per-domain gradients, not the batch.
        return LoopNeeds(
            apply="loss",
            gradients=GradientNeeds(
                clip=float(self.grad_clip),
                target=str(self.target),
                target_windows=self.target_windows,
            ),
            held_out=() if self.held_out is None else (self.held_out,),
        )

    def alpha(self) -> np.ndarray:
        """The current weights: softmax of log α over the trained domains (0 elsewhere)."""
        mask = self.trained
        p = np.zeros(self.n_domains)
        p[mask] = softmax(self.log_alpha[mask])
        return p

    def weights(self, step: int) -> np.ndarray:
        return self.alpha()

    def final_weights(self, step: int) -> np.ndarray:
        return self.average_weights()

    def average_weights(self) -> np.ndarray:
        """Time average of α over the updates so far (uniform before the first)."""
        if self.n_updates == 0:
            return self.alpha()
        return self.alpha_sum / self.n_updates

    def scores(
        self,
        grad_dots: np.ndarray,
        target_dots: np.ndarray | None,
        present: np.ndarray | None = None,
    ) -> np.ndarray:
        """W_i: alignment with the target gradient, or the mean alignment with the other
        domains present (``present``: which domains were in the batch; default all)."""
        if target_dots is not None:
            return np.asarray(target_dots, dtype=np.float64)
        g = np.asarray(grad_dots, dtype=np.float64)
        n = g.shape[0] if present is None else int(np.sum(present))
        return (g.sum(axis=1) - np.diag(g)) / max(n - 1, 1)

    def update(self, signals: DomainSignals) -> None:
        if signals.grad_dots is None:
            raise PolicyError("doge needs per-domain gradient products (signals.grad_dots)")
        trained = self.trained
        present = (np.asarray(signals.counts) > 0) & trained
        self.missing += ~present & trained
        gram = np.asarray(signals.grad_dots, dtype=np.float64)
        target = None if signals.target_dots is None else np.asarray(signals.target_dots, float)
        lr = float(signals.lr)
        if not (np.all(np.isfinite(gram)) and math.isfinite(lr)) or (
            target is not None and not np.all(np.isfinite(target))
        ):
            self.skipped += 1
        else:
            w = np.where(present, self.scores(gram, target, present), 0.0)
            norms = np.sqrt(np.clip(np.diag(gram), 0.0, None))
            mean_norm = norms[present].mean() if present.any() else 0.0
            raw = lr * w / (mean_norm + 1e-6)
            lo, hi = lr * self.dw_min, lr * self.dw_max
            self.clipped_high += int(np.sum(present & (raw > hi)))
            self.clipped_low += int(np.sum(present & (raw < lo)))
            self.scored += int(present.sum())
            s = np.clip(raw, lo, hi)
            log_alpha = self.log_alpha + s / self.mu
            log_alpha -= log_alpha[trained].max()  # keep it bounded; softmax is shift-free
            if self.eps > 0:
                # Mix with uniform, and continue from the log of the *mixed* weights, as the
                # official recursion does (keeping the unmixed log-weights would compound
                # differently).
                p = softmax(log_alpha[trained])
                p = (1.0 - self.eps) * p + self.eps / p.size
                log_alpha[trained] = np.log(p)
            self.log_alpha = log_alpha
        self.alpha_sum += self.alpha()
        self.n_updates += 1

    def state_dict(self) -> dict[str, Any]:
        return {
            "log_alpha": self.log_alpha.tolist(),
            "alpha_sum": self.alpha_sum.tolist(),
            "n_updates": self.n_updates,
            "missing": self.missing.tolist(),
            "skipped": self.skipped,
            "clipped_high": self.clipped_high,
            "clipped_low": self.clipped_low,
            "scored": self.scored,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.log_alpha = np.asarray(state["log_alpha"], dtype=np.float64)
        self.alpha_sum = np.asarray(state["alpha_sum"], dtype=np.float64)
        self.n_updates = int(state["n_updates"])
        self.missing = np.asarray(state["missing"], dtype=np.int64)
        self.skipped = int(state["skipped"])
        self.clipped_high = int(state["clipped_high"])
        self.clipped_low = int(state["clipped_low"])
        self.scored = int(state["scored"])

    def diagnostics(self) -> dict[str, float]:
        """Shares of the scores so far that the clip cut at its upper and lower bound."""
        n = max(self.scored, 1)
        return {"score_clip_high": self.clipped_high / n, "score_clip_low": self.clipped_low / n}

    def hparams(self) -> dict[str, Any]:
        return {
            "mu": self.mu,
            "dw_min": self.dw_min,
            "dw_max": self.dw_max,
            "eps": self.eps,
            "grad_clip": self.grad_clip,
            "target": self.target,
            "target_batch": self.target_batch,
        }
