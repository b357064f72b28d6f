"""A search on oracle16 measures against the shipped oracle only at the oracle's proxy."""

from __future__ import annotations

from pathlib import Path

from popmix.config import load_experiment
from popmix.data import load_domains
from popmix.tune.outputs import oracle_for

EXPERIMENT = Path(__file__).resolve().parents[2] / "experiments" / "oracle16.yaml"


def test_the_oracle_applies_at_its_proxy_and_says_why_not_elsewhere():
    domains = load_domains("oracle16")
    exp = load_experiment(str(EXPERIMENT))
    found = oracle_for(exp, domains)
    assert found is not None and found["applies"] and found["why"] is None
    assert list(found["weights"]) == domains.names
    wider = oracle_for(load_experiment(str(EXPERIMENT), ["model.d_model=128"]), domains)
    assert not wider["applies"] and wider["why"] == "model.d_model differs from the oracle's proxy"
    longer = oracle_for(load_experiment(str(EXPERIMENT), ["train.steps=900"]), domains)
    assert longer["why"].startswith("train.") and "steps" in longer["why"]
    fewer = load_domains("oracle16", tasks=8)
    assert oracle_for(exp, fewer)["why"] == "the search's domains are not the oracle's 16"
    assert oracle_for(exp, load_domains("synthetic", tasks=4)) is None
