"""The one interface every mixing method implements.

A policy turns per-domain signals into domain weights (a point on the simplex) as training goes
on. It is pure NumPy: it never sees the model, torch or Ray. It tells the loop what to measure in
one value (:class:`LoopNeeds`) and receives every measurement through one method
(:meth:`MixingPolicy.update`); the loop computes only what was asked for.
"""

from __future__ import annotations

import abc
import inspect
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numpy.typing import ArrayLike


class PolicyError(ValueError):
    """A bad mixing-policy parameter; the message names the value and how to fix it."""


@dataclass(frozen=True)
class GradientNeeds:
    """Per-domain gradients a policy asks the loop for at every step.

    Attributes:
        clip: each domain's gradient, and the target gradient, is clipped to this norm before
            the dot products (0: no clip).
        target: ``"others"`` (no target gradient: the policy scores domains against each
            other), ``"validation"`` (the mean loss over a held-out batch with every domain)
            or ``"domain:<name>"`` (that domain's held-out batch).
        target_windows: windows in the held-out batch for the target gradient.
    """

    clip: float = 0.0
    target: str = "others"
    target_windows: int = 0


@dataclass(frozen=True)
class LoopNeeds:
    """Everything a policy needs from the training loop, declared in one value.

    Attributes:
        apply: ``"sample"`` or ``"loss"`` to fix how the weights act, None to follow the run.
        counts: ``"multinomial"`` (i.i.d. draws from the weights) or ``"exact"`` (each batch's
            composition is the weights' largest-remainder rounding) in ``sample`` mode.
        step_losses: per-domain training losses of every step, sent to :meth:`update` (one
            host sync per step, so only policies that use them ask).
        gradients: per-domain gradients and their target, sent to :meth:`update` before the
            model step, which then uses the updated weights (DoGE).
        eval_windows: validation windows per domain for the held-out losses the policy asks
            for with :meth:`MixingPolicy.evaluates_before` (0: it never asks).
        held_out: domains never put in a training batch (DoGE's OOD target).
        reference: per-domain excess losses against a frozen reference model on the same
            batch, sent to :meth:`update` as ``excess_loss`` (DoReMi).
    """

    apply: str | None = None
    counts: str = "multinomial"
    step_losses: bool = False
    gradients: GradientNeeds | None = None
    eval_windows: int = 0
    held_out: tuple[int, ...] = ()
    reference: bool = False


@dataclass(frozen=True)
class DomainSignals:
    """What the loop measured for one step. Per-domain arrays have shape (n_domains,); a field
    the policy did not ask for (see :class:`LoopNeeds`) is None.

    Attributes:
        step: the optimizer step these signals belong to (0-based).
        eval_loss: held-out loss per domain measured *before* this step, when the policy's
            :meth:`MixingPolicy.evaluates_before` asked for it (then it is the only field set).
        train_loss: mean training loss per domain on this step's batch; NaN for a domain that
            had no example in the batch.
        counts: examples per domain in this step's batch.
        lr: the learning rate used at this step.
        grad_dots: Gram matrix ⟨g_i, g_j⟩ of the per-domain gradients (each clipped as asked),
            shape (n_domains, n_domains), when the policy asks for ``gradients``; zero rows and
            columns for domains absent from the batch.
        target_dots: ⟨g_i, g_target⟩, shape (n_domains,), when the gradient target is not
            ``"others"``.
        excess_loss: per domain, the mean over its tokens in this step's batch of
            max(ℓ_model − ℓ_reference, 0), each token's excess clipped *before* the mean,
            when the policy asks for ``reference``; NaN for a domain absent from the batch.
    """

    step: int
    eval_loss: np.ndarray | None = None
    train_loss: np.ndarray | None = None
    counts: np.ndarray | None = None
    lr: float = 0.0
    grad_dots: np.ndarray | None = None
    target_dots: np.ndarray | None = None
    excess_loss: np.ndarray | None = None


class MixingPolicy(abc.ABC):
    """Base class of every mixing method.

    A method implements :meth:`weights` and, if it adapts, declares :attr:`needs` and takes
    what the loop measured in :meth:`update`. Contract (checked for every registered policy by
    ``tests/policies/test_conformance.py``):

    1. ``__init__`` only stores its arguments; :meth:`validate` checks them.
    2. :meth:`weights` returns a float64 array of shape (n_domains,), >= 0, summing to 1.
    3. :meth:`state_dict` holds accumulated state only, never hyperparameters. A PBT exploit
       builds a policy from the *mutated* config and loads the donor's state into it, so a
       hyperparameter stored in the state would silently undo the mutation.
    4. Randomness only from a ``np.random.Generator`` the policy owns, saved in its state, or
       derived from its seed.
    5. Non-finite signals never produce non-finite weights.
    6. :meth:`weights` has no side effects.

    Args:
        sizes: training tokens per domain, shape (n_domains,).
        total_steps: length of the run in optimizer steps (schedules are fractions of it).
        seed: seed for a policy's own randomness (unused by deterministic policies).
    """

    #: registry name, e.g. ``"temperature"``.
    name: ClassVar[str]

    def __init__(self, sizes: np.ndarray, total_steps: int, seed: int = 0) -> None:
        self.sizes = np.asarray(sizes, dtype=np.float64)
        self.total_steps = int(total_steps)
        self.seed = seed

    @classmethod
    def parameter_names(cls) -> tuple[str, ...]:
        """The method's own parameters (an experiment's ``baselines.<name>`` keys): those of
        ``__init__`` after ``sizes``, ``total_steps`` and ``seed``; their defaults are the
        method's defaults, for ``popmix run`` and ``popmix search`` alike."""
        params = inspect.signature(cls.__init__).parameters
        skip = {"self", "sizes", "total_steps", "seed"}
        return tuple(
            n for n, p in params.items() if n not in skip and p.kind is p.POSITIONAL_OR_KEYWORD
        )

    @property
    def n_domains(self) -> int:
        return int(self.sizes.size)

    @property
    def needs(self) -> LoopNeeds:
        """What this policy needs from the loop; a static method needs nothing."""
        return LoopNeeds()

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
        follows (the conformance suite checks it). State moves only in :meth:`update`.
        """

    def update(self, signals: DomainSignals) -> None:
        """Receives what the loop measured, as :attr:`needs` asked: held-out losses before a
        step, per-domain gradients before the model step, training losses after it."""
        return None

    def evaluates_before(self, step: int) -> bool:
        """Whether the policy wants held-out losses (``needs.eval_windows`` windows per
        domain) measured before optimizer step ``step``; pure, like :meth:`weights`."""
        return False

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

    def bind(self, names: list[str]) -> None:
        """Told the domain names once, by the loop, before training (a policy that names a
        domain in its parameters resolves it here and raises :class:`PolicyError` if absent)."""
        return None

    def bind_vocab(self, vocab_size: int) -> None:
        """Told the model's vocabulary size once, by the loop, before training (DoReMi's
        starting excess, log |V|); most policies ignore it."""
        return None

    def diagnostics(self) -> dict[str, float]:
        """Scalars about the method's own working, logged at every report (e.g. DoGE's share of
        clipped scores); empty for most policies."""
        return {}

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


def normalize(x: ArrayLike) -> np.ndarray:
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
