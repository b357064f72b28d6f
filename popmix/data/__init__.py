"""Domains and batches: the bottom layer (no model code, no Ray).

``load_experiment_domains`` (an experiment's ``data`` settings through ``load_domains``) is the
single entry point the CLI and the Tune layer use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from popmix.data.domains import VOCAB_SIZE, DataError, Domain, DomainSet, check_vocab
from popmix.data.sampler import MixtureSampler, eval_windows, largest_remainder

#: built-in benchmarks (``--benchmark``); user data comes through ``--data``.
BENCHMARKS = ("brown16", "multilingual", "oracle16", "synthetic")


def load_domains(
    benchmark: str = "brown16",
    tasks: int | None = None,
    data: str | None = None,
    seed: int = 0,
    domain_column: str | None = None,
    *,
    domain_field: str | None = None,
    domains: Mapping[str, Sequence[str]] | None = None,
    text_field: str = "text",
    token_dtype: str | None = None,
    rescan: bool = False,
    sample_tokens: int | None = None,
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
        data: a corpus folder (a domain per first-level file or folder of shards, unless
            ``domain_field`` or ``domains``), or a table file with a domain field; see
            :mod:`popmix.data.corpus`.
        seed: seed of the synthetic generator, and of the sample of a corpus.
        domain_column: the field naming each record's domain (a dotted path); the same as
            ``domain_field``, which wins when both are given.
        domains: domain name -> globs relative to ``data``.
        text_field: the field holding each record's text.
        token_dtype: dtype of headerless ``.npy`` token files.
        rescan: count the corpus again instead of using its cached manifest.
        sample_tokens: bytes of text sampled per domain (default
            :data:`popmix.data.corpus.DEFAULT_SAMPLE_TOKENS`); a smaller domain is read whole.

    Raises:
        DataError: unknown benchmark, ``tasks`` out of range, missing or empty data.
    """
    if tasks is not None and tasks < 1:
        raise DataError(f"--tasks must be at least 1, got {tasks}")
    if data is not None:
        from popmix.data.corpus import load_corpus

        domain_set = load_corpus(
            data,
            domain_field=domain_field or domain_column,
            domains=domains,
            text_field=text_field,
            token_dtype=token_dtype,
            rescan=rescan,
            seed=seed,
            sample_tokens=sample_tokens,
        )
    elif benchmark == "brown16":
        from popmix.data.brown16 import load_brown16

        domain_set = load_brown16()
    elif benchmark == "multilingual":
        from popmix.data.multilingual import load_multilingual

        domain_set = load_multilingual()
    elif benchmark == "oracle16":
        from popmix.data.oracle16 import load_oracle16

        domain_set = load_oracle16(seed)
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
    return domain_set if tasks is None else domain_set.first(tasks)


def sample_tokens_of(exp: Any) -> int:
    """A corpus's sample per domain for an experiment (:class:`popmix.config.Experiment`):
    its ``data.sample_tokens``, else what its longest trial could draw from one domain at
    weight 1 plus its held-out windows (:func:`popmix.data.corpus.sample_tokens_for`), so a
    run, a search and a confirmation of one experiment train on the same sample."""
    from popmix.data.corpus import sample_tokens_for

    if exp.data.sample_tokens is not None:
        return int(exp.data.sample_tokens)
    t = exp.train
    return sample_tokens_for(
        t.steps, t.batch_size, exp.model.seq_len, t.eval_windows, t.test_windows
    )


def load_experiment_domains(exp: Any) -> DomainSet:
    """The domains of an experiment, from every one of its ``data`` settings; the one way
    ``popmix run``, ``search``, ``calibrate`` and ``confirm`` load them."""
    d = exp.data
    domain_set = load_domains(
        d.benchmark,
        d.tasks,
        d.path,
        seed=d.seed,
        domain_field=d.domain_field,
        domains=dict(d.domains),
        text_field=d.text_field,
        token_dtype=d.token_dtype,
        rescan=d.rescan,
        sample_tokens=sample_tokens_of(exp),
    )
    if exp.model.tokenizer is not None:
        from popmix.data.tokenize import tokenize_domains

        domain_set = tokenize_domains(domain_set, exp.model.tokenizer)
    key = "model.hf_config" if exp.model.hf_config is not None else "model.vocab_size"
    check_vocab(domain_set, model_vocab(exp.model), key)  # before any trial builds a model
    return domain_set


def model_vocab(model: Any) -> int | None:
    """The vocabulary a model config (:class:`popmix.config.ModelConfig`) fixes, or None
    (from the data): ``model.vocab_size``, or an ``hf_config``'s own ``vocab_size``."""
    if getattr(model, "hf_config", None) is not None:
        try:
            vocab = model.hf_dict().get("vocab_size")
        except ValueError as e:
            raise DataError(str(e)) from None
        return None if vocab is None else int(vocab)
    return model.vocab_size


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
    "load_experiment_domains",
    "model_vocab",
    "sample_tokens_of",
]
