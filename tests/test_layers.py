"""The light layers stay light: the policies import neither torch nor Ray, the loop not Ray, the
searchers' registry neither. (Which popmix package may import which is import-linter's
contract in pyproject.toml.)"""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "module,forbidden",
    [
        ("popmix.config", ("torch", "ray", "datasets", "transformers", "tokenizers")),
        (
            "popmix.records.summary, popmix.records.table, popmix.records.trial, "
            "popmix.records.surface, popmix.records.weights",
            ("torch", "ray", "datasets", "matplotlib"),
        ),
        ("popmix._util.atomic", ("popmix.config", "numpy", "torch", "ray")),
        (
            "popmix._util.stats, popmix._util.progress, popmix._util.plots, popmix._util.simplex",
            ("popmix.config", "popmix.policies", "torch", "ray", "matplotlib"),
        ),
        ("popmix.policies", ("torch", "ray", "datasets")),
        ("popmix.data", ("torch", "ray", "datasets", "transformers", "tokenizers")),
        # transformers only when model.hf_config asks for it (popmix.train.hf_model)
        ("popmix.train", ("ray", "transformers")),
        ("popmix.train.custom", ("ray", "transformers")),
        ("popmix.tune.spec", ("torch", "ray", "datasets")),
        # popmix check and the CLI's --searcher choices read the registry
        ("popmix.tune.searchers", ("torch", "ray", "datasets", "optuna", "sklearn")),
        ("popmix.tune.trials", ("torch", "ray", "datasets")),
        ("popmix.reporting.report", ("torch", "ray", "datasets")),
        ("popmix.tune.swarm", ("torch", "ray", "datasets", "sklearn", "scipy")),
        ("popmix.cli", ("torch", "ray", "datasets", "transformers")),
        ("popmix.analysis.swarm_fit", ("torch", "ray", "datasets")),
        ("popmix.analysis.surface_figures", ("torch", "ray", "datasets")),
    ],
)
def test_import_does_not_pull_higher_layers(module, forbidden):
    code = f"import sys, {module}; print(','.join(m for m in {forbidden!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"{module} imported {out.stdout.strip()}"
