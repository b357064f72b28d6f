"""What a search writes so that ``popmix search --resume DIR`` can continue it.

A search writes ``search.json`` into its experiment folder before its first trial starts: the
experiment and the search space as resolved (every flag, override and ``--smoke`` applied,
the data folder and any weights file made absolute) and where its summary goes. A resume
reads it back, so it runs exactly the search that was started, whatever the flags of the
resuming command. What Ray Tune does not restore, popmix keeps itself beside it: the step
ledger (``ledger-<tuner>.json``, :class:`popmix.tune.callbacks.StepLedger`), the lineage rows
(``lineage-seed<S>.jsonl``), the last TensorBoard step of each run
(:data:`popmix.tune.tensorboard.LAST_STEP_FILE`), and the PBT state of each trial, from
its last saved result (:class:`popmix.tune.schedulers._RestoredState`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from popmix._util.atomic import write_json
from popmix.config import (
    ConfigError,
    Experiment,
    SearchSpace,
    anchor_file,
    experiment_from_dict,
    experiment_to_dict,
)
from popmix.config._load import space_from_dict
from popmix.records.summary import SUMMARY_FILE, SummaryError, read_summary

#: the file, and its format version
SEARCH_FILE = "search.json"
FORMAT = 1


@dataclasses.dataclass(frozen=True)
class SavedSearch:
    """A started search, as ``search.json`` holds it."""

    exp: Experiment
    space: SearchSpace
    out: Path  # where summary.json goes
    storage: str | None = None  # --storage as resolved: a folder or a URI
    exp_dir: Path | None = None  # the local experiment folder the search began in
    name: str | None = None  # the experiment's name (its folder at the storage)


def write_search_file(
    exp_dir: Path,
    exp: Experiment,
    space: SearchSpace,
    out: Path,
    storage: str | None = None,
    name: str | None = None,
) -> None:
    """``exp_dir/search.json`` for a search about to start."""
    config = experiment_to_dict(exp)
    if config["data"].get("path"):
        config["data"]["path"] = str(Path(config["data"]["path"]).resolve())
    space_dict = json.loads(json.dumps(dataclasses.asdict(space), default=list))
    space_dict.pop("source", None)
    for vec in space_dict.values():
        if isinstance(vec, dict) and vec.get("init_file"):
            vec["init_file"] = str(Path(vec["init_file"]).resolve())
        if isinstance(vec, dict) and vec.get("anchors"):
            vec["anchors"] = [
                f"file:{Path(anchor_file(a)).resolve()}"
                if isinstance(a, str) and anchor_file(a)
                else a
                for a in vec["anchors"]
            ]
    data = {
        "format": FORMAT,
        "experiment": config,
        "space": space_dict,
        "space_source": space.source,
        "out": str(out),
        "storage": storage,
        "exp_dir": str(exp_dir),
        "name": name,
    }
    write_json(exp_dir / SEARCH_FILE, data, indent=2)


def read_search_file(exp_dir: str | Path) -> SavedSearch:
    """The search started in ``exp_dir``.

    Raises:
        ConfigError: ``exp_dir`` is no folder, holds no ``search.json`` (not a popmix search,
            or one started before popmix wrote it), or one of another format version.
    """
    folder = Path(exp_dir)
    if not folder.is_dir():
        raise ConfigError(
            f"--resume {exp_dir}: no such folder; give the experiment folder a search printed "
            '("experiment folder: ...")'
        )
    path = folder / SEARCH_FILE
    if not path.is_file():
        raise ConfigError(
            f"--resume {exp_dir}: not a popmix search folder (no {SEARCH_FILE}); give the "
            'experiment folder a search printed ("experiment folder: ...")'
        )
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"--resume {exp_dir}: {path} is unreadable ({e})") from None
    version = data.get("format") if isinstance(data, dict) else None
    if version != FORMAT:
        raise ConfigError(
            f"--resume {exp_dir}: {path} is format {version}, this popmix reads format "
            f"{FORMAT}; resume it with the popmix that started it"
        )
    exp = experiment_from_dict(data["experiment"], str(path))
    space = dataclasses.replace(
        space_from_dict(data["space"], str(path)), source=data.get("space_source")
    )
    began = data.get("exp_dir")
    return SavedSearch(
        exp,
        space,
        Path(data["out"]),
        data.get("storage"),
        Path(began) if began else None,
        data.get("name"),
    )


#: (the folder a search began in, the one it resumes in) while a resume unpickles Tune's
#: copies of popmix's callbacks and scheduler (see :func:`rebase`)
_REBASE: tuple[str, str] | None = None


@contextlib.contextmanager
def rebased(began: Path | None, now: Path) -> Iterator[None]:
    """While a search resumes in ``now``: popmix's objects that Tune unpickles from
    ``tuner.pkl`` (the step ledger, the TensorBoard logger, the scheduler's lineage folder,
    the storage mirror) hold the paths of the folder the search began in, on another machine
    perhaps; their ``__setstate__`` moves them here through :func:`rebase`."""
    global _REBASE
    _REBASE = None if began is None or began == now else (str(began), str(now))
    try:
        yield
    finally:
        _REBASE = None


def rebase(path: Any) -> Any:
    """``path`` (a Path or str), moved from the folder the search began in to the one it
    resumes in; unchanged outside :func:`rebased` or outside that folder."""
    if path is None or _REBASE is None:
        return path
    old, new = _REBASE
    text = str(path)
    if text != old and not text.startswith(old.rstrip("/") + "/"):
        return path
    moved = new + text[len(old) :]
    return Path(moved) if isinstance(path, Path) else moved


def finished(out: Path) -> bool:
    """Whether the search whose summary goes to ``out`` wrote it without being interrupted."""
    try:
        summary = read_summary(out / SUMMARY_FILE)
    except SummaryError:
        return False
    return not summary.interrupted and bool(summary.rows)
