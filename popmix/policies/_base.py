"""The one interface every mixing method implements.

A policy turns per-domain signals into domain weights (a point on the simplex) as training goes
on. It is pure NumPy: it never sees the model, torch or Ray. The training loop decides how the
weights act (as sampling probabilities or as loss weights) and computes only the signals that the
policy's ``requires`` names.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np


class PolicyError(ValueError):
    """A bad mixing-policy parameter; the message names the value and how to fix it."""


@dataclass(frozen=True)
class DomainSignals:
    """What the loop measured at one step. Per-domain arrays have shape (n_domains,).

    Attributes:
        step: the optimizer step that produced these signals (0-based).
        train_loss: mean training loss per domain on this step's batch; NaN for a domain that
            had no example in the batch.
        counts: examples per domain in this step's batch.
        lr: the learning rate used at this step.
        grad_dots: Gram matrix ⟨g_i, g_j⟩ of the per-domain gradients (each clipped as the
            policy's ``grad_clip`` asks), shape (n_domains, n_domains), when the policy requires
            ``"domain_grads"``; zero rows and columns for domains absent from the batch.
        target_dots: ⟨g_i, g_target⟩, shape (n_domains,), when the policy's ``grad_target``
            names a target other than ``"others"``.
    """

    step: int
    train_loss: np.ndarray
    counts: np.ndarray
    lr: float = 0.0
    grad_dots: np.ndarray | None = None
    target_dots: np.ndarray | None = None


class MixingPolicy(abc.ABC):
    """Base class of every mixing method.

    Contract (checked for every registered policy by ``tests/policies/test_conformance.py``):

    1. ``__init__`` only stores its arguments; :meth:`validate` checks them.
    2. :meth:`weights` returns a float64 array of shape (n_domains,), >= 0, summing to 1.
    3. :meth:`state_dict` holds accumulated state only, never hyperparameters. A PBT exploit
       builds a policy from the *mutated* config and loads the donor's state into it, so a
       hyperparameter stored in the state would silently undo the mutation.
    4. Randomness only from a ``np.random.Generator`` the policy owns, saved in its state.
    5. Non-finite signals never produce non-finite weights.
    6. :meth:`weights` has no side effects.

    Args:
        sizes: training tokens per domain, shape (n_domains,).
        total_steps: length of the run in optimizer steps (schedules are fractions of it).
        seed: seed for a policy's own generator (unused by deterministic policies).
    """

    #: registry name, e.g. ``"temperature"``.
    name: ClassVar[str]
    #: signals beyond ``train_loss``/``counts`` that :meth:`update` needs: ``"domain_grads"``.
    requires: ClassVar[frozenset[str]] = frozenset()
    #: how the weights must act (``"sample"`` or ``"loss"``), or None to follow the run's setting.
    apply: ClassVar[str | None] = None
    #: ``"exact"`` for policies that need each batch's composition to be exactly the weights
    #: (largest-remainder counts) in ``sample`` mode; None for i.i.d. (multinomial) draws.
    count_mode: ClassVar[str | None] = None

    def __init__(self, sizes: np.ndarray, total_steps: int, seed: int = 0) -> None:
        self.sizes = np.asarray(sizes, dtype=np.float64)
        self.total_steps = int(total_steps)
        self.seed = seed

    @property
    def n_domains(self) -> int:
        return int(self.sizes.size)

    @property
    def is_adaptive(self) -> bool:
        """Whether :meth:`update` is overridden (only then the loop measures per-step signals)."""
        return type(self).update is not MixingPolicy.update

    def validate(self) -> None:
        """Raise :class:`PolicyError` for a bad hyperparameter (called by the builder)."""
        if self.sizes.ndim != 1 or self.sizes.size < 1 or np.any(self.sizes <= 0):
            raise PolicyError(f"domain sizes must be positive, got {self.sizes.tolist()}")
        if self.total_steps < 1:
            raise PolicyError(f"total steps must be at least 1, got {self.total_steps}")

    @abc.abstractmethod
    def weights(self, step: int) -> np.ndarray:
        """Domain weights to use at optimizer step ``step``: shape (n_domains,), on the simplex.

        Free of side effects: asking again, for this or a past step, changes nothing that
        follows (the conformance suite checks it). State moves only in :meth:`observe_eval`
        and :meth:`update`.
        """

    def final_weights(self, step: int) -> np.ndarray:
        """The mixture to transfer to a final run (DoGE: the time average of its weights)."""
        return self.weights(max(step - 1, 0))

    def loss_multipliers(self, step: int) -> np.ndarray | None:
        """Per-domain factors on each example's loss, shape (n_domains,), or None (all ones).

        Lets one policy set sampling weights and loss weights at once (scalarization on top of
        sampling); most policies leave it None.
        """
        return None

    def current_temperature(self, step: int) -> float | None:
        """The sampling temperature at ``step``, for policies defined by one; else None."""
        return None

    def needs_eval(self, step: int) -> bool:
        """Whether the policy wants held-out losses measured *before* optimizer step ``step``.

        When True the loop evaluates (on :attr:`eval_windows` windows per domain) and calls
        :meth:`observe_eval` before running the step.
        """
        return False

    #: validation windows per domain for the evaluations this policy asks for (cost bound).
    eval_windows: int = 8
    #: where a ``"domain_grads"`` policy wants its target gradient: ``"others"`` (none),
    #: ``"validation"`` or ``"domain:<name>"``.
    grad_target: str = "others"

    def bind(self, names: list[str]) -> None:
        """Told the domain names once, by the loop, before training (a policy that names a
        domain in its parameters resolves it here and raises :class:`PolicyError` if absent)."""
        return None

    @property
    def trained(self) -> np.ndarray:
        """Which domains training batches may hold (DoGE's OOD target is held out)."""
        return np.ones(self.n_domains, dtype=bool)

    def diagnostics(self) -> dict[str, float]:
        """Scalars about the method's own working, logged at every report (e.g. DoGE's share of
        clipped scores); empty for most policies."""
        return {}

    def observe_eval(self, step: int, eval_loss: np.ndarray) -> None:
        """Receives the held-out loss per domain measured before step ``step``."""
        return None

    def update(self, signals: DomainSignals) -> None:
        """Called after every optimizer step with what the loop measured, when overridden.

        The loop only pays for measuring per-step signals (a host sync) for policies that
        override this method.
        """
        return None

    def state_dict(self) -> dict[str, Any]:
        """Accumulated state (never hyperparameters); JSON- or pickle-serialisable."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        return None

    def hparams(self) -> dict[str, Any]:
        """Hyperparameters for logging (HParams view, result files)."""
        return {}


def effective_domains(w: np.ndarray) -> float:
    """exp of the entropy of a weight vector: k for uniform weights, 1 for a one-hot."""
    w = np.asarray(w, dtype=np.float64)
    w = w[w > 0]
    return float(np.exp(-np.sum(w * np.log(w))))


def normalize(x: np.ndarray) -> np.ndarray:
    """Project non-negative scores onto the simplex; all-zero or non-finite input → uniform."""
    x = np.asarray(x, dtype=np.float64)
    x = np.where(np.isfinite(x) & (x > 0), x, 0.0)
    total = x.sum()
    if total <= 0:
        return np.full(x.shape, 1.0 / x.size)
    return x / total


def softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically safe softmax: subtract the max before exponentiating."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - np.max(z)
    e = np.exp(z)
    return e / e.sum()
