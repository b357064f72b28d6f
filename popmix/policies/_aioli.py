"""Aioli: online estimation of a linear mixing law (Chen, Hu, Lourie, Cho, Ré; ICLR 2025)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from popmix.policies._base import (
    DomainSignals,
    LoopNeeds,
    MixingPolicy,
    PolicyError,
    normalize,
    softmax,
)
from popmix.policies._mixture import check_vector


def smoothed_one_hot(j: int, k: int, factor: float) -> np.ndarray:
    """Mass ``factor`` on group j and (1 − factor)/(k − 1) on each other group."""
    w = np.full(k, (1.0 - factor) / (k - 1))
    w[j] = factor
    return w


def unsmooth(gain: np.ndarray, factor: float) -> np.ndarray:
    """Recover A from losses measured under smoothed one-hot mixtures.

    Column j of ``gain`` is the loss decrease observed while training on w^(j). Under the linear
    law, gain[i, :] = W · A[i, :] with W's rows the mixtures w^(j), so A = solve(W, gainᵀ)ᵀ.

    Raises:
        PolicyError: W is singular (factor = 1/k makes every mixture the same).
    """
    k = gain.shape[0]
    if factor == 1.0:
        return gain.copy()
    w = np.stack([smoothed_one_hot(j, k, factor) for j in range(k)])
    # W = a·I + b·11ᵀ has eigenvalues a (k−1 times) and 1: singular exactly when a = 0.
    a = factor - (1.0 - factor) / (k - 1)
    if abs(a) < 1e-3:
        raise PolicyError(
            f"one_hot_factor {factor} is (almost) 1/k = {1 / k:.4f}: every perturbation is then "
            "the same mixture and A cannot be recovered; use a value well above 1/k, e.g. 0.75"
        )
    return np.linalg.solve(w, gain.T).T


def normalize_matrix(a: np.ndarray) -> np.ndarray | None:
    """Shift by min(A) when it is negative, then divide by the grand total (always).

    Returns None for a flat A (every entry ≈ 0 after the shift): there is no signal and the
    division would blow up.
    """
    a = np.asarray(a, dtype=np.float64)
    if a.min() < 0:
        a = a - a.min()
    total = a.sum()
    if not math.isfinite(total) or total < 1e-12:
        return None
    return a / total


class AioliPolicy(MixingPolicy):
    """Aioli: estimate the mixing-law matrix A online, then an exponentiated-gradient step.

    Training is split into rounds of ``update_steps`` steps (after ``prior_steps`` steps on the
    static ``prior``). Each round:

    1. evaluate the validation loss per domain, ℓ⁰;
    2. LearnParams: ``lp_rounds`` sweeps, each a random order of the k domains; for domain j,
       train ``lp_steps`` real steps on the smoothed one-hot mixture w^(j) (``one_hot_factor``
       on j), evaluate, and add the loss decrease ℓ_prev − ℓ_new to column j of G;
    3. G /= lp_rounds; A = unsmooth(G) (or the diagonal A_jj = G_jj / factor); normalise A
       (shift by min if negative, divide by the total);
    4. with ``ema`` γ: Ā = (1 − γ) A + γ Ā_prev and p ∝ exp(η · colsum(Ā)) (around uniform);
       without: log p ← log p + η · colsum(A) (cumulative);
    5. train on p until the round ends.

    LearnParams steps are ordinary training steps (optimizer, LR schedule, budget); the
    evaluations are extra forward passes the loop counts. Evaluations use ``eval_windows``
    validation windows per domain (a fixed subsample) to bound their cost.

    Deviations from the reference code, on purpose: per-batch counts during LearnParams are
    exact (largest remainder; the reference's rounding breaks for k=7 at batch 8), a singular
    un-smoothing matrix is rejected with a clear error, a flat A leaves the mixture unchanged
    (counted in ``flat_rounds``), and log p is renormalised every round. As in the reference, the
    base after the prior stage is uniform (the prior survives only through the model state).

    Args:
        eta: step size η of the exponentiated-gradient update.
        lp_rounds: sweeps over the domains per LearnParams.
        lp_steps: training steps per perturbation.
        update_steps: steps per round (must exceed lp_rounds · k · lp_steps).
        one_hot_factor: mass on the perturbed domain, in (1/k, 1].
        ema: γ, weight of the old estimate in the EMA of A; None for no EMA.
        diagonal: estimate only the diagonal of A.
        prior: static mixture for the first ``prior_steps`` steps ("restricted" setting).
        prior_steps: length of the prior stage.
        eval_windows: validation windows per domain per evaluation.
    """

    name = "aioli"

    def __init__(
        self,
        sizes: np.ndarray,
        total_steps: int,
        seed: int = 0,
        eta: float = 0.2,
        lp_rounds: int = 1,
        lp_steps: int = 4,
        update_steps: int = 250,
        one_hot_factor: float = 0.75,
        ema: float | None = None,
        diagonal: bool = False,
        prior: Sequence[float] | None = None,
        prior_steps: int = 0,
        eval_windows: int = 4,
    ) -> None:
        super().__init__(sizes, total_steps, seed)
        self.eta = eta
        self.lp_rounds = lp_rounds
        self.lp_steps = lp_steps
        self.update_steps = update_steps
        self.one_hot_factor = one_hot_factor
        self.ema = ema
        self.diagonal = diagonal
        self.prior = prior
        self.prior_steps = prior_steps
        self.eval_windows = eval_windows
        self._round = -1
        self._order: list[int] = []
        self._gain = np.zeros((self.n_domains, self.n_domains))
        self._prev: np.ndarray | None = None
        self._log_p = np.zeros(self.n_domains)
        self._a_ema: np.ndarray | None = None
        self.flat_rounds = 0
        self.updates = 0
        self.evals = 0

    # -- schedule ---------------------------------------------------------------------------
    @property
    def lp_duration(self) -> int:
        return self.lp_rounds * self.n_domains * self.lp_steps

    def validate(self) -> None:
        super().validate()
        k = self.n_domains
        for key in ("lp_rounds", "lp_steps", "update_steps", "eval_windows"):
            v = getattr(self, key)
            if not isinstance(v, int) or v < 1:
                raise PolicyError(f"aioli {key} must be a positive integer, got {v!r}")
        if not (isinstance(self.eta, (int, float)) and math.isfinite(self.eta) and self.eta > 0):
            raise PolicyError(f"aioli eta must be a positive number, got {self.eta!r}")
        if k > 1 and self.update_steps <= self.lp_duration:
            raise PolicyError(
                f"aioli update_steps ({self.update_steps}) must exceed the LearnParams length "
                f"lp_rounds*k*lp_steps = {self.lp_duration}; raise update_steps or lower "
                "lp_rounds/lp_steps"
            )
        if not (isinstance(self.one_hot_factor, (int, float)) and 0 < self.one_hot_factor <= 1):
            raise PolicyError(f"aioli one_hot_factor must be in (0, 1], got {self.one_hot_factor}")
        if k > 1 and self.one_hot_factor < 1:
            unsmooth(np.zeros((k, k)), self.one_hot_factor)  # raises when singular
        if self.ema is not None and not 0 <= self.ema < 1:
            raise PolicyError(f"aioli ema must be in [0, 1) or null, got {self.ema!r}")
        if self.prior is not None:
            check_vector(self.prior, k, "prior weights")
        if not isinstance(self.prior_steps, int) or self.prior_steps < 0:
            raise PolicyError(f"aioli prior_steps must be >= 0, got {self.prior_steps!r}")

    def _position(self, step: int) -> tuple[int, int] | None:
        """(round, position in round) for a step after the prior stage, else None."""
        if step < self.prior_steps:
            return None
        t = step - self.prior_steps
        return t // self.update_steps, t % self.update_steps

    def round_order(self, r: int) -> list[int]:
        """The perturbation order of round ``r``: ``lp_rounds`` random permutations of the k
        domains.

        A pure function of (seed, round), so :meth:`weights` can answer for any step, past ones
        included, without drawing from a generator or touching the round's measurements.
        """
        if r == self._round and self._order:
            return self._order
        rng = np.random.default_rng([int(self.seed), int(r)])
        k = self.n_domains
        return [int(j) for _ in range(self.lp_rounds) for j in rng.permutation(k)]

    def _enter_round(self, r: int) -> None:
        # Only the measurements (update) move the policy into a new round; weights() never
        # does, so asking for a past step's weights cannot reset the gains being measured.
        if r == self._round:
            return
        self._round = r
        self._order = []
        self._order = self.round_order(r)
        self._gain = np.zeros((self.n_domains, self.n_domains))
        self._prev = None

    def weights(self, step: int) -> np.ndarray:
        """The mixture for ``step``; free of side effects.

        During a LearnParams phase it is that perturbation's smoothed one-hot; afterwards the
        current exploitation mixture p (for a step of an earlier round, today's p: the loop
        logs the weights it actually trained on).
        """
        k = self.n_domains
        if k == 1:
            return np.ones(1)
        pos = self._position(step)
        if pos is None:
            return normalize(self.prior) if self.prior is not None else np.full(k, 1.0 / k)
        r, offset = pos
        if offset < self.lp_duration:
            j = self.round_order(r)[offset // self.lp_steps]
            return smoothed_one_hot(j, k, self.one_hot_factor)
        return self.mixture()

    def final_weights(self, step: int) -> np.ndarray:
        """Aioli's mixture p, never a LearnParams perturbation (a run may end inside one)."""
        if self.n_domains == 1:
            return np.ones(1)
        return self.mixture()

    def mixture(self) -> np.ndarray:
        """The current exploitation mixture p."""
        return softmax(self._log_p)

    # -- measurements -----------------------------------------------------------------------
    @property
    def needs(self) -> LoopNeeds:
        # Perturbations are mixtures of real batches: exact counts make each one the smoothed
        # one-hot it claims to be, batch by batch.
        return LoopNeeds(apply="sample", counts="exact", eval_windows=self.eval_windows)

    def evaluates_before(self, step: int) -> bool:
        pos = self._position(step)
        if pos is None or self.n_domains == 1:
            return False
        offset = pos[1]
        return offset <= self.lp_duration and offset % self.lp_steps == 0

    def update(self, signals: DomainSignals) -> None:
        if signals.eval_loss is not None:
            self._observe_eval(signals.step, signals.eval_loss)

    def _observe_eval(self, step: int, eval_loss: np.ndarray) -> None:
        pos = self._position(step)
        if pos is None:
            return
        r, offset = pos
        self._enter_round(r)
        loss = np.asarray(eval_loss, dtype=np.float64)
        self.evals += 1
        if offset > 0 and self._prev is not None:
            j = self._order[offset // self.lp_steps - 1]  # the perturbation that just ended
            with np.errstate(invalid="ignore"):
                decrease = self._prev - loss
            if np.all(np.isfinite(decrease)):
                self._gain[:, j] += decrease
        self._prev = loss
        if offset == self.lp_duration:
            self._update_mixture()

    def estimate(self, gain: np.ndarray) -> np.ndarray:
        """A from the accumulated gains of one LearnParams (before normalisation)."""
        g = gain / self.lp_rounds
        if self.diagonal:
            return np.diag(np.diag(g) / self.one_hot_factor)
        return unsmooth(g, self.one_hot_factor)

    def _update_mixture(self) -> None:
        a = normalize_matrix(self.estimate(self._gain))
        if a is None:
            self.flat_rounds += 1
            return
        score = a.sum(axis=0)  # column sums: how much training on j lowers every loss
        if self.ema is not None:
            self._a_ema = a if self._a_ema is None else (1 - self.ema) * a + self.ema * self._a_ema
            self._log_p = self.eta * self._a_ema.sum(axis=0)
        else:
            self._log_p = self._log_p + self.eta * score
        self._log_p = self._log_p - self._log_p.max()
        self.updates += 1

    # -- state ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "round": self._round,
            "order": list(self._order),
            "gain": self._gain.tolist(),
            "prev": None if self._prev is None else self._prev.tolist(),
            "log_p": self._log_p.tolist(),
            "a_ema": None if self._a_ema is None else self._a_ema.tolist(),
            "flat_rounds": self.flat_rounds,
            "updates": self.updates,
            "evals": self.evals,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._round = int(state["round"])
        self._order = [int(j) for j in state["order"]]
        self._gain = np.asarray(state["gain"], dtype=np.float64)
        self._prev = None if state["prev"] is None else np.asarray(state["prev"], dtype=np.float64)
        self._log_p = np.asarray(state["log_p"], dtype=np.float64)
        self._a_ema = None if state["a_ema"] is None else np.asarray(state["a_ema"], float)
        self.flat_rounds = int(state["flat_rounds"])
        self.updates = int(state["updates"])
        self.evals = int(state["evals"])

    def hparams(self) -> dict[str, Any]:
        return {
            "eta": self.eta,
            "lp_rounds": self.lp_rounds,
            "lp_steps": self.lp_steps,
            "update_steps": self.update_steps,
            "one_hot_factor": self.one_hot_factor,
            "ema": self.ema,
            "diagonal": self.diagonal,
            "prior_steps": self.prior_steps,
            "eval_windows": self.eval_windows,
        }
