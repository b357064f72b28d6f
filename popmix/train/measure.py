"""What the loop measures for adaptive policies: per-domain losses and per-domain gradients.

Kept apart from :class:`popmix.train.loop.Trainer` so its training step reads top to bottom;
a policy asks for these through :class:`popmix.policies.LoopNeeds` and never sees a tensor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from popmix.train.model import TinyGPT


def per_domain_mean(
    ids: torch.Tensor, counts: np.ndarray, example_loss: torch.Tensor
) -> np.ndarray:
    """Mean of each domain's example losses in a batch (NaN for domains absent from it)."""
    sums = torch.zeros(len(counts), dtype=torch.float64, device=example_loss.device)
    sums.index_add_(0, ids, example_loss.double())
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums.cpu().numpy() / counts
    means[counts == 0] = np.nan
    return means


def clip_factor(norm: torch.Tensor | float, clip: float) -> torch.Tensor | float:
    """The factor that scales a gradient of norm ``norm`` down to at most ``clip`` (0: none)."""
    if clip <= 0:
        return 1.0 if isinstance(norm, float) else torch.ones_like(norm)
    if isinstance(norm, float):
        return min(1.0, clip / (norm + 1e-6))
    return torch.clamp(clip / (norm + 1e-6), max=1.0)


@dataclass
class DomainGradients:
    """Per-domain gradients of one batch, held as per-parameter sums of per-example gradients.

    g_i = scale_i · sums[:, i]: the gradient of domain i's mean loss, clipped; the blocks are
    only read (norms, Gram, combination), never rescaled in place.

    Attributes:
        sums: per parameter, the (n_domains, numel) sums over each domain's examples.
        scale: (n_domains,) 1/count times the clip factor of each domain.
        example_loss: (B,) the batch's example losses.
    """

    sums: list[torch.Tensor]
    scale: torch.Tensor
    example_loss: torch.Tensor

    def gram(self) -> np.ndarray:
        """⟨g_i, g_j⟩, shape (n_domains, n_domains)."""
        raw = sum(s @ s.T for s in self.sums)
        return (raw * self.scale[:, None] * self.scale[None, :]).double().cpu().numpy()

    def dots(self, other: list[torch.Tensor]) -> np.ndarray:
        """⟨g_i, other⟩ for a gradient given per parameter, shape (n_domains,)."""
        raw = sum(s @ o.reshape(-1) for s, o in zip(self.sums, other))
        return (raw * self.scale).double().cpu().numpy()

    def combine(self, weights: np.ndarray) -> list[torch.Tensor]:
        """Σ_i w_i g_i, per parameter (flat)."""
        w = torch.as_tensor(weights, dtype=torch.float32, device=self.scale.device)
        coef = w * self.scale
        return [coef @ s for s in self.sums]


def domain_gradients(
    model: TinyGPT,
    tokens: torch.Tensor,
    ids: torch.Tensor,
    counts: np.ndarray,
    clip: float,
) -> DomainGradients:
    """Per-domain gradients of a batch from one vectorised forward and backward.

    Per-example gradients come from ``torch.func.vmap`` of ``grad`` (about the cost of one
    ordinary backward pass instead of one full backward per domain), summed per domain; g_i is
    the gradient of domain i's mean loss, clipped to ``clip``. A domain absent from the batch
    gets g_i = 0.
    """
    from torch.func import functional_call, grad_and_value, vmap

    names = [n for n, _ in model.named_parameters()]
    params = {n: p.detach() for n, p in model.named_parameters()}

    def example_loss(p: dict[str, torch.Tensor], row: torch.Tensor) -> torch.Tensor:
        logits = functional_call(model, p, (row[None, :-1],))
        return torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]).float(), row[1:]
        )

    model.set_explicit_attention(True)  # the fused attention kernel has no vmap rule
    try:
        g, loss = vmap(grad_and_value(example_loss), in_dims=(None, 0))(params, tokens)
    finally:
        model.set_explicit_attention(False)
    k, b = len(counts), tokens.shape[0]
    sums = []
    for n in names:
        per_example = g[n].reshape(b, -1)
        if np.all(counts == counts[0]):
            # Stratified batch, grouped by domain: a reshape, no scatter.
            sums.append(per_example.view(k, int(counts[0]), -1).sum(dim=1))
        else:
            block = torch.zeros(k, per_example.shape[1], device=tokens.device)
            sums.append(block.index_add_(0, ids, per_example))
    counts_t = torch.as_tensor(counts, dtype=torch.float32, device=tokens.device)
    scale = 1.0 / counts_t.clamp(min=1.0)  # sum -> mean
    if clip > 0:
        norms = sum((s * s).sum(dim=1) for s in sums).clamp(min=0.0).sqrt() * scale
        scale = scale * clip_factor(norms, clip)
    return DomainGradients(sums=sums, scale=scale, example_loss=loss.detach())


def mean_gradient(model: TinyGPT, tokens: torch.Tensor, clip: float) -> list[torch.Tensor]:
    """Gradient of the mean loss over ``tokens`` (a held-out batch), clipped to ``clip`` as
    the official DoGE code clips every gradient it stores."""
    params = list(model.parameters())
    g = torch.autograd.grad(model.example_losses(tokens).mean(), params)
    norm = float(torch.stack([(x.double() ** 2).sum() for x in g]).sum().sqrt())
    factor = clip_factor(norm, clip)
    return [x * factor for x in g]
