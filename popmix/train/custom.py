"""Your own model and training step, searched by popmix (``model.custom``).

Subclass :class:`ProxyTrainer` and implement two methods: :meth:`~ProxyTrainer.train_step`
(one optimizer step on a batch popmix drew, each example's loss weighted as popmix says) and
:meth:`~ProxyTrainer.eval_losses` (each held-out window's mean loss). popmix keeps everything
else: the sampler and the mixing policies (sampling weights, loss weights, temperature
schedules, Aioli), PBT and every baseline, the LR schedule it hands you, evaluation on every
domain's validation and test windows, checkpoints and logging. Your class goes through
popmix's one training loop (:class:`popmix.train.Trainer`), as popmix's own model does.

.. code-block:: python

    import torch
    from popmix.train import ProxySetup, ProxyTrainer, TrainBatch

    class MyTrainer(ProxyTrainer):
        def __init__(self, setup: ProxySetup) -> None:
            super().__init__(setup)
            torch.manual_seed(setup.seed)
            self.model = MyNet(setup.vocab_size, **setup.args).to(setup.device)
            self.opt = torch.optim.AdamW(self.model.parameters(), lr=setup.lr)

        def train_step(self, batch: TrainBatch) -> torch.Tensor:
            for group in self.opt.param_groups:
                group["lr"] = batch.lr          # popmix's warm-up + cosine (or ignore it)
            losses = self.model.window_losses(batch.tokens)      # (B,)
            self.opt.zero_grad()
            (losses * batch.example_weight).mean().backward()
            self.opt.step()
            return losses.detach()

        def eval_losses(self, tokens: torch.Tensor) -> torch.Tensor:
            return self.model.window_losses(tokens)

and in the experiment: ``model: {custom: path/to/my_trainer.py:MyTrainer, custom_args: {...}}``
(or ``my_package.module:MyTrainer`` when every Ray worker can import it). A file is imported
once per process, under a name fixed by its absolute path, so every Ray worker on a machine
(or on a shared filesystem) finds the same class.

Checkpoints: :meth:`ProxyTrainer.state_dict` by default saves every attribute that has a
``state_dict`` (modules, optimizers, LR schedulers) and :meth:`load_state_dict` restores them;
override both for anything else (e.g. a random generator of your own). Only tensors and plain
data may be in it (popmix loads checkpoints with ``weights_only=True``). A resumed trial is bit
for bit the uninterrupted one when your step draws no randomness a checkpoint does not hold.

Not available to a custom trainer: DoGE (it needs per-domain gradients from popmix's layers),
``train.compile`` (compile inside your class), ``popmix bracket`` and the vectorised
population, which need popmix's own model.
"""

from __future__ import annotations

import abc
import hashlib
import importlib
import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from popmix.config import ConfigError, ModelConfig
from popmix.data import model_vocab
from popmix.data.domains import DomainSet, check_vocab


@dataclass(frozen=True)
class ProxySetup:
    """What a :class:`ProxyTrainer` is built from.

    Args:
        vocab_size: token ids the data holds (256 bytes of text, a tokenizer's vocabulary, or
            a pre-tokenized corpus's largest id plus one).
        seq_len: window length (``model.seq_len``): a batch's tokens are (B, seq_len + 1).
        device: where popmix puts the batches (``train.device`` resolved).
        seed: this run's seed for the initial weights (a stream of its own, independent of
            the sampler's).
        lr: ``train.lr``, the schedule's peak.
        steps: ``train.steps``, the run's length.
        weight_decay, grad_clip: ``train.weight_decay`` and ``train.grad_clip``, for a step
            that wants popmix's values.
        args: ``model.custom_args``.
    """

    vocab_size: int
    seq_len: int
    device: torch.device
    seed: int
    lr: float
    steps: int
    weight_decay: float
    grad_clip: float
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainBatch:
    """One training batch popmix drew for the mixture.

    Args:
        tokens: (B, seq_len + 1) int64 token ids on the device; predict ``tokens[:, 1:]``
            from ``tokens[:, :-1]``.
        example_weight: (B,) float32, the weight of each example's loss: 1 when the mixture
            shapes the batch (``train.apply: sample``), p_i / q_i (times a policy's loss
            multipliers) when it weights the loss; the training loss popmix's own step
            minimises is ``(losses * example_weight).mean()``.
        domain_ids: (B,) int64, each example's domain (the index into the domain names).
        lr: the learning rate of this step (warm-up then cosine, from ``train``).
        step: the step's index, from 0.
    """

    tokens: torch.Tensor
    example_weight: torch.Tensor
    domain_ids: torch.Tensor
    lr: float
    step: int


class ProxyTrainer(abc.ABC):
    """The model and training step of your own, which popmix's loop drives.

    Precision: popmix calls :meth:`train_step` and :meth:`eval_losses` inside the run's
    autocast context, as it runs its own model's forward: a no-op at ``train.precision`` fp32
    (and under ``auto`` on a CPU), bf16 autocast under ``auto`` on a GPU that supports it and
    wherever ``bf16`` is asked for. That context covers your *whole* step, backward and
    optimizer step included (autograd runs each backward op in its forward op's dtype either
    way, and an optimizer step has no autocast-eligible op). A step that wants its backward
    outside autocast, as PyTorch's AMP recipe advises, wraps it in
    ``with torch.autocast(batch.tokens.device.type, enabled=False):``; a trainer that manages
    precision itself runs with ``train.precision: fp32``.

    Args:
        setup: what the run fixes (vocabulary, window length, device, seed, budget, your
            ``custom_args``); kept as ``self.setup``.
    """

    def __init__(self, setup: ProxySetup) -> None:
        self.setup = setup

    @abc.abstractmethod
    def train_step(self, batch: TrainBatch) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Take one optimizer step on ``batch``.

        Returns:
            Each example's mean next-token loss (nats), shape (B,), before its weight: popmix
            logs it per domain and gives it to the policies that learn from training losses.
            Optionally, as a pair ``(losses, grad_norm)``, also the step's gradient norm
            (before clipping) for the run's health record (NaN there otherwise).
        """

    @abc.abstractmethod
    def eval_losses(self, tokens: torch.Tensor) -> torch.Tensor:
        """Each window's mean next-token loss (nats), shape (B,), for held-out tokens
        (B, seq_len + 1); called under ``torch.no_grad``. popmix averages them per domain
        (validation for PBT's objective and Aioli, test for the final table)."""

    def train(self, mode: bool = True) -> None:
        """Called with False before an evaluation and True after it (dropout, norms);
        by default every ``torch.nn.Module`` attribute is switched."""
        for value in vars(self).values():
            if isinstance(value, torch.nn.Module):
                value.train(mode)

    def state_dict(self) -> dict[str, Any]:
        """Everything to continue training exactly: by default the ``state_dict`` of every
        attribute that has one (modules, optimizers, LR schedulers), by attribute name."""
        return {
            name: value.state_dict()
            for name, value in sorted(vars(self).items())
            if callable(getattr(value, "state_dict", None)) and not isinstance(value, type)
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        for name, value in state.items():
            getattr(self, name).load_state_dict(value)


def load_trainer_class(spec: str) -> type[ProxyTrainer]:
    """The class ``model.custom`` names: ``module:Class`` or ``path/to/file.py:Class``.

    Raises:
        ConfigError: a module or file that does not import, a missing class, or one that is
            not a :class:`ProxyTrainer`.
    """
    module_name, _, class_name = spec.rpartition(":")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            if not path.is_file():
                raise ConfigError(f"model.custom: file not found: {path}")
            # one module per file, kept in sys.modules so the class pickles by reference
            digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
            name = f"popmix_custom_{path.stem}_{digest}"
            module = sys.modules.get(name)
            if module is None:
                loader_spec = importlib.util.spec_from_file_location(name, path)
                assert loader_spec is not None and loader_spec.loader is not None
                module = importlib.util.module_from_spec(loader_spec)
                sys.modules[name] = module
                try:
                    loader_spec.loader.exec_module(module)
                except BaseException:
                    del sys.modules[name]
                    raise
        else:
            module = importlib.import_module(module_name)
    except ConfigError:
        raise
    except Exception as e:
        raise ConfigError(
            f"model.custom: cannot import {module_name} ({type(e).__name__}: "
            f"{str(e).splitlines()[0][:160] if str(e) else ''})"
        ) from None
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ConfigError(f"model.custom: {module_name} has no {class_name}")
    if not (isinstance(cls, type) and issubclass(cls, ProxyTrainer)):
        raise ConfigError(
            f"model.custom: {class_name} in {module_name} is not a subclass of "
            "popmix.train.ProxyTrainer"
        )
    return cls


def concrete_trainer_class(spec: str) -> type[ProxyTrainer]:
    """:func:`load_trainer_class`, refusing a class that leaves an abstract method open."""
    cls = load_trainer_class(spec)
    if getattr(cls, "__abstractmethods__", None):
        missing = ", ".join(sorted(cls.__abstractmethods__))
        raise ConfigError(f"model.custom: {cls.__name__} does not implement {missing}")
    return cls


def build_trainer(model_cfg: ModelConfig, setup: ProxySetup) -> ProxyTrainer:
    """An instance of ``model.custom``'s class for ``setup``."""
    assert model_cfg.custom is not None
    return concrete_trainer_class(model_cfg.custom)(setup)


def check_model(model_cfg: ModelConfig, domains: DomainSet) -> None:
    """What building the model would refuse, found before a run writes anything or a search
    or confirmation starts Ray: an ``hf_config`` that does not build a causal LM of the data's
    vocabulary (no weights are made), a ``custom`` class that does not import or is no
    complete :class:`ProxyTrainer`. Nothing to check for popmix's own model. The one check
    ``popmix run``, ``search`` (its ``resolve``) and ``confirm`` share.

    Raises:
        ConfigError: what is wrong, in one line.
        DataError: a vocabulary smaller than the data's.
    """
    if model_cfg.kind == "popmix":
        return
    vocab_size = check_vocab(domains, model_vocab(model_cfg))
    if model_cfg.kind == "hf":
        from popmix.train.hf_model import check_hf_model

        check_hf_model(model_cfg, vocab_size)
    elif model_cfg.kind == "custom":
        assert model_cfg.custom is not None
        concrete_trainer_class(model_cfg.custom)


__all__ = [
    "ProxySetup",
    "ProxyTrainer",
    "TrainBatch",
    "build_trainer",
    "check_model",
    "load_trainer_class",
]
