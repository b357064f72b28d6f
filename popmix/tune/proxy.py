"""Which proxy a calibration measured, and what a search on that proxy is told about it.

A proxy is the data, the model and the training settings that every trial shares; two
experiments that agree on those are one instrument, whatever their methods, seeds or search
settings. :func:`proxy_fingerprint` names it; ``popmix calibrate`` appends one line per
measured proxy to ``<storage>/calibrations.jsonl`` (:data:`REGISTRY`), and ``popmix search``
on the same storage reads the latest line for its own proxy (:func:`calibration_warning`).
No torch, no Ray.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from popmix.config import Experiment
from popmix.data import sample_tokens_of

#: one JSON object per line: fingerprint, stable, reasons, where its calibrate.json is, when
REGISTRY = "calibrations.jsonl"
#: train settings that change how a run is executed, not what it measures
_NOT_PROXY = ("seed", "threads", "device", "eval_interval")


def proxy_fingerprint(exp: Experiment, domain_names: list[str]) -> str:
    """A short hash of what makes the proxy: the data (and its domains), model and training."""
    d = exp.data
    data: dict[str, Any] = {
        "benchmark": d.benchmark,
        "path": str(Path(d.path).resolve()) if d.path else None,
        "seed": d.seed,
        "domain_column": d.domain_column,
        "domains": list(domain_names),
    }
    if d.path:  # what picks a corpus's domains and sample (a built-in benchmark has none)
        data.update(
            domain_globs={k: list(v) for k, v in d.domains.items()},
            text_field=d.text_field,
            token_dtype=d.token_dtype,
            sample_tokens=sample_tokens_of(exp),
        )
    train = {k: v for k, v in dataclasses.asdict(exp.train).items() if k not in _NOT_PROXY}
    train["warmup"] = exp.train.warmup  # a share and a step count that agree are one setting
    train.pop("warmup_frac")
    train.pop("warmup_steps")
    text = json.dumps(
        {"data": data, "model": dataclasses.asdict(exp.model), "train": train},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def record_calibration(storage: Path, entry: dict[str, Any]) -> None:
    """Append one measured proxy to the storage's registry."""
    storage.mkdir(parents=True, exist_ok=True)
    with open(storage / REGISTRY, "a") as f:
        f.write(json.dumps(entry) + "\n")


def latest_calibration(storage: Path, fingerprint: str) -> dict[str, Any] | None:
    """The newest registry entry for ``fingerprint`` (a line that does not parse is skipped)."""
    path = storage / REGISTRY
    if not path.is_file():
        return None
    found = None
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and entry.get("fingerprint") == fingerprint:
            found = entry
    return found


def calibration_warning(storage: Path, exp: Experiment, domain_names: list[str]) -> str | None:
    """The one line a search prints when calibration found its proxy unstable, else None."""
    entry = latest_calibration(storage, proxy_fingerprint(exp, domain_names))
    if entry is None or entry.get("stable"):
        return None
    reasons = "; ".join(entry.get("reasons") or []) or "see its calibrate.json"
    fix = (
        f"; popmix search --experiment {entry['recommended_experiment']} uses the proxy it "
        "recommends"
        if entry.get("recommended_experiment")
        else "; give more seeds, more steps or a lower learning rate"
    )
    return (
        f"popmix search: warning: calibration ({entry.get('calibrate_json', '?')}) found this "
        f"proxy unstable ({reasons}), so single-seed differences may be seed noise{fix}"
    )
