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

Validation takes the two SGD steps in both orders. Every pair's first step starts from θ with
one of the gradients g_i the matrix already needed, so a pair at one step size costs two
gradients (the second steps) and two evaluations of the target, not four gradients
(:func:`order_effects`).

Losses are given as closures of the parameter list, so the same code serves the quadratic toy
in the tests and the byte-level transformer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch

Loss = Callable[[], torch.Tensor]
#: called after each unit of work (a gradient, a Hessian-vector product, a pair)
Tick = Callable[[], None]


def _tick(progress: Tick | None) -> None:
    if progress is not None:
        progress()


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


def domain_gradients(
    losses: Sequence[Loss], params: Sequence[torch.Tensor], progress: Tick | None = None
) -> torch.Tensor:
    """Every domain's gradient at the current parameters, shape (k, P)."""
    out = []
    for loss in losses:
        out.append(gradient(loss, params))
        _tick(progress)
    return torch.stack(out)


def effect_matrix(
    losses: Sequence[Loss],
    target: Loss,
    params: Sequence[torch.Tensor],
    grads: torch.Tensor | None = None,
    progress: Tick | None = None,
) -> torch.Tensor:
    """M[a, b] = ⟨∇L_T, H_b g_a − H_a g_b⟩ with k gradients, 1 target gradient and k HVPs.

    Args:
        grads: the domains' gradients here (:func:`domain_gradients`), when already computed;
            then only the target's gradient and the k HVPs are taken.
        progress: called after each gradient and each HVP (2k + 1 calls, k + 1 with ``grads``).
    """
    g_t = gradient(target, params)
    _tick(progress)
    g = domain_gradients(losses, params, progress) if grads is None else grads  # (k, P)
    h = []
    for loss in losses:
        h.append(hvp(loss, params, g_t))  # h_i = H_i g_T
        _tick(progress)
    cross = g @ torch.stack(h).T  # cross[a, b] = ⟨g_a, h_b⟩ = ⟨g_T, H_b g_a⟩
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


@torch.no_grad()
def _set_flat(params: Sequence[torch.Tensor], flat: torch.Tensor) -> None:
    offset = 0
    for p in params:
        n = p.numel()
        p.copy_(flat[offset : offset + n].view_as(p))
        offset += n


def order_effects(
    pairs: Iterable[tuple[int, int]],
    losses: Sequence[Loss],
    grads: torch.Tensor,
    target: Callable[[], torch.Tensor],
    params: Sequence[torch.Tensor],
    eta: float,
    progress: Tick | None = None,
) -> list[torch.Tensor]:
    """For each pair (a, b), ``target`` at θ_ab minus ``target`` at θ_ba, measured.

    θ_ab is one SGD step on a from θ, then one on b. The first steps use ``grads`` (row i:
    g_i at θ, shared by every pair that starts with i), so a pair costs two gradients and two
    calls of ``target``. ``target`` may return a vector (a loss per window); the differences
    then keep that shape, so their spread over windows gives the measurement's noise. The
    parameters are restored afterwards.
    """
    theta = _flat([p.detach() for p in params]).clone()

    def after(first: int, second: int) -> torch.Tensor:
        _set_flat(params, theta - eta * grads[first])
        g_second = gradient(losses[second], params)
        _set_flat(params, theta - eta * grads[first] - eta * g_second)
        with torch.no_grad():
            return target().detach().clone()

    out = []
    try:
        for a, b in pairs:
            out.append(after(a, b) - after(b, a))
            _tick(progress)
    finally:
        _set_flat(params, theta)
    return out
