"""Synthetic domains: stationary first-order Markov chains with a known loss floor.

Every domain is a Markov chain over ``vocab`` printable symbols. The transition matrix of domain
``i`` is a mix of one matrix shared by all domains and one of its own::

    P_i = relatedness * P_shared + (1 - relatedness) * P_own_i

with every row of ``P_shared`` and ``P_own_i`` drawn from ``Dirichlet(concentration)``. So
``relatedness=1`` gives identical domains (what one learns transfers fully) and ``relatedness=0``
independent ones. Domain sizes follow a power law, so the mixture problem is imbalanced the way
real corpora are.

Because the generating process is known, each :class:`~popmix.data.domains.Domain` carries its
``entropy_rate`` ``H_i = sum_s pi_s * H(P_i[s, :])`` (nats per token, ``pi`` the stationary
distribution): the lowest expected next-token loss any model can reach, which lets tests and
reports measure *excess* loss over an exact floor.
"""

from __future__ import annotations

import functools
import math
import numbers

import numpy as np

from .domains import DataError, Domain, DomainSet

__all__ = ["SYMBOLS", "make_synthetic"]

#: Printable byte table used for the chain's symbols (symbol ``k`` is byte ``SYMBOLS[k]``):
#: upper-case, lower-case, digits, then the other printable ASCII characters and space (95).
SYMBOLS = bytes(
    list(range(ord("A"), ord("Z") + 1))
    + list(range(ord("a"), ord("z") + 1))
    + list(range(ord("0"), ord("9") + 1))
    + [c for c in range(32, 127) if not chr(c).isalnum()]
)
assert len(SYMBOLS) == 95 and len(set(SYMBOLS)) == 95

MAX_DOMAINS = 256
_CHAIN_LEN = 2048  # tokens per simulated chain; chains of a split are joined end to end
_MAX_BRIDGE = 128  # at most this many steps at the end of a chain are bridged to the next one
_MIX_TOL = 1e-6  # bridge until max |P^r - 1 pi^T| is below this


def make_synthetic(
    n_domains: int,
    seed: int = 0,
    *,
    vocab: int = 32,
    relatedness: float = 0.5,
    imbalance: float = 1.0,
    max_tokens: int = 200_000,
    min_tokens: int = 20_000,
    eval_tokens: int = 16_384,
    concentration: float = 0.3,
) -> DomainSet:
    """``n_domains`` Markov-chain domains with known entropy rates (DomainSet ``"synthetic"``).

    Args:
        n_domains: number of domains, 2 to 256; named ``syn000``, ``syn001``, ...
        seed: the one source of randomness (``np.random.default_rng(seed)``); the same arguments
            give identical arrays, a different seed different ones.
        vocab: symbols per chain, 2 to 95, written as the printable bytes ``SYMBOLS[:vocab]``
            (``"AB...Zab...z0..9"`` then punctuation).
        relatedness: weight of the shared transition matrix, in [0, 1].
        imbalance: power-law exponent of the sizes, ``>= 0``: domain ``i`` gets
            ``max(min_tokens, round(max_tokens * (i + 1) ** -imbalance))`` training tokens
            (``0`` gives every domain ``max_tokens``).
        max_tokens, min_tokens: largest size and floor of the size law (positive).
        eval_tokens: tokens in each of the validation and test splits (positive).
        concentration: Dirichlet parameter of the transition rows (``> 0``); small values give
            peaked rows (low entropy), large ones near-uniform rows (entropy near ``log(vocab)``).

    Why ``entropy_rate`` is an exact floor: every split is a realisation of the stationary chain
    (each chain starts at the stationary distribution ``pi``), so the state that precedes any
    target token is distributed as ``pi`` and the target follows ``P[state, :]``. A model scoring
    a target always sees at least the one token before it (the first token of a window is only
    ever context, never a target), which is all the information the chain carries about the
    next symbol; its best expected loss is therefore ``sum_s pi_s H(P[s, :])``, whatever window
    position or length is used. For speed each split is simulated as many chains of 2048
    tokens that run in parallel and are joined end to end; the last steps of each chain are
    sampled *conditioned on* the next chain's first symbol (a Markov bridge over the mixing
    time), so the joined array is a single stationary chain up to an error below 1e-6 per
    junction (in practice: exact), not a series of independent pieces with a seam every 2048
    tokens.

    Results are cached per argument tuple; each call returns fresh (writable) copies of the
    arrays, so a caller can't corrupt what a later call gets.

    Raises:
        DataError: an argument outside its allowed range (one line naming the value).
    """
    n_domains = _check_int("n_domains", n_domains, 2, MAX_DOMAINS)
    seed = _check_int("seed", seed, 0, None)
    vocab = _check_int("vocab", vocab, 2, len(SYMBOLS))
    relatedness = _check_float("relatedness", relatedness, 0.0, 1.0)
    imbalance = _check_float("imbalance", imbalance, 0.0, None)
    max_tokens = _check_int("max_tokens", max_tokens, 1, None)
    min_tokens = _check_int("min_tokens", min_tokens, 1, None)
    eval_tokens = _check_int("eval_tokens", eval_tokens, 1, None)
    concentration = _check_float("concentration", concentration, 0.0, None, open_low=True)
    cached = _build(
        n_domains,
        seed,
        vocab,
        relatedness,
        imbalance,
        max_tokens,
        min_tokens,
        eval_tokens,
        concentration,
    )
    domains = tuple(
        Domain(d.name, d.train.copy(), d.validation.copy(), d.test.copy(), d.entropy_rate)
        for d in cached.domains
    )
    return DomainSet(cached.name, domains, dict(cached.meta))


# ---------------------------------------------------------------------------------------------
# argument checks


def _check_int(name: str, value, low: int, high: int | None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise DataError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if value < low or (high is not None and value > high):
        allowed = f"between {low} and {high}" if high is not None else f">= {low}"
        raise DataError(f"{name}={value} is out of range; it must be {allowed}")
    return value


def _check_float(
    name: str, value, low: float, high: float | None, *, open_low: bool = False
) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise DataError(f"{name} must be a number, got {value!r}")
    value = float(value)
    too_low = value <= low if open_low else value < low
    if not math.isfinite(value) or too_low or (high is not None and value > high):
        if high is not None:
            allowed = f"in [{low:g}, {high:g}]"
        else:
            allowed = f"{'>' if open_low else '>='} {low:g}"
        raise DataError(f"{name}={value!r} is out of range; it must be {allowed}")
    return value


# ---------------------------------------------------------------------------------------------
# chain construction


def _stationary(P: np.ndarray) -> np.ndarray:
    """Stationary distributions of a stack of row-stochastic matrices, shape (N, V)."""
    n, v, _ = P.shape
    # pi (P - I) = 0 with sum(pi) = 1: replace one (redundant) equation by the normalisation.
    A = np.transpose(P, (0, 2, 1)) - np.eye(v)
    A[:, -1, :] = 1.0
    b = np.zeros((n, v))
    b[:, -1] = 1.0
    pi = np.linalg.solve(A, b[..., None])[..., 0]
    for _ in range(3):  # polish away round-off
        pi = np.einsum("ns,nst->nt", pi, P)
    if not np.all(np.isfinite(pi)) or pi.min() < -1e-9:
        raise DataError("synthetic chain has no unique stationary distribution; change the seed")
    pi = np.clip(pi, 0.0, None)
    pi /= pi.sum(axis=1, keepdims=True)
    residual = np.abs(np.einsum("ns,nst->nt", pi, P) - pi).max()
    if residual > 1e-9:
        raise DataError(
            "synthetic chain's stationary distribution did not converge "
            f"(residual {residual:.1e}); change the seed"
        )
    return pi


def _entropy_rate(P: np.ndarray, pi: np.ndarray) -> np.ndarray:
    """sum_s pi_s H(P[s, :]) in nats, per domain."""
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(P > 0, P * np.log(P), 0.0)
    row_h = -plogp.sum(axis=2)  # (N, V)
    return (pi * row_h).sum(axis=1)


def _bridge_length(P: np.ndarray, pi: np.ndarray, cap: int) -> int:
    """Smallest r (a power of two, at most ``cap``) with P^r within _MIX_TOL of rank one."""
    Q = P.copy()
    r = 1
    while r < cap:
        if np.abs(Q - pi[:, None, :]).max() < _MIX_TOL:
            break
        Q = Q @ Q
        r *= 2
    return min(r, cap)


def _cdf(p: np.ndarray) -> np.ndarray:
    c = np.cumsum(p, axis=-1)
    c /= c[..., -1:]
    c[..., -1] = 1.0  # guard against round-off: u < 1 always lands in the table
    return c


def _sample(cdf_rows: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse-CDF draw per row: index of the first cdf entry above u."""
    idx = (cdf_rows <= u[:, None]).sum(axis=1)
    return np.minimum(idx, cdf_rows.shape[1] - 1)


def _simulate(
    P: np.ndarray,
    pi: np.ndarray,
    lengths: list[int],
    group_domain: list[int],
    rng: np.random.Generator,
) -> list[np.ndarray]:
    """One stationary chain per group (``lengths[g]`` states of domain ``group_domain[g]``).

    Every group is cut into chains of ``_CHAIN_LEN`` that are all advanced together, one time
    step at a time; chain ``k`` of a group ends with a Markov bridge to chain ``k + 1``'s first
    state, so the chains join into one realisation.
    """
    n_dom, v, _ = P.shape
    L = _CHAIN_LEN
    n_chains = [max(1, -(-n // L)) for n in lengths]
    dom = np.repeat(np.asarray(group_domain, dtype=np.int64), n_chains)
    K = dom.size
    # successor chain of each chain (same group), or -1 for a group's last chain
    nxt = np.arange(1, K + 1, dtype=np.int64)
    nxt[np.cumsum(n_chains) - 1] = -1
    bridged = np.flatnonzero(nxt >= 0)
    free = np.flatnonzero(nxt < 0)

    row_cdf = _cdf(P).reshape(n_dom * v, v)
    x = _sample(_cdf(pi)[dom], rng.random(K))
    out = np.empty((K, L), dtype=np.uint8)
    out[:, 0] = x

    R = _bridge_length(P, pi, min(_MAX_BRIDGE, L - 1)) if bridged.size else 0
    if R:
        # H[j, r-1, :] = P^r[:, f_j]: chance to reach the next chain's first state f_j in r steps
        f = x[nxt[bridged]]
        db = dom[bridged]
        H = np.empty((bridged.size, R, v), dtype=np.float64)
        Pr = P.copy()
        for r in range(1, R + 1):
            H[:, r - 1, :] = Pr[db, :, f]
            if r < R:
                Pr = Pr @ P

    for t in range(1, L):
        u = rng.random(K)
        r = L - t  # steps from position t to the next chain's first state (position L)
        if r > R:
            x = _sample(row_cdf[dom * v + x], u)
        else:
            new = np.empty_like(x)
            new[free] = _sample(row_cdf[dom[free] * v + x[free]], u[free])
            w = P[dom[bridged], x[bridged], :] * H[:, r - 1, :]
            total = w.sum(axis=1, keepdims=True)
            bad = total[:, 0] <= 0  # only possible with underflowed probabilities
            if bad.any():
                w[bad] = P[dom[bridged][bad], x[bridged][bad], :]
                total[bad] = w[bad].sum(axis=1, keepdims=True)
            new[bridged] = _sample(_cdf(w / total), u[bridged])
            x = new
        out[:, t] = x

    chains = []
    start = 0
    for n, c in zip(lengths, n_chains):
        chains.append(out[start : start + c].reshape(-1)[:n])
        start += c
    return chains


@functools.lru_cache(maxsize=16)
def _build(
    n_domains: int,
    seed: int,
    vocab: int,
    relatedness: float,
    imbalance: float,
    max_tokens: int,
    min_tokens: int,
    eval_tokens: int,
    concentration: float,
) -> DomainSet:
    rng = np.random.default_rng(seed)
    alpha = np.full(vocab, concentration)
    shared = rng.dirichlet(alpha, size=vocab)
    own = rng.dirichlet(alpha, size=(n_domains, vocab))
    P = relatedness * shared[None] + (1.0 - relatedness) * own
    P /= P.sum(axis=2, keepdims=True)
    pi = _stationary(P)
    h = _entropy_rate(P, pi)

    sizes = [
        max(min_tokens, round(max_tokens * (i + 1) ** (-imbalance))) for i in range(n_domains)
    ]
    lengths, group_domain = [], []
    for i, n in enumerate(sizes):
        lengths += [n, eval_tokens, eval_tokens]
        group_domain += [i, i, i]
    states = _simulate(P, pi, lengths, group_domain, rng)

    table = np.frombuffer(SYMBOLS[:vocab], dtype=np.uint8)
    domains = []
    for i in range(n_domains):
        train, val, test = (table[s] for s in states[3 * i : 3 * i + 3])
        for a in (train, val, test):
            a.flags.writeable = False
        domains.append(Domain(f"syn{i:03d}", train, val, test, float(h[i])))
    meta = {
        "source": "synthetic",
        "seed": seed,
        "vocab": vocab,
        "relatedness": relatedness,
        "imbalance": imbalance,
        "max_tokens": max_tokens,
        "min_tokens": min_tokens,
        "eval_tokens": eval_tokens,
        "concentration": concentration,
        "alphabet": SYMBOLS[:vocab].decode("ascii"),
    }
    return DomainSet("synthetic", tuple(domains), meta)
