"""The Lie bracket of two domains' gradient fields: does training on a before b help a target?

With X_i = −∇L_i the gradient field of domain i, g_i its gradient and H_i its Hessian at the
current parameters θ, the bracket is [X_a, X_b] = H_b g_a − H_a g_b. Two plain SGD steps of size
η in either order end at (Rukhovich, Podolskiy, Piontkovskaya 2025)

    θ_ab − θ_ba = η² (H_b g_a − H_a g_b) + O(η³)      (exact for quadratic losses)

so a target loss L_T differs by

    L_T(θ_ab) − L_T(θ_ba) ≈ η² ⟨∇L_T, H_b g_a − H_a g_b⟩ =: η² M[a, b].

M is antisymmetric with a zero diagonal; M[a, b] < 0 means "a first, then b" gives the lower
target loss. By the symmetry of each Hessian, ⟨g_T, H_b g_a⟩ = ⟨H_b g_T, g_a⟩, so the whole
k × k matrix needs only k Hessian-vector products h_i = H_i g_T (plus k + 1 gradients), not k²:
M[a, b] = ⟨h_b, g_a⟩ − ⟨h_a, g_b⟩. :func:`effect_matrix_direct` keeps the k² form as a check.

The prediction assumes plain SGD steps: it says nothing exact about Adam-type optimizers or
momentum (where order effects appear already at first order in η).

Losses are given as closures of the parameter list, so the same code serves the quadratic toy
in the tests and the byte-level transformer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

Loss = Callable[[], torch.Tensor]


def _flat(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def gradient(loss: Loss, params: Sequence[torch.Tensor]) -> torch.Tensor:
    """∇L at the current parameters, flattened."""
    return _flat(torch.autograd.grad(loss(), params))


def hvp(loss: Loss, params: Sequence[torch.Tensor], v: torch.Tensor) -> torch.Tensor:
    """H v for the Hessian H of ``loss`` (double backward), flattened."""
    grads = torch.autograd.grad(loss(), params, create_graph=True)
    dot = (_flat(grads) * v).sum()
    return _flat(torch.autograd.grad(dot, params))


def effect_matrix(
    losses: Sequence[Loss], target: Loss, params: Sequence[torch.Tensor]
) -> torch.Tensor:
    """M[a, b] = ⟨∇L_T, H_b g_a − H_a g_b⟩ with k gradients, 1 target gradient and k HVPs."""
    g_t = gradient(target, params)
    g = torch.stack([gradient(loss, params) for loss in losses])  # (k, P)
    h = torch.stack([hvp(loss, params, g_t) for loss in losses])  # h_i = H_i g_T, (k, P)
    cross = g @ h.T  # cross[a, b] = ⟨g_a, h_b⟩ = ⟨g_T, H_b g_a⟩
    return (cross - cross.T).detach()


def effect_matrix_direct(
    losses: Sequence[Loss], target: Loss, params: Sequence[torch.Tensor]
) -> torch.Tensor:
    """The same matrix from the bracket itself, H_b g_a − H_a g_b for every pair (k² HVPs)."""
    g_t = gradient(target, params)
    g = [gradient(loss, params) for loss in losses]
    k = len(losses)
    out = torch.zeros(k, k, dtype=g_t.dtype)
    for a in range(k):
        for b in range(k):
            if a != b:
                bracket = hvp(losses[b], params, g[a]) - hvp(losses[a], params, g[b])
                out[a, b] = (g_t * bracket).sum()
    return out


def bracket_vector(loss_a: Loss, loss_b: Loss, params: Sequence[torch.Tensor]) -> torch.Tensor:
    """H_b g_a − H_a g_b, flattened: the predicted θ_ab − θ_ba divided by η²."""
    g_a = gradient(loss_a, params)
    g_b = gradient(loss_b, params)
    return (hvp(loss_b, params, g_a) - hvp(loss_a, params, g_b)).detach()


@torch.no_grad()
def _sgd_step(params: Sequence[torch.Tensor], grad: torch.Tensor, eta: float) -> None:
    offset = 0
    for p in params:
        n = p.numel()
        p -= eta * grad[offset : offset + n].view_as(p)
        offset += n


def two_steps(
    first: Loss, second: Loss, params: Sequence[torch.Tensor], eta: float
) -> torch.Tensor:
    """Take one SGD step on ``first`` then one on ``second`` from the current parameters;
    return the flattened end point and restore the parameters."""
    start = [p.detach().clone() for p in params]
    try:
        _sgd_step(params, gradient(first, params), eta)
        _sgd_step(params, gradient(second, params), eta)
        return _flat([p.detach() for p in params]).clone()
    finally:
        with torch.no_grad():
            for p, s in zip(params, start):
                p.copy_(s)


@torch.no_grad()
def _loss_at(loss: Loss, params: Sequence[torch.Tensor], flat: torch.Tensor) -> float:
    start = [p.detach().clone() for p in params]
    try:
        offset = 0
        for p in params:
            n = p.numel()
            p.copy_(flat[offset : offset + n].view_as(p))
            offset += n
        return float(loss())
    finally:
        for p, s in zip(params, start):
            p.copy_(s)


def measured_effect(
    loss_a: Loss, loss_b: Loss, target: Loss, params: Sequence[torch.Tensor], eta: float
) -> float:
    """L_T(θ_ab) − L_T(θ_ba), measured by taking the two SGD steps in both orders."""
    theta_ab = two_steps(loss_a, loss_b, params, eta)
    theta_ba = two_steps(loss_b, loss_a, params, eta)
    return _loss_at(target, params, theta_ab) - _loss_at(target, params, theta_ba)
