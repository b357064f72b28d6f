"""The built-in benchmark ``oracle16``: 16 synthetic domains where the mixture matters, with
a known loss floor per domain and a shipped oracle mixture.

The plain synthetic generator (:mod:`popmix.data.synthetic`) gives domains that all look
alike, so every method lands within a few hundredths of a nat of the others. ``oracle16`` is
built from the reasons real corpora need a mixture, each a *kind* of domain (``DomainSet.meta
["groups"]``, so results are also given per kind):

- ``noise`` (5 domains, 300 K training tokens each): symbols drawn independently and
  uniformly from 24 of their own. The best prediction is the uniform one, reached in a few
  steps; more training is waste. Large, so proportional sampling spends most of its budget on
  them.
- ``easy`` (5, 300 K): independent draws from a peaked distribution (Dirichlet(0.1)) over 23
  symbols of their own, learned at a small share of the batch.
- ``related`` (2, 100 K): first-order chains over the 48 shared symbols whose transition
  tables share 80% of one table, so what is learned on one transfers to the other.
- ``rich`` (3, 100 K): independent first-order chains, Dirichlet(0.1) rows: far from their
  floor at the proxy budget, they gain from every step they get.
- ``tiny`` (1, 2 K): a chain like ``rich`` with so little training text that upsampling it
  soon repeats it.

Noise and easy domains have alphabets of their own (as boilerplate or another script would);
the chains share one. Every domain is an order-k Markov chain (k = 0 or 1; :data:`KINDS`),
whose entropy rate ``sum_c pi_c H(P[c, :])`` (``pi`` the stationary distribution of the
k-symbol contexts) is its ``entropy_rate``. Each split is simulated as chains of 4096 tokens,
run in parallel from a 64-step burn-in and joined end to end. At each junction, the first k
targets of the next chain follow a context from the previous chain, so the floor is exact to
within k x log(48) / 4096 nats (under 0.001).

The oracle (:func:`oracle`) is the best static mixture for the proxy of
``experiments/oracle16.yaml``, found once by ``benchmarks/oracle16_search.py`` with many proxy
runs and shipped as data (``assets/oracle16_oracle.json``). The generator is deterministic: the
same seed gives the same arrays on every machine.
"""

from __future__ import annotations

import functools
import json
from importlib.resources import files
from typing import Any

import numpy as np

from popmix.data.domains import Domain, DomainSet
from popmix.data.synthetic import SYMBOLS

NAME = "oracle16"
ORACLE_ASSET = "oracle16_oracle.json"
EVAL_TOKENS = 16_384
_CHAIN_LEN = 4096
_BURN_IN = 64

#: (kind, count, order, train tokens, row concentration, shared share, first symbol, symbols)
KINDS: tuple[tuple[str, int, int, int, float, float, int, int], ...] = (
    ("noise", 5, 0, 300_000, 0.0, 0.0, 48, 24),
    ("easy", 5, 0, 300_000, 0.1, 0.0, 72, 23),
    ("related", 2, 1, 100_000, 0.1, 0.8, 0, 48),
    ("rich", 3, 1, 100_000, 0.1, 0.0, 0, 48),
    ("tiny", 1, 1, 2_000, 0.1, 0.0, 0, 48),
)


def domain_names() -> list[str]:
    """The 16 names in the benchmark's order (``noise0``..``tiny1``)."""
    return [f"{kind}{i}" for kind, count, *_ in KINDS for i in range(count)]


def load_oracle16(seed: int = 0) -> DomainSet:
    """The 16 domains (fresh, writable copies; generated once per process and seed)."""
    cached = _build(seed)
    domains = tuple(
        Domain(d.name, d.train.copy(), d.validation.copy(), d.test.copy(), d.entropy_rate)
        for d in cached.domains
    )
    meta = json.loads(json.dumps(cached.meta))
    found = oracle()
    if found is not None and found["proxy"]["data"]["seed"] == seed:
        meta["oracle"] = found  # what a search's summary measures every method against
    return DomainSet(cached.name, domains, meta)


def oracle() -> dict[str, Any] | None:
    """The shipped oracle: ``weights`` (domain -> weight), ``test_mean_loss`` (its mean over
    seeds), ``seeds``, ``proxy`` (the model and training settings it holds for) and how it was
    found (``search``); None before ``benchmarks/oracle16_search.py`` has written it."""
    path = files("popmix.data") / "assets" / ORACLE_ASSET
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def _transition_table(
    rng: np.random.Generator,
    v: int,
    order: int,
    concentration: float,
    shared: np.ndarray | None,
    share: float,
) -> np.ndarray:
    """Rows P[c, :] over ``v`` symbols for every context c of ``order`` symbols, shape
    (v**order, v); order 0 with concentration 0 is the uniform distribution."""
    if order == 0 and concentration == 0.0:
        return np.full((1, v), 1.0 / v)
    own = rng.dirichlet(np.full(v, concentration), size=v**order)
    if shared is None or share == 0.0:
        return own
    table = share * shared + (1.0 - share) * own
    return table / table.sum(axis=1, keepdims=True)


def _stationary(table: np.ndarray, v: int, order: int) -> np.ndarray:
    """The stationary distribution of the order-k chain's contexts, shape (v**order,)."""
    if order == 0:
        return np.ones(1)
    pi = np.full(v**order, 1.0 / v**order)
    # context (a, ..., b) followed by c moves to context (..., b, c)
    p = table.reshape(v, v ** (order - 1), v)
    for _ in range(5000):
        new = (pi.reshape(v, v ** (order - 1))[:, :, None] * p).sum(axis=0).reshape(-1)
        if np.abs(new - pi).max() < 1e-14:
            break
        pi = new
    return new / new.sum()


def _entropy_rate(table: np.ndarray, pi: np.ndarray) -> float:
    """sum_c pi_c H(P[c, :]) in nats."""
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(table > 0, table * np.log(table), 0.0)
    return float(-(pi * plogp.sum(axis=1)).sum())


def _simulate(
    table: np.ndarray, v: int, order: int, n: int, rng: np.random.Generator
) -> np.ndarray:
    """``n`` symbol indices of the chain: parallel chains of 4096 after a burn-in, joined."""
    chains = -(-n // _CHAIN_LEN)
    cdf = np.cumsum(table, axis=1)
    cdf[:, -1] = 1.0
    steps = _BURN_IN + _CHAIN_LEN
    u = rng.random((steps, chains))
    out = np.empty((steps, chains), dtype=np.int64)
    # uniform first contexts; the burn-in takes the chains to stationarity
    context = rng.integers(0, v**order, size=chains)
    span = v ** max(order - 1, 0)
    for t in range(steps):
        x = np.minimum((cdf[context] <= u[t][:, None]).sum(axis=1), v - 1)
        out[t] = x
        if order:
            context = (context % span) * v + x
    return out[_BURN_IN:].T.reshape(-1)[:n]


@functools.lru_cache(maxsize=4)
def _build(seed: int) -> DomainSet:
    rng = np.random.default_rng([seed, 16])
    table_of_bytes = np.frombuffer(SYMBOLS, dtype=np.uint8)
    domains, groups, kinds = [], {}, {}
    for kind, count, order, size, conc, share, first, v in KINDS:
        symbols = table_of_bytes[first : first + v]
        shared = rng.dirichlet(np.full(v, conc), size=v**order) if share > 0 else None
        for i in range(count):
            table = _transition_table(rng, v, order, conc, shared, share)
            floor = _entropy_rate(table, _stationary(table, v, order))
            splits = [
                symbols[_simulate(table, v, order, m, rng)]
                for m in (size, EVAL_TOKENS, EVAL_TOKENS)
            ]
            for a in splits:
                a.flags.writeable = False
            name = f"{kind}{i}"
            train, validation, test = splits
            domains.append(Domain(name, train, validation, test, floor))
            groups[name] = kind
        kinds[kind] = {
            "domains": count,
            "order": order,
            "train_tokens": size,
            "concentration": conc,
            "shared_share": share,
            "alphabet": bytes(symbols).decode("ascii"),
        }
    meta = {
        "source": "synthetic (popmix.data.oracle16)",
        "seed": seed,
        "kinds": kinds,
        "groups": groups,
    }
    return DomainSet(NAME, tuple(domains), meta)


__all__ = ["KINDS", "NAME", "domain_names", "load_oracle16", "oracle"]
