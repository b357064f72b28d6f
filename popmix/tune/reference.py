"""DoReMi's place in a search: after its seed's stratified run, whose model is its reference.

DoReMi scores every batch against a frozen reference model, the same seed's stratified run
at the same budget (Xie et al. 2023). That run is a trial of the seed group's Tuner anyway,
so it is trained once per seed and reused: the group's Tuner runs without DoReMi, and a
second Tuner per group (``seed<S>-doremi``, as the swarm's optimum has its own) runs each
seed's DoReMi trial with its spec naming the stratified trial's final checkpoint. Nothing
retrains a reference: a seed whose stratified trial did not finish has no DoReMi trial, and
says so in one line.

NumPy only (no Ray): the phase's trials are built from the group's plain trial records.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from popmix.config import ConfigError, Experiment
from popmix.records.trial import TrialSpec

#: the method that trains against a reference model, and the method its reference is
DOREMI = "doremi"
REFERENCE_METHOD = "stratified"
#: the Tuner of a seed group's DoReMi trials: ``seed0-doremi``
TUNER_SUFFIX = "-doremi"


def runs_later(exp: Experiment) -> bool:
    """Whether the search has a DoReMi phase after its seed groups."""
    return DOREMI in exp.baseline_methods()


def group_methods(exp: Experiment) -> list[str]:
    """The baselines a seed group's own Tuner runs: all but DoReMi, which waits for them."""
    return [m for m in exp.baseline_methods() if m != DOREMI]


def check_reference(exp: Experiment, remote: bool = False) -> None:
    """A search with DoReMi also runs its reference, stratified, on the same seeds.

    Raises:
        ConfigError: DoReMi without stratified, or with trials at a ``--storage`` URI (the
            trials read the reference from the experiment folder on this machine).
    """
    if not runs_later(exp):
        return
    if REFERENCE_METHOD not in exp.methods:
        raise ConfigError(
            f"{DOREMI} trains against the same seed's {REFERENCE_METHOD} run (its reference "
            f"model): add {REFERENCE_METHOD} to --methods"
        )
    if remote:
        raise ConfigError(
            f"{DOREMI} reads its reference checkpoint from the experiment folder, not from a "
            "--storage URI yet: give --storage a local or shared folder"
        )


def reference_checkpoint(
    records: Sequence[dict[str, Any]], seed: int, exp_dir: str | os.PathLike
) -> str | None:
    """The final checkpoint of ``seed``'s finished stratified trial, relative to ``exp_dir``
    (the folder a search's trials may move with); None when it has none."""
    for rec in records:
        if (
            rec.get("method") == REFERENCE_METHOD
            and rec.get("seed") == seed
            and rec.get("member", -1) < 0
            and rec.get("status") == "ok"
            and rec.get("checkpoint")
        ):
            path = Path(rec["checkpoint"], "state.pt")
            try:
                return str(path.relative_to(Path(exp_dir)))
            except ValueError:
                return str(path)  # outside the experiment folder: as it is
    return None


def doremi_specs(
    exp: Experiment,
    seeds: Sequence[int],
    names: list[str],
    records: Sequence[dict[str, Any]],
    exp_dir: str | os.PathLike,
) -> tuple[list[TrialSpec], list[int]]:
    """The DoReMi trials of ``seeds``, each naming its seed's stratified checkpoint, and the
    seeds left without one (their stratified trial did not finish)."""
    specs, missing = [], []
    for seed in seeds:
        reference = reference_checkpoint(records, seed, exp_dir)
        if reference is None:
            missing.append(seed)
            continue
        specs.append(TrialSpec.single(exp, DOREMI, seed, names).replace(reference=reference))
    return specs, missing


__all__ = [
    "DOREMI",
    "REFERENCE_METHOD",
    "TUNER_SUFFIX",
    "check_reference",
    "doremi_specs",
    "group_methods",
    "reference_checkpoint",
    "runs_later",
]
