"""The worker processes of this test's own Ray trials, for the tests that kill one mid-run.

A trial's actor process is titled after its class and the call it runs
(``ray::ResourceTrainable.train`` while it trains; a cached actor between trials and a pooled
idle worker say otherwise) and works in its trial's folder (``.../working_dirs/<trial>``). Only
processes descended from this one count: the Ray this test started, never another search that
shares the machine. (Not the pid in a trial's ``result.json``: Tune writes a trial's result
files to storage late, so by then that pid may be an idle pooled worker's.)"""

from __future__ import annotations

import os
from pathlib import Path


def _parent(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])  # the field after the state


def _descends_from(pid: int, root: int) -> bool:
    while pid > 1:
        if pid == root:
            return True
        pid = _parent(pid)
    return False


def training_workers(trial_prefix: str) -> list[int]:
    """Pids of this process's Ray workers now training a trial named ``<trial_prefix>...``."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            title = (proc / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
            if not (title.startswith("ray::") and "Trainable.train" in title):
                continue
            if not Path(os.readlink(proc / "cwd")).name.startswith(trial_prefix):
                continue
            if _descends_from(int(proc.name), os.getpid()):
                pids.append(int(proc.name))
        except OSError:
            continue  # it ended while we looked
    return pids
