"""One complete run: train with periodic validation, then test every domain.

Used by ``popmix run`` and by the benchmarks; the Tune trainables drive :class:`Trainer` in
chunks instead, with the same :func:`eval_record`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from popmix.data.domains import DomainSet
from popmix.policies import MixingPolicy, effective_domains
from popmix.records.weights import WeightsSchedule
from popmix.train.loop import TrainConfig, Trainer, mean_ppl_standard_error, perplexity_summary
from popmix.train.model import ModelConfig


def per_domain(names: list[str], values: np.ndarray) -> dict[str, float]:
    return {n: float(v) for n, v in zip(names, values)}


def split_metrics(split: str, names: list[str], losses: np.ndarray) -> dict[str, Any]:
    """A split's figures under the one set of names every record uses (``result.json``, Tune
    metrics, ``summary.json``): ``<split>_loss`` and ``<split>_ppl`` per domain,
    ``<split>_mean_ppl`` (the mean over domains of per-domain perplexity, the Aioli paper's
    metric), ``<split>_worst_ppl``, ``<split>_worst_domain`` and ``<split>_mean_loss``."""
    summary = perplexity_summary(losses, names)
    return {
        f"{split}_loss": per_domain(names, losses),
        f"{split}_ppl": per_domain(names, np.exp(losses)),
        f"{split}_mean_ppl": summary["mean_ppl"],
        f"{split}_worst_ppl": summary["worst_ppl"],
        f"{split}_worst_domain": summary["worst_domain"],
        f"{split}_mean_loss": summary["mean_loss"],
    }


def test_metrics(trainer: Trainer) -> dict[str, Any]:
    """The final test figures (:func:`split_metrics` of ``test``) and ``test_mean_ppl_se``,
    the evaluation noise of ``test_mean_ppl`` (:func:`mean_ppl_standard_error`)."""
    windows = trainer.window_losses("test")
    test_loss = np.array([w.mean() for w in windows])
    return {
        **split_metrics("test", trainer.domains.names, test_loss),
        "test_mean_ppl_se": mean_ppl_standard_error(windows),
    }


def standard_errors(window_losses: list[np.ndarray]) -> np.ndarray:
    """Each domain's standard error of its mean loss over its windows (std / sqrt(n); 0 for a
    domain with one window): the evaluation noise of one validation read."""
    return np.array(
        [w.std(ddof=1) / np.sqrt(w.size) if w.size > 1 else 0.0 for w in window_losses]
    )


def eval_record(trainer: Trainer) -> dict[str, Any]:
    """Validation losses and their standard errors over windows (``val_loss_se``), training
    losses since the last record, weights, LR and the run's health (``grad_norm`` and
    ``grad_norm_std`` since the last record, ``grad_norm_max``, ``grad_norm_std_pooled`` and
    ``loss_spikes`` so far), at this step."""
    names = trainer.domains.names
    train_loss = trainer.pop_train_losses()
    health = trainer.pop_health()
    windows = trainer.window_losses("validation")
    val_loss = np.array([w.mean() for w in windows])
    last = max(trainer.step - 1, 0)
    multipliers = trainer.policy.loss_multipliers(last)
    return {
        "step": trainer.step,
        "tokens_seen": trainer.tokens_seen,
        "lr": trainer.last_lr,
        "weights": per_domain(names, trainer.last_weights),
        "effective_domains": effective_domains(trainer.last_weights),
        "diagnostics": trainer.policy.diagnostics(),
        "loss_multipliers": None if multipliers is None else per_domain(names, multipliers),
        "temperature": trainer.policy.current_temperature(last),
        "train_loss": {n: (None if np.isnan(v) else float(v)) for n, v in zip(names, train_loss)},
        **health,
        **split_metrics("val", names, val_loss),
        "val_loss_se": per_domain(names, standard_errors(windows)),
        # every window's loss: members scored on the same windows are compared pairwise
        "val_window_loss": {n: [float(x) for x in w] for n, w in zip(names, windows)},
    }


def run_schedule(result: dict[str, Any]) -> WeightsSchedule:
    """The weights a run (its ``result.json`` record) trained on, step by step where they
    changed, so ``popmix run --weights-from`` can replay it (or train on its
    ``final_weights``)."""
    names = result["domains"]
    return WeightsSchedule.build(
        domains=names,
        total_steps=result["steps"],
        points=result["schedule"],
        final_weights=[result["final_weights"][n] for n in names],
        method=result["method"],
    )


def weight_schedule(result: dict[str, Any]) -> dict[str, Any]:
    """:func:`run_schedule` as the JSON object of a run's ``weights.json``."""
    return run_schedule(result).to_dict()


def run_training(
    domains: DomainSet,
    policy: MixingPolicy,
    model_cfg: ModelConfig,
    cfg: TrainConfig,
    log: Callable[[dict[str, Any]], None] | None = None,
    checkpoint: str | Path | None = None,
    reference: str | Path | None = None,
) -> dict[str, Any]:
    """Train one model on ``domains`` with ``policy`` and return the result record.

    Args:
        log: called with each validation record as training goes on.
        checkpoint: where to save the final training state (optional).
        reference: a finished run's checkpoint, the frozen reference model of a policy that
            asks for one (DoReMi; see :class:`popmix.train.Trainer`).

    Returns:
        The content of ``result.json``: per-domain test loss and perplexity, their mean and
        worst (:func:`split_metrics`: ``test_loss``, ``test_ppl``, ``test_mean_ppl``,
        ``test_worst_ppl``, ``test_worst_domain``, ``test_mean_loss``), the final weights, the
        validation history (``val_*``, the same names) and the run's settings.

    Raises:
        Diverged: the training loss became non-finite (raised at the next validation point).
    """
    start = time.perf_counter()
    trainer = Trainer(domains, policy, model_cfg, cfg, reference=reference)
    interval = cfg.eval_interval or cfg.steps
    history = []
    while trainer.step < cfg.steps:
        trainer.train(interval - trainer.step % interval)
        record = eval_record(trainer)
        history.append(record)
        if log is not None:
            log(record)
    if checkpoint is not None:
        trainer.save(checkpoint)
    names = domains.names
    return {
        "benchmark": domains.name,
        "method": policy.name,
        "params": policy.hparams(),
        "domains": names,
        "sizes": {d.name: d.n_tokens for d in domains},
        **test_metrics(trainer),
        "weights": per_domain(names, trainer.last_weights),
        # the mixture to transfer to a final run (DoGE: its time-averaged weights)
        "final_weights": per_domain(names, policy.final_weights(trainer.step)),
        # the weights training used, a point whenever they changed
        "schedule": trainer.weight_log,
        "diagnostics": policy.diagnostics(),
        "steps": trainer.step,
        "train_steps": trainer.step,
        "tokens_seen": trainer.tokens_seen,
        "extra_step_equivalents": trainer.extra_step_equivalents(),
        "extra": dict(trainer.extra),
        # DoReMi's reference model, whose steps count in extra_step_equivalents
        "reference": None if trainer.reference is None else str(trainer.reference.path),
        # the run's health (popmix.train.health): the largest gradient norm, the loss spikes
        "grad_norm_max": trainer.health.grad_norm_max,
        # the step-to-step spread of the gradient norm, pooled within reports
        "grad_norm_std_pooled": trainer.health.grad_norm_std_pooled,
        "loss_spikes": trainer.health.loss_spikes,
        "wall_time_s": time.perf_counter() - start,
        # what ran, not what was asked (train_config holds train.device/precision as given)
        "device": str(trainer.device),
        "precision": trainer.precision,
        "compile_warmup_s": trainer.compile_warmup_s,
        "entropy_rate": (
            per_domain(names, np.array([d.entropy_rate for d in domains]))
            if all(d.entropy_rate is not None for d in domains)
            else None
        ),
        "train_config": asdict(cfg),
        "model_config": asdict(trainer.model_cfg),  # with the vocabulary the data gave
        # the ids the model embeds (256 bytes, a tokenizer's, a corpus's or an hf_config's)
        "vocab_size": trainer.vocab_size,
        "history": history,
    }
