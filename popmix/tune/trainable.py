"""The Ray Tune trainable every method runs as: the shared training loop, reported in chunks.

One class serves the searched population and every baseline: the trial's spec
(:class:`popmix.records.trial.TrialSpec`) names the method and its hyperparameters, the loop is the
same. Hyperparameters are read from the config every time the trainable is (re)built and never
from a checkpoint, so after a PBT exploit the donor's state continues under the mutated
hyperparameters.

Each checkpoint folder holds ``state.pt`` (the full training state, the weight schedule followed
so far and the lineage events) and ``schedule.json`` (the same schedule, readable).
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import ray
from ray import tune

from popmix.data.domains import DomainSet
from popmix.policies import normalize
from popmix.records.trial import TrialSpec
from popmix.records.weights import WeightsSchedule
from popmix.train.checkpoint import load_state, save_state
from popmix.train.device import CudaState, choose_device
from popmix.train.loop import Diverged, Trainer
from popmix.train.objective import objective_of, objective_standard_error
from popmix.train.run import eval_record, per_domain, test_metrics
from popmix.tune.spec import TrialSettings


class MixtureTrainable(tune.Trainable):
    """Tune trainable around :class:`popmix.train.Trainer`.

    The trial config is a :class:`popmix.records.trial.TrialSpec` as Ray's dict
    (``{"spec": {"method", "seed", "member", **params}}``); its policy is built through the one
    registry. ``setup`` receives, besides the trial config, ``domains`` (through the object
    store, so every node of a cluster gets the same data) and ``settings``, the search's
    :class:`popmix.tune.spec.TrialSettings`.
    """

    # tune.with_parameters passes the data and settings as extra keyword arguments.
    def setup(  # type: ignore[override]
        self, config: dict[str, Any], domains: DomainSet, settings: TrialSettings
    ) -> None:
        self.domains = domains
        self.settings = settings
        self._build(config)

    def _build(self, config: dict[str, Any]) -> None:
        spec = TrialSpec.from_config(config)
        s = self.settings
        cfg = s.train_config(spec.run_seed, self._device(), spec.steps)
        policy = spec.build_policy(self.domains.sizes, self.domains.names, cfg.steps, s.shape)
        self.spec = spec
        # a DoReMi trial's frozen reference, read again from its path on every (re)build
        reference = None
        if spec.reference is not None:
            reference = Path(s.reference_root or "", spec.reference)
        self.trainer = Trainer(self.domains, policy, s.model, cfg, reference=reference)
        self._node = ray.get_runtime_context().get_node_id()
        self._warmup_reported = False
        self.schedule: list[dict[str, Any]] = []  # weights whenever they change, by step
        self.lineage: list[dict[str, Any]] = []  # exploits this member's state went through

    def _device(self) -> str:
        """This trial's device: the GPU Ray gave it (logical ``cuda:0``: Ray's ids are
        physical and Ray sets ``CUDA_VISIBLE_DEVICES`` to them), else the CPU. A GPU given
        that torch cannot use stops the trial with a :class:`DeviceError`, never a CPU run."""
        resources = self.trial_resources
        gpus = float(resources.required_resources.get("GPU", 0)) if resources else 0.0
        return choose_device(
            self.settings.train.device, CudaState.probe(), ray.get_gpu_ids(), gpus_asked=gpus
        )

    def _record_schedule(self, start: int) -> None:
        # The loop's own log of what it trained on, never a replay of policy.weights(): an
        # adaptive policy's past weights cannot be recomputed (Aioli's, DoGE's).
        for point in self.trainer.weight_log:
            if point["step"] >= start:
                self.schedule.append({**point, "trial_id": self.trial_id})

    def step(self) -> dict[str, Any]:
        trainer = self.trainer
        names = self.domains.names
        start = trainer.step
        t0 = time.perf_counter()
        trainer.train(self.settings.report_every)
        t_train = time.perf_counter() - t0
        self._record_schedule(start)
        done = trainer.step >= trainer.cfg.steps
        try:
            rec = eval_record(trainer)
        except Diverged as e:
            # Stop this trial, keep the search going; the summary lists it as diverged.
            return {
                "objective": math.nan,
                "diverged": 1,
                "error": str(e),
                "done": True,
                "step": trainer.step,
                "steps_this_report": trainer.step - start,
            }
        val = np.array([rec["val_loss"][n] for n in names])
        val_se = np.array([rec["val_loss_se"][n] for n in names])
        objective = self.settings.objective
        metrics: dict[str, Any] = {
            "objective": objective_of(val, names, objective),
            # the objective's evaluation noise: what a noise-aware exploit compares against
            "objective_se": objective_standard_error(val, val_se, names, objective),
            # the same windows for every member of a seed: the exploit's paired margin
            "val_window_loss": rec["val_window_loss"],
            "val_loss": rec["val_loss"],
            "val_mean_loss": rec["val_mean_loss"],
            "val_mean_ppl": rec["val_mean_ppl"],
            "val_worst_ppl": rec["val_worst_ppl"],
            "val_worst_domain": rec["val_worst_domain"],
            "train_loss": {n: v for n, v in rec["train_loss"].items() if v is not None},
            "weight": rec["weights"],
            "effective_domains": rec["effective_domains"],
            "lr": rec["lr"],
            "grad_norm": rec["grad_norm"],
            "grad_norm_std": rec["grad_norm_std"],
            "grad_norm_max": rec["grad_norm_max"],
            "grad_norm_std_pooled": rec["grad_norm_std_pooled"],
            "loss_spikes": rec["loss_spikes"],
            "step": trainer.step,
            "timesteps_total": trainer.tokens_seen,  # TensorBoard's x-axis: tokens in lineage
            "steps_this_report": trainer.step - start,
            "diverged": 0,
            "node": self._node,
            "time_train_s": t_train,
            # what ran, recorded with every result: a bf16 GPU member is not an fp32 CPU one
            "device": str(trainer.device),
            "precision": trainer.precision,
        }
        if trainer.compile_warmup_s is not None and not self._warmup_reported:
            metrics["compile_warmup_s"] = trainer.compile_warmup_s  # once per built trainer
            self._warmup_reported = True
        if rec["loss_multipliers"] is not None:
            mult = np.array([rec["loss_multipliers"][n] for n in names])
            metrics["loss_weight"] = per_domain(names, normalize(mult))
        if rec["temperature"] is not None:
            metrics["temperature"] = rec["temperature"]
        if rec["diagnostics"]:
            metrics["diagnostics"] = rec["diagnostics"]
        extra = trainer.extra_step_equivalents()
        if extra:
            metrics["extra_step_equivalents"] = extra
        policy = trainer.policy
        final = policy.final_weights(trainer.step)
        if not np.array_equal(final, trainer.last_weights):
            metrics["final_weight"] = per_domain(names, final)  # DoGE: the time average
        if done:
            metrics.update(test_metrics(trainer), done=True)
        return metrics

    def save_checkpoint(self, checkpoint_dir: str) -> None:
        state = {
            "trainer": self.trainer.state_dict(),
            "schedule": self.schedule,
            "lineage": self.lineage,
            "trial_id": self.trial_id,
        }
        save_state(state, os.path.join(checkpoint_dir, "state.pt"))
        WeightsSchedule.build(
            domains=self.domains.names,
            total_steps=self.trainer.cfg.steps,
            points=self.schedule,
            final_weights=self.trainer.policy.final_weights(self.trainer.step),
            method=self.spec.method,
            lineage=self.lineage,
            trial_id=self.trial_id,
            step=self.trainer.step,
            extra=dict(self.trainer.extra),
        ).write(Path(checkpoint_dir, "schedule.json"), indent=None)

    def load_checkpoint(self, checkpoint_dir: str) -> None:  # type: ignore[override]
        state = load_state(os.path.join(checkpoint_dir, "state.pt"), self.trainer.device)
        self.trainer.load_state_dict(state["trainer"])
        self.schedule = state["schedule"]
        self.lineage = state["lineage"]
        if state["trial_id"] != self.trial_id:
            # A PBT exploit: this trial continues the donor's run under its own new config.
            self.lineage.append(
                {
                    "step": self.trainer.step,
                    "donor": state["trial_id"],
                    "trial_id": self.trial_id,
                    "config": self.spec.searched(),
                }
            )

    def reset_config(self, new_config: dict[str, Any]) -> bool:
        # Actor reuse: rebuild from the new config; an exploit's checkpoint is loaded after.
        self._build(new_config)
        self.config = new_config
        return True
