"""The proxy model and the one training loop every method shares (torch; no Ray).

Your own model: subclass :class:`ProxyTrainer` (see :mod:`popmix.train.custom`).
"""

from popmix.train.custom import ProxySetup, ProxyTrainer, TrainBatch
from popmix.train.loop import Diverged, TrainConfig, Trainer, perplexity_summary
from popmix.train.model import ModelConfig, TinyGPT
from popmix.train.run import eval_record, run_schedule, run_training, split_metrics

__all__ = [
    "Diverged",
    "ModelConfig",
    "ProxySetup",
    "ProxyTrainer",
    "TinyGPT",
    "TrainBatch",
    "TrainConfig",
    "Trainer",
    "eval_record",
    "perplexity_summary",
    "run_schedule",
    "run_training",
    "split_metrics",
]
