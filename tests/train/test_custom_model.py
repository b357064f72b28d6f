"""Your own trainer (model.custom, popmix.train.ProxyTrainer) through popmix's one loop: the
shipped example learns, its per-domain losses are what popmix reports, its checkpoint resumes
bit for bit, and a bad class or file is one line with exit code 2."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from popmix.cli import main
from popmix.config import ConfigError, ModelConfig
from popmix.policies import build_policy
from popmix.train import ProxyTrainer, Trainer, run_training
from popmix.train.custom import load_trainer_class

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = f"{ROOT}/examples/own_model/trainer.py:GRUTrainer"


def model(spec: str = EXAMPLE, **args) -> ModelConfig:
    return ModelConfig(seq_len=16, custom=spec, custom_args={"width": 32, **args})


@pytest.fixture
def trainer(train_cfg):
    def make(domains, steps=30, method="stratified", spec=EXAMPLE, **kw) -> Trainer:
        policy = build_policy(method, domains.sizes, steps, {})
        return Trainer(domains, policy, model(spec), train_cfg(steps, **kw))

    return make


def test_the_example_learns_and_popmix_reports_its_own_losses(tiny_domains, train_cfg):
    policy = build_policy("stratified", tiny_domains.sizes, 40, {})
    cfg = train_cfg(40, eval_interval=20)
    result = run_training(tiny_domains, policy, model(), cfg)
    first, last = result["history"][0], result["history"][-1]
    assert last["val_mean_loss"] < first["val_mean_loss"] < np.log(256)
    assert result["grad_norm_max"] > 0  # the example hands back its gradient norm

    # the figures popmix reports are the trainer's own eval_losses on popmix's test windows
    again = Trainer(
        tiny_domains, build_policy("stratified", tiny_domains.sizes, 40, {}), model(), cfg
    )
    again.train(40)
    net = again.user.model  # type: ignore[union-attr]
    for name, windows in zip(tiny_domains.names, again._windows("test", cfg.test_windows)):
        with torch.no_grad():
            direct = float(net.window_losses(windows).double().mean())
        assert result["test_loss"][name] == pytest.approx(direct, abs=1e-6)


def test_loss_weights_reach_the_step(tiny_domains, trainer):
    seen = []
    t = trainer(tiny_domains, steps=4, apply="loss", method="proportional")
    step = t.user.train_step  # type: ignore[union-attr]

    def spy(batch):
        seen.append(batch)
        return step(batch)

    t.user.train_step = spy  # type: ignore[method-assign,union-attr]
    t.train(2)
    w = seen[0].example_weight
    sizes = tiny_domains.sizes / tiny_domains.sizes.sum()
    expected = torch.tensor(sizes / 0.25, dtype=torch.float32)[seen[0].domain_ids]
    torch.testing.assert_close(w, expected)  # p_i / q_i, q stratified
    assert seen[1].step == 1 and seen[1].lr == pytest.approx(t.lr_at(1))


def test_a_checkpoint_resumes_bit_for_bit(tiny_domains, tmp_path, trainer):
    straight = trainer(tiny_domains, steps=16)
    straight.train(6)
    straight.pop_train_losses()
    straight.train(10)

    first = trainer(tiny_domains, steps=16)
    first.train(6)
    first.pop_train_losses()
    first.train(2)
    first.save(tmp_path / "ckpt.pt")
    resumed = trainer(tiny_domains, steps=16, seed=7)  # the checkpoint decides
    resumed.load(tmp_path / "ckpt.pt")
    resumed.train(8)

    a = straight.user.state_dict()  # type: ignore[union-attr]
    b = resumed.user.state_dict()  # type: ignore[union-attr]
    assert set(a) == {"model", "optimizer"}
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    np.testing.assert_array_equal(straight.evaluate("test"), resumed.evaluate("test"))
    np.testing.assert_array_equal(straight.pop_train_losses(), resumed.pop_train_losses())


def _write(tmp: Path, text: str) -> str:
    # a new file each time: a file's module is imported once per process
    p = tmp / f"mine{len(list(tmp.glob('mine*.py')))}.py"
    p.write_text(text)
    return f"{p}:Mine"


def test_bad_classes_are_one_line(tmp_path, tiny_domains, trainer):
    with pytest.raises(ConfigError, match="is not a subclass of popmix.train.ProxyTrainer"):
        load_trainer_class(_write(tmp_path, "class Mine:\n    pass\n"))
    with pytest.raises(ConfigError, match="has no Mine"):
        load_trainer_class(_write(tmp_path, "x = 1\n"))
    with pytest.raises(ConfigError, match=r"cannot import .*ZeroDivisionError"):
        load_trainer_class(_write(tmp_path, "1 / 0\n"))
    with pytest.raises(ConfigError, match="does not implement eval_losses"):
        spec = _write(
            tmp_path,
            "from popmix.train import ProxyTrainer\n"
            "class Mine(ProxyTrainer):\n    def train_step(self, batch):\n        pass\n",
        )
        trainer(tiny_domains, spec=spec)
    with pytest.raises(ConfigError, match="cannot import no_such_module"):
        load_trainer_class("no_such_module:Mine")


def test_doge_compile_and_wrong_loss_shapes_are_refused(tmp_path, tiny_domains, trainer):
    with pytest.raises(ConfigError, match="per-domain gradients from popmix's own model"):
        trainer(tiny_domains, method="doge")
    with pytest.raises(ConfigError, match="train.compile"):
        trainer(tiny_domains, compile=True)
    spec = _write(
        tmp_path,
        "import torch\nfrom popmix.train import ProxyTrainer\n"
        "class Mine(ProxyTrainer):\n"
        "    def train_step(self, batch):\n        return torch.zeros(3)\n"
        "    def eval_losses(self, tokens):\n        return torch.zeros(len(tokens))\n",
    )
    t = trainer(tiny_domains, spec=spec)
    assert isinstance(t.user, ProxyTrainer)
    with pytest.raises(ConfigError, match=r"returned losses of shape \(3,\); expected one per"):
        t.train(1)
    # a float (e.g. loss.item()) instead of each example's loss: one line naming the class
    spec = _write(
        tmp_path,
        "import torch\nfrom popmix.train import ProxyTrainer\n"
        "class Mine(ProxyTrainer):\n"
        "    def train_step(self, batch):\n        return 0.5\n"
        "    def eval_losses(self, tokens):\n        return torch.zeros(len(tokens))\n",
    )
    with pytest.raises(ConfigError, match=r"^Mine.train_step returned float, not a tensor; "):
        trainer(tiny_domains, spec=spec).train(1)


@pytest.mark.parametrize(
    "override,message",
    [
        ("model.custom=nowhere/mine.py:Mine", "file not found"),
        ("model.custom=mine", "expected module:Class"),
        ("model.custom_args={width: 8}", "custom_args is for model.custom"),
        (f"model.custom={EXAMPLE.replace('GRUTrainer', 'ByteGRU')}", "not a subclass"),
    ],
    ids=["missing", "no-class", "args-alone", "not-a-trainer"],
)
def test_bad_custom_settings_exit_2_in_one_line(tmp_path, capsys, override, message):
    out = tmp_path / "out"
    code = main(["run", "--smoke", "--tasks", "2", "--out", str(out), override])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1, err
    assert not out.exists()


def test_popmix_bracket_refuses_a_custom_trainer(tmp_path, capsys):
    out = tmp_path / "bracket"
    code = main(
        ["bracket", "--smoke", "--tasks", "2", "--out", str(out), f"model.custom={EXAMPLE}"]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "popmix's own model" in err[-1] and not out.exists()


@pytest.mark.slow
def test_a_search_exploits_between_custom_trainers(ray_session, tmp_path, capsys):
    """PBT copies a member's checkpoint (the trainer's own state_dict) into another Ray worker,
    which rebuilds the class from its file and continues."""
    import json

    rc = main(
        [
            "search",
            "--experiment",
            str(ROOT / "experiments" / "smoke.yaml"),
            "--exploit-margin",
            "0",
            "--steps",
            "36",
            "--methods",
            "pbt,stratified",
            "--storage",
            str(tmp_path),
            "--name",
            "own",
            f"model.custom={EXAMPLE}",
            "model.custom_args={width: 32}",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    summary = json.loads((tmp_path / "own" / "summary.json").read_text())
    assert {r["status"] for r in summary["rows"]} == {"ok"}
    assert summary["exploits"]["taken"] >= 1
    assert all(r["steps"] == 36 for r in summary["rows"])


def test_a_search_with_doge_and_a_custom_trainer_fails_before_ray(tmp_path, capsys):
    smoke = str(ROOT / "experiments" / "smoke.yaml")
    argv = ["search", "--experiment", smoke, "--methods", "pbt,doge", "--out", str(tmp_path / "s")]
    code = main([*argv, f"model.custom={EXAMPLE}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "doge measures per-domain gradients" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "s").exists()
