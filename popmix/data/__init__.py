"""Domains and batches: the bottom layer (no model code, no Ray).

``load_domains`` is the single entry point the CLI, the loop and the Tune layer use.
"""

from __future__ import annotations

from popmix.data.domains import VOCAB_SIZE, DataError, Domain, DomainSet
from popmix.data.sampler import MixtureSampler, eval_windows, largest_remainder

#: built-in benchmarks (``--benchmark``); user data comes through ``--data``.
BENCHMARKS = ("brown16", "multilingual", "oracle16", "synthetic")


def load_domains(
    benchmark: str = "brown16",
    tasks: int | None = None,
    data: str | None = None,
    seed: int = 0,
    domain_column: str | None = None,
) -> DomainSet:
    """Load a domain set and keep its first ``tasks`` domains.

    Args:
        benchmark: ``brown16`` (15 Brown-corpus genres + Python code, shipped with popmix),
            ``multilingual`` (16 languages in 11 scripts, high- and low-resource, shipped with
            popmix; see :mod:`popmix.data.multilingual`), ``oracle16`` (16 synthetic domains of
            five kinds where the mixture matters, with a shipped oracle mixture; see
            :mod:`popmix.data.oracle16`) or ``synthetic`` (Markov-chain domains
            with a known loss floor; ``tasks`` of them are generated, 16 by default). Ignored
            when ``data`` is given.
        tasks: number of domains to keep (all when None).
        data: a folder with one file per domain, or a table file with a domain column, read
            offline through HF ``datasets``.
        seed: seed of the synthetic generator.
        domain_column: the column naming each row's domain, for table data.

    Raises:
        DataError: unknown benchmark, ``tasks`` out of range, missing or empty data.
    """
    if tasks is not None and tasks < 1:
        raise DataError(f"--tasks must be at least 1, got {tasks}")
    if data is not None:
        from popmix.data.files import load_user_data

        domains = load_user_data(data, domain_column=domain_column)
    elif benchmark == "brown16":
        from popmix.data.brown16 import load_brown16

        domains = load_brown16()
    elif benchmark == "multilingual":
        from popmix.data.multilingual import load_multilingual

        domains = load_multilingual()
    elif benchmark == "oracle16":
        from popmix.data.oracle16 import load_oracle16

        domains = load_oracle16(seed)
    elif benchmark == "synthetic":
        from popmix.data.synthetic import make_synthetic

        if tasks is not None and not 2 <= tasks <= 256:
            raise DataError(f"--tasks {tasks} is out of range for synthetic: use 2 to 256")
        return make_synthetic(16 if tasks is None else tasks, seed=seed)
    else:
        raise DataError(
            f"unknown benchmark {benchmark!r}; choose one of: {', '.join(BENCHMARKS)} "
            "(or pass --data DIR for your own files)"
        )
    return domains if tasks is None else domains.first(tasks)


__all__ = [
    "BENCHMARKS",
    "VOCAB_SIZE",
    "DataError",
    "Domain",
    "DomainSet",
    "MixtureSampler",
    "eval_windows",
    "largest_remainder",
    "load_domains",
]
