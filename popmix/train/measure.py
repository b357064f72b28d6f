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
        raw_gram: Σ over parameters of sums · sumsᵀ, (n_domains, n_domains), when already
            computed (the clip needs its diagonal); None: :meth:`gram` computes it.
    """

    sums: list[torch.Tensor]
    scale: torch.Tensor
    example_loss: torch.Tensor
    raw_gram: torch.Tensor | None = None

    def gram(self) -> np.ndarray:
        """⟨g_i, g_j⟩, shape (n_domains, n_domains)."""
        raw = self.raw_gram if self.raw_gram is not None else _raw_gram(self.sums)
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


def _raw_gram(sums: list[torch.Tensor]) -> torch.Tensor:
    out = sums[0] @ sums[0].T
    for s in sums[1:]:
        out = out.addmm_(s, s.T)
    return out


class _Groups:
    """How a batch's examples fall into domains, for summing per-example quantities.

    A stratified batch holds its domains in order with equal counts: a per-domain sum is then
    a reshape and a sum (or one batched matmul over each domain's rows); any other batch sums
    per example and scatters the rows into their domains.
    """

    def __init__(self, ids: torch.Tensor, counts: np.ndarray) -> None:
        self.ids = ids
        self.k = len(counts)
        n = ids.shape[0]
        c = int(counts[0])
        self.contiguous = (
            bool(np.all(counts == c))
            and c * self.k == n
            and bool(
                torch.equal(ids, torch.arange(self.k, device=ids.device).repeat_interleave(c))
            )
        )

    def sum(self, x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """Per-example rows (B, ...) summed per domain: (k, ...), into ``out`` if given."""
        if self.contiguous:
            return torch.sum(x.reshape(self.k, -1, *x.shape[1:]), dim=1, out=out)
        if out is None:
            out = torch.empty((self.k, *x.shape[1:]), dtype=x.dtype, device=x.device)
        return out.zero_().index_add_(0, self.ids, x)

    def outer(
        self, grad_out: torch.Tensor, inp: torch.Tensor, out: torch.Tensor, add: bool = False
    ) -> None:
        """Σ over a domain's examples and positions of grad_out ⊗ inp: a linear map's weight
        gradient per domain, (k, out, in), from (B, T, out) and (B, T, in); written into
        ``out``, or added to it."""
        if self.contiguous:
            go = grad_out.reshape(self.k, -1, grad_out.shape[-1]).transpose(1, 2)
            x = inp.reshape(self.k, -1, inp.shape[-1])
            if add:
                out.baddbmm_(go, x)
            else:
                torch.bmm(go, x, out=out)
            return
        per_example = torch.bmm(grad_out.transpose(1, 2), inp)
        if not add:
            out.zero_()
        out.index_add_(0, self.ids, per_example)


def domain_gradients(
    model: TinyGPT,
    tokens: torch.Tensor,
    ids: torch.Tensor,
    counts: np.ndarray,
    clip: float,
    reuse: DomainGradients | None = None,
) -> DomainGradients:
    """Per-domain gradients of a batch from one forward and one backward pass.

    The backward pass asks autograd only for the gradients of each layer's *output* (what an
    ordinary backward computes on its way anyway), not for the parameters. Each parameter's
    per-domain gradient is then built from its layer's saved input and output gradient: for a
    linear map, Σ_t δ_t x_tᵀ over the domain's positions, one batched matmul over the domains
    (the same work as the weight gradient of an ordinary backward, which is skipped). So the
    measurement costs about one ordinary forward and backward, with the fused attention
    kernel. g_i is the gradient of domain i's mean loss, clipped to ``clip``; a domain absent
    from the batch gets g_i = 0.

    Written for :class:`TinyGPT`'s layers (linear maps and layer norms in the blocks, the
    embeddings, the output tied to the token embedding); a parameter it does not account for
    raises, rather than giving a wrong gradient.

    ``reuse``: an earlier result whose blocks are overwritten with this batch's (it must not be
    read afterwards). The blocks hold k copies of the model's parameters; allocating them
    afresh every step costs the process fresh memory pages each time, on CPU about a quarter
    of the pass.
    """
    import torch.nn.functional as F
    from torch import nn

    groups = _Groups(ids, counts)
    k = groups.k
    calls: list[tuple[nn.Module, torch.Tensor, torch.Tensor]] = []

    def keep(module: nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        calls.append((module, args[0], out))

    layers = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.LayerNorm))]
    handles = [m.register_forward_hook(keep) for m in [*layers, model.tok]]
    try:
        logits = model(tokens[:, :-1])
    finally:
        for h in handles:
            h.remove()
    if len(calls) != len(layers) + 1:
        raise RuntimeError("domain_gradients: a layer ran more than once in the forward pass")
    b, t = tokens.shape[0], tokens.shape[1] - 1
    vocab = logits.shape[-1]
    tok_loss = F.cross_entropy(
        logits.reshape(-1, vocab).float(), tokens[:, 1:].reshape(-1), reduction="none"
    )
    example_loss = tok_loss.view(b, -1).mean(dim=1)
    outputs = [out for _, _, out in calls] + [logits]
    # Examples are independent, so the gradient of the summed losses at a layer's output holds
    # each example's own gradient in its rows.
    grad_of = dict(zip(map(id, outputs), torch.autograd.grad(example_loss.sum(), outputs)))

    params = list(model.named_parameters())
    if reuse is not None and [(x.shape, x.dtype, x.device) for x in reuse.sums] == [
        ((k, p.numel()), p.dtype, p.device) for _, p in params
    ]:
        blocks = {id(p): x.view(k, *p.shape) for (_, p), x in zip(params, reuse.sums)}
    else:
        blocks = {id(p): p.new_empty((k, *p.shape)) for _, p in params}
    written: set[int] = set()

    def block(p: torch.Tensor) -> torch.Tensor:
        written.add(id(p))
        return blocks[id(p)]

    embed_grad = head_input = None
    with torch.no_grad():
        for module, x, out in calls:
            g = grad_of[id(out)]
            if module is model.tok:
                embed_grad = g  # of tok(x) + pos: also the position embedding's gradient
                v = model.tok.num_embeddings
                rows = (groups.ids[:, None] * v + x).reshape(-1)
                per = block(model.tok.weight).view(k * v, -1).zero_()
                per.index_add_(0, rows, g.reshape(-1, g.shape[-1]))
            elif isinstance(module, nn.Linear):
                groups.outer(g, x, out=block(module.weight))
                if module.bias is not None:
                    groups.sum(g.sum(dim=1), out=block(module.bias))
            else:
                assert isinstance(module, nn.LayerNorm)
                if module is model.ln_f:
                    head_input = out
                xhat = F.layer_norm(x, module.normalized_shape, eps=module.eps)
                if module.weight is not None:
                    groups.sum((g * xhat).sum(dim=1), out=block(module.weight))
                if module.bias is not None:
                    groups.sum(g.sum(dim=1), out=block(module.bias))
        assert embed_grad is not None and head_input is not None
        # The output layer is tied to the token embedding: logits = ln_f(x) · tok.weightᵀ.
        groups.outer(grad_of[id(logits)], head_input, out=blocks[id(model.tok.weight)], add=True)
        pos = block(model.pos.weight)
        if t == pos.shape[1]:
            groups.sum(embed_grad, out=pos)
        else:  # shorter windows: the positions past them get no gradient
            pos.zero_()[:, :t] = groups.sum(embed_grad)

        unknown = [n for n, p in params if id(p) not in written]
        if unknown:
            raise RuntimeError(f"domain_gradients: no per-domain gradient for {unknown}")
        flat = [blocks[id(p)].view(k, -1) for _, p in params]
        counts_t = torch.as_tensor(counts, dtype=torch.float32, device=tokens.device)
        scale = 1.0 / counts_t.clamp(min=1.0)  # sum -> mean
        raw = _raw_gram(flat)
        if clip > 0:
            norms = torch.diagonal(raw).clamp(min=0.0).sqrt() * scale
            scale = scale * clip_factor(norms, clip)
    return DomainGradients(
        sums=flat, scale=scale, example_loss=example_loss.detach(), raw_gram=raw
    )


def mean_gradient(model: TinyGPT, tokens: torch.Tensor, clip: float) -> list[torch.Tensor]:
    """Gradient of the mean loss over ``tokens`` (a held-out batch), clipped to ``clip`` as
    the official DoGE code clips every gradient it stores."""
    params = list(model.parameters())
    g = torch.autograd.grad(model.example_losses(tokens).mean(), params)
    norm = float(torch.stack([(x.double() ** 2).sum() for x in g]).sum().sqrt())
    factor = clip_factor(norm, clip)
    return [x * factor for x in g]
