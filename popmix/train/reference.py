"""DoReMi's reference model: a finished run's model, frozen, scored on the proxy's batches.

The reference is the same seed's stratified run at the same budget (Xie et al. 2023): its
checkpoint is read once when the trainer is built (a resumed run reads it again from the same
path, so it continues exactly) and never trained. On every step the loop forwards it without
gradients on the proxy's own batch and hands the policy each domain's excess loss, clipped
per token before the mean (:func:`excess_loss`).

Checkpoints it reads (tensors only, :mod:`popmix.train.checkpoint`): a search trial's
``state.pt`` (or its checkpoint folder), or ``popmix run --save-checkpoint``'s
``checkpoint.pt``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from popmix.config import ConfigError, ModelConfig
from popmix.train.checkpoint import CheckpointError, load_state
from popmix.train.device import autocast
from popmix.train.hf_model import HFCausalLM
from popmix.train.measure import per_domain_mean
from popmix.train.model import TinyGPT

#: the file inside a checkpoint folder: a search trial's, then ``popmix run``'s
CHECKPOINT_FILES = ("state.pt", "checkpoint.pt")


def checkpoint_file(path: str | os.PathLike) -> Path:
    """The state file ``path`` names: itself, or the one inside a checkpoint folder."""
    p = Path(path)
    if p.is_dir():
        for name in CHECKPOINT_FILES:
            if (p / name).is_file():
                return p / name
        raise ConfigError(
            f"reference checkpoint {p}: a folder without {' or '.join(CHECKPOINT_FILES)}"
        )
    return p


@dataclass
class ReferenceModel:
    """A frozen model and the run it came from.

    Args:
        model: the network, in eval mode, without gradients.
        path: the state file it was read from.
        steps: the optimizer steps the reference trained (its compute, counted in the proxy's).
    """

    model: TinyGPT | HFCausalLM
    path: Path
    steps: int

    @classmethod
    def load(
        cls, path: str | os.PathLike, model_cfg: ModelConfig, vocab_size: int, device: Any
    ) -> ReferenceModel:
        """The reference in ``path``, built like the proxy (``model_cfg``) and frozen.

        Raises:
            ConfigError: an unreadable checkpoint, one of another model, or of a custom
                trainer, in one line naming the file.
        """
        file = checkpoint_file(path)
        try:
            state = load_state(file, map_location=device)
        except CheckpointError as e:
            raise ConfigError(f"reference {e}") from None
        trainer = state.get("trainer", state)  # a search trial's state wraps the trainer's
        if not isinstance(trainer, dict) or "model" not in trainer:
            raise ConfigError(f"reference checkpoint {file} holds no trained model")
        model: TinyGPT | HFCausalLM
        if model_cfg.kind == "hf":
            model = HFCausalLM(model_cfg, vocab_size, 0)
        else:
            # its own generator: building it leaves torch's global one as it was
            model = TinyGPT(model_cfg, torch.Generator().manual_seed(0))
        try:
            model.load_state_dict(trainer["model"])
        except RuntimeError as e:
            first = str(e).strip().splitlines()[0][:160]
            raise ConfigError(
                f"reference checkpoint {file} is not a model of this experiment's shape "
                f"({first}); train the reference with the same model settings"
            ) from None
        model.to(device).eval()
        model.requires_grad_(False)
        return cls(model=model, path=file, steps=int(trainer.get("step", 0)))

    @torch.no_grad()
    def token_losses(self, tokens: torch.Tensor, precision: str) -> torch.Tensor:
        """The reference's per-token losses (B, T) on ``tokens`` (B, T+1); logits in fp32."""
        with autocast(tokens.device, precision):
            return self.model.token_losses(tokens)


def excess_loss(
    proxy_token_loss: torch.Tensor,
    reference_token_loss: torch.Tensor,
    ids: torch.Tensor,
    counts: np.ndarray,
) -> np.ndarray:
    """Per domain, the mean over its tokens of max(ℓ_proxy − ℓ_ref, 0): clipped per token,
    then averaged (every window has the same number of tokens, so the mean of the windows'
    means is the mean over the domain's tokens); NaN for a domain absent from the batch."""
    excess = (proxy_token_loss.detach().float() - reference_token_loss.float()).clamp_min(0)
    return per_domain_mean(ids, counts, excess.mean(dim=1))


__all__ = ["CHECKPOINT_FILES", "ReferenceModel", "checkpoint_file", "excess_loss"]
