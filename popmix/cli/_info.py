"""``popmix info``: what this machine (and a cluster) offers, and which device a run or a trial
would get, before a long search starts."""

from __future__ import annotations

import argparse
import os
import platform
import sys
from typing import Any

from popmix.cli._base import Command, Flag, UsageError

GIB = 2**30
#: nodes listed one by one with --address; a larger cluster is summed up after them
MAX_NODES_LISTED = 8


def _gpu_count(n: float) -> str:
    return f"{n:g} GPU" if n == 1 else f"{n:g} GPUs"


def _cluster_lines(address: str) -> list[str]:
    """The Ray cluster at ``address``: its total resources, then each alive node's."""
    import logging

    import ray

    from popmix.tune.cluster import check_address

    started = not ray.is_initialized()
    if started:
        check_address(address)  # a wrong host:port fails in seconds, not after Ray's retries
        try:
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        except (ConnectionError, ValueError, RuntimeError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UsageError(
                f"cannot reach a Ray cluster at --address {address} ({first[:160]}); start "
                "one with ray start --head, or leave out --address"
            ) from None
    try:
        total = ray.cluster_resources()
        nodes = [n for n in ray.nodes() if n.get("Alive")]
    finally:
        if started:
            ray.shutdown()
    lines = [
        f"  cluster at {address}: {len(nodes)} node(s) alive; {total.get('CPU', 0):g} CPUs, "
        f"{_gpu_count(total.get('GPU', 0))}, {total.get('memory', 0) / GIB:.1f} GiB memory"
    ]
    for n in nodes[:MAX_NODES_LISTED]:
        r = n.get("Resources", {})
        lines.append(
            f"    {n.get('NodeManagerAddress', '?')}: {r.get('CPU', 0):g} CPUs, "
            f"{_gpu_count(r.get('GPU', 0))}"
        )
    if len(nodes) > MAX_NODES_LISTED:
        lines.append(f"    ... and {len(nodes) - MAX_NODES_LISTED} more")
    return lines


class InfoCommand(Command):
    name = "info"
    help = "print popmix, Python, torch (build, CUDA, GPUs) and Ray, and the device trials get"
    description = (
        "Print what a long search depends on: the popmix, Python, torch and Ray versions; "
        "whether torch is a CPU-only or a CUDA build, and the GPUs it sees; with --address, "
        "the Ray cluster's resources; and which device and precision popmix run and a search "
        "trial would get here under the experiment's settings (e.g. --gpus-per-trial 0.25). "
        "Exit code 2, with the reason in one line, when that device cannot be had here."
    )
    flags = (
        Flag("--device", "train.device", "popmix run's device: cpu, cuda, cuda:N or auto"),
        Flag(
            "--precision",
            "train.precision",
            "training precision",
            choices=("auto", "fp32", "bf16"),
        ),
        Flag(
            "--gpus-per-trial",
            "resources.gpus_per_trial",
            "GPUs per search trial: 0, 1 or a share 1/n (0.5, 0.25, ...)",
            type=float,
        ),
    )

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--address",
            help="also print the resources of the Ray cluster at this address (host:port or auto)",
        )

    def run(self, args: argparse.Namespace) -> int:
        exp = self.experiment(args)
        from popmix import __version__

        print(f"popmix {__version__}")
        print(f"python {platform.python_version()} ({sys.executable})")

        from popmix.train.device import (
            CudaState,
            DeviceError,
            choose_device,
            resolve_precision,
        )

        cuda = CudaState.probe(with_devices=True)
        print(f"{cuda.describe()}; {os.cpu_count()} CPUs")
        for d in cuda.devices:
            print(f"  cuda:{d.index} {d.name}, {d.memory_bytes / GIB:.1f} GiB")

        import ray

        print(f"ray {ray.__version__}")
        if args.address:
            for line in _cluster_lines(args.address):
                print(line)

        train, gpus = exp.train, float(exp.resources.gpus_per_trial)
        problems: list[str] = []

        def outcome(label: str, how: str, decide: Any) -> None:
            try:
                device = decide()
            except DeviceError as e:
                print(f"{label}: fails here ({how}): {e}")
                problems.append(f"{label} would stop: {e}")
                return
            precision = resolve_precision(train.precision, device, cuda.bf16)
            compiled = ", compiled" if train.compile else ""
            print(f"{label}: {device}, {precision}{compiled} ({how})")

        how_run = f"train.device {train.device}, train.precision {train.precision}"
        outcome("popmix run", how_run, lambda: choose_device(train.device, cuda))
        outcome(
            "a search trial here",
            f"resources.gpus_per_trial {gpus:g}",
            lambda: choose_device(train.device, *_as_trial(cuda, gpus), gpus_asked=gpus),
        )
        if problems:  # the first (popmix run's where both fail: the same cause, mostly)
            raise UsageError(problems[0])
        return 0


def _as_trial(cuda: Any, gpus: float) -> tuple[Any, list[str]]:
    """This process's CUDA as a trial of this node would see it, and the GPU ids Ray would
    give it: the node's first GPU, as the only device in CUDA_VISIBLE_DEVICES."""
    import dataclasses

    if gpus <= 0:
        return cuda, []
    listed = [v.strip() for v in cuda.visible.split(",")] if cuda.visible else []
    first = listed[0] if listed else "0"
    if not cuda.usable:  # the trial would fail for this process's reason: keep its state
        return cuda, [first]
    return dataclasses.replace(cuda, count=1, visible=first, devices=()), [first]


__all__ = ["InfoCommand"]
