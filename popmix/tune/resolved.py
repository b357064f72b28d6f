"""A search resolved before Ray starts: its experiment, searcher, space, domains and folders
(:class:`ResolvedSearch`, made by :func:`popmix.tune.search.resolve`), the Tuner of a group of
seeds it builds, and the trainable its trials run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ray import tune

from popmix.config import Experiment, SearchSpace
from popmix.data.domains import DomainSet
from popmix.tune.callbacks import MirrorStorage
from popmix.tune.cluster import QUIET_LOGGERS
from popmix.tune.runner import TunerRun
from popmix.tune.searchers import Searcher, TunerParts
from popmix.tune.spec import TrialSettings
from popmix.tune.storage import RemoteStorage
from popmix.tune.trainable import MixtureTrainable
from popmix.tune.trials import tuner_name


@dataclass(frozen=True)
class ResolvedSearch:
    """A search's inputs, checked and resolved before Ray starts
    (:func:`popmix.tune.search.resolve`)."""

    exp: Experiment
    searcher: Searcher  # the experiment's (search.searcher), checked
    space: SearchSpace
    domains: DomainSet
    name: str
    exp_dir: Path  # <storage>/<name>: Tune's folders, TensorBoard, lineage rows
    out: Path  # where summary.json and the weights files go
    #: a --storage URI: Tune writes the trials there, exp_dir is the driver's local copy of
    #: its own files, mirrored there (popmix.tune.storage)
    remote: RemoteStorage | None = None

    def tuner_run(
        self,
        seeds: list[int],
        parts: TunerParts,
        progress: Any = None,
        suffix: str = "",
        max_concurrent: int | None = None,
    ) -> TunerRun:
        """The Tuner of ``seeds`` (``suffix``: the swarm optimum's, ``seed0-swarm``): every
        report checkpointed, its ledger kept for a resume, its trials at a ``--storage`` URI
        with the experiment folder mirrored there."""
        name = tuner_name(seeds) + suffix
        storage, fs, callbacks = str(self.exp_dir), None, []
        if self.remote is not None:
            storage, fs = self.remote.path(self.name), self.remote.fs
            callbacks.append(MirrorStorage(self.remote, self.exp_dir, self.name))
        return TunerRun(
            name=name,
            storage=storage,
            filesystem=fs,
            tensorboard=self.exp_dir / "tensorboard",
            parts=parts,
            max_failures=self.exp.resources.max_failures,
            ledger=self.exp_dir / f"ledger-{name}.json",
            every_report=True,
            max_concurrent=max_concurrent,
            callbacks=(*callbacks, *([progress] if progress else [])),
        )

    def logger_levels(self) -> dict[str, int]:
        """The loggers a search quietens, and to what."""
        return {**QUIET_LOGGERS, **self.searcher.logger_levels()}


def trainable_for(plan: ResolvedSearch, settings: TrialSettings, cpus: float) -> Any:
    """Tune's trainable for ``plan``'s trials: :class:`MixtureTrainable` with the domains and
    ``settings`` bound, each trial holding ``cpus`` and the experiment's GPUs."""
    return tune.with_resources(
        tune.with_parameters(MixtureTrainable, domains=plan.domains, settings=settings),
        {"cpu": cpus, "gpu": plan.exp.resources.gpus_per_trial},
    )
