"""What every trial of a search shares, passed to the trainable once: :class:`TrialSettings`.

A trial's own spec (method, seed, member, parameters) is :class:`popmix.records.trial.TrialSpec`:
both cross the Ray boundary frozen.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from popmix.config import Experiment, ModelConfig, SearchSpace, TrainConfig


@dataclass(frozen=True)
class TrialSettings:
    """What every trial of a search shares, passed to the trainable once
    (``tune.with_parameters``): the experiment's model and training settings, the report
    interval, the objective, torch threads per trial and the searched temperature schedule's
    shape. A trial's own seed and device are set from its spec and its resources.

    ``reference_root``: the folder a trial's ``reference`` checkpoint path is relative to (the
    experiment folder where it is now, so a search moved before its resume still finds its
    DoReMi trials' references); None: the paths are used as they are."""

    model: ModelConfig
    train: TrainConfig
    report_every: int
    objective: str = "mean"
    threads: int = 1
    shape: str = "step"
    reference_root: str | None = None

    @classmethod
    def of(
        cls, exp: Experiment, space: SearchSpace | None, cpus_per_trial: float
    ) -> TrialSettings:
        """The settings of ``exp``'s trials (``space``: the searched one, None without a
        population)."""
        return cls(
            model=exp.model,
            train=exp.train,
            report_every=exp.search.report_every,
            objective=exp.search.objective,
            threads=max(1, int(cpus_per_trial)),
            shape=space.temperature.shape if space and space.temperature else "step",
        )

    def train_config(self, seed: int, device: str, steps: int | None = None) -> TrainConfig:
        """The training settings of one trial (``steps``: its own budget, else the
        experiment's). A trial on its own budget (a swarm run) keeps the warm-up's share: a
        ``warmup_steps`` given in steps is scaled with the budget, so a short run still has
        its warm-up and its cosine decay rather than ending inside the warm-up."""
        train = self.train
        if steps is not None and steps != train.steps and train.warmup_steps is not None:
            train = dataclasses.replace(
                train, warmup_steps=round(train.warmup_steps * steps / train.steps)
            )
        return dataclasses.replace(
            train,
            seed=seed,
            threads=self.threads,
            device=device,
            steps=train.steps if steps is None else steps,
        )


__all__ = ["TrialSettings"]
