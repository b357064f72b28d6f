"""Test-session settings: offline, 2 CPUs, Ray on loopback only."""

from __future__ import annotations

import os

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def tiny_domains():
    """Four small domains with different byte alphabets, sizes 4000..16000 tokens."""
    from popmix.data.domains import Domain, DomainSet

    rng = np.random.default_rng(123)
    doms = []
    for i in range(4):

        def draw(n, i=i):
            return rng.integers(65, 68 + 2 * i, size=n, dtype=np.uint8)

        doms.append(Domain(f"d{i}", draw(16000 // (i + 1)), draw(1200), draw(1200)))
    return DomainSet("tiny", tuple(doms))


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray for the whole test session: 2 CPUs, no dashboard, loopback only."""
    import logging

    import ray

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.WARNING,
        object_store_memory=256 * 2**20,
    )
    yield ray
    ray.shutdown()


@pytest.fixture
def popmix_process():
    """Start ``popmix ARGV...`` as a process of its own (Ray on loopback, its output in
    ``stdout``), for the tests that stop a search and resume it."""
    import subprocess
    import sys

    env = {
        **os.environ,
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_AUTH_MODE": "disabled",
        "RAY_USAGE_STATS_ENABLED": "0",
    }

    def start(argv: list[str], **kw) -> subprocess.Popen:
        kw = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, **kw}
        return subprocess.Popen(
            [sys.executable, "-m", "popmix.cli", *argv], env=env, text=True, **kw
        )

    return start
