"""Checkpoint files: tensors and plain data only, loaded without unpickling objects.

A checkpoint may come from a shared folder or a colleague's run, so loading one must not run
code: every file is read with ``torch.load(..., weights_only=True)``, which accepts tensors and
plain containers (dict, list, tuple, str, int, float, bool, None) and refuses any other
object. NumPy arrays in the training state travel as tensors, tagged so they come back as
arrays (:func:`to_plain`, :func:`from_plain`).

Every file carries the format name and :data:`VERSION`; a file of another version, a truncated
or corrupt one, or one that is not a popmix checkpoint is a :class:`CheckpointError` of one line
naming the file.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

FORMAT = "popmix-checkpoint"
#: bump when the layout of the saved state changes; older files are then refused by name
VERSION = 1
_ARRAY = "__ndarray__"


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read (one line naming the file and why)."""


def to_plain(obj: Any) -> Any:
    """``obj`` with NumPy arrays as tagged tensors and NumPy scalars as Python numbers."""
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            raise TypeError("a checkpoint holds numeric arrays only, not object arrays")
        return {_ARRAY: torch.from_numpy(np.ascontiguousarray(obj).copy())}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_plain(v) for v in obj)
    return obj


def from_plain(obj: Any) -> Any:
    """The inverse of :func:`to_plain`."""
    if isinstance(obj, dict):
        if set(obj) == {_ARRAY}:
            return obj[_ARRAY].numpy()
        return {k: from_plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [from_plain(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(from_plain(v) for v in obj)
    return obj


def save_state(state: dict[str, Any], path: str | os.PathLike) -> None:
    """Write ``state`` (tensors, arrays and plain data) with the format name and version."""
    torch.save({"format": FORMAT, "version": VERSION, "state": to_plain(state)}, path)


def load_state(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a file written by :func:`save_state`, without unpickling any object.

    Args:
        map_location: where the tensors land: the reading trainer's device. A checkpoint
            records the device each tensor was saved from; mapping it here lets a state
            saved on one GPU (or node) restore onto another trial's GPU or onto a CPU.

    Raises:
        CheckpointError: a missing, truncated, corrupt or foreign file, or another version.
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint {p}: file not found")
    if not zipfile.is_zipfile(p):  # torch.save writes a zip archive; anything else is damage
        raise CheckpointError(
            f"checkpoint {p} is truncated or corrupt (not a torch archive); retrain or copy "
            "it again"
        )
    try:
        data = torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else "unreadable"
        if "weights_only" in str(e) or "Unsupported global" in str(e):
            reason = "it holds Python objects, which popmix does not load (they could run code)"
        raise CheckpointError(f"checkpoint {p}: {reason}; retrain or re-save it") from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"checkpoint {p} is truncated or corrupt ({first[:120]}); retrain or copy it again"
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {p} is not a popmix checkpoint")
    if data.get("version") != VERSION:
        raise CheckpointError(
            f"checkpoint {p} has format version {data.get('version')!r}; this popmix reads "
            f"version {VERSION}: retrain it, or use the popmix version that wrote it"
        )
    return from_plain(data["state"])


__all__ = ["VERSION", "CheckpointError", "from_plain", "load_state", "save_state", "to_plain"]
