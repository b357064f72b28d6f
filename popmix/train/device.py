"""Which device a run or a Ray trial trains on, and in which precision: decided, never guessed.

A run that asked for a GPU, or a trial that Ray gave one, trains on that GPU or stops with a
:class:`DeviceError` naming the cause and the fix (a CPU-only torch build, a
``CUDA_VISIBLE_DEVICES`` that hides the device, no driver). It never falls back to the CPU:
a search that silently trains on CPUs while holding GPUs is the costliest mistake it can make.

The decision is the pure function :func:`choose_device`, from what the process can see of
CUDA (:class:`CudaState`, read once by :meth:`CudaState.probe`) and the GPU ids Ray assigned;
it is tested without a GPU. Ray's ids are *physical*: Ray sets ``CUDA_VISIBLE_DEVICES`` to
them in the trial's process, so torch numbers that process's devices from 0 and the device
is the id's position in ``CUDA_VISIBLE_DEVICES`` (``cuda:0`` for one GPU or a share of one),
never the id itself (``cuda:3`` there is "invalid device ordinal").
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from popmix.config import ConfigError

#: ``train.precision`` values; ``auto``: bf16 autocast on CUDA (where the GPU supports it),
#: fp32 on the CPU
PRECISIONS = ("auto", "fp32", "bf16")
_INSTALL = "install a CUDA build of torch (https://pytorch.org/get-started/locally)"


class DeviceError(ConfigError):
    """A device that was asked for (``train.device``) or given (a trial's GPUs) and cannot
    be used here: one line naming the cause and the fix. A :class:`ConfigError`, so the CLI
    prints it as one line with exit code 2."""


@dataclass(frozen=True)
class GpuInfo:
    """One CUDA device as this process numbers it."""

    index: int
    name: str
    memory_bytes: int


@dataclass(frozen=True)
class CudaState:
    """What this process can see of CUDA: the inputs of :func:`choose_device`.

    Args:
        torch_version: ``torch.__version__``.
        build: the CUDA (or ROCm) version torch was built with; None for a CPU-only build.
        available: ``torch.cuda.is_available()``.
        count: devices torch sees (after ``CUDA_VISIBLE_DEVICES``).
        visible: ``CUDA_VISIBLE_DEVICES``, None when unset.
        bf16: whether the first device supports bfloat16 (Ampere and later).
        devices: each visible device's name and memory.
    """

    torch_version: str
    build: str | None
    available: bool
    count: int
    visible: str | None = None
    bf16: bool = False
    devices: tuple[GpuInfo, ...] = field(default_factory=tuple)

    @classmethod
    def probe(cls, with_devices: bool = False) -> CudaState:
        """Read this process's CUDA state (``with_devices``: also each device's name and
        memory, which initialises CUDA in this process)."""
        import torch

        build = torch.version.cuda or (
            f"ROCm {torch.version.hip}" if getattr(torch.version, "hip", None) else None
        )
        available = bool(build) and torch.cuda.is_available()
        count = torch.cuda.device_count() if available else 0
        devices: tuple[GpuInfo, ...] = ()
        bf16 = False
        if count:
            bf16 = bool(torch.cuda.is_bf16_supported())
            if with_devices:
                props = [torch.cuda.get_device_properties(i) for i in range(count)]
                devices = tuple(
                    GpuInfo(i, p.name, int(p.total_memory)) for i, p in enumerate(props)
                )
        return cls(
            torch_version=str(torch.__version__),
            build=build,
            available=available,
            count=count,
            visible=os.environ.get("CUDA_VISIBLE_DEVICES"),
            bf16=bf16,
            devices=devices,
        )

    @property
    def usable(self) -> bool:
        """A CUDA build that sees at least one device."""
        return self.build is not None and self.available and self.count > 0

    def describe(self) -> str:
        """One line: the build, and the devices torch sees."""
        if self.build is None:
            return f"torch {self.torch_version}: CPU-only build (no CUDA)"
        vis = "unset" if self.visible is None else repr(self.visible)
        return (
            f"torch {self.torch_version}: CUDA {self.build}, {self.count} device(s) visible "
            f"(CUDA_VISIBLE_DEVICES {vis})"
        )


def require_cuda(what: str, or_cpu: str) -> None:
    """Raise :class:`DeviceError` unless this process can use a GPU (:func:`_require_cuda`
    on :meth:`CudaState.probe`): e.g. a search's driver, before it starts trials on GPUs of a
    local Ray that its torch cannot use."""
    _require_cuda(CudaState.probe(), what, or_cpu)


def _hides_all(visible: str | None) -> bool:
    # CUDA stops reading the list at the first entry it cannot match: "" and "-1" hide all.
    if visible is None:
        return False
    first = visible.split(",")[0].strip()
    return first == "" or first.startswith("-")


def _require_cuda(cuda: CudaState, what: str, or_cpu: str) -> None:
    """Raise unless CUDA is usable: the cause (build, CUDA_VISIBLE_DEVICES, driver) first."""
    if cuda.build is None:
        raise DeviceError(
            f"{what}, but torch {cuda.torch_version} is a CPU-only build; {_INSTALL} or {or_cpu}"
        )
    if _hides_all(cuda.visible):
        raise DeviceError(
            f"{what}, but CUDA_VISIBLE_DEVICES={cuda.visible!r} hides every GPU from torch; "
            f"unset it or list the GPUs (e.g. CUDA_VISIBLE_DEVICES=0), or {or_cpu}"
        )
    if not cuda.available or cuda.count == 0:
        raise DeviceError(
            f"{what}, but torch {cuda.torch_version} (CUDA {cuda.build}) finds no usable GPU; "
            f"check the driver with nvidia-smi (and popmix info), or {or_cpu}"
        )


def choose_device(
    requested: str,
    cuda: CudaState,
    ray_gpu_ids: Sequence[str | int] | None = None,
    gpus_asked: float = 0.0,
) -> str:
    """The device a run or a trial trains on: ``cpu`` or ``cuda:N`` (N as this process
    numbers its devices). Pure: it reads nothing but its arguments.

    Args:
        requested: ``train.device``: ``cpu``, ``auto`` (CUDA when usable, else the CPU),
            ``cuda`` or ``cuda:N``. In a trial (``ray_gpu_ids`` given) the trial's resources
            decide instead: ``cpu`` and ``auto`` take whatever Ray gave it; ``cuda`` insists
            on a GPU; ``cuda:N`` is refused, as Ray, not the config, picks a trial's GPU.
        cuda: what this process can see of CUDA.
        ray_gpu_ids: None outside a Ray trial (``popmix run``); else the GPU ids Ray assigned
            to this trial (``ray.get_gpu_ids()``), empty for a trial without GPUs.
        gpus_asked: the GPUs the trial's resources request (``resources.gpus_per_trial``).

    Raises:
        DeviceError: a GPU asked for or given that this process cannot use, or an index
            it does not have.
    """
    if ray_gpu_ids is None:
        if requested == "cpu":
            return "cpu"
        if requested == "auto":
            return "cuda:0" if cuda.usable else "cpu"
        index = int(requested.split(":", 1)[1]) if ":" in requested else 0
        _require_cuda(cuda, f"train.device is {requested}", "use train.device cpu (--device cpu)")
        if index >= cuda.count:
            raise DeviceError(
                f"train.device is {requested}, but torch sees {cuda.count} CUDA device(s) "
                f"(CUDA_VISIBLE_DEVICES {cuda.visible!r}); use cuda:0 to cuda:{cuda.count - 1}"
            )
        return f"cuda:{index}"

    ids = [str(i).strip() for i in ray_gpu_ids]
    if requested.startswith("cuda:"):
        raise DeviceError(
            f"train.device is {requested}, but Ray picks each trial's GPU in a search; use "
            "train.device cuda or auto, and --gpus-per-trial to give trials GPUs"
        )
    if not ids:
        if gpus_asked > 0:
            raise DeviceError(
                f"this trial asked Ray for {gpus_asked:g} GPU but Ray assigned it none "
                "(ray.get_gpu_ids() is empty); check the cluster's GPUs with popmix info "
                "--address, or run on CPUs with --gpus-per-trial 0"
            )
        if requested == "cuda":
            raise DeviceError(
                "train.device is cuda, but this trial was given no GPU "
                "(resources.gpus_per_trial is 0); pass --gpus-per-trial 1 (or a share such "
                "as 0.25), or use train.device auto"
            )
        return "cpu"
    what = f"this trial was given GPU {','.join(ids)} by Ray"
    _require_cuda(cuda, what, "run the search on CPUs with --gpus-per-trial 0")
    if cuda.visible is None:
        # Ray left CUDA_VISIBLE_DEVICES alone (RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES):
        # every physical GPU is visible, numbered as Ray numbers them.
        if not ids[0].isdigit():
            raise DeviceError(
                f"{what}, but CUDA_VISIBLE_DEVICES is unset, so its id cannot be mapped to a "
                "torch device; let Ray set CUDA_VISIBLE_DEVICES (unset "
                "RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES)"
            )
        index = int(ids[0])
    else:
        listed = [v.strip() for v in cuda.visible.split(",")]
        if ids[0] not in listed:
            raise DeviceError(
                f"{what}, but CUDA_VISIBLE_DEVICES={cuda.visible!r} does not list it; do not "
                "set CUDA_VISIBLE_DEVICES for Ray's workers (Ray sets it per trial), set it "
                "before ray start on the node instead"
            )
        index = listed.index(ids[0])
    if index >= cuda.count:
        raise DeviceError(
            f"{what} (cuda:{index} in this process), but torch sees only {cuda.count} "
            f"device(s) (CUDA_VISIBLE_DEVICES {cuda.visible!r}); check the node with popmix info"
        )
    return f"cuda:{index}"


def resolve_precision(precision: str, device: str, bf16_supported: bool = True) -> str:
    """The precision a run trains in: ``fp32`` or ``bf16`` (autocast).

    ``auto`` is bf16 on a CUDA device that supports it and fp32 otherwise (on the CPU, bf16
    autocast is slower than fp32 for popmix's small matrices, so it runs only when asked).
    """
    if precision not in PRECISIONS:
        raise DeviceError(f"unknown train.precision {precision!r}; choose auto, fp32 or bf16")
    if precision == "auto":
        return "bf16" if device.startswith("cuda") and bf16_supported else "fp32"
    return precision


def autocast(device: Any, precision: str) -> contextlib.AbstractContextManager[Any]:
    """The forward pass's context for ``precision``: bf16 autocast, or nothing for fp32 (so
    an fp32 run is bit for bit the run it was before precision existed)."""
    if precision != "bf16":
        return contextlib.nullcontext()
    import torch

    kind = device.type if isinstance(device, torch.device) else str(device).split(":")[0]
    return torch.autocast(device_type=kind, dtype=torch.bfloat16)


__all__ = [
    "PRECISIONS",
    "CudaState",
    "DeviceError",
    "GpuInfo",
    "autocast",
    "choose_device",
    "resolve_precision",
]
