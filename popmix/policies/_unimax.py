"""UniMax: uniform over domains, each capped at a number of epochs (Chung et al., ICLR 2023)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from popmix.policies._base import MixingPolicy, PolicyError


def unimax_allocation(sizes: np.ndarray, budget: float, max_epochs: float) -> np.ndarray:
    """Tokens given to each domain by UniMax's allocation (Chung et al. 2023, Algorithm 1).

    Domains are visited from the smallest to the largest. Each gets an equal share of the
    budget still unallocated, ``remaining / (domains not yet visited)``, unless that share is
    more than ``max_epochs`` passes over it, in which case it gets exactly ``max_epochs * n_i``
    and what it leaves goes on to be shared by the larger domains. A domain that is not capped
    gets the same share as every larger one, so the result is uniform over the uncapped
    domains. When every domain is capped the allocation is below the budget (the data cannot
    fill it without more repetition); the weights are then proportional to the caps.

    Args:
        sizes: tokens per domain, shape (k,), all positive.
        budget: tokens of the run the mixture is for.
        max_epochs: passes over a domain it may not exceed.

    Returns:
        Tokens per domain, shape (k,), summing to at most ``budget``.
    """
    sizes = np.asarray(sizes, dtype=np.float64)
    caps = max_epochs * sizes
    alloc = np.zeros_like(sizes)
    remaining = float(budget)
    order = np.argsort(sizes, kind="stable")
    for visited, i in enumerate(order):
        share = remaining / (sizes.size - visited)
        alloc[i] = min(share, caps[i])
        remaining -= alloc[i]
    return alloc


class UniMaxPolicy(MixingPolicy):
    """UniMax sampling: as uniform as the data allows, no domain repeated more than
    ``max_epochs`` times over ``budget_tokens`` (:func:`unimax_allocation`).

    Static, with no extra compute. The paper allocates a character budget over languages;
    popmix allocates the tokens of the domain sizes (bytes for byte-level text), the unit of
    :attr:`MixingPolicy.sizes`. The paper's budget is the *target* run's: by default the
    experiment gives ``data.target_tokens`` when set, else this run's own tokens
    (``train.steps * train.batch_size * model.seq_len``); a policy built with no budget at all
    (``budget_tokens: null`` outside an experiment) is uniform, as if nothing were capped.

    Args:
        max_epochs: passes over a domain's data the budget may ask for (> 0). The paper studies
            several values; 4 follows Muennighoff et al. (2023), who found up to about four
            epochs of repeated data nearly as good as unique data.
        budget_tokens: tokens of the run the mixture is for (> 0), or null (see above).
    """

    name = "unimax"

    def __init__(
        self,
        sizes: np.ndarray,
        total_steps: int,
        seed: int = 0,
        max_epochs: float = 4.0,
        budget_tokens: float | None = None,
    ) -> None:
        super().__init__(sizes, total_steps, seed)
        self.max_epochs = max_epochs
        self.budget_tokens = budget_tokens

    def validate(self) -> None:
        super().validate()
        for key in ("max_epochs", "budget_tokens"):
            value = getattr(self, key)
            if key == "budget_tokens" and value is None:
                continue
            if not (
                isinstance(value, (int, float))
                and not isinstance(value, bool)
                and math.isfinite(value)
                and value > 0
            ):
                raise PolicyError(f"unimax {key} must be a positive number, got {value!r}")

    def allocation(self) -> np.ndarray:
        """Tokens per domain at the budget (uniform shares of the sizes' total without one)."""
        budget = self.budget_tokens
        if budget is None:
            return np.full(self.n_domains, 1.0)
        return unimax_allocation(self.sizes, float(budget), float(self.max_epochs))

    def weights(self, step: int) -> np.ndarray:
        alloc = self.allocation()
        return alloc / alloc.sum()

    def capped(self) -> np.ndarray:
        """Which domains sit at their cap (boolean, shape (k,))."""
        if self.budget_tokens is None:
            return np.zeros(self.n_domains, dtype=bool)
        caps = float(self.max_epochs) * self.sizes
        return np.isclose(self.allocation(), caps, rtol=1e-12, atol=0.0)

    def hparams(self) -> dict[str, Any]:
        return {
            "max_epochs": float(self.max_epochs),
            "budget_tokens": None if self.budget_tokens is None else float(self.budget_tokens),
            "capped_domains": int(self.capped().sum()),
        }
