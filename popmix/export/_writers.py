"""The export formats of a :class:`~popmix.export.Mixture`: text for the user's trainer.

Each writer returns the text of a file (``hf`` two: the mixture file and a Python snippet);
none touches the disk, so :mod:`popmix.cli._export` alone decides where they go.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from popmix.export._mixture import ExportError, Mixture, Phase

FORMATS = ("hf", "megatron", "json", "csv")
#: what ``datasets.load_dataset`` calls the builder of each file kind
_BUILDERS = {
    ".jsonl": "json",
    ".json": "json",
    ".parquet": "parquet",
    ".csv": "csv",
    ".txt": "text",
    ".arrow": "arrow",
}
_COMPRESSED = (".gz", ".zst", ".zstd", ".bz2", ".xz")
_TOKENIZED = (".bin", ".idx", ".npy")


def _per_domain(names: Sequence[str], values: Sequence[float]) -> dict[str, float]:
    return dict(zip(names, values))


def _range(m: Mixture, p: Phase) -> str:
    return f"{m.unit} [{p.start}, {p.end})"


def to_json(m: Mixture) -> str:
    """Domain and weight per phase, with each domain's data: for any other trainer."""
    phases = []
    for p in m.phases:
        entry: dict[str, Any] = {
            "start": p.start,
            "end": p.end,
            "weights": _per_domain(m.domains, p.weights),
        }
        if p.loss_weights is not None:
            entry["loss_weights"] = _per_domain(m.domains, p.loss_weights)
        phases.append(entry)
    out = {
        "format": "popmix-export/1",
        "source": str(m.source),
        "method": m.method,
        "unit": m.unit,
        "total": m.total,
        "domains": list(m.domains),
        "data": {d: list(m.data[d]) for d in m.domains},
        "final_weights": _per_domain(m.domains, m.final_weights),
        "phases": phases,
    }
    if m.repetition is not None:
        out["repetition"] = dict(m.repetition)
    return json.dumps(out, indent=2) + "\n"


def to_csv(m: Mixture) -> str:
    """One row per phase and domain: ``phase,start,end,unit,domain,data,weight`` (and
    ``loss_weight`` when the schedule has loss weights); several data paths joined by ``;``."""
    with_loss = any(p.loss_weights is not None for p in m.phases)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    header = ["phase", "start", "end", "unit", "domain", "data", "weight"]
    w.writerow([*header, "loss_weight"] if with_loss else header)
    for i, p in enumerate(m.phases):
        for k, d in enumerate(m.domains):
            row: list[Any] = [i, p.start, p.end, m.unit, d, ";".join(m.data[d]), p.weights[k]]
            if with_loss:
                row.append("" if p.loss_weights is None else p.loss_weights[k])
            w.writerow(row)
    return buf.getvalue()


def _number(x: float) -> str:
    # 9 significant digits: a weight of 1e-4 keeps its value, and a line stays readable
    return format(x, ".9g")


def blend(m: Mixture, weights: Sequence[float]) -> list[tuple[float, str]]:
    """``(weight, prefix)`` pairs of one Megatron blend, normalised to sum 1. A domain of
    several prefixes shares its weight among them by their tokens (from their ``.idx``); a
    domain at weight 0 is left out (Megatron would build an empty dataset for it).

    Raises:
        ExportError: a domain of several prefixes whose sizes cannot be read here.
    """
    pairs: list[tuple[float, str]] = []
    for d, wd in zip(m.domains, weights):
        if wd <= 0:
            continue
        prefixes = m.data[d]
        if len(prefixes) == 1:
            pairs.append((wd, prefixes[0]))
            continue
        sizes = [m.prefix_tokens.get(p) for p in prefixes]
        if any(s is None for s in sizes):
            unread = prefixes[sizes.index(None)]
            raise ExportError(
                f"domain {d!r} maps to {len(prefixes)} prefixes and {unread}.idx cannot be "
                "read here to share its weight by size; run the export where the data is, or "
                "map the domain to one prefix"
            )
        total = sum(s for s in sizes if s is not None)
        pairs += [(wd * (s or 0) / total, p) for p, s in zip(prefixes, sizes)]
    norm = sum(w for w, _ in pairs)
    return [(w / norm, p) for w, p in pairs]


def _megatron_paths(m: Mixture) -> list[str]:
    """Refuse ``.npy`` token files (Megatron reads none); the comment lines for paths that are
    not Megatron datasets (a text corpus, not yet tokenized): what to do with them."""
    text = []
    for d in m.domains:
        for path in m.data[d]:
            if Path(path).suffix == ".npy":
                raise ExportError(
                    f"domain {d!r} is the .npy token file {path}, which Megatron does not "
                    "read; convert it to .bin/.idx and give --map domains.yaml with the prefix"
                )
            if Path(path).suffix and not Path(path + ".bin").is_file():
                text.append(path)
    if not text:
        return []
    # Megatron blends name tokenized datasets; a text file in the line would fail at its start.
    return [
        f"# {len(text)} path(s) are not Megatron datasets (e.g. {text[0]}): tokenize each with "
        "Megatron-LM's tools/preprocess_data.py and put its output prefix in place, or give "
        "--map domains.yaml with the prefixes"
    ]


def to_megatron(m: Mixture) -> str:
    """Megatron-LM / NeMo ``--data-path`` blends (``w1 prefix1 w2 prefix2 ...``), one line per
    phase, each under a comment stating its range; the static final mixture as a comment."""
    untokenized = _megatron_paths(m)
    lines = [
        f"# popmix export: the {m.method or 'popmix'} schedule of {m.source}, "
        f"{len(m.phases)} phase(s) over {m.total} {m.unit}; data from {m.data_from}",
        "# Megatron-LM: --data-path <a line>; NeMo 2.0: paths={'train': [w1, 'prefix1', ...]};"
        " weights normalised, domains at weight 0 left out",
        "# static, the final weights for the whole run: "
        + " ".join(f"{_number(w)} {p}" for w, p in blend(m, m.final_weights)),
        *untokenized,
    ]
    for i, p in enumerate(m.phases):
        lines.append(f"# phase {i}: {_range(m, p)}")
        lines.append(" ".join(f"{_number(w)} {prefix}" for w, prefix in blend(m, p.weights)))
    return "\n".join(lines) + "\n"


def loader(paths: Sequence[str]) -> tuple[str | None, list[str]]:
    """``(builder, data_files)`` for ``datasets.load_dataset`` of one domain: a builder named
    by the files' kind, or ``None`` for a dataset name or a local folder (``load_dataset(name)``
    infers it).

    Raises:
        ExportError: tokenized files, or files of different kinds in one domain.
    """
    kinds = set()
    for path in paths:
        suffixes = [s.lower() for s in Path(path).suffixes]
        while suffixes and suffixes[-1] in _COMPRESSED:
            suffixes.pop()
        last = suffixes[-1] if suffixes else ""
        if last in _TOKENIZED or Path(path + ".bin").is_file():
            raise ExportError(
                f"{path} holds token ids (Megatron or .npy), which datasets.load_dataset does "
                "not read; give --map domains.yaml with each domain's text files, or use "
                "--format megatron"
            )
        kinds.add(_BUILDERS.get(last))
    if len(kinds) > 1:
        raise ExportError(
            f"{', '.join(paths[:2])}: one domain's files are of different kinds; map each "
            "domain to files of one kind (all .jsonl, all .parquet, ...)"
        )
    kind = kinds.pop()
    if kind is None and len(paths) > 1:
        raise ExportError(
            f"{paths[0]} and {len(paths) - 1} more: several dataset names for one domain; "
            "map it to one dataset, or to its files"
        )
    return kind, list(paths)


def hf_config(m: Mixture) -> dict[str, Any]:
    """The ``hf`` mixture file: the static probabilities (final weights) in the domain order,
    each domain's loader, and the schedule's phases."""
    phases = []
    for p in m.phases:
        entry: dict[str, Any] = {"start": p.start, "end": p.end, "probabilities": list(p.weights)}
        if p.loss_weights is not None:
            entry["loss_weights"] = list(p.loss_weights)
        phases.append(entry)
    loaders = {d: loader(m.data[d]) for d in m.domains}
    return {
        "format": "popmix-export-hf/1",
        "source": str(m.source),
        "method": m.method,
        "domains": list(m.domains),
        "data": {d: {"builder": b, "data_files": f} for d, (b, f) in loaders.items()},
        "probabilities": list(m.final_weights),
        "seed": m.seed,
        "stopping_strategy": "all_exhausted",
        "unit": m.unit,
        "total": m.total,
        "phases": phases,
    }


def to_hf(m: Mixture, as_yaml: bool = False) -> tuple[str, str]:
    """``(mixture file, Python snippet)``: the :func:`hf_config` as JSON (or YAML), and a
    self-contained script that builds one ``datasets.interleave_datasets`` per phase."""
    config = hf_config(m)
    if as_yaml:
        import yaml

        text = yaml.safe_dump(config, sort_keys=False)
    else:
        text = json.dumps(config, indent=2) + "\n"
    return text, hf_snippet(config)


def _literal(value: Any) -> str:
    """Python source of a dict or list of plain values, one entry a line (the repr of dicts,
    lists, strings, floats and None reads back as itself)."""
    if isinstance(value, Mapping):
        items = [f"    {k!r}: {v!r}," for k, v in value.items()]
        return "{\n" + "\n".join(items) + "\n}"
    return "[\n" + "\n".join(f"    {v!r}," for v in value) + "\n]"


def hf_snippet(config: Mapping[str, Any]) -> str:
    """The Python snippet of an ``hf`` export (a string of code, from :func:`hf_config`)."""
    data = {d: [v["builder"], v["data_files"]] for d, v in config["data"].items()}
    final = dict(zip(config["domains"], config["probabilities"]))
    phases = [
        [p["start"], p["end"], dict(zip(config["domains"], p["probabilities"]))]
        for p in config["phases"]
    ]
    method = config["method"] or "popmix"
    return f'''"""The {method} mixture of {config["source"]}, as Hugging Face datasets.

Written by `popmix export --format hf`. `mixture(FINAL)` is the static mixture (the schedule's
final weights) for a whole run; `phase_mixtures()` gives one interleaved stream per phase of the
schedule: train on phase i for its range of {config["unit"]} (PHASES[i][0] to PHASES[i][1]),
then move to the next. "all_exhausted" repeats the other domains until each has run out once,
so bound a phase by its length (ds.take(n)). Edit DATA to point at other copies of the data.
"""

from datasets import interleave_datasets, load_dataset

SEED = {config["seed"]}
#: domain -> [load_dataset builder ("json", "parquet", ...; None: a dataset name or folder),
#: data files]
DATA = {_literal(data)}
#: the static mixture: each domain's probability
FINAL = {_literal(final)}
#: [start, end, probabilities] of each phase, in {config["unit"]} of a run of {config["total"]}
PHASES = {_literal(phases)}


def source(name, streaming=True):
    """One domain's records."""
    builder, files = DATA[name]
    if builder is None:
        return load_dataset(files[0], split="train", streaming=streaming)
    return load_dataset(builder, data_files=files, split="train", streaming=streaming)


def mixture(probabilities, seed=SEED, streaming=True):
    """The domains interleaved, each drawn with its probability. A domain at probability 0 is
    left out: "all_exhausted" would otherwise wait forever for it to run out."""
    names = [n for n, p in probabilities.items() if p > 0]
    return interleave_datasets(
        [source(n, streaming) for n in names],
        probabilities=[probabilities[n] for n in names],
        seed=seed,
        stopping_strategy="all_exhausted",
    )


def phase_mixtures(streaming=True):
    """[(start, end, dataset)] for each phase; each phase its own seed, so phases do not
    repeat one another's draws."""
    return [
        (start, end, mixture(p, SEED + i, streaming))
        for i, (start, end, p) in enumerate(PHASES)
    ]


if __name__ == "__main__":
    for start, end, ds in phase_mixtures():
        print(f"phase [{{start}}, {{end}}) {config["unit"]}:", next(iter(ds)))
'''


__all__ = [
    "FORMATS",
    "blend",
    "hf_config",
    "hf_snippet",
    "loader",
    "to_csv",
    "to_hf",
    "to_json",
    "to_megatron",
]
