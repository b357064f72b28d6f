"""P proxy models trained as one: a vectorised population (``torch.func.vmap``).

The members' parameters are stacked along a new leading dimension
(``torch.func.stack_module_state``) and :meth:`TinyGPT.example_losses` runs over all of them in
one call (``vmap`` over ``functional_call``), so a step launches the same kernels for P members
as for one, each P times larger: on a device where a tiny model is bound by kernel launches,
not arithmetic, this is what can fill it (``benchmarks/population_throughput.py`` measures it).
No search trains with it yet: on 2 CPU cores it was slower than one trial per member
(docs/benchmarks/speed.md, "Population throughput"), and ``search.members_per_trial`` waits for
a GPU measurement.

What :meth:`VectorPopulation.step` matches, member by member, within float rounding (tested
against :class:`popmix.train.Trainer` in ``tests/train/test_population_vmap.py``): the Trainer's
optimizer step in ``sample`` mode and fp32 -- the batch mean of each member's per-example losses
times their weights; AdamW with betas (0.9, 0.95), eps 1e-8 and ``weight_decay`` on matrices
only (embeddings included; biases and LayerNorm parameters not); the gradient clipped by *that
member's own* global norm (``grad_clip``; the norm before clipping is returned, as the Trainer
records it); the learning rate the caller gives, one for all or one per member.

What it does not do: draw batches (each member's come from its own sampler, as in the
Trainer), the LR schedule (pass :meth:`Trainer.lr_at`), ``loss`` mode's reweighting (pass it as
``example_weight``), the signals DoGE and Aioli measure (per-domain gradients, evaluations),
per-member step counts (every member has taken the same number of steps), checkpoints,
``torch.compile``, and members of different shapes.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch.func import functional_call, stack_module_state, vmap

from popmix.config import TrainConfig
from popmix.train.device import autocast, resolve_precision
from popmix.train.model import TinyGPT

_BETAS = (0.9, 0.95)  # the Trainer's
_EPS = 1e-8  # torch.optim.AdamW's default, which the Trainer uses


class _ExampleLosses(torch.nn.Module):
    """A member's :meth:`TinyGPT.example_losses` as ``forward`` (what ``functional_call``
    calls), so the vectorised loss is the model's own code, not a copy of it."""

    def __init__(self, model: TinyGPT) -> None:
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.model.example_losses(tokens)


_PREFIX = "model."  # the wrapper's: stacked names are the member's own with it in front


class VectorPopulation:
    """Same-shaped :class:`TinyGPT` members, stacked, with one AdamW state per member.

    Args:
        models: the members' initial models (copied, not shared); all of one config.
        cfg: training settings: ``weight_decay``, ``grad_clip`` and ``precision`` are used
            (``auto``: bf16 autocast on a CUDA device that has it, fp32 elsewhere, as the
            Trainer resolves it; only fp32 is tested against the Trainer).
        device: where the stacked parameters live (default: the first model's device).
        explicit_attention: plain matmul attention instead of the fused kernel; default: on
            the CPU, where ``vmap`` has no batching rule for the fused kernel and would loop
            over the members, off elsewhere. Either gives the same losses up to rounding.

    Example::

        pop = VectorPopulation([trainer.model for trainer in trainers], cfg)
        loss, grad_norm = pop.step(tokens, lr=trainers[0].lr_at(pop.n_steps))  # (P,), (P,)
        trainers[0].model.load_state_dict(pop.member_state_dict(0))
    """

    def __init__(
        self,
        models: Sequence[TinyGPT],
        cfg: TrainConfig,
        device: torch.device | str | None = None,
        explicit_attention: bool | None = None,
    ) -> None:
        if not models:
            raise ValueError("a population needs at least one member")
        self.cfg = cfg
        self.device = torch.device(device) if device is not None else models[0].tok.weight.device
        wrapped = [_ExampleLosses(copy.deepcopy(m)).to(self.device) for m in models]
        params, buffers = stack_module_state(wrapped)  # type: ignore[arg-type]
        self.params: dict[str, torch.Tensor] = params
        self.buffers: dict[str, torch.Tensor] = buffers
        # A stateless template: functional_call swaps each member's tensors in under vmap.
        self._base = _ExampleLosses(copy.deepcopy(models[0])).to("meta")
        if explicit_attention is None:
            explicit_attention = self.device.type == "cpu"
        self._base.model.set_explicit_attention(explicit_attention)
        self.n_members = len(wrapped)
        # The Trainer's two groups: decay where the member's own tensor is a matrix.
        self._decay = {name: p.dim() - 1 >= 2 for name, p in params.items()}
        self._exp_avg = {n: torch.zeros_like(p) for n, p in params.items()}
        self._exp_avg_sq = {n: torch.zeros_like(p) for n, p in params.items()}
        #: optimizer steps taken (every member the same)
        self.n_steps = 0
        cuda_bf16 = self.device.type == "cuda" and torch.cuda.is_bf16_supported()
        #: ``fp32`` or ``bf16`` (autocast): ``cfg.precision`` resolved as the Trainer does
        self.precision = resolve_precision(cfg.precision, str(self.device), cuda_bf16)

    def _member_losses(
        self, p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], x: torch.Tensor
    ) -> torch.Tensor:
        out: torch.Tensor = functional_call(self._base, (p, b), (x,))
        return out

    def example_losses(self, tokens: torch.Tensor) -> torch.Tensor:
        """Each member's per-window losses (nats), shape (P, B), for its own tokens
        (P, B, T+1)."""
        with autocast(self.device, self.precision):
            out: torch.Tensor = vmap(self._member_losses)(self.params, self.buffers, tokens)
        return out

    def step(
        self,
        tokens: torch.Tensor,
        lr: float | torch.Tensor,
        example_weight: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step of every member on its own batch.

        Args:
            tokens: (P, B, T+1) token ids, member p's batch at ``tokens[p]``.
            lr: the learning rate, one for all or a (P,) tensor (one per member).
            example_weight: (P, B) weight of each window's loss (default: 1).

        Returns:
            ((P,) each member's training loss, (P,) its gradient norm before clipping), on
            the device: nothing here waits for it.
        """
        example_loss = self.example_losses(tokens)
        if example_weight is not None:
            example_loss = example_loss * example_weight
        loss = example_loss.mean(dim=1)
        grads = torch.autograd.grad(loss.sum(), list(self.params.values()))
        # Members are independent, so d(sum of losses)/d(member p) is member p's own gradient.
        p_count = self.n_members
        per_tensor = torch.stack(
            [torch.linalg.vector_norm(g.reshape(p_count, -1), dim=1) for g in grads]
        )
        grad_norm = torch.linalg.vector_norm(per_tensor, dim=0)  # (P,): each member's own
        if self.cfg.grad_clip > 0:
            # clip_grad_norm_'s rule, member by member: scale by max_norm / (norm + 1e-6) <= 1
            coef = (self.cfg.grad_clip / (grad_norm + 1e-6)).clamp(max=1.0)
        else:
            coef = None
        lr_t = torch.as_tensor(lr, dtype=torch.float32, device=self.device).expand(p_count)
        self.n_steps += 1
        beta1, beta2 = _BETAS
        bias1 = 1 - beta1**self.n_steps
        bias2_sqrt = (1 - beta2**self.n_steps) ** 0.5
        with torch.no_grad():
            for (name, p), g in zip(self.params.items(), grads):
                shape = (p_count,) + (1,) * (p.dim() - 1)
                if coef is not None:
                    g = g * coef.view(shape)
                member_lr = lr_t.view(shape)
                if self._decay[name] and self.cfg.weight_decay:
                    p.mul_(1 - member_lr * self.cfg.weight_decay)
                m, v = self._exp_avg[name], self._exp_avg_sq[name]
                m.lerp_(g, 1 - beta1)
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                denom = (v.sqrt() / bias2_sqrt).add_(_EPS)
                p.sub_(member_lr / bias1 * m / denom)
        return loss.detach(), grad_norm.detach()

    def member_state_dict(self, i: int) -> dict[str, torch.Tensor]:
        """Member ``i``'s parameters and buffers as a :class:`TinyGPT` state dict (copies)."""
        out = {n[len(_PREFIX) :]: t[i].detach().clone() for n, t in self.params.items()}
        out.update({n[len(_PREFIX) :]: t[i].clone() for n, t in self.buffers.items()})
        return out


__all__ = ["VectorPopulation"]
