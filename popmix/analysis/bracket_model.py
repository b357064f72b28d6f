"""The bracket on popmix's proxy transformer: losses, the order table, outputs and a schedule.

Files written by :func:`run_bracket` under ``out``:

- ``bracket.json``: domains, target, and per evaluated step the k × k matrix M (M[a, b] < 0:
  a before b lowers the target loss), the suggested order and its scores;
- ``bracket_step<S>.png``: a heatmap of M;
- ``bracket_schedule.json``: a two-phase mixture (early / late emphasis) that
  ``popmix run --weights-from`` replays;
- ``validation.json`` (with ``validate``): measured vs predicted effects per pair and step size,
  one table per evaluated step (``{"steps": [...]}``);
- ``tensorboard/``: the heatmaps and the matrices.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from popmix.analysis.bracket import effect_matrix, gradient, measured_effect
from popmix.data.domains import DomainSet
from popmix.data.sampler import eval_windows
from popmix.train.loop import Trainer
from popmix.train.model import TinyGPT
from popmix.weights_file import WeightsSchedule

NOTE = (
    "The prediction assumes plain SGD steps of size eta from the current parameters; with Adam "
    "or momentum, order effects differ (they appear already at first order in eta)."
)


def domain_losses(
    model: TinyGPT,
    domains: DomainSet,
    target: str = "mean",
    windows: int = 8,
) -> tuple[list[Callable[[], torch.Tensor]], Callable[[], torch.Tensor], list[str]]:
    """Closures for each domain's mean loss on fixed training windows, and for the target.

    The target is one domain's (or the mean over domains of the) loss on fixed validation
    windows. Attention runs as plain ops, which support the double backward of a
    Hessian-vector product.
    """
    model.set_explicit_attention(True)
    seq = model.cfg.seq_len
    device = next(model.parameters()).device

    def fixed(split: str) -> list[torch.Tensor]:
        return [
            torch.from_numpy(eval_windows(d.split(split), seq, windows)).to(device)
            for d in domains
        ]

    train, val = fixed("train"), fixed("validation")

    def loss_of(w: torch.Tensor) -> Callable[[], torch.Tensor]:
        return lambda: model.example_losses(w).mean()

    losses = [loss_of(w) for w in train]
    if target == "mean":

        def target_loss() -> torch.Tensor:
            return torch.stack([model.example_losses(w).mean() for w in val]).mean()
    else:
        target_loss = loss_of(val[domains.index(target)])
    return losses, target_loss, domains.names


def order_scores(matrix: np.ndarray) -> np.ndarray:
    """How much each domain gains from coming *before* the others: −Σ_b M[a, b]."""
    return -np.asarray(matrix).sum(axis=1)


def suggest_schedule(
    matrix: np.ndarray,
    names: list[str],
    total_steps: int,
    switch_frac: float = 0.5,
    strength: float = math.log(2.0),
    base: np.ndarray | None = None,
) -> WeightsSchedule:
    """A two-phase mixture from the bracket: domains that help the target when early get up
    to e^strength times their base weight in the first phase and less in the second.

    The scores are scaled by their largest magnitude, so the most order-sensitive domain gets
    the full factor; ``base`` defaults to stratified.
    """
    scores = order_scores(matrix)
    z = scores / (np.abs(scores).max() or 1.0)
    base = np.full(len(names), 1.0 / len(names)) if base is None else np.asarray(base, float)
    early = base * np.exp(strength * z)
    late = base * np.exp(-strength * z)
    switch = int(round(switch_frac * total_steps))
    points = [{"step": 0, "weights": early / early.sum()}]
    if switch > 0:  # switch_frac 0: the late phase from the start
        points.append({"step": switch, "weights": late / late.sum()})
    else:
        points = [{"step": 0, "weights": late / late.sum()}]
    return WeightsSchedule.build(
        domains=names,
        total_steps=total_steps,
        points=points,
        final_weights=late / late.sum(),
        method="bracket",
        order=[names[i] for i in np.argsort(-scores, kind="stable")],
        note=NOTE,
    )


def heatmap(matrix: np.ndarray, names: list[str], title: str) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(names)
    fig, ax = plt.subplots(figsize=(2 + 0.45 * k, 1.5 + 0.45 * k))
    lim = float(np.abs(matrix).max()) or 1.0
    im = ax.imshow(matrix, cmap="RdBu_r", vmin=-lim, vmax=lim)
    ax.set_xticks(range(k), names, rotation=90, fontsize=7)
    ax.set_yticks(range(k), names, fontsize=7)
    ax.set_xlabel("b (second)")
    ax.set_ylabel("a (first)")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, label="<grad L_T, H_b g_a - H_a g_b>  (< 0: a first is better)")
    fig.tight_layout()
    return fig


def validation_table(
    losses: Sequence[Callable[[], torch.Tensor]],
    target: Callable[[], torch.Tensor],
    params: Sequence[torch.Tensor],
    matrix: np.ndarray,
    names: list[str],
    etas: Sequence[float],
    max_pairs: int | None = None,
) -> dict[str, Any]:
    """Measured L_T(θ_ab) − L_T(θ_ba) against η² M[a, b] for pairs and step sizes."""
    pairs = [(a, b) for a in range(len(names)) for b in range(a + 1, len(names))]
    if max_pairs is not None:
        pairs = pairs[:max_pairs]
    rows, summary = [], []
    for eta in etas:
        measured = np.array(
            [measured_effect(losses[a], losses[b], target, params, eta) for a, b in pairs]
        )
        predicted = np.array([eta**2 * matrix[a, b] for a, b in pairs])
        agree = float(np.mean(np.sign(measured) == np.sign(predicted)))
        corr = (
            float(np.corrcoef(measured, predicted)[0, 1])
            if len(pairs) > 1 and measured.std() > 0 and predicted.std() > 0
            else float("nan")
        )
        summary.append(
            {"eta": eta, "pairs": len(pairs), "sign_agreement": agree, "correlation": corr}
        )
        for (a, b), m, p in zip(pairs, measured, predicted):
            rows.append(
                {
                    "eta": eta,
                    "a": names[a],
                    "b": names[b],
                    "measured": float(m),
                    "predicted": float(p),
                }
            )
    return {"summary": summary, "pairs": rows, "note": NOTE}


def format_validation(table: dict[str, Any]) -> str:
    lines = [f"{'eta':>8}  {'pairs':>5}  {'sign agreement':>14}  {'correlation':>11}"]
    for row in table["summary"]:
        lines.append(
            f"{row['eta']:>8.3g}  {row['pairs']:>5}  {row['sign_agreement']:>14.1%}  "
            f"{row['correlation']:>11.3f}"
        )
    return "\n".join(lines)


def run_bracket(
    trainer: Trainer,
    at_steps: Sequence[int],
    target: str,
    windows: int,
    out: Path,
    validate_etas: Sequence[float] = (),
    max_pairs: int | None = None,
    schedule_steps: int = 1000,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train ``trainer`` up to each of ``at_steps`` and compute the bracket matrix there."""
    from torch.utils.tensorboard import SummaryWriter

    out.mkdir(parents=True, exist_ok=True)
    names = trainer.domains.names
    writer = SummaryWriter(str(out / "tensorboard"))
    results: list[dict[str, Any]] = []
    validation: list[dict[str, Any]] = []
    try:
        for step in sorted(set(at_steps)):
            trainer.train(step - trainer.step)
            # A float64 copy: the effects are differences of nearby losses (eta^2 small), and
            # float32 rounding would swamp them; the training model is left untouched.
            model = copy.deepcopy(trainer.model).double()
            losses, target_loss, _ = domain_losses(model, trainer.domains, target, windows)
            params = [p for p in model.parameters()]
            t0 = time.perf_counter()
            matrix = effect_matrix(losses, target_loss, params).cpu().double().numpy()
            t_matrix = time.perf_counter() - t0
            t0 = time.perf_counter()

            def mean_loss(fs: list[Callable[[], torch.Tensor]] = losses) -> torch.Tensor:
                return torch.stack([f() for f in fs]).mean()

            gradient(mean_loss, params)
            t_grad = time.perf_counter() - t0
            scores = order_scores(matrix)
            results.append(
                {
                    "step": trainer.step,
                    "matrix": matrix.tolist(),
                    "scores": dict(zip(names, scores.tolist())),
                    "order": [names[i] for i in np.argsort(-scores, kind="stable")],
                    "seconds": t_matrix,
                    "gradient_equivalents": t_matrix / t_grad,
                }
            )
            log(
                f"  step {trainer.step}: {len(names)}x{len(names)} matrix in {t_matrix:.2f} s "
                f"= {t_matrix / t_grad:.1f} gradients of the mean loss over the same windows"
            )
            fig = heatmap(matrix, names, f"target {target}, step {trainer.step}")
            fig.savefig(out / f"bracket_step{trainer.step}.png", dpi=110)
            writer.add_figure("bracket/heatmap", fig, trainer.step)
            header = "| a \\ b | " + " | ".join(names) + " |"
            rule = "|---" * (len(names) + 1) + "|"
            body = "\n".join(
                f"| {n} | " + " | ".join(f"{v:.3g}" for v in row) + " |"
                for n, row in zip(names, matrix)
            )
            writer.add_text("bracket/matrix", f"{header}\n{rule}\n{body}", trainer.step)
            if validate_etas:
                table = validation_table(
                    losses, target_loss, params, matrix, names, validate_etas, max_pairs
                )
                model.set_explicit_attention(False)
                table["step"] = trainer.step
                validation.append(table)
                log(format_validation(table))
    finally:
        writer.close()
    last = np.array(results[-1]["matrix"])
    schedule = suggest_schedule(last, names, schedule_steps)
    report = {
        "domains": names,
        "target": target,
        "windows_per_domain": windows,
        "assumes": NOTE,
        "steps": results,
        "suggested": schedule.to_dict(),
    }
    (out / "bracket.json").write_text(json.dumps(report, indent=2))
    schedule.write(out / "bracket_schedule.json")
    if validation:
        (out / "validation.json").write_text(json.dumps({"steps": validation}, indent=2))
    return report
