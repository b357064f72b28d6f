"""Batches drawn from a mixture whose weights may change at every step.

HF ``interleave_datasets`` fixes its probabilities when the dataset is built; popmix's policies
change them during training, so batches come from this sampler instead. All randomness comes from
one ``np.random.Generator`` whose state is part of :meth:`MixtureSampler.state_dict`, so a
restored run draws exactly the batches the uninterrupted run would have drawn.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from popmix._util.simplex import project_simplex
from popmix.data.domains import DomainSet

COUNT_MODES = ("multinomial", "exact")


def largest_remainder(
    expected: np.ndarray, total: int, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Integer counts summing to ``total`` that round ``expected`` (which sums to ``total``).

    Expected counts off {e >= 0, Σ e = total} (a carried-over rounding deficit can be negative)
    are first projected onto it: one common shift, so a large share (a perturbed domain's 0.75)
    is not scaled down with the rest; then floors first, and the remaining units go to the
    largest fractional parts.
    Ties (fractional parts equal to 1e-9) are broken by ``rng`` when given, so no domain is
    favoured for its position (a smoothed one-hot over 16 domains in a batch of 16 ties 15 of
    them; index order would starve the last ones); without ``rng``, toward the lower index.
    Every count is >= 0.
    """
    e = np.asarray(expected, dtype=np.float64)
    if np.any(e < 0) or abs(e.sum() - total) > 1e-9 * max(total, 1):
        e = project_simplex(e, total)
    base = np.floor(e + 1e-9).astype(np.int64)
    rest = int(total - base.sum())
    if rest > 0:
        frac = np.round(e - base, 9)
        tiebreak = rng.random(e.size) if rng is not None else np.arange(e.size)
        order = np.lexsort((tiebreak, -frac))
        base[order[:rest]] += 1
    return base


class MixtureSampler:
    """Draws training batches of token windows from a :class:`DomainSet`.

    The batch composition (examples per domain) follows the weights given at each call:

    - ``count_mode="multinomial"``: counts ~ Multinomial(batch_size, weights), each example's
      domain drawn independently (what "sampling from p" means).
    - ``count_mode="exact"``: deterministic counts by largest-remainder rounding of a running
      deficit, so the composition over consecutive batches tracks the weights exactly, and a
      batch that can hold every domain's share holds it (stratified batches when the weights are
      uniform and batch_size is a multiple of n_domains).

    A window is ``seq_len + 1`` consecutive tokens at a uniformly drawn offset of the domain's
    ``split`` (training by default). Rows of a batch are grouped by domain, in domain order.

    Args:
        domains: the domain set.
        batch_size: examples per batch.
        seq_len: model context; a window holds seq_len + 1 tokens.
        seed: seed of the sampler's generator.
        count_mode: ``"multinomial"`` or ``"exact"``.
    """

    def __init__(
        self,
        domains: DomainSet,
        batch_size: int,
        seq_len: int,
        seed: int = 0,
        count_mode: str = "multinomial",
        split: str = "train",
    ) -> None:
        if count_mode not in COUNT_MODES:
            raise ValueError(f"unknown count_mode {count_mode!r}; choose one of {COUNT_MODES}")
        self.domains = domains
        self.batch_size = batch_size
        self.seq_len = seq_len
        self.count_mode = count_mode
        self._rng = np.random.default_rng(seed)
        self._deficit = np.zeros(len(domains))
        self._window = np.arange(seq_len + 1)
        self._tokens = [d.split(split) for d in domains]
        self._last_weights: np.ndarray | None = None
        # Valid window starts per domain: [0, n_i - seq_len - 1].
        self._n_starts = np.array([t.size - seq_len for t in self._tokens], dtype=np.int64)
        if np.any(self._n_starts < 1):
            small = [d.name for d, n in zip(domains, self._n_starts) if n < 1]
            raise ValueError(f"{split} split shorter than seq_len + 1 in: {small}")

    def counts(self, weights: np.ndarray) -> np.ndarray:
        """Examples per domain for the next batch, shape (n_domains,), summing to batch_size."""
        w = np.asarray(weights, dtype=np.float64)
        if self.count_mode == "multinomial":
            return self._rng.multinomial(self.batch_size, w / w.sum())
        # Carry the rounding error over to the next batches so no domain is starved; a new
        # mixture starts afresh, so each batch of it is exactly its largest-remainder rounding.
        if self._last_weights is None or not np.array_equal(w, self._last_weights):
            self._deficit[:] = 0.0
            self._last_weights = w.copy()
        self._deficit += self.batch_size * (w / w.sum())
        c = largest_remainder(self._deficit, self.batch_size, self._rng)
        self._deficit -= c
        return c

    def batch(self, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Windows for the given composition: tokens (B, seq_len + 1) int64, domain ids (B,)."""
        rows, ids = [], []
        for i, c in enumerate(counts):
            if c == 0:
                continue
            starts = self._rng.integers(0, self._n_starts[i], size=int(c))
            rows.append(self._tokens[i][starts[:, None] + self._window])
            ids.append(np.full(int(c), i, dtype=np.int64))
        return np.concatenate(rows).astype(np.int64), np.concatenate(ids)

    def state_dict(self) -> dict[str, Any]:
        last = None if self._last_weights is None else self._last_weights.tolist()
        return {
            "rng": self._rng.bit_generator.state,
            "deficit": self._deficit.tolist(),
            "last_weights": last,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._rng.bit_generator.state = state["rng"]
        self._deficit = np.asarray(state["deficit"], dtype=np.float64)
        last = state.get("last_weights")
        self._last_weights = None if last is None else np.asarray(last, dtype=np.float64)


def eval_windows(tokens: np.ndarray, seq_len: int, max_windows: int | None) -> np.ndarray:
    """Contiguous, non-overlapping windows of ``seq_len + 1`` tokens from a held-out split.

    Deterministic (no sampling), so every method and every evaluation sees the same text. When
    the split holds more than ``max_windows`` windows, they are spread evenly over the split.
    """
    n = (tokens.size - 1) // seq_len
    if n < 1:
        return np.zeros((0, seq_len + 1), dtype=np.int64)
    starts = np.arange(n) * seq_len
    if max_windows is not None and n > max_windows:
        starts = starts[np.linspace(0, n - 1, max_windows).round().astype(np.int64)]
    return tokens[starts[:, None] + np.arange(seq_len + 1)].astype(np.int64)
