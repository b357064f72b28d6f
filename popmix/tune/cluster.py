"""Where trials run: the Ray cluster (its address, its nodes and what they hold), the
resources of a trial, the storage folder, and what a search changes in this process while it
runs (:class:`RaySession`).

Everything here is about *where*, and is tested without a search (``tests/tune/test_cluster.py``,
``test_session.py``). Ray is imported where it is used: the checks that run before Ray starts
(:func:`check_address`, :func:`check_storage`) do not need it.
"""

from __future__ import annotations

import logging
import os
import random
import socket
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from popmix.config import ConfigError, Experiment


@dataclass
class SearchOptions:
    """Where and how to run (not what): the CLI's cluster and output options."""

    address: str | None = None  # None: start an embedded local Ray
    storage: str = "runs"
    name: str | None = None
    out: str | None = None
    cpus: int | None = None  # CPUs of the embedded Ray (default: all of this machine's)
    quiet: bool = False
    #: continue the search already in <storage>/<name>
    #: (:func:`popmix.tune.search.resume_search`)
    resume: bool = False


def check_address(address: str) -> None:
    """Fail fast, in one line, when a cluster address does not answer."""
    if address in ("auto", "local") or address.startswith("ray://"):
        return
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=5):
            pass
    except (OSError, ValueError) as e:
        raise ConfigError(
            f"cannot reach a Ray cluster at --address {address!r} ({e}); check the address "
            "(host:port of the head node) or leave out --address to start a local Ray"
        ) from None


def start_ray(opts: SearchOptions) -> bool:
    """Connect to ``opts.address`` or start an embedded local Ray; True if we started it."""
    import ray

    if ray.is_initialized():
        return False
    quiet: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
    if opts.address is None:
        ray.init(
            address="local", num_cpus=opts.cpus or os.cpu_count(), include_dashboard=False, **quiet
        )
    else:
        check_address(opts.address)  # ray.init would retry for minutes
        ray.init(address=opts.address, **quiet)
    return True


def alive_nodes() -> list[dict[str, float]]:
    """Total resources of each alive node (not what is free now: a trial may wait for those)."""
    import ray

    return [dict(n.get("Resources", {})) for n in ray.nodes() if n.get("Alive")]


def resolve_cpus(exp: Experiment, n_trials: int) -> float:
    """CPUs per trial; ``auto`` splits the cluster's CPUs so that ``n_trials`` run at once.

    A trial runs on one node, so ``auto`` never asks for more than the largest node has.
    """
    if exp.resources.cpus_per_trial != "auto":
        return float(exp.resources.cpus_per_trial)
    import ray

    total = ray.cluster_resources().get("CPU", 1.0)
    largest = max((n.get("CPU", 0.0) for n in alive_nodes()), default=total)
    return cpus_per_trial(exp, n_trials, total, largest)


def cpus_per_trial(exp: Experiment, n_trials: int, total: float, largest: float) -> float:
    """:func:`resolve_cpus` on given resources (``total`` CPUs, the ``largest`` node's), as
    ``popmix search --dry-run`` reckons them for this machine without starting Ray."""
    if exp.resources.cpus_per_trial != "auto":
        return float(exp.resources.cpus_per_trial)
    return max(0.01, min(largest, round(total / n_trials, 2)))


def autoscaler_node_types() -> dict[str, dict[str, float]] | None:
    """Per-node resources of each node type the autoscaler can still add.

    ``{}`` when the cluster autoscales but does not publish its node types (the cluster
    launcher's bootstrap file, the sign Tune itself uses); ``None`` when it does not autoscale,
    or when that cannot be told (then a trial that fits no node fails rather than waits).
    """
    import ray._private.state
    from ray.tune.execution.cluster_info import _is_ray_cluster

    try:
        # Written to the GCS by autoscaler v2 and KubeRay; Ray Train and Data read it the same way.
        config = ray._private.state.state.get_cluster_config()
    except Exception:
        config = None
    if config is not None and config.node_group_configs:
        types = {}
        for group in config.node_group_configs:
            can_add = group.max_count == -1 or group.max_count > group.min_count
            if group.resources and can_add:
                types[group.name or "?"] = {k: float(v) for k, v in group.resources.items()}
        return types
    return {} if _is_ray_cluster() else None


def _fits(request: dict[str, float], node: dict[str, float]) -> bool:
    return all(node.get(k, 0.0) >= v for k, v in request.items() if v > 0)


def _describe(res: dict[str, float], keys: tuple[str, ...]) -> str:
    parts = []
    for k in keys:
        v = float(res.get(k, 0.0))
        if k == "memory":
            parts.append(f"{v / 2**30:.1f} GiB memory")
        else:
            parts.append(f"{v:g} {k}{'s' if k in ('CPU', 'GPU') and v != 1 else ''}")
    return ", ".join(parts)


def check_trial_fits(
    request: dict[str, float],
    nodes: list[dict[str, float]],
    node_types: dict[str, dict[str, float]] | None,
    where: str = "the experiment file",
) -> str | None:
    """Fail fast when no node can ever hold one trial (Tune would wait for it forever).

    Args:
        request: what one trial asks for, in Ray's resource names (``CPU``, ``GPU``, ``memory``).
        nodes: the total resources of every alive node.
        node_types: what the autoscaler can add (see ``autoscaler_node_types``).
        where: where the user sets ``resources:``, for the message.

    Returns:
        None when a node can hold a trial now; otherwise, on an autoscaling cluster that can (or
        may) add such a node, the line to tell the user that the search waits for nodes.

    Raises:
        ConfigError: no node can hold a trial and none can be added.
    """
    if any(_fits(request, n) for n in nodes):
        return None
    keys = tuple(k for k in ("CPU", "GPU", "memory") if k in request) + tuple(
        k for k in request if k not in ("CPU", "GPU", "memory")
    )
    asked = _describe(request, keys)
    shapes = Counter(_describe(n, keys) for n in nodes)
    have = "; ".join(f"{c} with {d}" for d, c in shapes.items()) or "none alive"
    if node_types is not None:
        addable = [name for name, res in node_types.items() if _fits(request, res)]
        if addable or not node_types:
            to_add = f" of type {', '.join(addable)}" if addable else " that can hold one"
            return (
                f"popmix search: no node can hold a trial yet ({asked}; nodes: {have}); waiting "
                f"for the autoscaler to add a node{to_add}"
            )
    hints = []
    for k, flag in (("CPU", "--cpus-per-trial"), ("GPU", "--gpus-per-trial")):
        most = max((n.get(k, 0.0) for n in nodes), default=0.0)
        if request.get(k, 0.0) > most:
            hints.append(f"{flag} {most:g}" if most > 0 or k == "GPU" else flag)
    fix = " ".join(hints) if hints else "--cpus-per-trial/--gpus-per-trial"
    types = "; ".join(f"{t} with {_describe(r, keys)}" for t, r in (node_types or {}).items())
    raise ConfigError(
        f"each trial asks for {asked}, but no node of the Ray cluster can hold that (nodes: "
        f"{have}{'; the autoscaler can add only ' + types if types else ''}); change "
        f"resources: in {where} or pass {fix}"
    )


def seeds_that_fit(exp: Experiment, per_seed: int) -> int:
    """How many seeds' trials the cluster holds at once, ``per_seed`` trials each: every
    trial at one CPU (``cpus_per_trial: auto``) or at its fixed request (and its GPUs), at
    least 1 and at most the experiment's seeds."""
    import ray

    return seeds_fitting(exp, per_seed, ray.cluster_resources())


def seeds_fitting(exp: Experiment, per_seed: int, total: dict[str, float]) -> int:
    """:func:`seeds_that_fit` on given ``total`` resources (Ray's names: ``CPU``, ``GPU``)."""
    cpus = exp.resources.cpus_per_trial
    fit = int(total.get("CPU", 0.0) // (per_seed * (1.0 if cpus == "auto" else float(cpus))))
    gpus = exp.resources.gpus_per_trial
    if gpus > 0:
        fit = min(fit, int(total.get("GPU", 0.0) // (per_seed * gpus)))
    return max(1, min(len(exp.seeds), fit))


def trial_resources(exp: Experiment, n_trials: int) -> tuple[float, str | None]:
    """(CPUs per trial with ``n_trials`` at once, a line to print while the autoscaler adds a
    node, or None).

    Raises:
        ConfigError: no node can ever hold a trial.
    """
    cpus = resolve_cpus(exp, n_trials)
    request = {"CPU": cpus, "GPU": float(exp.resources.gpus_per_trial)}
    nodes = alive_nodes()
    waiting = None
    if not any(_fits(request, n) for n in nodes):
        waiting = check_trial_fits(
            request, nodes, autoscaler_node_types(), exp.source or "the experiment file"
        )
    return cpus, waiting


def check_storage(storage: Path) -> None:
    """Fail in one line, before anything is written, when ``--storage`` cannot hold a search:
    a file where a folder is needed, or a folder this process cannot write to.

    Raises:
        ConfigError: naming the path and the fix.
    """
    existing = storage.resolve()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(
            f"--storage {storage}: {existing} is a file, not a folder; give a folder (on a "
            "multi-node cluster, one every node can reach)"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(
            f"--storage {storage}: {existing} is not writable by this user; give a folder you "
            "can write to"
        )


def tune_environment(opts: SearchOptions) -> tuple[dict[str, str], dict[str, str]]:
    """(set, defaults): the environment variables a search (or a confirmation) sets, and
    those it sets only where the user has not."""
    force = {
        # popmix writes TensorBoard itself (per-domain groups, HParams); CSV/JSON are
        # added back as callbacks.
        "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    }
    defaults = {
        "RAY_AIR_NEW_OUTPUT": "0",
        "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
        "TUNE_GLOBAL_CHECKPOINT_S": "10",
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    if opts.address is None:
        defaults["RAY_AUTH_MODE"] = "disabled"
    return force, defaults


#: loggers every command that runs Tune quietens: a restored trial's JSON/CSV logger looks for
#: files it never wrote remotely, and a trial stopped by Ctrl-C before its first report has no
#: results to read; both harmless
QUIET_LOGGERS = {
    "ray.tune.logger": logging.ERROR,
    "ray.tune.analysis.experiment_analysis": logging.ERROR,
}


class _TuneNoise(logging.Filter):
    """Drops Tune's notes on an interruption (the stop signal, the unfinished trials, a
    ``Tuner.restore`` call to resume): popmix prints what finished and its own ``popmix
    search --resume`` line."""

    _INTERRUPTION = (
        "Stop signal received",
        "Experiment has been interrupted",
        "Trials did not complete",
    )

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self._INTERRUPTION)


_NOISY_LOGGERS = ("ray.tune.execution.tune_controller", "ray.tune.tune")
_TUNE_NOISE = _TuneNoise()


class RaySession:
    """What a search changes in this process, set on entry and restored on exit, also when
    the search raises: environment variables, logger levels, Python's global random
    generator (Ray's PBT draws donors and resamples from it) and Ray itself (started here,
    embedded or connected to ``opts.address``, unless this process already runs Ray; then
    it is left running).

    Args:
        opts: where Ray runs.
        env: variables to set.
        env_defaults: variables to set only where the environment has none.
        levels: logger name → level while the session lasts.
        random_seed: seed of Python's ``random`` for the session (None: left alone).
    """

    def __init__(
        self,
        opts: SearchOptions,
        env: dict[str, str] | None = None,
        env_defaults: dict[str, str] | None = None,
        levels: dict[str, int] | None = None,
        random_seed: int | None = None,
    ) -> None:
        self.opts = opts
        self.env = dict(env or {})
        self.env_defaults = dict(env_defaults or {})
        self.levels = dict(levels or {})
        self.random_seed = random_seed
        self.started = False
        self._saved_env: dict[str, str | None] = {}
        self._saved_levels: dict[str, int] = {}
        self._saved_random: Any = None

    def __enter__(self) -> RaySession:
        for key, value in {**self.env_defaults, **self.env}.items():
            if key in self.env or key not in os.environ:
                self._saved_env.setdefault(key, os.environ.get(key))
                os.environ[key] = value
        # ray.init sets the "ray" logger's level: restored with the others
        for name in ("ray", *self.levels):
            self._saved_levels[name] = logging.getLogger(name).level
        for name, level in self.levels.items():
            logging.getLogger(name).setLevel(level)
        for name in _NOISY_LOGGERS:
            logging.getLogger(name).addFilter(_TUNE_NOISE)
        self._saved_random = random.getstate()
        try:
            self.started = start_ray(self.opts)
        except BaseException:
            self._restore()
            raise
        if self.random_seed is not None:
            # after ray.init, which draws from the same generator
            random.seed(self.random_seed)
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            if self.started:
                import ray

                ray.shutdown()
                self.started = False
        finally:
            self._restore()

    def _restore(self) -> None:
        for name in _NOISY_LOGGERS:
            logging.getLogger(name).removeFilter(_TUNE_NOISE)
        for name, level in self._saved_levels.items():
            logging.getLogger(name).setLevel(level)
        self._saved_levels = {}
        for key, old in self._saved_env.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old
        self._saved_env = {}
        if self._saved_random is not None:
            random.setstate(self._saved_random)
            self._saved_random = None


__all__ = [
    "QUIET_LOGGERS",
    "RaySession",
    "SearchOptions",
    "check_address",
    "check_storage",
    "check_trial_fits",
    "resolve_cpus",
    "seeds_that_fit",
    "start_ray",
    "trial_resources",
    "tune_environment",
]
