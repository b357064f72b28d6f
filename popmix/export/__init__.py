"""``popmix export``: a found mixture in the formats users' trainers read.

:func:`load_mixture` reads a run folder or a weights file into a :class:`Mixture` (the schedule
as phases tiling the budget, each domain's data); the writers turn it into a Hugging Face
``interleave_datasets`` file and snippet (:func:`to_hf`), Megatron-LM / NeMo ``--data-path``
blends (:func:`to_megatron`), or JSON and CSV (:func:`to_json`, :func:`to_csv`). Imports
neither torch, Ray nor ``datasets`` (the snippet does, when the user runs it).
"""

from __future__ import annotations

from popmix.export._caps import check_repetition, epochs_per_domain
from popmix.export._mixture import (
    RUN_FILES,
    UNITS,
    ExportError,
    Mixture,
    Phase,
    RunRecord,
    check_cover,
    find_weights_file,
    load_mixture,
    read_map,
    read_run_record,
    read_schedule,
    schedule_phases,
    search_choice,
)
from popmix.export._writers import (
    FORMATS,
    blend,
    hf_config,
    hf_snippet,
    loader,
    to_csv,
    to_hf,
    to_json,
    to_megatron,
)

__all__ = [
    "FORMATS",
    "RUN_FILES",
    "UNITS",
    "ExportError",
    "Mixture",
    "Phase",
    "RunRecord",
    "blend",
    "check_cover",
    "check_repetition",
    "epochs_per_domain",
    "find_weights_file",
    "hf_config",
    "hf_snippet",
    "load_mixture",
    "loader",
    "read_map",
    "read_run_record",
    "read_schedule",
    "schedule_phases",
    "search_choice",
    "to_csv",
    "to_hf",
    "to_json",
    "to_megatron",
]
