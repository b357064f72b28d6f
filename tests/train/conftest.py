"""Fixtures of the trainer tests."""

from __future__ import annotations

import pytest

from popmix.config import TrainConfig


@pytest.fixture
def train_cfg():
    """``train_cfg(steps=30, **changes)``: the short runs on ``tiny_domains`` that the custom
    and transformers trainer tests share, so that both proxies train alike."""

    def make(steps: int = 30, **changes) -> TrainConfig:
        base = dict(
            steps=steps,
            batch_size=8,
            warmup_steps=3,
            threads=1,
            eval_windows=4,
            test_windows=4,
            lr=1e-2,
        )
        return TrainConfig(**{**base, **changes})

    return make
