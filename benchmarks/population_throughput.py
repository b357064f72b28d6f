"""Training tokens per second of a population of P proxies, trained three ways.

(a) P Ray Tune trials sharing the device: a minimal Tune function trainable that runs
    popmix's Trainer (the same loop ``MixtureTrainable`` runs, without its per-report
    validation and checkpoints, which are search costs that (b) and (c) would not pay), each
    trial asking 1/P of the CPUs (and 1/P of the GPU on ``--device cuda``);
(b) P Trainers stepped one after another in this process;
(c) one vectorised population (:class:`popmix.train.population.VectorPopulation`:
    ``stack_module_state`` + ``vmap``), each member on its own batch from its own Trainer's
    sampler, with its own AdamW state and gradient clip.

Every member is the default experiment's proxy (``load_experiment(None)``'s model and batch,
the stratified mixture, its own seed). ``--warmup`` steps per member run first and are not
timed (in (a) every trial also waits for all the others to finish theirs, so the timed steps
all run together); tokens/s counts the population's training tokens (batch x context) per second
of the timed steps. On a GPU the model FLOPs utilisation is tokens/s x (6N + 12 L d T) /
``--peak-tflops`` (PaLM's convention: N the parameters without the position table, attention
counted in full).

    python benchmarks/population_throughput.py [--members 1,4,16] [--steps 4] [--warmup 2]
        [--device cpu|cuda] [--peak-tflops 989] [--model model.d_model=64 ...] [--modes a,b,c]
        [--repeats 1] [--attention auto|fused|explicit] [--cpus N]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from popmix.config import load_experiment
from popmix.data import load_experiment_domains
from popmix.policies import build_policy
from popmix.train import ModelConfig, TrainConfig, Trainer
from popmix.train.loop import available_cpus
from popmix.train.population import VectorPopulation


def make_trainers(
    domains: Any, model: ModelConfig, cfg: TrainConfig, n: int, first_seed: int = 0
) -> list[Trainer]:
    out = []
    for seed in range(first_seed, first_seed + n):
        policy = build_policy("stratified", domains.sizes, cfg.steps, {})
        out.append(Trainer(domains, policy, model, dataclasses.replace(cfg, seed=seed)))
    return out


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def sequential(domains: Any, model: ModelConfig, cfg: TrainConfig, n: int, a: Any) -> float:
    """(b): tokens/s of n Trainers stepped in turn."""
    trainers = make_trainers(domains, model, cfg, n)
    for _ in range(a.warmup):
        for t in trainers:
            t.train_step()
    _sync(cfg.device)
    start = time.perf_counter()
    for _ in range(a.steps):
        for t in trainers:
            t.train_step()
    _sync(cfg.device)
    elapsed = time.perf_counter() - start
    return n * a.steps * cfg.batch_size * model.seq_len / elapsed


def vectorised(domains: Any, model: ModelConfig, cfg: TrainConfig, n: int, a: Any) -> float:
    """(c): tokens/s of one VectorPopulation of n members, batches drawn as the Trainer does."""
    trainers = make_trainers(domains, model, cfg, n)
    explicit = {"auto": None, "fused": False, "explicit": True}[a.attention]
    pop = VectorPopulation([t.model for t in trainers], cfg, explicit_attention=explicit)

    def step(k: int) -> None:
        batches = [t.draw_batch(t.policy.weights(k)) for t in trainers]
        tokens = torch.stack([b.tokens for b in batches])
        weight = torch.stack([b.example_weight for b in batches])
        pop.step(tokens, trainers[0].lr_at(k), weight)

    for k in range(a.warmup):
        step(k)
    _sync(cfg.device)
    start = time.perf_counter()
    for k in range(a.warmup, a.warmup + a.steps):
        step(k)
    _sync(cfg.device)
    elapsed = time.perf_counter() - start
    return n * a.steps * cfg.batch_size * model.seq_len / elapsed


def _trial(config: dict[str, Any], domains: Any) -> None:
    """One member as a Tune trial: warm up, wait for every trial, then time its steps."""
    from ray import tune

    cfg: TrainConfig = config["cfg"]
    (trainer,) = make_trainers(domains, config["model"], cfg, 1, first_seed=config["member"])
    for _ in range(config["warmup"]):
        trainer.train_step()
    _sync(trainer.device.type)
    ready = Path(config["ready"])
    (ready / str(config["member"])).touch()
    deadline = time.time() + 900  # a trial that never starts must not hang the others forever
    while len(os.listdir(ready)) < config["n"]:
        if time.time() > deadline:
            raise TimeoutError("not every trial started within 15 minutes")
        time.sleep(0.01)
    before = trainer.tokens_seen
    t0 = time.time()  # wall clock: comparable across the trials' processes on one machine
    for _ in range(config["steps"]):
        trainer.train_step()
    _sync(trainer.device.type)
    tune.report({"t0": t0, "t1": time.time(), "tokens": trainer.tokens_seen - before})


def tune_trials(domains: Any, model: ModelConfig, cfg: TrainConfig, n: int, a: Any) -> float:
    """(a): tokens/s of n concurrent Tune trials, from the first timed step to the last."""
    from ray import tune

    gpu = 1.0 / n if cfg.device.startswith("cuda") else 0.0
    with tempfile.TemporaryDirectory(prefix="popmix-throughput-") as tmp:
        ready = Path(tmp) / "ready"
        ready.mkdir()
        trial_cfg = dataclasses.replace(cfg, threads=max(1, a.cpus // n))
        grid = tune.Tuner(
            tune.with_resources(
                tune.with_parameters(_trial, domains=domains), {"cpu": a.cpus / n, "gpu": gpu}
            ),
            param_space={
                "member": tune.grid_search(list(range(n))),
                **{"cfg": trial_cfg, "model": model, "n": n, "ready": str(ready)},
                **{"warmup": a.warmup, "steps": a.steps},
            },
            tune_config=tune.TuneConfig(reuse_actors=False),
            run_config=tune.RunConfig(storage_path=tmp, name="throughput", verbose=0),
        ).fit()
        results = [grid[i] for i in range(len(grid))]
        errors = [r.error for r in results if r.error]
        rows = [r.metrics for r in results if r.metrics is not None]
    if errors or len(rows) < n:
        raise RuntimeError(f"{n - len(rows)} trial(s) failed: {errors[:1]}")
    span = max(r["t1"] for r in rows) - min(r["t0"] for r in rows)
    return sum(r["tokens"] for r in rows) / span


def flops_per_token(model: ModelConfig, n_params: int) -> float:
    return 6.0 * n_params + 12.0 * model.n_layer * model.d_model * model.seq_len


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", default="1,4,16", help="population sizes P, comma-separated")
    ap.add_argument("--steps", type=int, default=4, help="timed optimizer steps per member")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps per member first")
    ap.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="measure each mode this many times and keep the best (others' load only slows)",
    )
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--peak-tflops", type=float, help="the device's peak, for the MFU (GPU)")
    ap.add_argument("--modes", default="a,b,c", help="which of a (Tune), b (loop), c (vmap)")
    ap.add_argument("--cpus", type=int, default=available_cpus(), help="Ray's CPUs for (a)")
    ap.add_argument(
        "--attention",
        choices=["auto", "fused", "explicit"],
        default="auto",
        help="(c)'s attention (auto: explicit on the CPU, where vmap would loop the fused one)",
    )
    ap.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="experiment overrides, e.g. model.d_model=64 or train.batch_size=32 (repeatable)",
    )
    a = ap.parse_args()
    members = [int(x) for x in a.members.split(",")]
    modes = set(a.modes.split(","))

    exp = load_experiment(None, a.model)
    domains = load_experiment_domains(exp)
    model = exp.model
    # the schedule spans exactly the steps run; no evaluation, only training is timed
    cfg = dataclasses.replace(
        exp.train, steps=a.warmup + a.steps, device=a.device, threads=a.cpus, eval_interval=0
    )
    probe = make_trainers(domains, model, cfg, 1)[0]
    n_params = sum(p.numel() for n, p in probe.model.named_parameters() if n != "pos.weight")
    precision = probe.precision
    del probe
    per_token = flops_per_token(model, n_params)
    on_gpu = a.device == "cuda"
    where = torch.cuda.get_device_name() if on_gpu else f"CPU, {a.cpus} threads"
    print(
        f"torch {torch.__version__} on {where}, {precision}; load average "
        f"{os.getloadavg()[0]:.1f} over {os.cpu_count()} cores\n"
        f"model {model.n_layer} layers x {model.d_model} ({n_params} parameters without the "
        f"position table), batch {cfg.batch_size} x {model.seq_len} tokens, "
        f"{per_token / 1e6:.1f} MFLOP per token; {a.warmup} warm-up + {a.steps} timed steps "
        f"per member, best of {a.repeats}\n(a) Tune function trainables running popmix's "
        "Trainer; (b) Trainers in turn; (c) VectorPopulation (vmap)"
    )

    started_ray = False
    if "a" in modes:
        import ray

        ray.init(
            address="local",
            num_cpus=a.cpus,
            num_gpus=1 if on_gpu else 0,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
        started_ray = True
    results: dict[int, dict[str, float]] = {}
    try:
        for n in members:
            row: dict[str, float] = {}
            # the modes alternate within each repeat, so a burst of load elsewhere on a
            # shared machine is unlikely to hit every measurement of one mode only
            for _ in range(a.repeats):
                for mode, measure in (("a", tune_trials), ("b", sequential), ("c", vectorised)):
                    if mode in modes:
                        v = measure(domains, model, cfg, n, a)
                        row[mode] = max(v, row.get(mode, 0.0))
            results[n] = row
            print(f"  P={n}: " + ", ".join(f"{k} {v:,.0f} tok/s" for k, v in row.items()))
    finally:
        if started_ray:
            import ray

            ray.shutdown()

    def mfu(v: float | None) -> str:
        if v is None or not on_gpu or not a.peak_tflops:
            return "n/a"
        return f"{100 * v * per_token / (a.peak_tflops * 1e12):.3f}%"

    def num(v: float | None) -> str:
        return "-" if v is None else f"{v:,.0f}"

    def ratio(x: float | None, y: float | None) -> str:
        return "-" if x is None or y is None else f"{x / y:.2f}x"

    print()
    head = ["P", "a tok/s", "b tok/s", "c tok/s", "c/a", "c/b", "MFU a", "MFU b", "MFU c"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for n, r in results.items():
        ra, rb, rc = r.get("a"), r.get("b"), r.get("c")
        cells = [str(n), num(ra), num(rb), num(rc), ratio(rc, ra), ratio(rc, rb)]
        print("| " + " | ".join(cells + [mfu(ra), mfu(rb), mfu(rc)]) + " |")
    if on_gpu and not a.peak_tflops:
        print("MFU: give --peak-tflops (e.g. 989 for an H100/H200 in bf16)")


if __name__ == "__main__":
    main()
