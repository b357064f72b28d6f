"""``popmix calibrate``: how far the proxy can be trusted, measured on the user's own data.

Every figure popmix gives is read off small proxy runs, so the proxy is the instrument. A
calibration trains S seeds (default 5) of ``stratified`` and ``proportional`` with the
experiment's proxy, as trials of one Tune experiment (they run at once where the cluster has
room), and reports:

- the **seed spread** of mean and worst test perplexity per method (mean, std and its share of
  the mean, min, max, 95% interval of the mean);
- the **evaluation noise**: the standard deviation of a run's mean test perplexity when the
  same model is scored on resampled test windows (a bootstrap, ``test_mean_ppl_se``), to set
  against the seed spread;
- whether the runs **split** into clusters (the largest gap between sorted seeds more than 4
  times the spread within either side and 1% of the median,
  :func:`popmix._util.stats.split_seeds`) or
  **spike** (:mod:`popmix.train.health`);
- the **smallest paired difference** that 2, 3 and 5 seeds resolve at 95%: the half-width of
  the paired interval, t(n-1) * sd / sqrt(n), with sd the spread over seeds of stratified minus
  proportional (a seed's paired difference; their true difference does not enter a spread);
- with a sweep, the same for each proxy setting (stratified only beyond the first), and the
  **recommended** setting: the lowest mean test loss among those whose stratified spread meets
  the target (std at most :data:`TARGET_STD_SHARE` of the mean, no seed split off, nothing
  diverged or spiked).

The default sweep (``--sweep``) varies one thing at a time around the experiment's proxy: the
learning rate halved and doubled, and the warm-up doubled (as a share of the steps, at most
0.5); ``--sweep-grid "train.lr=0.001,0.003 train.steps=1000,2000"`` crosses any keys instead.

Files, under ``<storage>/<name>/``: Tune's folders and TensorBoard logs (``setting<i>/``),
``calibrate.json`` and, when a setting meets the target, ``calibrated.yaml``: the experiment
with the recommended proxy, which ``popmix search --experiment`` takes. One line per measured
setting goes to ``<storage>/calibrations.jsonl`` (:mod:`popmix.tune.proxy`), from which a later
``popmix search`` on an unstable proxy warns.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from ray import tune

from popmix._util.stats import SPLIT_RATIO, mean_ci, paired, resolvable_difference, split_seeds
from popmix.config import (
    ConfigError,
    Experiment,
    SearchSpace,
    VectorSpec,
    experiment_to_dict,
    packaged_dir,
    parse_override,
    resolve_space_path,
    with_overrides,
)
from popmix.records.trial import TrialSpec
from popmix.tune.callbacks import ProgressPrinter, catch_sigint
from popmix.tune.cluster import RaySession, SearchOptions, resolve_cpus, tune_environment
from popmix.tune.proxy import proxy_fingerprint, record_calibration
from popmix.tune.runner import TunerRun, run_tuner
from popmix.tune.search import resolve
from popmix.tune.searchers import TunerParts
from popmix.tune.spec import TrialSettings
from popmix.tune.trainable import MixtureTrainable

#: the target of a proxy that measures: the seed std of stratified's mean test perplexity at
#: most this share of its mean
TARGET_STD_SHARE = 0.01
#: seeds a setting needs before it can be called stable (the target is a 5-seed spread)
MIN_SEEDS = 5
#: the methods of the first setting; the sweep's other settings train the first only
METHODS = ("stratified", "proportional")
#: seed counts the resolvable difference is given for
RESOLVE_SEEDS = (2, 3, 5)


@dataclass(frozen=True)
class ProxySetting:
    """One proxy a calibration measures: the experiment with ``overrides`` (dotted keys)."""

    label: str
    overrides: tuple[tuple[str, Any], ...] = ()


def default_sweep(exp: Experiment) -> list[ProxySetting]:
    """The experiment's proxy, the learning rate halved and doubled, the warm-up doubled."""
    t = exp.train
    warm = min(0.5, max(2 * t.warmup / t.steps, 0.1))
    return [
        ProxySetting("as given"),
        ProxySetting(f"lr {t.lr / 2:g}", (("train.lr", t.lr / 2),)),
        ProxySetting(f"lr {t.lr * 2:g}", (("train.lr", t.lr * 2),)),
        ProxySetting(
            f"warm-up {warm:.3g}", (("train.warmup_steps", None), ("train.warmup_frac", warm))
        ),
    ]


def parse_grid(text: str) -> list[ProxySetting]:
    """``"train.lr=0.001,0.003 train.warmup_frac=0.1,0.2"``: every combination, the
    experiment's own proxy first.

    Raises:
        ConfigError: an item is not ``KEY=V1,V2,...``.
    """
    axes = []
    for item in text.split():
        key, _, values = item.partition("=")
        if not key or not values:
            raise ConfigError(
                f"--sweep-grid item {item!r}: expected KEY=V1,V2 (e.g. train.lr=0.001,0.003)"
            )
        axes.append([parse_override(f"{key}={v}") for v in values.split(",") if v != ""])
    if not axes:
        raise ConfigError("--sweep-grid is empty; give KEY=V1,V2 items, e.g. train.lr=0.001,0.003")
    settings = [ProxySetting("as given")]
    for combo in itertools.product(*axes):
        label = " ".join(f"{k}={v}" for k, v in combo)
        settings.append(ProxySetting(label, tuple(combo)))
    return settings


def _fit(values: list[float | None]) -> dict[str, Any]:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    s = mean_ci(finite)
    share = s["std"] / s["mean"] if s["std"] is not None and s["mean"] else None
    return {
        **s,
        "std_share": share,
        "min": min(finite) if finite else None,
        "max": max(finite) if finite else None,
        "values": values,
    }


def analyse_method(records: list[dict[str, Any]]) -> dict[str, Any]:
    """One method's runs (one per seed): spread, evaluation noise, split, spikes."""
    records = sorted(records, key=lambda r: r["seed"])
    metric = [(r.get("metrics") or {}) if r["status"] == "ok" else {} for r in records]
    mean_ppl = [m.get("test_mean_ppl") for m in metric]
    finite = [(r["seed"], v) for r, v in zip(records, mean_ppl) if v is not None]
    outliers = [finite[i][0] for i in split_seeds([v for _, v in finite])]
    noise = [m["test_mean_ppl_se"] for m in metric if m.get("test_mean_ppl_se") is not None]
    spikes = [int((r.get("metrics") or {}).get("loss_spikes") or 0) for r in records]
    losses = [m["test_mean_loss"] for m in metric if m.get("test_mean_loss") is not None]
    return {
        "seeds": [r["seed"] for r in records],
        "test_mean_ppl": _fit(mean_ppl),
        "test_worst_ppl": _fit([m.get("test_worst_ppl") for m in metric]),
        "test_mean_loss": sum(losses) / len(losses) if losses else None,
        "eval_noise": sum(noise) / len(noise) if noise else None,
        "split_seeds": outliers,
        "loss_spikes": sum(spikes),
        "runs_with_spikes": sum(s > 0 for s in spikes),
        "not_finished": [r["seed"] for r in records if r["status"] != "ok"],
    }


def verdict(methods: dict[str, dict[str, Any]]) -> tuple[bool, list[str]]:
    """(stable, reasons it is not) for a setting: stratified's spread against the target over
    at least :data:`MIN_SEEDS` finished seeds, and for every method whether its seeds split or
    failed to finish."""
    reasons = []
    for m, a in methods.items():
        if a["not_finished"]:
            reasons.append(f"{m}: seeds {a['not_finished']} did not finish (diverged or failed)")
        if a["split_seeds"]:
            reasons.append(f"{m}: seeds {a['split_seeds']} split off from the others")
    stratified = methods.get(METHODS[0])
    fit = None if stratified is None else stratified["test_mean_ppl"]
    finished = 0 if fit is None else fit["n"]
    if finished < MIN_SEEDS:
        reasons.append(
            f"{finished} finished seeds of stratified: the target is judged over {MIN_SEEDS}"
        )
    if fit is not None and fit["std_share"] is not None and fit["std_share"] > TARGET_STD_SHARE:
        reasons.append(
            f"stratified's seed std is {100 * fit['std_share']:.2f}% of its mean test ppl "
            f"(target {100 * TARGET_STD_SHARE:g}%)"
        )
    return not reasons, reasons


def notes(methods: dict[str, dict[str, Any]]) -> list[str]:
    """What is worth knowing but does not decide stability: loss spikes (a run that recovers
    from one costs nothing the spread does not already show) and evaluation noise that is not
    far below the seed spread."""
    out = []
    for m, a in methods.items():
        if a["runs_with_spikes"]:
            out.append(
                f"{m}: {a['runs_with_spikes']} of {len(a['seeds'])} runs had loss spikes "
                f"({a['loss_spikes']} in all)"
            )
        std, noise = a["test_mean_ppl"]["std"], a["eval_noise"]
        if std and noise and noise > std / 2:
            out.append(
                f"{m}: the evaluation noise ({noise:.3f}) is not far below the seed spread "
                f"({std:.3f}): raise train.test_windows"
            )
    return out


def paired_resolution(by_method: dict[str, list[dict[str, Any]]]) -> dict[str, Any] | None:
    """Stratified against proportional paired by seed, and what n seeds resolve."""
    if not all(m in by_method for m in METHODS):
        return None
    a = {r["seed"]: (r.get("metrics") or {}).get("test_mean_ppl") for r in by_method[METHODS[0]]}
    b = {r["seed"]: (r.get("metrics") or {}).get("test_mean_ppl") for r in by_method[METHODS[1]]}
    pairs: dict[int, tuple[float, float]] = {}
    for seed, x in sorted(a.items()):
        y = b.get(seed)
        if x is not None and y is not None:
            pairs[seed] = (float(x), float(y))
    if len(pairs) < 2:
        return None
    diffs = [x - y for x, y in pairs.values()]
    sd = mean_ci(diffs)["std"]
    return {
        "between": list(METHODS),
        "seeds": sorted(pairs),
        "per_seed": diffs,
        **paired([x for x, _ in pairs.values()], [y for _, y in pairs.values()]),
        "paired_std": sd,
        "resolvable": {str(n): resolvable_difference(sd, n) for n in RESOLVE_SEEDS},
    }


def _calibrated_file(exp: Experiment, path: Path, note: str) -> None:
    """The user's experiment (its methods and seeds) with the recommended proxy."""
    data = experiment_to_dict(exp)
    try:
        space = resolve_space_path(exp.search.space, exp.source)
    except ConfigError:
        space = None
    if space is not None and space.parent != packaged_dir("search_spaces"):
        data["search"]["space"] = str(space.resolve())  # found from the new file's folder too
    if data["data"].get("path"):
        data["data"]["path"] = str(Path(data["data"]["path"]).resolve())
    data["name"] = f"{exp.name}-calibrated"
    header = "".join(f"# {line}\n" for line in note.splitlines())
    path.write_text(header + yaml.safe_dump(data, sort_keys=False))


def run_calibration(
    exp: Experiment,
    opts: SearchOptions,
    seeds: int = 5,
    sweep: list[ProxySetting] | None = None,
) -> dict[str, Any]:
    """Calibrate the experiment's proxy (and a sweep's); returns what ``calibrate.json`` holds.

    Raises:
        ConfigError, DataError: bad experiment, data, sweep or cluster address.
        KeyboardInterrupt: Ctrl-C; what finished is written first.
    """
    if seeds < 2:
        raise ConfigError(f"--seeds {seeds}: a spread needs at least 2 seeds (5 recommended)")
    if "://" in opts.storage:
        raise ConfigError(
            f"--storage {opts.storage}: popmix calibrate keeps its runs and its record of "
            "calibrations in a folder; give a folder (a URI is for popmix search)"
        )
    settings = sweep or [ProxySetting("as given")]
    user_exp = exp
    base = exp.replace(methods=METHODS, seeds=tuple(range(seeds)))
    space = SearchSpace(sample_weights=VectorSpec(), source="calibration")  # unused: no population
    plan = resolve(base, space, opts)
    domains = plan.domains
    names = domains.names
    variants = []
    for i, setting in enumerate(settings):
        try:
            variant = with_overrides(base, setting.overrides)
        except ConfigError as e:
            raise ConfigError(f"sweep setting {setting.label!r}: {e}") from None
        if variant.model.kind != "popmix":
            # a transformers or custom model takes its size from its own config, not these
            sized = [
                k
                for k in ("n_layer", "n_head", "d_model")
                if getattr(variant.model, k) != getattr(base.model, k)
            ]
            if sized:
                raise ConfigError(
                    f"sweep setting {setting.label!r}: model.{sized[0]} does not change a "
                    f"{variant.model.kind} model (its size is in its own config); sweep "
                    "train.* or model.seq_len instead"
                )
        domains.check(variant.model.seq_len + 1)
        methods = METHODS if i == 0 else METHODS[:1]
        variants.append(variant.replace(methods=methods))
    exp_dir, out = plan.exp_dir, plan.out
    say = (lambda *a, **k: None) if opts.quiet else print
    n_runs = sum(len(v.methods) * seeds for v in variants)
    say(
        f"popmix calibrate: {', '.join(METHODS)} x {seeds} seeds on {domains.name} "
        f"({len(domains)} domains), {base.train.steps} steps per model, {len(settings)} proxy "
        f"setting{'s' if len(settings) > 1 else ''} ({n_runs} runs)"
    )
    say(f"  experiment folder: {exp_dir}")
    env, env_defaults = tune_environment(opts)
    session = RaySession(opts, env, env_defaults, plan.logger_levels(), base.search.seed)
    results: list[dict[str, Any]] = []
    start = time.time()
    with session, catch_sigint("popmix calibrate") as interrupted:
        exp_dir.mkdir(parents=True, exist_ok=True)
        out.mkdir(parents=True, exist_ok=True)
        try:
            for i, (setting, variant) in enumerate(zip(settings, variants)):
                if interrupted.is_set():
                    break
                specs = [
                    TrialSpec.single(variant, m, s, names)
                    for m in variant.methods
                    for s in variant.seeds
                ]
                cpus = resolve_cpus(variant, len(specs))
                trial_settings = TrialSettings.of(variant, space, cpus)
                trainable = tune.with_resources(
                    tune.with_parameters(
                        MixtureTrainable, domains=domains, settings=trial_settings
                    ),
                    {"cpu": cpus, "gpu": variant.resources.gpus_per_trial},
                )
                say(f"  setting {i + 1} of {len(settings)}: {setting.label}", flush=True)
                progress = ProgressPrinter(
                    variant.train.steps, every_report=False, seed_in_label=True
                )
                run = TunerRun(
                    name=f"setting{i}",
                    storage=str(exp_dir),
                    tensorboard=exp_dir / "tensorboard" / f"setting{i}",
                    parts=TunerParts.grid(specs),
                    max_failures=exp.resources.max_failures,
                    callbacks=() if opts.quiet else (progress,),
                )
                records = run_tuner(trainable, run, interrupted)
                results.append(_setting_result(setting, variant, records, names))
        finally:
            report = _report(user_exp, base, results, domains.name, names, seeds, start)
            _write(report, user_exp, variants, results, out, Path(opts.storage), names)
    if results:
        say("")
        print(format_calibration(report))
    if interrupted.is_set():
        raise KeyboardInterrupt(f"wrote what finished to {out / 'calibrate.json'}")
    return report


def _setting_result(
    setting: ProxySetting, variant: Experiment, records: list[dict[str, Any]], names: list[str]
) -> dict[str, Any]:
    by_method: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_method.setdefault(r["method"], []).append(r)
    methods = {m: analyse_method(rs) for m, rs in by_method.items()}
    stable, reasons = verdict(methods)
    t = variant.train
    return {
        "label": setting.label,
        "overrides": {k: v for k, v in setting.overrides},
        "proxy": {
            "lr": t.lr,
            "warmup_steps": t.warmup,
            "steps": t.steps,
            "batch_size": t.batch_size,
            "grad_clip": t.grad_clip,
            "model": {
                "n_layer": variant.model.n_layer,
                "d_model": variant.model.d_model,
                "seq_len": variant.model.seq_len,
            },
        },
        "fingerprint": proxy_fingerprint(variant, names),
        "methods": methods,
        "paired": paired_resolution(by_method),
        "stable": stable,
        "reasons": reasons,
        "notes": notes(methods),
    }


def _report(
    user_exp: Experiment,
    base: Experiment,
    results: list[dict[str, Any]],
    benchmark: str,
    names: list[str],
    seeds: int,
    start: float,
) -> dict[str, Any]:
    meeting = [r for r in results if r["stable"]]
    best = min(
        meeting,
        key=lambda r: r["methods"][METHODS[0]]["test_mean_loss"] or math.inf,
        default=None,
    )
    return {
        "experiment": user_exp.source,
        "benchmark": benchmark,
        "domains": names,
        "seeds": list(range(seeds)),
        "target": {"std_share": TARGET_STD_SHARE, "split_gap_ratio": SPLIT_RATIO},
        "settings": results,
        "stable": bool(results) and results[0]["stable"],
        "recommended": None if best is None else best["label"],
        "recommended_experiment": None,
        "wall_time_s": time.time() - start,
    }


def _write(
    report: dict[str, Any],
    user_exp: Experiment,
    variants: list[Experiment],
    results: list[dict[str, Any]],
    out: Path,
    storage: Path,
    names: list[str],
) -> None:
    path = out / "calibrate.json"
    if report["recommended"] is not None:
        i = next(k for k, r in enumerate(results) if r["label"] == report["recommended"])
        proxy = variants[i]
        # the user's methods and seeds, with the recommended proxy's model and training
        chosen = user_exp.replace(model=proxy.model, train=proxy.train, data=proxy.data)
        target = out / "calibrated.yaml"
        _calibrated_file(
            chosen,
            target,
            f"Written by popmix calibrate ({path}): the proxy setting "
            f"'{report['recommended']}',\nthe lowest mean test loss among the settings whose "
            f"seed spread met the target.\nLaunch: popmix search --experiment {target}",
        )
        report["recommended_experiment"] = str(target)
    path.write_text(json.dumps(report, indent=2, default=str))
    for r in results:
        record_calibration(
            storage.resolve(),
            {
                "fingerprint": r["fingerprint"],
                "stable": r["stable"],
                "reasons": r["reasons"],
                "setting": r["label"],
                "calibrate_json": str(path),
                "recommended_experiment": report["recommended_experiment"],
                "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
            },
        )


def _f(x: Any, spec: str) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def format_calibration(report: dict[str, Any]) -> str:
    """The printed table: one row per setting and method, then the paired resolution."""
    header = (
        f"{'setting':<22}{'method':<14}{'mean test ppl':>14}{'std':>8}{'(% mean)':>9}"
        f"{'min':>9}{'max':>9}{'worst ppl':>10}{'eval noise':>11}{'spikes':>7}  split"
    )
    lines = [header, "-" * len(header)]
    for s in report["settings"]:
        for m, a in s["methods"].items():
            fit = a["test_mean_ppl"]
            share = None if fit["std_share"] is None else 100 * fit["std_share"]
            lines.append(
                f"{s['label'][:21]:<22}{m:<14}{_f(fit['mean'], '.3f'):>14}"
                f"{_f(fit['std'], '.3f'):>8}{_f(share, '.2f'):>8}%{_f(fit['min'], '.3f'):>9}"
                f"{_f(fit['max'], '.3f'):>9}{_f(a['test_worst_ppl']['mean'], '.3f'):>10}"
                f"{_f(a['eval_noise'], '.4f'):>11}{a['loss_spikes']:>7}  "
                f"{','.join(map(str, a['split_seeds'])) or 'no'}"
            )
    lines.append("")
    for s in report["settings"]:
        p = s["paired"]
        if p is None:
            continue
        res = ", ".join(f"{n} seeds {v:.3f}" for n, v in p["resolvable"].items())
        lo, hi = p["ci95"]
        lines.append(
            f"{s['label']}: stratified - proportional, paired by seed: {p['diff_mean']:+.3f} "
            f"[{lo:+.3f}, {hi:+.3f}] ({p['verdict']}); one seed's paired difference spreads "
            f"by {p['paired_std']:.3f}, so the smallest difference resolved at 95% is {res}"
        )
    for s in report["settings"]:
        state = "stable" if s["stable"] else "unstable: " + "; ".join(s["reasons"])
        lines.append(f"{s['label']}: {state}")
        lines += [f"{s['label']}: note: {n}" for n in s.get("notes", [])]
    if report["recommended"] is not None:
        lines.append(
            f"recommended: {report['recommended']}; popmix search --experiment "
            f"{report['recommended_experiment']}"
        )
    else:
        more = "" if len(report["settings"]) > 1 else "--sweep, "
        lines.append(
            "recommended: none met the target (std <= 1% of the mean, no split); "
            f"try {more}more steps or a lower learning rate"
        )
    return "\n".join(lines)


__all__ = ["ProxySetting", "default_sweep", "format_calibration", "parse_grid", "run_calibration"]
