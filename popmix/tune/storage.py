"""Where a search keeps its experiment: a local (or shared) folder, or any filesystem pyarrow
opens from a URI (``s3://bucket/prefix``, ``gs://...``, ``hdfs://...``), as Ray Tune's own
``storage_path`` does.

With a URI, Ray Tune writes the trials (checkpoints, results) there itself, and popmix keeps
its driver's files (``search.json``, the step ledgers, lineage rows, TensorBoard logs, the
summary) in a local folder, mirrored to ``<storage>/<name>/`` every :data:`MIRROR_EVERY_S`
seconds while the search runs and when each Tuner and the search end: a search started on one
machine can be resumed from the URI on another (``popmix search --resume URI``), which copies
those files back (not the trials' checkpoints, which Tune reads where they are).

An S3-compatible server other than AWS is named in the URI, as pyarrow reads it:
``s3://bucket/runs?endpoint_override=http://127.0.0.1:9000``; credentials come from the usual
``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` (every Ray worker needs them too).

The Tune callbacks that use it (the mirror, checkpoint retention) are in
:mod:`popmix.tune.callbacks`; this module does not import Ray.
"""

from __future__ import annotations

import fnmatch
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from popmix.config import ConfigError

#: seconds between two mirrors of the driver's files while a search runs
MIRROR_EVERY_S = 30.0
#: the driver's files and folders mirrored (Tune's own seed folders are written by Tune)
DRIVER_FILES = ("*.json", "*.jsonl")
DRIVER_FOLDERS = ("tensorboard",)


def is_uri(storage: str) -> bool:
    return "://" in storage and not storage.startswith("file://")


@dataclass(frozen=True)
class RemoteStorage:
    """A ``--storage`` URI, opened: its filesystem and the path in it."""

    uri: str  # without its query, for messages
    fs: Any  # pyarrow.fs.FileSystem
    root: str  # the path in ``fs`` (``bucket/prefix`` for S3)
    given: str = ""  # as given, with its query (the endpoint): what a resume opens again

    @classmethod
    def open(cls, uri: str) -> RemoteStorage:
        """Open and reach ``uri``.

        Raises:
            ConfigError: a URI pyarrow cannot open, or storage that does not answer.
        """
        import pyarrow.fs as pafs

        base = uri.split("?", 1)[0].rstrip("/")
        try:
            fs, root = pafs.FileSystem.from_uri(uri)
            info = fs.get_file_info(root)
        except Exception as e:
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ConfigError(
                f"--storage {base}: cannot open it ({reason[:200]}); check the URI, the "
                "endpoint (?endpoint_override=...) and the credentials (AWS_ACCESS_KEY_ID, "
                "AWS_SECRET_ACCESS_KEY)"
            ) from None
        if info.type == pafs.FileType.File:
            raise ConfigError(f"--storage {base} is a file, not a folder; give a folder")
        return cls(base, fs, root.rstrip("/"), uri)

    def path(self, name: str) -> str:
        """``name``'s folder in the filesystem (what Tune's ``storage_path`` gets)."""
        return f"{self.root}/{name}"

    def holds(self, name: str) -> bool:
        """Whether ``<storage>/<name>`` already holds anything."""
        import pyarrow.fs as pafs

        selector = pafs.FileSelector(self.path(name), allow_not_found=True, recursive=False)
        return bool(self.fs.get_file_info(selector))

    def upload(self, local: Path, name: str) -> None:
        """Mirror the driver's files of ``local`` to ``<storage>/<name>/``."""
        import pyarrow.fs as pafs

        target = self.path(name)
        for pattern in DRIVER_FILES:
            for f in local.glob(pattern):
                pafs.copy_files(str(f), f"{target}/{f.name}", destination_filesystem=self.fs)
        for folder in DRIVER_FOLDERS:
            if (local / folder).is_dir():
                pafs.copy_files(
                    str(local / folder), f"{target}/{folder}", destination_filesystem=self.fs
                )

    def download(self, name: str, local: Path) -> None:
        """Copy the driver's files of ``<storage>/<name>/`` into ``local``.

        Raises:
            ConfigError: nothing of a popmix search there.
        """
        import pyarrow.fs as pafs

        source = self.path(name)
        listing = self.fs.get_file_info(pafs.FileSelector(source, allow_not_found=True))
        if not listing:
            raise ConfigError(
                f"--resume {self.uri}/{name}: nothing there; give the URI of a search's "
                "experiment folder (<storage>/<name>)"
            )
        local.mkdir(parents=True, exist_ok=True)
        for entry in listing:
            base = entry.base_name
            if entry.type == pafs.FileType.File and any(
                fnmatch.fnmatch(base, pattern) for pattern in DRIVER_FILES
            ):
                pafs.copy_files(entry.path, str(local / base), source_filesystem=self.fs)
            elif entry.type == pafs.FileType.Directory and base in DRIVER_FOLDERS:
                pafs.copy_files(entry.path, str(local / base), source_filesystem=self.fs)


#: checkpoints a trial keeps (:class:`popmix.tune.callbacks.CheckpointRetention`): its newest
#: ones, and all of those younger than KEEP_YOUNGER_S
KEEP_NEWEST = 4
KEEP_YOUNGER_S = 60.0


def in_use(trials: list[Any], scheduler: Any = None) -> set[str]:
    """Paths of the checkpoints a search may still restore: each trial's latest and the one
    Ray's PBT keeps per member for an exploit (``_trial_state[t].last_checkpoint``; a save
    not yet resolved is the trial's newest, kept anyway)."""
    held: list[Any] = [getattr(t, "checkpoint", None) for t in trials]
    for state in getattr(scheduler, "_trial_state", {}).values():
        held.append(getattr(state, "last_checkpoint", None))
    paths = (getattr(c, "path", None) for c in held)
    return {p.rstrip("/") for p in paths if isinstance(p, str)}


def prune(
    fs: Any,
    trial_dir: str,
    now: float | None = None,
    seen: dict[str, float] | None = None,
    keep: set[str] | None = None,
) -> list[str]:
    """Delete the checkpoints of ``trial_dir`` that
    :class:`popmix.tune.callbacks.CheckpointRetention` does not keep (``keep``: paths in use,
    never deleted); returns the deleted paths.

    A checkpoint's age is its folder's modification time where the filesystem has one, else
    the time ``seen`` says this process saw it written; one that has neither was written
    before this process started (a resumed search) and, not among the newest, is old.
    """
    import pyarrow.fs as pafs

    entries = [
        e
        for e in fs.get_file_info(pafs.FileSelector(trial_dir, allow_not_found=True))
        if e.type == pafs.FileType.Directory and e.base_name.startswith("checkpoint_")
    ]
    entries.sort(key=lambda e: e.base_name)  # checkpoint_000123: zero-padded, so in order
    now = time.time() if now is None else now
    deleted = []
    for e in entries[:-KEEP_NEWEST]:
        if e.path.rstrip("/") in (keep or set()):
            continue
        if e.mtime is not None:
            mtime = e.mtime.timestamp()
        else:
            mtime = (seen or {}).get(e.path.rstrip("/"), now - 2 * KEEP_YOUNGER_S)
        if now - mtime > KEEP_YOUNGER_S:
            fs.delete_dir(e.path)
            deleted.append(e.path)
    return deleted
