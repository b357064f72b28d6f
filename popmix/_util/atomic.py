"""One way to write a JSON file that a kill or a concurrent reader never sees half-written.

Imports nothing of popmix's, so every layer (data to CLI) can use it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any


def write_json(
    path: str | Path,
    data: Any,
    indent: int | None = None,
    default: Callable[[Any], Any] | None = None,
) -> Path:
    """``json.dumps(data)`` into ``path`` through a temporary file beside it, then renamed over
    it: a process stopped mid-write leaves the previous complete file, and a reader sees the
    old file or the new one. The temporary name holds the writer's pid, so two processes
    writing one file (a shared corpus cache) do not write into each other's. Returns ``path``."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=indent, default=default))
    os.replace(tmp, path)
    return path


__all__ = ["write_json"]
