"""A transformers or custom model that cannot be built is refused in one line (exit 2, nothing
written) by ``popmix search`` and ``popmix confirm`` as by ``popmix run``, before Ray starts;
``confirm.model`` sizes only popmix's own model; summary.json's vocab_size is the model's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from popmix.cli import main
from popmix.config import ConfigError, experiment_to_dict, load_experiment, with_overrides

ROOT = Path(__file__).resolve().parents[2]
SMOKE = str(ROOT / "experiments" / "smoke.yaml")
EXAMPLE = f"{ROOT}/examples/own_model/trainer.py:GRUTrainer"


def _trainer_file(tmp: Path, body: str) -> str:
    p = tmp / f"mine{len(list(tmp.glob('mine*.py')))}.py"
    p.write_text(body)
    return f"{p}:Mine"


_ABSTRACT = (
    "from popmix.train import ProxyTrainer\n"
    "class Mine(ProxyTrainer):\n    def train_step(self, batch):\n        pass\n"
)


def _bad_models(tmp: Path) -> dict[str, tuple[str, str]]:
    return {
        "model_type": ("model.hf_config={model_type: nosuchmodel}", "unknown model_type"),
        "no-causal-lm": ("model.hf_config={model_type: vit}", "has no causal LM"),
        "import": (f"model.custom={_trainer_file(tmp, '1 / 0')}", "cannot import"),
        "abstract": (
            f"model.custom={_trainer_file(tmp, _ABSTRACT)}",
            "does not implement eval_losses",
        ),
    }


@pytest.mark.parametrize("case", ["model_type", "no-causal-lm", "import", "abstract"])
def test_a_search_refuses_a_model_that_cannot_be_built_before_ray(tmp_path, capsys, case):
    if case in ("model_type", "no-causal-lm"):
        pytest.importorskip("transformers")
    override, message = _bad_models(tmp_path)[case]
    out = tmp_path / "s"
    code = main(["search", "--experiment", SMOKE, "--out", str(out), override])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1, err
    assert "Traceback" not in err and not out.exists()


def _finished_search(folder: Path, model: dict) -> Path:
    """A search folder as ``popmix confirm`` reads it, for a search without a population."""
    exp = with_overrides(
        load_experiment(SMOKE),
        [("methods", ["stratified"]), *((f"model.{k}", v) for k, v in model.items())],
    )
    folder.mkdir()
    summary = {"rows": [], "experiment_config": experiment_to_dict(exp), "domains": []}
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


@pytest.mark.parametrize("case", ["import", "abstract"])
def test_confirm_refuses_a_trainer_that_no_longer_builds_before_ray(tmp_path, capsys, case):
    good = tmp_path / "good.py"
    good.write_text((ROOT / "examples" / "own_model" / "trainer.py").read_text())
    folder = _finished_search(
        tmp_path / "search", {"custom": f"{good}:GRUTrainer", "custom_args": {"width": 8}}
    )
    # the trainer file changed after the search: a new name, so this process imports it anew
    broken = "1 / 0\n" if case == "import" else _ABSTRACT.replace("Mine", "GRUTrainer")
    renamed = tmp_path / "edited.py"
    renamed.write_text(broken)
    summary = json.loads((folder / "summary.json").read_text())
    summary["experiment_config"]["model"]["custom"] = f"{renamed}:GRUTrainer"
    (folder / "summary.json").write_text(json.dumps(summary))

    code = main(["confirm", str(folder)])
    err = capsys.readouterr().err.strip()
    message = "cannot import" if case == "import" else "does not implement eval_losses"
    assert code == 2 and message in err and len(err.splitlines()) == 1, err
    assert not (folder / "confirm.json").exists() and not (folder / "confirm").exists()


@pytest.mark.parametrize("key", ["d_model", "n_layer", "n_head"])
def test_confirm_model_sizes_are_refused_for_other_models(tmp_path, capsys, key):
    code = main(
        [
            "search",
            "--experiment",
            SMOKE,
            "--out",
            str(tmp_path / "s"),
            f"model.custom={EXAMPLE}",
            f"confirm.model.{key}=64",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and f"confirm.model.{key} sizes popmix's own model" in err, err
    assert len(err.splitlines()) == 1 and not (tmp_path / "s").exists()
    # seq_len and steps still make a second scale, and popmix's own model keeps d_model
    exp = with_overrides(
        load_experiment(SMOKE),
        [("model.custom", EXAMPLE), ("confirm.model.seq_len", 16), ("confirm.steps", 30)],
    )
    assert exp.second_scale().model.seq_len == 16
    with_overrides(load_experiment(SMOKE), [("confirm.model.d_model", 64)]).validate()
    with pytest.raises(ConfigError, match="confirm.model.d_model"):
        with_overrides(
            load_experiment(SMOKE),
            [("model.hf_config", {"model_type": "gpt2"}), ("confirm.model.d_model", 64)],
        ).validate()


def test_calibrate_refuses_a_sweep_of_sizes_for_a_custom_model(tmp_path, capsys):
    out = tmp_path / "c"
    code = main(
        [
            "calibrate",
            "--experiment",
            SMOKE,
            "--out",
            str(out),
            "--sweep-grid",
            "model.d_model=32,64",
            f"model.custom={EXAMPLE}",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and "model.d_model does not change a custom model" in err, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err and not out.exists()
