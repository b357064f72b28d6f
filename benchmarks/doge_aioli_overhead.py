"""Step-time cost of DoGE and Aioli over a plain step, at 16 domains (brown16).

DoGE's goal: at most 1.3x a plain step (the reference re-implementation's k+1 full backward
passes cost about 1 + 2(k+1)/3 x, i.e. about 12x at k = 16). DoGE's per-domain gradients cost
about one ordinary forward and backward; target ``validation`` adds the held-out target
gradient, an ordinary forward and backward over target_batch windows (16 at k = 16, as many as
the default training batch), so that target cannot go much below 2x at batch 16; its share
falls as the batch grows (``--batch-size 64``: about 1.4x). ``--profile`` times each part.
Aioli's cost is its evaluations: (k * lp_rounds + 1) per round, printed per round and as a
share of the round's time. Blocks of steps alternate between methods so machine noise hits all
alike; every ratio is measured in the same run.

    python benchmarks/doge_aioli_overhead.py [--tasks 16] [--blocks 5] [--steps-per-block 10]
        [--profile] [--no-aioli] [--batch-size 16]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from popmix.data import load_domains
from popmix.policies import DomainSignals, build_policy
from popmix.train import ModelConfig, TrainConfig, Trainer, measure


def make(domains, method, params, steps, apply="sample", **train):
    cfg = TrainConfig(steps=steps, eval_interval=0, apply=apply, eval_windows=8, **train)
    return Trainer(domains, build_policy(method, domains.sizes, steps, params), ModelConfig(), cfg)


def part_ms(
    parts: dict[str, Callable[[], object]], rounds: int = 9, reps: int = 3
) -> tuple[dict[str, float], dict[str, float]]:
    """Median and best time of each part in ms over rounds; the parts alternate in every
    round. The best is the cost without interference from other work on the machine."""
    times: dict[str, list[float]] = {name: [] for name in parts}
    for f in parts.values():
        f()  # warm-up
    for _ in range(rounds):
        for name, f in parts.items():
            t0 = time.perf_counter()
            for _ in range(reps):
                f()
            times[name].append(1000 * (time.perf_counter() - t0) / reps)
    median = {name: statistics.median(ts) for name, ts in times.items()}
    return median, {name: min(ts) for name, ts in times.items()}


def profile(plain: Trainer, doge: Trainer) -> None:
    """What each part of a plain step and of a DoGE step (target validation) costs.

    The parts run on one batch, outside the step (no optimizer step in between), so the sum
    is an estimate of the step, not its measured time.
    """
    model, policy = doge.model, doge.policy
    asked = doge.needs.gradients
    assert asked is not None
    batch = doge.draw_batch(policy.weights(doge.step))
    target = doge._target_batch("validation")
    grads = measure.domain_gradients(model, batch.tokens, batch.ids, batch.counts, asked.clip)
    g_t = measure.mean_gradient(model, target, asked.clip)
    alpha = policy.weights(doge.step)
    # The optimizer part steps the plain run's model (the same shapes and cost), so DoGE's
    # model stays where the batch's gradients were measured.
    plain_params = list(plain.model.parameters())
    combined = grads.combine(alpha)
    signals = DomainSignals(
        step=doge.step,
        train_loss=measure.per_domain_mean(batch.ids, batch.counts, grads.example_loss),
        counts=batch.counts,
        lr=doge.lr_at(doge.step),
        grad_dots=grads.gram(),
        target_dots=grads.dots(g_t),
    )

    def forward() -> None:
        with torch.no_grad():
            model.example_losses(batch.tokens)

    def forward_backward() -> None:
        model.zero_grad(set_to_none=True)
        model.example_losses(batch.tokens).mean().backward()

    def optimizer() -> None:
        for p, g in zip(plain_params, combined):
            p.grad = g.view_as(p)
        torch.nn.utils.clip_grad_norm_(plain_params, 1.0)
        plain.optimizer.step()

    times = part_ms(
        {
            "forward (no grad)": forward,
            "forward+backward": forward_backward,
            # refilling the blocks in place, as the loop does (same batch: same values)
            "per-domain grads (+Gram)": lambda: measure.domain_gradients(
                model, batch.tokens, batch.ids, batch.counts, asked.clip, reuse=grads
            ),
            "  of which Gram": lambda: measure._raw_gram(grads.sums),
            "target gradient": lambda: measure.mean_gradient(model, target, asked.clip),
            "Gram to host": grads.gram,
            "target dots": lambda: grads.dots(g_t),
            "combine": lambda: grads.combine(alpha),
            "policy update": lambda: policy.update(signals),
            "set grads + clip + AdamW": optimizer,
        }
    )
    median, best = times
    print(
        f"profile (ms; one batch of {batch.tokens.shape[0]} windows, target batch "
        f"{target.shape[0]}; the 'x' columns are over a plain step = forward+backward + "
        "optimizer):"
    )
    print(f"  {'part':<26} {'median':>7} {'x':>6} {'best':>7} {'x':>6}")
    for t in (median, best):
        t["plain step"] = t["forward+backward"] + t["set grads + clip + AdamW"]
    for name in median:
        m, b = median[name], best[name]
        print(
            f"  {name:<26} {m:7.1f} {m / median['plain step']:5.2f}x "
            f"{b:7.1f} {b / best['plain step']:5.2f}x"
        )
    for label, t in (("median", median), ("best", best)):
        fb = t["forward+backward"]
        others = t["per-domain grads (+Gram)"] + t["Gram to host"] + t["combine"]
        others += t["policy update"] + t["set grads + clip + AdamW"]
        validation = others + t["target gradient"] + t["target dots"]
        print(
            f"  {label}: backward alone {fb - t['forward (no grad)']:.1f} ms; per-domain "
            f"gradients {t['per-domain grads (+Gram)'] / fb:.2f}x an ordinary forward+backward; "
            f"sum of parts: doge others {others / t['plain step']:.2f}x, doge validation "
            f"{validation / t['plain step']:.2f}x a plain step"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=16)
    ap.add_argument("--blocks", type=int, default=5)
    ap.add_argument("--steps-per-block", type=int, default=10)
    ap.add_argument("--profile", action="store_true", help="time each part of a DoGE step")
    ap.add_argument("--no-aioli", action="store_true", help="skip the Aioli round")
    ap.add_argument(
        "--batch-size", type=int, help="training batch of the DoGE comparison (default: 16)"
    )
    args = ap.parse_args()
    train = {} if args.batch_size is None else {"batch_size": args.batch_size}
    domains = load_domains("brown16", args.tasks)
    k = len(domains)
    total = args.blocks * args.steps_per_block + 5
    runs = {
        "plain (stratified batches)": make(domains, "stratified", {}, total, "loss", **train),
        "doge, target others": make(domains, "doge", {"target": "others"}, total, **train),
        "doge, target validation": make(domains, "doge", {"target": "validation"}, total, **train),
    }
    for t in runs.values():
        t.train(2)
    times = {name: [] for name in runs}
    for _ in range(args.blocks):
        for name, t in runs.items():
            t0 = time.perf_counter()
            t.train(args.steps_per_block)
            times[name].append((time.perf_counter() - t0) / args.steps_per_block)
    plain = statistics.median(times["plain (stratified batches)"])
    plain_best = min(times["plain (stratified batches)"])
    print(
        f"{k} domains, batch {runs['doge, target others'].cfg.batch_size} x "
        f"{runs['doge, target others'].model_cfg.seq_len}; median block (best block: the "
        "time without interference from other work on the machine)"
    )
    for name, ts in times.items():
        ms, best = 1000 * statistics.median(ts), 1000 * min(ts)
        print(
            f"  {name:<28} {ms:7.1f} ms/step   {ms / 1000 / plain:5.2f}x plain   "
            f"(best {best:6.1f} ms/step, {best / 1000 / plain_best:5.2f}x)"
        )
    print(f"  reference design estimate (k+1 full backwards): {1 + 2 * (k + 1) / 3:.1f}x plain")
    if args.profile:
        profile(runs["plain (stratified batches)"], runs["doge, target validation"])
    if args.no_aioli:
        return

    # Aioli: one round = LearnParams (lp_rounds * k * lp_steps steps) + exploitation steps.
    params = {"eta": 0.2, "lp_rounds": 1, "lp_steps": 2, "update_steps": 3 * k, "eval_windows": 8}
    steps = params["update_steps"]
    aioli = make(domains, "aioli", params, steps + 1)
    static = make(domains, "stratified", {}, steps + 1)
    aioli.train(1)  # warm-up; its first round starts at step 0 (the start evaluation)
    static.train(1)
    t0 = time.perf_counter()
    static.train(steps)
    t_static = time.perf_counter() - t0
    t0 = time.perf_counter()
    aioli.train(steps)
    t_aioli = time.perf_counter() - t0
    evals = aioli.policy.evals
    print(
        f"aioli round of {steps} steps (LearnParams {aioli.policy.lp_duration} steps, "
        f"{evals} evaluations of {params['eval_windows']} windows x {k} domains):"
    )
    print(
        f"  {t_aioli:.1f} s vs {t_static:.1f} s for the same steps without Aioli: "
        f"+{t_aioli - t_static:.1f} s per round ({t_aioli / t_static:.2f}x); "
        f"counted extra work {aioli.extra_step_equivalents():.1f} step-equivalents"
    )


if __name__ == "__main__":
    main()
