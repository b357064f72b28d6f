"""The bracket on popmix's proxy transformer: losses, the order table, outputs and a schedule.

Files written by :func:`run_bracket` under ``out``:

- ``bracket.json``: domains, target, and per evaluated step the k × k matrix M (M[a, b] < 0:
  a before b lowers the target loss), the suggested order and its scores;
- ``bracket_step<S>.png``: a heatmap of M;
- ``bracket_schedule.json``: a two-phase mixture (early / late emphasis) that
  ``popmix run --weights-from`` replays;
- ``validation.json`` (with ``validate``): measured vs predicted effects per pair and step size,
  with each measurement's standard error, one table per evaluated step (``{"steps": [...]}``);
- ``tensorboard/``: the heatmaps and the matrices.

Each file is rewritten as soon as an evaluated step is done (``bracket.json`` says
``"complete": false`` until the last), so an interrupted run keeps every step it finished.
Progress bars with the time left go to standard error; results go to ``log``.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch

from popmix._util import plots
from popmix._util.atomic import write_json
from popmix._util.progress import ProgressBar
from popmix.analysis.bracket import (
    Tick,
    domain_gradients,
    effect_matrix,
    gradient,
    order_effects,
)
from popmix.config import ConfigError
from popmix.data.domains import DomainSet
from popmix.data.sampler import eval_windows
from popmix.records.weights import WeightsSchedule
from popmix.train.loop import Trainer
from popmix.train.model import TinyGPT

NOTE = (
    "The prediction assumes plain SGD steps of size eta from the current parameters; with Adam "
    "or momentum, order effects differ (they appear already at first order in eta)."
)

#: the most target windows one validation measurement reads: the target is evaluated twice per
#: pair and step size, and on all its windows that was most of validation's time. They are
#: spread evenly over the target's domains, at least 2 per domain (a spread needs two) and at
#: most ``windows``.
VALIDATION_WINDOWS = 32
#: a measured effect within this many standard errors of zero is "within noise": its sign is not
#: resolved on the windows measured, so a sign disagreement there says nothing.
NOISE_SE = 2.0


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
    benchmark: str | None = None,
) -> WeightsSchedule:
    """A two-phase mixture from the bracket: domains that help the target when early get up
    to e^strength times their base weight in the first phase and less in the second.

    The scores are scaled by their largest magnitude, so the most order-sensitive domain gets
    the full factor; ``base`` defaults to stratified. ``benchmark`` is recorded so that
    ``popmix run --weights-from`` finds the same domains without ``--benchmark``/``--tasks``.
    """
    scores = order_scores(matrix)
    z = scores / (np.abs(scores).max() or 1.0)
    base = np.full(len(names), 1.0 / len(names)) if base is None else np.asarray(base, float)
    early = base * np.exp(strength * z)
    late = base * np.exp(-strength * z)
    switch = int(round(switch_frac * total_steps))
    extra: dict[str, Any] = {} if benchmark is None else {"benchmark": benchmark}
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
        **extra,
    )


def heatmap(matrix: np.ndarray, names: list[str], title: str) -> Any:
    k = len(names)
    fig, ax = plots.pyplot().subplots(figsize=(2 + 0.45 * k, 1.5 + 0.45 * k))
    im = plots.signed_matrix(ax, matrix, names, title, ("b (second)", "a (first)"))
    fig.colorbar(im, ax=ax, label="<grad L_T, H_b g_a - H_a g_b>  (< 0: a first is better)")
    fig.tight_layout()
    return fig


@dataclass(frozen=True)
class WindowTarget:
    """The target loss on fixed validation windows, one loss per window: what validation
    measures, and how noisy one measurement is.

    The target is the mean over its domains of each domain's mean window loss (one domain for
    a single-domain target), so the standard error of a difference is the stratified one:
    SE² = Σ_d s_d² / n_d / D², with s_d the spread of the differences over domain d's n_d
    windows and D domains.
    """

    per_window: Callable[[], torch.Tensor]  # (n_windows,) losses at the current parameters
    groups: np.ndarray  # (n_windows,) which of the target's domains each window is from
    domains: tuple[str, ...]

    @property
    def n_windows(self) -> int:
        return int(self.groups.size)

    def _weights(self) -> np.ndarray:
        counts = np.bincount(self.groups, minlength=len(self.domains))
        return 1.0 / (len(self.domains) * counts[self.groups])

    def mean(self) -> torch.Tensor:
        """The target itself (a scalar), for its gradient."""
        losses = self.per_window()
        w = torch.as_tensor(self._weights(), dtype=losses.dtype, device=losses.device)
        return (losses * w).sum()

    def stats(self, per_window: torch.Tensor) -> tuple[float, float]:
        """(the target's value, its standard error) from one value per window (NaN SE when a
        domain has a single window)."""
        x = per_window.detach().cpu().double().numpy()
        value = float((x * self._weights()).sum())
        var = 0.0
        for d in range(len(self.domains)):
            xd = x[self.groups == d]
            if xd.size < 2:
                return value, float("nan")
            var += xd.var(ddof=1) / xd.size
        return value, math.sqrt(var) / len(self.domains)

    def describe(self) -> str:
        per = np.bincount(self.groups, minlength=len(self.domains))
        if len(self.domains) == 1:
            return f"{self.n_windows} validation windows of {self.domains[0]}"
        spread = f"{per.min()}" if per.min() == per.max() else f"{per.min()}-{per.max()}"
        return f"{self.n_windows} validation windows ({spread} per domain)"


def window_target(model: TinyGPT, domains: DomainSet, target: str, windows: int) -> WindowTarget:
    """The validation measurement's target: at most :data:`VALIDATION_WINDOWS` windows, spread
    evenly over the target's domains (at least 2 and at most ``windows`` per domain)."""
    names = domains.names if target == "mean" else [target]
    per_domain = min(windows, max(2, math.ceil(VALIDATION_WINDOWS / len(names))))
    seq = model.cfg.seq_len
    device = next(model.parameters()).device
    chunks = [
        eval_windows(domains[domains.index(n)].split("validation"), seq, per_domain) for n in names
    ]
    tokens = torch.from_numpy(np.concatenate(chunks)).to(device)
    groups = np.concatenate([np.full(len(c), i) for i, c in enumerate(chunks)]).astype(np.int64)
    return WindowTarget(lambda: model.example_losses(tokens), groups, tuple(names))


def sample_pairs(
    matrix: np.ndarray, max_pairs: int | None, rng: np.random.Generator
) -> list[tuple[int, int]]:
    """Pairs (a, b), a < b, to validate: all, or ``max_pairs`` of them that span the predicted
    effects from the largest to the smallest.

    The pairs are ranked by |M[a, b]| and cut into ``max_pairs`` runs of consecutive ranks; one
    pair is drawn from each run. Large effects test that the bracket sees real order effects,
    small ones where its sign stops meaning anything. Returned largest effect first.
    """
    k = matrix.shape[0]
    pairs = [(a, b) for a in range(k) for b in range(a + 1, k)]
    strength = np.array([abs(matrix[a, b]) for a, b in pairs])
    ranked = np.argsort(-strength, kind="stable")
    if max_pairs is not None and max_pairs < len(pairs):
        picks = [int(rng.choice(run)) for run in np.array_split(ranked, max_pairs)]
    else:
        picks = [int(i) for i in ranked]
    return [pairs[i] for i in picks]


def window_matrix(
    losses: Sequence[Callable[[], torch.Tensor]],
    target: WindowTarget,
    params: Sequence[torch.Tensor],
    grads: torch.Tensor,
    progress: Tick | None = None,
) -> np.ndarray:
    """The bracket matrix with ``target`` (its windows) as the target: 1 gradient, k HVPs."""
    m = effect_matrix(losses, target.mean, params, grads=grads, progress=progress)
    return m.cpu().double().numpy()


def _sign_agreement(measured: np.ndarray, predicted: np.ndarray) -> float:
    if measured.size == 0:
        return float("nan")
    return float(np.mean(np.sign(measured) == np.sign(predicted)))


def validation_table(
    pairs: Sequence[tuple[int, int]],
    losses: Sequence[Callable[[], torch.Tensor]],
    grads: torch.Tensor,
    target: WindowTarget,
    params: Sequence[torch.Tensor],
    matrix: np.ndarray,
    names: list[str],
    etas: Sequence[float],
    progress: Tick | None = None,
    matrix_w: np.ndarray | None = None,
) -> dict[str, Any]:
    """Measured L_T(θ_ab) − L_T(θ_ba) on ``target``'s windows against η² M_w[a, b], for
    ``pairs`` at every step size.

    M_w is the bracket matrix with ``target`` as its target, so measured and predicted are one
    function's and differ only by the O(η³) terms (the direct two-step oracle). ``matrix``, the
    matrix on all the target's windows, is reported beside it; ``grads`` are the domains'
    gradients at the current parameters (row i: g_i), shared by every pair. ``matrix_w`` is
    M_w when already computed (:func:`window_matrix`).
    """
    pair_list = list(pairs)
    if matrix_w is None:
        matrix_w = window_matrix(losses, target, params, grads)
    rows, summary = [], []
    for eta in etas:
        effects = order_effects(pair_list, losses, grads, target.per_window, params, eta, progress)
        stats = np.array([target.stats(d) for d in effects]).reshape(-1, 2)
        measured, se = stats[:, 0], stats[:, 1]
        predicted = np.array([eta**2 * matrix_w[a, b] for a, b in pair_list])
        resolved = np.abs(measured) > NOISE_SE * se  # False where the SE is NaN
        agree = np.sign(measured) == np.sign(predicted)
        corr = (
            float(np.corrcoef(measured, predicted)[0, 1])
            if len(pair_list) > 1 and measured.std() > 0 and predicted.std() > 0
            else float("nan")
        )
        summary.append(
            {
                "eta": eta,
                "pairs": len(pair_list),
                "sign_agreement": _sign_agreement(measured, predicted),
                "beyond_noise": int(resolved.sum()),
                "sign_agreement_beyond_noise": _sign_agreement(
                    measured[resolved], predicted[resolved]
                ),
                "disagreements_within_noise": int((~agree & ~resolved).sum()),
                "correlation": corr,
            }
        )
        for (a, b), m, e, p, r in zip(pair_list, measured, se, predicted, resolved):
            rows.append(
                {
                    "eta": eta,
                    "a": names[a],
                    "b": names[b],
                    "measured": float(m),
                    "se": float(e),
                    "within_noise": not bool(r),
                    "predicted": float(p),
                    "predicted_all_windows": float(eta**2 * matrix[a, b]),
                }
            )
    same_sign = _sign_agreement(
        np.array([matrix_w[a, b] for a, b in pair_list]),
        np.array([matrix[a, b] for a, b in pair_list]),
    )
    return {
        "target_windows": target.n_windows,
        "target_windows_described": target.describe(),
        "noise_rule": f"|measured| <= {NOISE_SE:g} SE: within noise",
        "pairs_validated": len(pair_list),
        "pairs_in_all": len(names) * (len(names) - 1) // 2,
        "prediction_sign_as_matrix": same_sign,
        "summary": summary,
        "pairs": rows,
        "note": NOTE,
    }


def format_validation(table: dict[str, Any], max_listed: int = 8) -> str:
    """The summary per step size, then the sign disagreements with their standard errors."""
    lines = [
        f"  validated {table['pairs_validated']} of {table['pairs_in_all']} pairs on "
        f"{table['target_windows_described']}; predicted eta^2 M there (its sign is the "
        f"reported matrix's for {table['prediction_sign_as_matrix']:.0%} of these pairs)",
        f"{'eta':>8}  {'pairs':>5}  {'sign agreement':>14}  {'beyond noise':>12}  "
        f"{'agreement there':>15}  {'correlation':>11}",
    ]
    for row in table["summary"]:
        there = row["sign_agreement_beyond_noise"]
        lines.append(
            f"{row['eta']:>8.3g}  {row['pairs']:>5}  {row['sign_agreement']:>14.1%}  "
            f"{row['beyond_noise']:>12}  "
            f"{'-' if math.isnan(there) else f'{there:.1%}':>15}  {row['correlation']:>11.3f}"
        )
    wrong = [r for r in table["pairs"] if np.sign(r["measured"]) != np.sign(r["predicted"])]
    if wrong:
        lines.append(
            f"  sign disagreements (measured ± SE vs predicted; within noise: "
            f"|measured| <= {NOISE_SE:g} SE):"
        )
        for r in wrong[:max_listed]:
            noise = "  within noise" if r["within_noise"] else ""
            lines.append(
                f"    eta {r['eta']:<6.3g} {r['a']} before {r['b']}: {r['measured']:+.3e} ± "
                f"{r['se']:.1e} vs {r['predicted']:+.3e}{noise}"
            )
        if len(wrong) > max_listed:
            lines.append(f"    ... and {len(wrong) - max_listed} more in validation.json")
    return "\n".join(lines)


def _write_json(path: Path, data: Any) -> None:
    # a run stopped while writing keeps the previous complete file
    write_json(path, data, indent=2)


def _train_to(trainer: Trainer, step: int, stream: TextIO | None) -> None:
    n = step - trainer.step
    if n <= 0:
        return
    chunk = max(1, n // 100)  # about 100 redraws at most; a step is milliseconds to seconds
    with ProgressBar(f"training to step {step}", n, "steps", stream) as bar:
        while trainer.step < step:
            before = trainer.step
            trainer.train(min(chunk, step - trainer.step))
            if trainer.step == before:  # at train.steps already
                break
            bar.update(trainer.step - before)


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
    seed: int = 0,
    benchmark: str | None = None,
    progress_stream: TextIO | None = None,
) -> dict[str, Any]:
    """Train ``trainer`` up to each of ``at_steps`` and compute the bracket matrix there.

    Args:
        max_pairs: validate this many pairs per step, drawn by :func:`sample_pairs` with a
            generator seeded by ``seed`` and the step (None: all pairs).
        log: receives each step's results as soon as they exist.
        benchmark: recorded in the suggested schedule (None for the user's own data).
        progress_stream: where the progress bars go (default: standard error).

    Raises:
        KeyboardInterrupt: when interrupted; its message names what was kept.
    """
    from torch.utils.tensorboard import SummaryWriter

    net = trainer.model
    if not isinstance(net, TinyGPT):
        raise ConfigError(
            "popmix bracket takes Hessian-vector products through popmix's own model; "
            "remove model.hf_config / model.custom for it"
        )
    out.mkdir(parents=True, exist_ok=True)
    names = trainer.domains.names
    k = len(names)
    writer = SummaryWriter(str(out / "tensorboard"))
    planned = sorted(set(at_steps))
    results: list[dict[str, Any]] = []
    validation: list[dict[str, Any]] = []
    report: dict[str, Any] = {}
    try:
        for step in planned:
            _train_to(trainer, step, progress_stream)
            # A float64 copy: the effects are differences of nearby losses (eta^2 small), and
            # float32 rounding would swamp them; the training model is left untouched.
            model = copy.deepcopy(net).double()
            losses, target_loss, _ = domain_losses(model, trainer.domains, target, windows)
            params = [p for p in model.parameters()]
            with ProgressBar(
                f"matrix at step {trainer.step}", 2 * k + 1, "gradients and HVPs", progress_stream
            ) as bar:
                t0 = time.perf_counter()
                grads = domain_gradients(losses, params, bar)
                matrix = (
                    effect_matrix(losses, target_loss, params, grads=grads, progress=bar)
                    .cpu()
                    .double()
                    .numpy()
                )
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
                f"  step {trainer.step}: {k}x{k} matrix in {t_matrix:.2f} s "
                f"= {t_matrix / t_grad:.1f} gradients of the mean loss over the same windows; "
                f"order (first = helps {target} most when early): "
                + ", ".join(results[-1]["order"])
            )
            fig = heatmap(matrix, names, f"target {target}, step {trainer.step}")
            fig.savefig(out / f"bracket_step{trainer.step}.png", dpi=110)
            writer.add_figure("bracket/heatmap", fig, trainer.step)
            header = "| a \\ b | " + " | ".join(names) + " |"
            rule = "|---" * (k + 1) + "|"
            body = "\n".join(
                f"| {n} | " + " | ".join(f"{v:.3g}" for v in row) + " |"
                for n, row in zip(names, matrix)
            )
            writer.add_text("bracket/matrix", f"{header}\n{rule}\n{body}", trainer.step)
            writer.flush()
            last_step = len(results) == len(planned)
            report = _write_report(
                out,
                names,
                target,
                windows,
                results,
                planned,
                schedule_steps,
                benchmark,
                complete=last_step and not validate_etas,
            )
            if validate_etas:
                rng = np.random.default_rng([seed, trainer.step])
                pairs = sample_pairs(matrix, max_pairs, rng)
                vtarget = window_target(model, trainer.domains, target, windows)
                n_pairs = len(pairs) * len(validate_etas)
                with ProgressBar(
                    f"validation at step {trainer.step}",
                    k + 1 + n_pairs,
                    "HVPs and pairs x step sizes",
                    progress_stream,
                ) as bar:
                    matrix_w = window_matrix(losses, vtarget, params, grads, bar)
                    # The measurements need no double backward: the fused attention is faster
                    # (and equal to the plain one up to rounding, far below the effects).
                    model.set_explicit_attention(False)
                    table = validation_table(
                        pairs,
                        losses,
                        grads,
                        vtarget,
                        params,
                        matrix,
                        names,
                        validate_etas,
                        bar,
                        matrix_w=matrix_w,
                    )
                table = {"step": trainer.step, "pair_seed": [seed, trainer.step], **table}
                validation.append(table)
                _write_json(out / "validation.json", {"steps": validation})
                if last_step:
                    report["complete"] = True
                    _write_json(out / "bracket.json", report)
                log(format_validation(table))
    except KeyboardInterrupt:
        done = [r["step"] for r in results]
        kept = f"kept steps {', '.join(map(str, done))} in {out}" if done else "nothing finished"
        raise KeyboardInterrupt(kept) from None
    finally:
        writer.close()
    return report


def _write_report(
    out: Path,
    names: list[str],
    target: str,
    windows: int,
    results: list[dict[str, Any]],
    planned: list[int],
    schedule_steps: int,
    benchmark: str | None,
    complete: bool,
) -> dict[str, Any]:
    """``bracket.json`` and ``bracket_schedule.json`` from the steps done so far (the schedule
    from the latest matrix); ``complete``: every planned step and its validation is done."""
    last = np.array(results[-1]["matrix"])
    schedule = suggest_schedule(last, names, schedule_steps, benchmark=benchmark)
    report = {
        "domains": names,
        "target": target,
        "windows_per_domain": windows,
        "assumes": NOTE,
        "at_steps": planned,
        "complete": complete,
        "steps": results,
        "suggested": schedule.to_dict(),
    }
    _write_json(out / "bracket.json", report)
    schedule.write(out / "bracket_schedule.json")
    return report
