"""The one training loop every method shares (``popmix run`` and every Tune trainable).

Read :meth:`Trainer.train_step` top to bottom: it is the whole algorithm. A policy decides the
weights; ``apply`` decides whether they shape the batch (``sample``) or scale the loss
(``loss``); everything else (AdamW, warm-up + cosine LR, clipping) is the same for every method,
so differences between methods come from the mixture alone.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch

from popmix.config import ConfigError, ModelConfig, TrainConfig
from popmix.data import model_vocab
from popmix.data.domains import DomainSet, check_vocab
from popmix.data.sampler import MixtureSampler, eval_windows
from popmix.policies import DomainSignals, MixingPolicy, loss_weights, normalize
from popmix.train import measure
from popmix.train.checkpoint import load_state, save_state
from popmix.train.custom import ProxySetup, ProxyTrainer, TrainBatch, build_trainer
from popmix.train.device import CudaState, autocast, choose_device, resolve_precision
from popmix.train.health import TrainingHealth
from popmix.train.hf_model import HFCausalLM
from popmix.train.measure import per_domain_mean
from popmix.train.model import TinyGPT
from popmix.train.reference import ReferenceModel, excess_loss


class Diverged(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass
class Batch:
    """One training batch: tokens (B, T+1), domain ids (B,), examples per domain (n_domains,)
    and the weight of each example's loss (B,)."""

    tokens: torch.Tensor
    ids: torch.Tensor
    counts: np.ndarray
    example_weight: torch.Tensor


class _UserModel(torch.nn.Module):
    """A custom trainer as the loop's ``model``: evaluation calls its ``eval_losses`` and
    ``train``/``eval`` reach its own switch. It holds no parameters of popmix's: the trainer
    owns its network, optimizer and checkpoint state."""

    def __init__(self, user: ProxyTrainer) -> None:
        super().__init__()
        self.user = user

    def example_losses(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.user.eval_losses(tokens)

    def train(self, mode: bool = True) -> _UserModel:
        super().train(mode)
        self.user.train(mode)
        return self


def available_cpus() -> int:
    """CPUs this process may run on (respects affinity masks set by Ray or taskset)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def resolve_device(name: str, cuda: CudaState | None = None) -> torch.device:
    """The device ``train.device`` names on this machine (``auto``: CUDA when usable).

    Raises:
        DeviceError: a CUDA device asked for that this process cannot use (the cause and
            the fix in one line; never a silent CPU run).
    """
    return torch.device(choose_device(name, cuda or CudaState.probe()))


class Trainer:
    """Owns the model, optimizer, sampler and policy of one run, and trains it step by step.

    ``train(n)`` may be called repeatedly (a Tune trainable calls it once per report);
    :meth:`state_dict` / :meth:`load_state_dict` capture everything needed to continue exactly,
    bit for bit on the same device: model, optimizer moments, step (the LR schedule is a pure
    function of it), policy state and the sampler's generator.

    Args:
        domains: the training domains.
        policy: the mixing policy; its weights are read before every step.
        model_cfg: the proxy model: popmix's own (its size), a ``transformers`` causal LM
            (``hf_config``, :class:`popmix.train.hf_model.HFCausalLM`; trained by this loop's
            own step) or your trainer (``custom``, a :class:`popmix.train.ProxyTrainer`,
            whose ``train_step`` replaces the model step; everything around it stays).
        cfg: training settings.
        reference: a finished run's checkpoint (a file or a checkpoint folder) whose frozen
            model scores every training batch, for a policy that asks for excess losses
            (DoReMi: the same seed's stratified run); read again on a resume.
    """

    def __init__(
        self,
        domains: DomainSet,
        policy: MixingPolicy,
        model_cfg: ModelConfig,
        cfg: TrainConfig,
        reference: str | os.PathLike | None = None,
    ) -> None:
        cfg.validate()
        model_cfg.validate()
        if policy.n_domains != len(domains):
            raise ValueError(f"policy has {policy.n_domains} domains, data has {len(domains)}")
        #: the ids the model embeds: the data's, unless the model config fixes more
        self.vocab_size = check_vocab(domains, model_vocab(model_cfg))
        if model_cfg.kind == "popmix":
            # a pre-tokenized corpus's vocabulary comes from its ids (model.vocab_size: null)
            model_cfg = replace(model_cfg, vocab_size=self.vocab_size)
        self.domains, self.policy, self.model_cfg, self.cfg = domains, policy, model_cfg, cfg
        policy.bind(domains.names)
        policy.bind_vocab(self.vocab_size)
        #: what the policy asked the loop to measure (read once: a policy's needs are fixed)
        self.needs = needs = policy.needs
        cuda = CudaState.probe()
        self.device = resolve_device(cfg.device, cuda)
        if needs.reference and reference is None:
            raise ConfigError(
                f"{policy.name} needs a reference model (the same seed's stratified run): "
                "give its checkpoint (popmix run --reference-checkpoint), or run it in popmix "
                "search beside stratified"
            )
        if needs.reference and model_cfg.kind == "custom":
            # the excess is measured per token on popmix's own forward
            raise ConfigError(
                f"{policy.name} scores the proxy's tokens against a reference model, which a "
                "model.custom trainer does not expose; use popmix's model or model.hf_config"
            )
        if needs.gradients is not None and model_cfg.kind != "popmix":
            # measure.py reads each domain's gradient off TinyGPT's own layers
            raise ConfigError(
                f"{policy.name} measures per-domain gradients from popmix's own model, not "
                f"from model.{'custom' if model_cfg.kind == 'custom' else 'hf_config'}; use "
                "another method (aioli, pbt, ...) or popmix's model"
            )
        if cfg.compile and model_cfg.kind == "custom":
            raise ConfigError(
                "train.compile applies to popmix's step; a model.custom trainer compiles its "
                "own model: set train.compile false"
            )
        if needs.gradients is not None and cfg.precision == "bf16":
            # measure.py's per-domain gradient blocks are float32, as the parameters are
            raise ConfigError(
                f"train.precision bf16 is not available to {policy.name}, whose per-domain "
                "gradients are measured in fp32; use train.precision auto or fp32"
            )
        #: the precision that runs (``fp32`` or ``bf16``), ``train.precision`` resolved here;
        #: ``auto`` is fp32 for a policy that measures per-domain gradients (DoGE)
        self.precision = (
            "fp32"
            if needs.gradients is not None
            else resolve_precision(cfg.precision, str(self.device), cuda.bf16)
        )
        torch.set_num_threads(cfg.threads or available_cpus())

        # Independent streams for the model init and the sampler, both from the run's seed.
        init_seed, sampler_seed = np.random.SeedSequence(cfg.seed).generate_state(2)
        #: your trainer (``model.custom``), which owns the model and its step; None otherwise
        self.user: ProxyTrainer | None = None
        self.model: TinyGPT | HFCausalLM | _UserModel
        if model_cfg.kind == "custom":
            self.user = build_trainer(
                model_cfg,
                ProxySetup(
                    vocab_size=self.vocab_size,
                    seq_len=model_cfg.seq_len,
                    device=self.device,
                    seed=int(init_seed),
                    lr=cfg.lr,
                    steps=cfg.steps,
                    weight_decay=cfg.weight_decay,
                    grad_clip=cfg.grad_clip,
                    args=dict(model_cfg.custom_args or {}),
                ),
            )
            self.model = _UserModel(self.user)
        elif model_cfg.kind == "hf":
            self.model = HFCausalLM(model_cfg, self.vocab_size, int(init_seed)).to(self.device)
        else:
            gen = torch.Generator().manual_seed(int(init_seed))
            self.model = TinyGPT(model_cfg, gen).to(self.device)
        # The training forward, compiled when asked; the module itself stays uncompiled, so
        # its state_dict keys and evaluation (other shapes, no recompiles) are unchanged.
        self._example_losses = (
            torch.compile(self.model.example_losses) if cfg.compile else self.model.example_losses
        )
        # DoReMi's forward keeps every token's loss, for the per-token excess
        self._token_losses: Any = None
        if needs.reference and not isinstance(self.model, _UserModel):
            token_losses = self.model.token_losses
            self._token_losses = torch.compile(token_losses) if cfg.compile else token_losses
        #: seconds the first compiled step took (compilation included); None until it ran
        self.compile_warmup_s: float | None = None
        decay = [p for n, p in self.model.named_parameters() if p.dim() >= 2]
        no_decay = [p for n, p in self.model.named_parameters() if p.dim() < 2]
        #: popmix's AdamW; None for a custom trainer, which steps its own optimizer
        self.optimizer: torch.optim.Optimizer | None = None
        if self.user is None:
            self.optimizer = torch.optim.AdamW(
                [
                    {"params": decay, "weight_decay": cfg.weight_decay},
                    {"params": no_decay, "weight_decay": 0.0},
                ],
                lr=cfg.lr,
                betas=(0.9, 0.95),
            )
        # A policy may fix how its weights act (DoGE: on the loss; Aioli: on the batch).
        self.apply = needs.apply or cfg.apply
        # Loss mode trains on fixed (stratified or proportional) batches; "exact" counts make
        # them stratified batch by batch rather than only in expectation.
        exact = self.apply == "loss" or needs.counts == "exact"
        self.sampler = MixtureSampler(
            domains,
            cfg.batch_size,
            model_cfg.seq_len,
            int(sampler_seed),
            "exact" if exact else "multinomial",
        )
        # Held-out batches for a gradient target (DoGE), from the validation splits.
        self.val_sampler = MixtureSampler(
            domains,
            needs.gradients.target_windows if needs.gradients else cfg.batch_size,
            model_cfg.seq_len,
            int(sampler_seed) + 1,
            "exact",
            split="validation",
        )
        #: work beyond the plain training steps, in windows (see :meth:`extra_step_equivalents`),
        #: and the steps of the reference model this run needed (DoReMi's stratified run)
        self.extra = {
            "eval_windows": 0,
            "forward_windows": 0,
            "backward_windows": 0,
            "reference_steps": 0,
        }
        #: the frozen model whose losses the policy's excess losses are measured against
        self.reference: ReferenceModel | None = None
        if needs.reference and reference is not None:
            self.reference = ReferenceModel.load(
                reference, model_cfg, self.vocab_size, self.device
            )
            self.extra["reference_steps"] = self.reference.steps
        self._grads: measure.DomainGradients | None = None  # this step's, for its model step
        sizes = domains.sizes.astype(np.float64)
        k = len(domains)
        base_q = np.ones(k) if cfg.loss_base == "stratified" else sizes.copy()
        # A domain the policy holds out (DoGE's OOD target) is never in a training batch.
        base_q[list(needs.held_out)] = 0.0
        self.base_q = normalize(base_q)

        self.step = 0
        self.tokens_seen = 0
        self.last_weights = policy.weights(0)
        self.last_lr = 0.0
        #: the weights training actually used, a point whenever they change: ``step``,
        #: ``weights``, and ``loss_weights`` / ``temperature`` where the policy has them. It is
        #: the one record of a run's schedule (weights files, search lineage), never a replay
        #: of ``policy.weights`` afterwards.
        self.weight_log: list[dict[str, Any]] = []
        # Per-domain training-loss sums since the last report, kept on the device so that a
        # static method never forces a device→host sync inside the step.
        self._loss_sum = torch.zeros(k, dtype=torch.float64, device=self.device)
        self._loss_count = np.zeros(k, dtype=np.int64)
        # Each step's plain batch loss and gradient norm (before clipping), on the device
        # until the next report hands them to the health record in one copy.
        self._step_loss: list[torch.Tensor] = []
        self._grad_norm: list[torch.Tensor] = []
        self.health = TrainingHealth()
        self._windows_cache: dict[tuple[str, int], list[torch.Tensor]] = {}

    # -- schedule -------------------------------------------------------------------------------
    def lr_at(self, step: int) -> float:
        """Linear warm-up to ``lr``, then cosine decay to ``lr * min_lr_frac`` at the last step."""
        cfg, warmup = self.cfg, self.cfg.warmup
        if step < warmup:
            return cfg.lr * (step + 1) / warmup
        span = max(1, cfg.steps - warmup)
        progress = min(1.0, (step - warmup) / span)
        min_lr = cfg.lr * cfg.min_lr_frac
        return min_lr + 0.5 * (cfg.lr - min_lr) * (1.0 + math.cos(math.pi * progress))

    # -- training -------------------------------------------------------------------------------
    def draw_batch(self, weights: np.ndarray, multipliers: np.ndarray | None = None) -> Batch:
        """The next training batch for mixture ``weights``.

        ``sample`` mode draws the composition from ``weights`` and weighs every example 1;
        ``loss`` mode draws it from the fixed base q and weighs domain i's examples by p_i / q_i.
        A policy's own loss ``multipliers`` (scalarization on top of sampling) multiply in.
        """
        if self.apply == "sample":
            counts = self.sampler.counts(weights)
            domain_weight = np.ones(len(weights))
        else:
            counts = self.sampler.counts(self.base_q)
            domain_weight = loss_weights(weights, self.base_q)
        if multipliers is not None:
            domain_weight = domain_weight * multipliers
        tokens, ids = self.sampler.batch(counts)
        ids_t = torch.from_numpy(ids).to(self.device, non_blocking=True)
        return Batch(
            tokens=torch.from_numpy(tokens).to(self.device, non_blocking=True),
            ids=ids_t,
            counts=counts,
            example_weight=torch.from_numpy(domain_weight).to(self.device, torch.float32)[ids_t],
        )

    def batch_loss(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(training loss, per-example losses) of a batch.

        The loss is the batch mean of w_domain · loss: in expectation Σ_i p_i L_i in both modes.
        """
        with autocast(self.device, self.precision):
            example_loss = self._example_losses(batch.tokens)
        return (example_loss * batch.example_weight).mean(), example_loss

    def train_step(self) -> None:
        """One optimizer step on one batch.

        Nothing in it waits for the device (no ``.item()``, ``float(tensor)`` or ``.cpu()``):
        losses and gradient norms stay on the device until a report reads them all at once
        (:meth:`pop_train_losses`, :meth:`pop_health`). The exceptions are signals a policy
        asked for (per-step losses, per-domain gradients, evaluations), read where noted.
        """
        if self.cfg.compile and self.compile_warmup_s is None:
            start = time.perf_counter()
            self._train_step()
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)  # once: the warm-up's time, not a queue's
            self.compile_warmup_s = time.perf_counter() - start
            return
        self._train_step()

    def _train_step(self) -> None:
        step, policy, needs = self.step, self.policy, self.needs
        if policy.evaluates_before(step):
            # Aioli measures held-out losses between its perturbations: extra forward passes.
            eval_loss = self.evaluate("validation", needs.eval_windows)
            policy.update(DomainSignals(step=step, eval_loss=eval_loss))
            self.extra["eval_windows"] += needs.eval_windows * len(self.domains)
        weights = policy.weights(step)
        lr = self.lr_at(step)
        multipliers = policy.loss_multipliers(step)
        batch = self.draw_batch(weights, multipliers)
        if self.user is not None:
            example_loss, grad_norm = self._user_step(batch, step, lr)
        else:
            example_loss, grad_norm, followed = self._model_step(batch, step, lr)
            if followed is not None:
                weights = followed  # DoGE's step followed the weights its gradients updated

        detached = example_loss.detach().double()
        self._step_loss.append(detached.mean())
        self._grad_norm.append(grad_norm.detach())
        self._loss_sum.index_add_(0, batch.ids, detached)
        self._loss_count += batch.counts
        if needs.step_losses and needs.gradients is None:
            # One host sync per step, paid only by policies that asked for it.
            train_loss = per_domain_mean(batch.ids, batch.counts, detached)
            policy.update(
                DomainSignals(step=step, train_loss=train_loss, counts=batch.counts, lr=lr)
            )
        self._log_weights(step, weights, multipliers)
        self.step += 1
        self.tokens_seen += batch.tokens.shape[0] * (batch.tokens.shape[1] - 1)
        self.last_weights, self.last_lr = weights, lr

    def _model_step(
        self, batch: Batch, step: int, lr: float
    ) -> tuple[torch.Tensor, torch.Tensor, np.ndarray | None]:
        """popmix's step of its own model or a ``transformers`` one: AdamW on the weighted
        loss (DoGE's: on its per-domain gradients), the global norm clipped. Returns the
        batch's example losses, the gradient norm before clipping and, for DoGE, the updated
        weights the step combined the gradients with (None otherwise)."""
        assert self.optimizer is not None
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        weights = None
        if self.needs.gradients is not None:
            # DoGE: per-domain gradients update the weights first; the step then follows
            # the *updated* weights, so those are the ones this step trained on.
            example_loss = self._measure_gradients(batch, step, lr)
            weights = self.policy.weights(step + 1)
            assert self._grads is not None
            for p, g in zip(self.model.parameters(), self._grads.combine(weights)):
                p.grad = g.view_as(p)
        elif self.reference is not None:
            # DoReMi (official doremiv1): the excess over the reference on this batch updates
            # the weights first; the loss is then weighted by the *updated* weights.
            token_loss = self._measure_excess(batch, step, lr)
            weights = self.policy.weights(step + 1)
            example_loss = token_loss.mean(dim=1)
            # the batch came from the fixed base q (loss mode), so only its example weights
            # change: domain i's by the updated α_i / q_i
            example_weight = torch.from_numpy(loss_weights(weights, self.base_q))
            example_weight = example_weight.to(self.device, torch.float32)[batch.ids]
            (example_loss * example_weight).mean().backward()
        else:
            loss, example_loss = self.batch_loss(batch)
            loss.backward()
        params = [p for p in self.model.parameters() if p.grad is not None]
        if self.cfg.grad_clip > 0:
            grad_norm = torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip)
        else:
            grad_norm = torch.linalg.vector_norm(
                torch.stack([torch.linalg.vector_norm(p.grad) for p in params])
            )
        self.optimizer.step()
        return example_loss, grad_norm, weights

    def _user_step(self, batch: Batch, step: int, lr: float) -> tuple[torch.Tensor, torch.Tensor]:
        """The custom trainer's step on the batch: its example losses, and its gradient norm
        (NaN when it gives none). The whole step runs in the run's autocast, as popmix's own
        forward does (see :class:`ProxyTrainer`)."""
        assert self.user is not None
        with autocast(self.device, self.precision):
            out = self.user.train_step(
                TrainBatch(batch.tokens, batch.example_weight, batch.ids, lr, step)
            )
        example_loss, grad_norm = out if isinstance(out, tuple) and len(out) == 2 else (out, None)
        if not isinstance(example_loss, torch.Tensor):
            raise ConfigError(
                f"{type(self.user).__name__}.train_step returned {type(example_loss).__name__}, "
                "not a tensor; return each example's loss, a (B,) tensor (e.g. "
                "losses.detach()), or the pair (losses, grad_norm)"
            )
        if tuple(example_loss.shape) != (batch.tokens.shape[0],):
            raise ConfigError(
                f"{type(self.user).__name__}.train_step returned losses of shape "
                f"{tuple(example_loss.shape)}; expected one per example, "
                f"({batch.tokens.shape[0]},)"
            )
        if grad_norm is None:
            grad_norm = torch.tensor(float("nan"), device=self.device)
        return example_loss.detach(), torch.as_tensor(grad_norm).detach()

    def _log_weights(self, step: int, weights: np.ndarray, multipliers: np.ndarray | None) -> None:
        w = [float(x) for x in weights]
        lw = None if multipliers is None else normalize(multipliers).tolist()
        last = self.weight_log[-1] if self.weight_log else None
        if last is not None and last["weights"] == w and last.get("loss_weights") == lw:
            return
        point: dict[str, Any] = {"step": step, "weights": w}
        if lw is not None:
            point["loss_weights"] = lw
        temperature = self.policy.current_temperature(step)
        if temperature is not None:
            point["temperature"] = temperature
        self.weight_log.append(point)

    def _measure_gradients(self, batch: Batch, step: int, lr: float) -> torch.Tensor:
        """Per-domain gradients (and their target) to the policy; keeps them for the step.

        Returns the batch's example losses.
        """
        asked = self.needs.gradients
        assert asked is not None
        assert isinstance(self.model, TinyGPT)  # DoGE refuses any other model (__init__)
        # Last step's per-domain blocks are spent (its model step is done): refilled in place.
        self._grads = grads = measure.domain_gradients(
            self.model, batch.tokens, batch.ids, batch.counts, asked.clip, reuse=self._grads
        )
        target_dots = None
        if asked.target != "others":
            tokens = self._target_batch(asked.target)
            target_dots = grads.dots(measure.mean_gradient(self.model, tokens, asked.clip))
        self.policy.update(
            DomainSignals(
                step=step,
                train_loss=per_domain_mean(batch.ids, batch.counts, grads.example_loss),
                counts=batch.counts,
                lr=lr,
                grad_dots=grads.gram(),
                target_dots=target_dots,
            )
        )
        return grads.example_loss

    def _measure_excess(self, batch: Batch, step: int, lr: float) -> torch.Tensor:
        """The proxy's per-token losses on the batch (with their graph), after handing the
        policy each domain's excess over the frozen reference on the same tokens (one host
        sync per step; the reference's forward counted as extra work)."""
        assert self.reference is not None
        with autocast(self.device, self.precision):
            token_loss = self._token_losses(batch.tokens)
        reference_loss = self.reference.token_losses(batch.tokens, self.precision)
        self.extra["forward_windows"] += batch.tokens.shape[0]
        detached = token_loss.detach()
        self.policy.update(
            DomainSignals(
                step=step,
                train_loss=per_domain_mean(batch.ids, batch.counts, detached.mean(dim=1)),
                counts=batch.counts,
                lr=lr,
                excess_loss=excess_loss(detached, reference_loss, batch.ids, batch.counts),
            )
        )
        return token_loss

    def _target_batch(self, target: str) -> torch.Tensor:
        """A held-out batch for a gradient target: every domain, or one (OOD); counted."""
        k = len(self.domains)
        if target == "validation":
            w = np.full(k, 1.0 / k)
        else:
            w = np.zeros(k)
            w[self.domains.index(target.split(":", 1)[1])] = 1.0
        tokens, _ = self.val_sampler.batch(self.val_sampler.counts(w))
        self.extra["forward_windows"] += tokens.shape[0]
        self.extra["backward_windows"] += tokens.shape[0]
        return torch.from_numpy(tokens).to(self.device)

    def extra_step_equivalents(self) -> float:
        """Extra work in training-step equivalents (a step = forward + backward ≈ 3 forwards
        over batch_size windows): evaluations a policy asked for, held-out gradients, the
        reference model's forwards, and the steps the reference model trained."""
        e = self.extra
        forwards = e["eval_windows"] + e["forward_windows"] + 2 * e["backward_windows"]
        return forwards / (3.0 * self.cfg.batch_size) + e.get("reference_steps", 0)

    def train(self, n_steps: int) -> None:
        """Train ``n_steps`` more steps (not past ``cfg.steps``)."""
        end = min(self.step + n_steps, self.cfg.steps)
        while self.step < end:
            self.train_step()

    def pop_train_losses(self) -> np.ndarray:
        """Mean training loss per domain since the last call (NaN where none was drawn).

        Raises:
            Diverged: a training loss was NaN or infinite.
        """
        sums = self._loss_sum.cpu().numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            means = sums / self._loss_count
        if not np.all(np.isfinite(sums)):
            raise Diverged(
                f"training loss became non-finite by step {self.step} (lr {self.last_lr:.3g}); "
                "lower the learning rate or the loss weights"
            )
        means[self._loss_count == 0] = np.nan
        self._loss_sum.zero_()
        self._loss_count[:] = 0
        return means

    def pop_health(self) -> dict[str, Any]:
        """The gradient norm and loss spikes since the last call (``grad_norm``: the mean
        norm of those steps) and of the run so far (``grad_norm_max``, ``loss_spikes``);
        see :mod:`popmix.train.health`."""
        n = len(self._step_loss)
        if n:
            losses = torch.stack(self._step_loss).double().cpu().numpy()
            norms = torch.stack(self._grad_norm).double().cpu().numpy()
        else:
            losses = norms = np.empty(0)
        self._step_loss, self._grad_norm = [], []
        return self.health.observe(self.step - n, losses, norms)

    # -- evaluation -----------------------------------------------------------------------------
    def _windows(self, split: str, max_windows: int) -> list[torch.Tensor]:
        key = (split, max_windows)
        if key not in self._windows_cache:
            self._windows_cache[key] = [
                torch.from_numpy(eval_windows(d.split(split), self.model_cfg.seq_len, max_windows))
                for d in self.domains
            ]
        return self._windows_cache[key]

    def evaluate(self, split: str = "validation", max_windows: int | None = None) -> np.ndarray:
        """Mean next-byte loss (nats) per domain on held-out windows, shape (n_domains,).

        The mean is over windows of each window's mean token loss (the Aioli paper's order:
        per-chunk mean, then mean over chunks, then exp for perplexity).
        """
        return np.array([w.mean() for w in self.window_losses(split, max_windows)])

    @torch.no_grad()
    def window_losses(
        self, split: str = "test", max_windows: int | None = None
    ) -> list[np.ndarray]:
        """Each domain's per-window mean losses (nats), one array per domain: what
        :meth:`evaluate` averages, and what :func:`mean_ppl_standard_error` resamples."""
        if max_windows is None:
            max_windows = self.cfg.eval_windows if split == "validation" else self.cfg.test_windows
        windows = self._windows(split, max_windows)
        was_training = self.model.training
        self.model.eval()
        out = []
        chunk = max(self.cfg.batch_size, 64)
        for w in windows:
            with autocast(self.device, self.precision):
                losses = [
                    self.model.example_losses(w[j : j + chunk].to(self.device))
                    for j in range(0, w.shape[0], chunk)
                ]
            out.append(torch.cat(losses).double().cpu().numpy())
        self.model.train(was_training)
        return out

    # -- checkpointing --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "tokens_seen": self.tokens_seen,
            "model": self.model.state_dict() if self.user is None else self.user.state_dict(),
            "optimizer": {} if self.optimizer is None else self.optimizer.state_dict(),
            "policy": self.policy.state_dict(),
            "sampler": self.sampler.state_dict(),
            "val_sampler": self.val_sampler.state_dict(),
            "extra": dict(self.extra),
            "loss_sum": self._loss_sum.cpu(),
            "loss_count": self._loss_count.copy(),
            "last_weights": np.asarray(self.last_weights).copy(),
            "last_lr": self.last_lr,
            "weight_log": [dict(p) for p in self.weight_log],
            "health": self.health.state_dict(),
            "pending_health": [
                [float(x) for x in self._step_loss],
                [float(x) for x in self._grad_norm],
            ],
            "config": {"train": asdict(self.cfg), "model": asdict(self.model_cfg)},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = int(state["step"])
        self.tokens_seen = int(state["tokens_seen"])
        if self.user is not None:
            self.user.load_state_dict(state["model"])
        else:
            self.model.load_state_dict(state["model"])
        if self.optimizer is not None:
            self.optimizer.load_state_dict(state["optimizer"])
        self.policy.load_state_dict(state["policy"])
        self.sampler.load_state_dict(state["sampler"])
        self.val_sampler.load_state_dict(state["val_sampler"])
        self.extra = dict(state["extra"])
        self._loss_sum = state["loss_sum"].to(self.device)
        self._loss_count = np.asarray(state["loss_count"]).copy()
        self.last_weights = np.asarray(state["last_weights"]).copy()
        self.last_lr = float(state["last_lr"])
        # (a state saved before the log existed has none: the schedule then starts here)
        self.weight_log = [dict(p) for p in state.get("weight_log", [])]
        self.health = TrainingHealth()
        if "health" in state:
            self.health.load_state_dict(state["health"])
        losses, norms = state.get("pending_health", ([], []))
        f64 = torch.float64
        self._step_loss = [torch.tensor(x, dtype=f64, device=self.device) for x in losses]
        self._grad_norm = [torch.tensor(x, device=self.device) for x in norms]

    def save(self, path: str | os.PathLike) -> None:
        save_state(self.state_dict(), path)

    def load(self, path: str | os.PathLike) -> None:
        self.load_state_dict(load_state(path, map_location=self.device))


def mean_ppl_standard_error(
    window_losses: list[np.ndarray], resamples: int = 200, seed: int = 0
) -> float:
    """The evaluation noise of a mean perplexity: its standard deviation when the same model
    is scored on resampled windows (a bootstrap, windows drawn with replacement within each
    domain, ``resamples`` times). Seed noise far above it comes from training, not from
    scoring."""
    rng = np.random.default_rng(seed)
    draws = np.empty(resamples)
    for b in range(resamples):
        ppl = [np.exp(w[rng.integers(0, w.size, w.size)].mean()) for w in window_losses]
        draws[b] = np.mean(ppl)
    return float(draws.std(ddof=1))


def perplexity_summary(losses: np.ndarray, names: list[str]) -> dict[str, Any]:
    """Mean over domains of per-domain perplexity (the Aioli paper's metric) and the worst."""
    ppl = np.exp(np.asarray(losses, dtype=np.float64))
    worst = int(np.argmax(ppl))
    return {
        "mean_ppl": float(ppl.mean()),
        "worst_ppl": float(ppl[worst]),
        "worst_domain": names[worst],
        "mean_loss": float(np.mean(losses)),
    }
