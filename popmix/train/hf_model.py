"""A Hugging Face ``transformers`` causal LM as the proxy model (``model.hf_config``).

The model is built from a local config, initialised at random (``from_config``; no weights,
nothing downloaded) and trained by popmix's own loop exactly as :class:`TinyGPT` is: the same
AdamW groups, LR schedule, clipping and per-window loss. ``transformers`` is imported here
only, when an ``hf_config`` is used (``pip install 'popmix[hf]'``).

Deliberate changes to the config as given:

* every random setting of the forward pass is set to 0, for bit-exact resume (a restored PBT
  member must continue exactly as the uninterrupted one): each dropout probability, LayerDrop
  (``layerdrop``, ``encoder_layerdrop``, ...), an MoE router's jitter noise
  (``router_jitter_noise``) and stochastic depth (``drop_path_rate``). They draw from torch's
  global generator, which a checkpoint does not hold (popmix's own model has none for the same
  reason);
* the weights are float32 whatever the file says: a Hub ``config.json`` often names
  ``torch_dtype: bfloat16`` (``dtype`` in transformers 5), which ``from_config`` would build
  in; popmix's step keeps fp32 master weights and its AdamW moments in them, and
  ``train.precision`` decides the compute precision (autocast), as for popmix's model;
* the initial weights are drawn with torch's global generator seeded from the run's seed inside
  ``torch.random.fork_rng``, so the seed fixes the model and the caller's stream is untouched.

The config's ``vocab_size`` is checked against the data where the data are loaded
(:func:`popmix.data.domains.check_vocab`), not here.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from popmix.config import ConfigError, ModelConfig

#: config keys holding a random setting of the forward pass in transformers' configs: dropout
#: (GPT-2's ``*_pdrop``, Llama's ``attention_dropout``, BERT-style ``*_dropout_prob``, ...),
#: LayerDrop (OPT's ``layerdrop``, ``encoder_layerdrop``), MoE router noise (Mixtral's
#: ``router_jitter_noise``, Switch's ``router_jitter_noise``) and stochastic depth
_DROPOUT_SUFFIXES = (
    "pdrop",
    "dropout",
    "dropout_prob",
    "dropout_rate",
    "layerdrop",
    "jitter_noise",
    "drop_path_rate",
)
#: config keys naming the weights' dtype (transformers 4's ``torch_dtype``, 5's ``dtype``)
_DTYPE_KEYS = ("torch_dtype", "dtype")


def _import_transformers() -> Any:
    # Offline always: a config names an architecture, never weights to fetch.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import transformers
    except ImportError:
        raise ConfigError(
            "model.hf_config needs the transformers package: pip install 'popmix[hf]'"
        ) from None
    transformers.logging.set_verbosity_error()  # its warnings about unused token ids
    return transformers


def hf_config_object(model_cfg: ModelConfig, vocab_size: int) -> Any:
    """The ``transformers`` config of ``model.hf_config``, its random settings set to 0, its
    dtype dropped (fp32 weights) and, when it names none, the data's ``vocab_size``.

    Raises:
        ConfigError: an unknown ``model_type``, or one ``transformers`` cannot build.
    """
    transformers = _import_transformers()
    try:
        raw = dict(model_cfg.hf_dict())
    except ValueError as e:
        raise ConfigError(str(e)) from None
    model_type = raw.pop("model_type")
    mapping = transformers.models.auto.configuration_auto.CONFIG_MAPPING
    if model_type not in mapping:
        raise ConfigError(
            f"model.hf_config: unknown model_type {model_type!r} (transformers "
            f"{transformers.__version__}); use a causal LM's, e.g. gpt2, llama, qwen2, mistral"
        )
    raw.setdefault("vocab_size", vocab_size)
    for key in _DTYPE_KEYS:
        raw.pop(key, None)
    for key in list(raw):
        if key.endswith(_DROPOUT_SUFFIXES) and isinstance(raw[key], (int, float)):
            raw[key] = 0.0
    try:
        config = mapping[model_type].from_dict(raw)
    except (TypeError, ValueError) as e:
        raise ConfigError(
            f"model.hf_config: {model_type} config: {str(e).splitlines()[0]}"
        ) from None
    # class defaults the file did not name (GPT-2's resid_pdrop is 0.1 unless given)
    for key, value in config.to_dict().items():
        if key.endswith(_DROPOUT_SUFFIXES) and isinstance(value, float) and value > 0:
            setattr(config, key, 0.0)
    return config


def check_hf_model(model_cfg: ModelConfig, vocab_size: int) -> None:
    """Everything :class:`HFCausalLM` would refuse, without building its weights: the config
    builds and names a causal LM (its ``vocab_size`` against the data's: ``check_vocab``).

    Raises:
        ConfigError: what is wrong, in one line.
    """
    transformers = _import_transformers()
    config = hf_config_object(model_cfg, vocab_size)
    causal = transformers.models.auto.modeling_auto.MODEL_FOR_CAUSAL_LM_MAPPING
    if type(config) not in causal:
        raise ConfigError(
            f"model.hf_config: model_type {config.model_type!r} has no causal LM in "
            "transformers (AutoModelForCausalLM); use a decoder's, e.g. gpt2, llama, qwen2"
        )


class HFCausalLM(nn.Module):
    """A ``transformers`` causal LM with popmix's model interface: ``forward`` gives logits,
    :meth:`example_losses` each window's mean next-token loss.

    Args:
        model_cfg: the experiment's ``model`` section (``hf_config`` set).
        vocab_size: the data's vocabulary (256 bytes, or the tokenizer's), used when the config
            names none; a config's smaller one was refused when the data were loaded.
        seed: the initial weights' seed.
    """

    def __init__(self, model_cfg: ModelConfig, vocab_size: int, seed: int) -> None:
        super().__init__()
        transformers = _import_transformers()
        config = hf_config_object(model_cfg, vocab_size)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            try:
                # the dtype keys were dropped, so it is built in torch's default dtype;
                # .float() covers a default that is not float32
                self.hf = transformers.AutoModelForCausalLM.from_config(config).float()
            except ValueError as e:
                raise ConfigError(
                    f"model.hf_config: model_type {config.model_type!r} is not a causal LM "
                    f"transformers can build ({str(e).splitlines()[0][:120]})"
                ) from None
        self.vocab_size = int(config.vocab_size)
        self.config = config

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Logits of shape (B, T, vocab_size) for token ids ``idx`` of shape (B, T)."""
        return self.hf(input_ids=idx, use_cache=False).logits

    def example_losses(self, tokens: torch.Tensor) -> torch.Tensor:
        """Mean next-token cross-entropy (nats) of each window: shape (B,) for tokens (B, T+1);
        the mean of all of them is ``model(input_ids, labels=input_ids).loss``."""
        return self.token_losses(tokens).mean(dim=1)

    def token_losses(self, tokens: torch.Tensor) -> torch.Tensor:
        """Next-token cross-entropy (nats) of every position: shape (B, T) for tokens (B, T+1)."""
        logits = self(tokens[:, :-1])
        if logits.dtype not in (torch.float32, torch.float64):
            logits = logits.float()
        tok_loss = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1), reduction="none"
        )
        return tok_loss.view(tokens.shape[0], -1)


__all__ = ["HFCausalLM", "check_hf_model", "hf_config_object"]
