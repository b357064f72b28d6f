"""A transformers causal LM as the proxy (model.hf_config) and a local tokenizer (model.tokenizer):
it trains through popmix's loop, its window loss is the model's own loss, it resumes bit for
bit, and bad configs are one line with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from popmix.cli import main  # noqa: E402
from popmix.config import ConfigError, ModelConfig, TrainConfig  # noqa: E402
from popmix.data.domains import Domain, DomainSet  # noqa: E402
from popmix.policies import build_policy  # noqa: E402
from popmix.train import Trainer, run_training  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
#: one GPT-2 block of width 32; positions for a window and its next token
GPT2 = {"model_type": "gpt2", "n_layer": 1, "n_head": 2, "n_embd": 32, "n_positions": 17}
LLAMA = {
    "model_type": "llama",
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "num_key_value_heads": 2,
    "hidden_size": 32,
    "intermediate_size": 64,
    "max_position_embeddings": 64,
}


@pytest.fixture
def trainer(train_cfg):
    def make(domains, hf=GPT2, steps=30, method="stratified", seed=0, **model) -> Trainer:
        policy = build_policy(method, domains.sizes, steps, {})
        model_cfg = ModelConfig(seq_len=16, hf_config=hf, **model)
        return Trainer(domains, policy, model_cfg, train_cfg(steps, seed=seed))

    return make


def test_the_hf_model_learns_through_popmix(tiny_domains, trainer):
    t = trainer(tiny_domains, steps=40)
    assert type(t.model.hf).__name__ == "GPT2LMHeadModel"
    before = t.evaluate()
    t.train(40)
    after = t.evaluate()
    # random init is uniform over 256 bytes (ln 256 = 5.55); these alphabets hold 3..9 bytes
    assert np.all(before > 5.0)
    assert np.all(after < before - 2.0), (before, after)


def test_window_loss_is_the_models_own_loss(tiny_domains, trainer):
    t = trainer(tiny_domains, steps=5)
    t.train(5)
    w = t._windows("test", 4)[2]  # (4, 17): a window and its next token
    with torch.no_grad():
        ours = t.model.example_losses(w)
        # transformers shifts the labels itself: position j predicts token j + 1
        theirs = t.model.hf(input_ids=w, labels=w).loss
        manual = torch.stack(
            [
                torch.nn.functional.cross_entropy(
                    t.model.hf(input_ids=x[None]).logits[0, :-1], x[1:]
                )
                for x in w
            ]
        )
    assert float(ours.mean()) == pytest.approx(float(theirs), abs=1e-5)
    torch.testing.assert_close(ours, manual, atol=1e-5, rtol=0)
    assert t.evaluate("test")[2] == pytest.approx(float(ours.mean()), abs=1e-6)


def test_dropout_is_off_and_the_seed_fixes_the_model(tiny_domains, trainer):
    a, b, c = (trainer(tiny_domains, steps=2, seed=s) for s in (0, 0, 1))
    cfg = a.model.config
    assert cfg.resid_pdrop == cfg.embd_pdrop == cfg.attn_pdrop == 0.0  # GPT-2's default is 0.1
    assert cfg.vocab_size == 256  # left out of the config: the data's bytes
    sa, sb, sc = (x.model.state_dict() for x in (a, b, c))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(
        sa["hf.transformer.h.0.attn.c_attn.weight"], sc["hf.transformer.h.0.attn.c_attn.weight"]
    )


def test_a_hub_config_in_bf16_builds_fp32_weights(tiny_domains, tmp_path, trainer):
    """A Hub config.json names its checkpoint's dtype; popmix trains fp32 master weights."""
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**GPT2, "torch_dtype": "bfloat16", "dtype": "bfloat16"}))
    for hf in (str(path), {**LLAMA, "torch_dtype": "float16"}):
        t = trainer(tiny_domains, hf=hf, steps=2)
        dtypes = {p.dtype for p in t.model.parameters()}
        assert dtypes == {torch.float32}, (hf, dtypes)
        t.train(1)
        assert {p.dtype for p in t.model.parameters()} == {torch.float32}


def test_random_settings_beyond_dropout_are_zeroed():
    from popmix.train.hf_model import hf_config_object

    def built(**cfg):
        return hf_config_object(ModelConfig(seq_len=16, hf_config=cfg), 256)

    assert built(model_type="opt", layerdrop=0.2).layerdrop == 0.0
    mixtral = built(model_type="mixtral", router_jitter_noise=0.1, hidden_size=32)
    assert mixtral.router_jitter_noise == 0.0
    assert built(model_type="gpt2", resid_pdrop=0.3, n_embd=32).resid_pdrop == 0.0


def test_summary_json_records_the_hf_configs_vocab_size(tmp_path):
    """summary.json's vocab_size is what the model embeds: the hf_config's, not the bytes'."""
    from popmix.config import load_experiment, with_overrides
    from popmix.data import load_experiment_domains
    from popmix.tune.outputs import write_outputs

    exp = with_overrides(
        load_experiment(ROOT / "experiments" / "smoke.yaml"),
        [
            ("methods", ["stratified"]),
            ("model.hf_config", {**GPT2, "n_positions": 33, "vocab_size": 300}),
        ],
    )
    summary, _ = write_outputs([], exp, load_experiment_domains(exp), tmp_path, tmp_path, 1.0)
    assert summary.vocab_size == 300
    assert json.loads((tmp_path / "summary.json").read_text())["vocab_size"] == 300


def test_a_checkpoint_resumes_bit_for_bit(tiny_domains, tmp_path, trainer):
    straight = trainer(tiny_domains, steps=20)
    straight.train(8)
    straight.pop_train_losses()
    straight.pop_health()
    straight.train(12)

    first = trainer(tiny_domains, steps=20)
    first.train(8)
    first.pop_train_losses()
    first.pop_health()
    first.train(2)
    first.save(tmp_path / "ckpt.pt")
    resumed = trainer(tiny_domains, steps=20, seed=999)  # the checkpoint decides
    resumed.load(tmp_path / "ckpt.pt")
    resumed.train(10)

    assert resumed.step == straight.step == 20
    for (name, x), y in zip(
        straight.model.state_dict().items(), resumed.model.state_dict().values()
    ):
        assert torch.equal(x, y), name
    np.testing.assert_array_equal(straight.evaluate("test"), resumed.evaluate("test"))
    np.testing.assert_array_equal(straight.pop_train_losses(), resumed.pop_train_losses())


def test_aioli_and_loss_weights_run_but_doge_is_refused(tiny_domains, trainer):
    t = trainer(tiny_domains, steps=6, method="aioli")
    t.train(6)
    assert t.extra["eval_windows"] > 0
    with pytest.raises(ConfigError, match="per-domain gradients from popmix's own model"):
        trainer(tiny_domains, steps=6, method="doge")


def _text_domains() -> DomainSet:
    words = {
        "en": "the cat sat on the mat and the dog ran to the park ",
        "fr": "le chat est sur le tapis et le chien court au parc ",
        "de": "die katze sitzt auf der matte und der hund rennt ",
    }
    out = []
    for name, text in words.items():
        raw = np.frombuffer((text * 60).encode(), dtype=np.uint8).copy()
        n = raw.size
        out.append(Domain(name, raw[: n - 600], raw[n - 600 : n - 300], raw[n - 300 :]))
    return DomainSet("words", tuple(out))


def _tokenizer(path: Path, domains: DomainSet) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    texts = [d.train.tobytes().decode() for d in domains]
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=300, special_tokens=["[UNK]"]))
    folder = path / "tok"
    folder.mkdir()
    tok.save(str(folder / "tokenizer.json"))
    return folder


def test_a_local_tokenizer_tokenizes_text_domains_and_a_llama_trains_on_them(tmp_path, trainer):
    from tokenizers import Tokenizer

    from popmix.data.tokenize import tokenize_domains

    domains = _text_domains()
    folder = _tokenizer(tmp_path, domains)
    tokenized = tokenize_domains(domains, folder)
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    assert tokenized.vocab_size == tok.get_vocab_size()
    for raw, d in zip(domains, tokenized):
        expected = tok.encode(raw.validation.tobytes().decode(), add_special_tokens=False).ids
        assert d.validation.tolist() == expected
        assert d.train.size < raw.train.size  # merges: fewer tokens than bytes

    t = trainer(tokenized, hf=LLAMA, steps=30)
    assert t.model.vocab_size == tok.get_vocab_size()
    before = t.evaluate()
    t.train(30)
    assert np.all(t.evaluate() < before)


def test_run_training_records_what_ran(tiny_domains):
    cfg = TrainConfig(steps=4, batch_size=4, threads=1, eval_windows=2, test_windows=2)
    model = ModelConfig(seq_len=16, hf_config=GPT2)
    result = run_training(
        tiny_domains, build_policy("stratified", tiny_domains.sizes, 4, {}), model, cfg
    )
    assert result["model_config"]["hf_config"]["model_type"] == "gpt2"
    assert set(result["test_loss"]) == set(tiny_domains.names)


# -- bad inputs: one line, exit code 2 ----------------------------------------------------------
TINY_RUN = "--smoke --tasks 2".split()
SEQ = "model.seq_len=32"  # --smoke sets it only after the checks


def _config(tmp: Path, **cfg) -> Path:
    p = tmp / "config.json"
    p.write_text(json.dumps({**GPT2, "n_positions": 64, **cfg}))
    return p


@pytest.mark.parametrize(
    "override,message",
    [
        (lambda t: f"model.hf_config={t}/nowhere/config.json", "not found"),
        (lambda t: f"model.hf_config={_config(t, vocab_size=100)}", "vocab_size 100 is too small"),
        (
            lambda t: f"model.hf_config={_config(t, model_type='nosuchmodel')}",
            "unknown model_type",
        ),
        (lambda t: f"model.hf_config={t}", "not found"),  # a folder without config.json
        (lambda t: "model.hf_config={n_layer: 1}", "has no model_type"),
        (lambda t: f"model.hf_config={_config(t, n_positions=8)}", "longer than the hf_config"),
        (lambda t: f"model.tokenizer={t}/tok.json", "model.tokenizer"),
    ],
    ids=["missing", "vocab", "model_type", "folder", "no-type", "positions", "tokenizer"],
)
def test_bad_hf_configs_are_one_line_exit_2(tmp_path, capsys, override, message):
    out = tmp_path / "out"
    code = main(["run", *TINY_RUN, "--out", str(out), SEQ, override(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert message in err and len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    assert not out.exists()


def test_a_missing_extra_is_one_line(tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "transformers" else real(name, *a),
    )
    code = main(
        [
            "run",
            *TINY_RUN,
            "--out",
            str(tmp_path / "o"),
            SEQ,
            f"model.hf_config={_config(tmp_path)}",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and "pip install 'popmix[hf]'" in err and len(err.splitlines()) == 1


def test_every_example_yaml_is_a_valid_experiment():
    from popmix.config import load_experiment

    found = sorted((ROOT / "examples").rglob("*.yaml"))
    assert found
    for path in found:
        load_experiment(path).validate()


def test_popmix_run_trains_a_transformers_model_on_tokenized_text(tmp_path, capsys):
    domains = _text_domains()
    folder = _tokenizer(tmp_path, domains)
    data = tmp_path / "corpus"
    data.mkdir()
    for d in domains:
        # the corpus's own 5% held-out splits, after tokenization, must hold a window
        (data / f"{d.name}.txt").write_bytes(d.train.tobytes() * 8)
    out = tmp_path / "out"
    code = main(
        [
            "run",
            "--smoke",
            "--data",
            str(data),
            "--out",
            str(out),
            SEQ,
            f"model.tokenizer={folder}",
            "model.hf_config={model_type: gpt2, n_layer: 1, n_head: 2, n_embd: 32}",
        ]
    )
    assert code == 0, capsys.readouterr().err
    result = json.loads((out / "result.json").read_text())
    assert result["model_config"]["hf_config"]["model_type"] == "gpt2"
    assert result["model_config"]["tokenizer"] == str(folder)
    assert set(result["test_loss"]) == {"en", "fr", "de"}
    from tokenizers import Tokenizer

    vocab = Tokenizer.from_file(str(folder / "tokenizer.json")).get_vocab_size()
    assert result["vocab_size"] == vocab != 256  # the tokenizer's ids, not bytes
    assert all(np.isfinite(v) for v in result["test_loss"].values())
