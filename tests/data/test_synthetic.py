import math

import numpy as np
import pytest

from popmix.data.domains import DataError, DomainSet
from popmix.data.synthetic import SYMBOLS, _build, make_synthetic

SMALL = dict(max_tokens=40_000, min_tokens=5_000, eval_tokens=4_096)


def symbols(tokens: np.ndarray, vocab: int) -> np.ndarray:
    """Byte tokens back to symbol indices 0..vocab-1 (fails on a byte outside the alphabet)."""
    inverse = np.full(256, -1, dtype=np.int64)
    inverse[np.frombuffer(SYMBOLS[:vocab], dtype=np.uint8)] = np.arange(vocab)
    s = inverse[tokens]
    assert s.min() >= 0, "token outside the chain's alphabet"
    return s


def bigram_counts(tokens: np.ndarray, vocab: int) -> np.ndarray:
    s = symbols(tokens, vocab)
    counts = np.zeros((vocab, vocab))
    np.add.at(counts, (s[:-1], s[1:]), 1)
    return counts


def plugin_conditional_entropy(counts: np.ndarray) -> float:
    """H(X_t | X_{t-1}) in nats from bigram counts."""
    joint = counts / counts.sum()
    rows = joint.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        cond = np.where(joint > 0, joint / rows, 1.0)
    return float(-(joint * np.log(cond)).sum())


def total_variation(a: np.ndarray, b: np.ndarray) -> float:
    return 0.5 * float(np.abs(a / a.sum() - b / b.sum()).sum())


def test_shape_names_and_alphabet():
    ds = make_synthetic(5, seed=3, vocab=20, **SMALL)
    assert isinstance(ds, DomainSet)
    assert ds.name == "synthetic"
    assert ds.names == ["syn000", "syn001", "syn002", "syn003", "syn004"]
    for d in ds:
        for split in ("train", "validation", "test"):
            a = d.split(split)
            assert a.dtype == np.uint8 and a.ndim == 1
            symbols(a, 20)  # every byte is one of the 20 symbols
        assert 0.0 < d.entropy_rate < math.log(20)
    ds.check(min_tokens=129)


def test_deterministic_per_seed():
    a = make_synthetic(4, seed=11, **SMALL)
    _build.cache_clear()  # regenerate for real, not from the cache
    b = make_synthetic(4, seed=11, **SMALL)
    for da, db in zip(a, b):
        for split in ("train", "validation", "test"):
            np.testing.assert_array_equal(da.split(split), db.split(split))
        assert da.entropy_rate == db.entropy_rate


def test_different_seeds_differ():
    a = make_synthetic(4, seed=0, **SMALL)
    b = make_synthetic(4, seed=1, **SMALL)
    for da, db in zip(a, b):
        assert not np.array_equal(da.train, db.train)
        assert not np.array_equal(da.validation, db.validation)
        assert da.entropy_rate != db.entropy_rate


def test_cached_result_cannot_be_corrupted_by_caller():
    a = make_synthetic(3, seed=5, **SMALL)
    keep = a[0].train.copy()
    a[0].train[:] = 0  # callers get their own writable copies
    b = make_synthetic(3, seed=5, **SMALL)
    np.testing.assert_array_equal(b[0].train, keep)


def test_splits_are_distinct_realisations():
    d = make_synthetic(2, seed=0, **SMALL)[0]
    assert not np.array_equal(d.validation, d.test)
    assert not np.array_equal(d.train[: d.test.size], d.test)


@pytest.mark.parametrize("imbalance", [0.0, 0.5, 1.0, 2.0])
def test_sizes_follow_power_law_with_floor(imbalance):
    ds = make_synthetic(12, seed=0, imbalance=imbalance, **SMALL)
    expected = [max(5_000, round(40_000 * (i + 1) ** -imbalance)) for i in range(12)]
    assert ds.sizes.tolist() == expected
    assert all(d.validation.size == 4_096 and d.test.size == 4_096 for d in ds)
    if imbalance == 0.0:
        assert set(ds.sizes.tolist()) == {40_000}
    if imbalance >= 1.0:
        assert ds.sizes[-1] == 5_000  # the floor applies


def test_default_sizes():
    ds = make_synthetic(16)
    assert ds.sizes[0] == 200_000 and ds.sizes[1] == 100_000 and ds.sizes[-1] == 20_000
    assert ds[0].validation.size == ds[0].test.size == 16_384


def test_entropy_rate_matches_empirical_estimate():
    vocab = 32
    ds = make_synthetic(6, seed=2, vocab=vocab)
    for d in ds:
        counts = bigram_counts(d.train, vocab)
        counts += bigram_counts(d.validation, vocab) + bigram_counts(d.test, vocab)
        estimate = plugin_conditional_entropy(counts)
        assert estimate == pytest.approx(d.entropy_rate, rel=0.05), d.name
    # the largest domain (200k train tokens) pins the rate much closer
    big = bigram_counts(ds[0].train, vocab)
    assert plugin_conditional_entropy(big) == pytest.approx(ds[0].entropy_rate, rel=0.01)


def test_entropy_rate_depends_on_concentration():
    peaked = make_synthetic(2, seed=0, concentration=0.05, **SMALL)
    flat = make_synthetic(2, seed=0, concentration=50.0, **SMALL)
    assert all(d.entropy_rate < 2.0 for d in peaked)
    assert all(d.entropy_rate == pytest.approx(math.log(32), rel=0.02) for d in flat)


def test_chains_join_without_seams():
    """Each split is simulated in 2048-token pieces; transitions at the joins follow the chain.

    With identical domains (relatedness=1), the pooled data estimate the one transition
    matrix well; the mean loss of the targets at the joins must be the entropy rate, not the
    much larger loss of a fresh (stationary) draw that ignores the previous token.
    """
    vocab = 32
    ds = make_synthetic(
        12, seed=4, vocab=vocab, relatedness=1.0, imbalance=0.0, max_tokens=204_800
    )
    counts = sum(bigram_counts(d.train, vocab) for d in ds) + 0.5
    P_hat = counts / counts.sum(axis=1, keepdims=True)
    h = ds[0].entropy_rate
    assert all(d.entropy_rate == h for d in ds)
    seam_nll, fresh_nll = [], []
    pi_hat = counts.sum(axis=0) / counts.sum()
    for d in ds:
        s = symbols(d.train, vocab)
        j = np.arange(2048, s.size, 2048)
        seam_nll.append(-np.log(P_hat[s[j - 1], s[j]]))
        fresh_nll.append(
            -np.log(P_hat[s[j - 1], np.random.default_rng(0).choice(vocab, size=j.size, p=pi_hat)])
        )
    seam = float(np.concatenate(seam_nll).mean())
    fresh = float(np.concatenate(fresh_nll).mean())
    assert fresh > h + 0.5  # what a seam would cost: the test can see it
    assert abs(seam - h) < 0.15


def test_relatedness_one_gives_identical_domains():
    vocab = 32
    ds = make_synthetic(3, seed=0, vocab=vocab, relatedness=1.0)
    assert ds[0].entropy_rate == ds[1].entropy_rate == ds[2].entropy_rate
    c = [bigram_counts(d.train, vocab) for d in ds]
    assert total_variation(c[0], c[1]) < 0.1
    assert total_variation(c[1], c[2]) < 0.1


def test_relatedness_zero_gives_different_domains():
    vocab = 32
    ds = make_synthetic(3, seed=0, vocab=vocab, relatedness=0.0)
    c = [bigram_counts(d.train, vocab) for d in ds]
    assert total_variation(c[0], c[1]) > 0.5
    assert total_variation(c[1], c[2]) > 0.5
    mid = make_synthetic(3, seed=0, vocab=vocab, relatedness=0.5)
    cm = [bigram_counts(d.train, vocab) for d in mid]
    assert 0.1 < total_variation(cm[0], cm[1]) < total_variation(c[0], c[1])


@pytest.mark.parametrize("vocab", [2, 95])
def test_vocab_extremes(vocab):
    ds = make_synthetic(2, seed=0, vocab=vocab, **SMALL)
    for d in ds:
        s = symbols(d.train, vocab)
        assert np.unique(s).size <= vocab
        assert 0.0 <= d.entropy_rate <= math.log(vocab) + 1e-12


def test_two_domains():
    ds = make_synthetic(2)
    assert ds.names == ["syn000", "syn001"]


def test_256_domains():
    ds = make_synthetic(256, seed=0)
    assert len(ds) == 256
    assert ds.names[-1] == "syn255"
    assert len(set(ds.names)) == 256
    assert ds.sizes.min() == 20_000 and ds.sizes.max() == 200_000
    assert all(d.entropy_rate is not None and d.entropy_rate > 0 for d in ds)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        (dict(n_domains=1), "n_domains=1"),
        (dict(n_domains=257), "n_domains=257"),
        (dict(n_domains=0), "between 2 and 256"),
        (dict(n_domains=2.5), "2.5"),
        (dict(n_domains=4, seed=-1), "seed=-1"),
        (dict(n_domains=4, vocab=1), "vocab=1"),
        (dict(n_domains=4, vocab=96), "vocab=96"),
        (dict(n_domains=4, relatedness=1.5), "relatedness=1.5"),
        (dict(n_domains=4, relatedness=-0.1), "relatedness=-0.1"),
        (dict(n_domains=4, relatedness=float("nan")), "relatedness=nan"),
        (dict(n_domains=4, imbalance=-1.0), "imbalance=-1.0"),
        (dict(n_domains=4, max_tokens=0), "max_tokens=0"),
        (dict(n_domains=4, min_tokens=-5), "min_tokens=-5"),
        (dict(n_domains=4, eval_tokens=0), "eval_tokens=0"),
        (dict(n_domains=4, concentration=0.0), "concentration=0.0"),
    ],
)
def test_bad_arguments(kwargs, fragment):
    with pytest.raises(DataError) as info:
        make_synthetic(**kwargs)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message
