"""``popmix init``: a commented experiment for your corpus, written from what is in it.

The domains and their sizes are found as ``popmix search`` finds them (the same discovery and
manifest: :func:`popmix.data.corpus.scan_corpus`); groups are suggested from the names; the
seeds are sized by the noise ``popmix calibrate`` measured on this proxy when it has
(:mod:`popmix.tune.proxy` keeps the record), and the steps by ``--budget-minutes`` from a few
steps timed here. The file it writes is what ``popmix search --experiment`` reads, unchanged.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from popmix.cli._base import DATA_FLAGS, Command, UsageError, argument_group, non_negative_int
from popmix.config import (
    BEST_OF_N,
    Experiment,
    experiment_from_dict,
    with_overrides,
)

# this machine's CPUs, GPUs and pace: shared with popmix search --dry-run
from popmix.tune.plan import TIMED_STEPS, seconds_per_step, usable_cpus, visible_gpus

#: ISO 639-1: the two-letter language codes. A corpus whose every domain is named by one
#: (``en``, ``pt-BR``, ``zh_Hans``) or whose names all start with one (``en_wiki``) is read as
#: multilingual.
ISO_639_1 = frozenset(
    """aa ab ae af ak am an ar as av ay az ba be bg bi bm bn bo br bs ca ce ch co cr cs cu cv
    cy da de dv dz ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr
    ht hu hy hz ia id ie ig ii ik io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw
    ky la lb lg li ln lo lt lu lv mg mh mi mk ml mn mr ms mt my na nb nd ne ng nl nn no nr nv
    ny oc oj om or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk sl sm sn so sq sr
    ss st su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi vo wa wo xh yi
    yo za zh zu""".split()
)
#: what separates a name's parts: ``en_wiki``, ``pt-BR``, ``web.en``
_SEPARATOR = re.compile(r"[_\-.]")
#: languages are split into high and low resource only when the largest is at least this many
#: times the smallest: below it, "high" and "low" would name sizes that hardly differ
HIGH_LOW_RATIO = 4.0
#: the seeds are the fewest that resolve a paired difference of this share of stratified's
#: mean test perplexity: the 1% a shipped proxy's seed spread is held to (popmix calibrate)
RESOLVE_SHARE = 0.01
#: ... up to this many (the seed count popmix calibrate judges a proxy's spread over)
MAX_SEEDS = 5
#: seeds without a calibration: the fewest that give an interval with some room (2 seeds'
#: t quantile is 12.7, 3 seeds' 4.3)
UNCALIBRATED_SEEDS = 3
#: PBT decisions a budget sized by --budget-minutes keeps at the least: on oracle16 the gain
#: came with a decision at every report (docs/benchmarks/oracle16.md#pbt-in-rounds), and a
#: population that is never ranked is best-of-n at a higher price
MIN_DECISIONS = 4
#: ... reporting at most this often (each report validates every domain)
MIN_REPORT_EVERY = 10


# ---------------------------------------------------------------------------------------------
# what the names suggest


@dataclass(frozen=True)
class Groups:
    """Groups suggested from the domains' names, and why."""

    groups: dict[str, list[str]]
    why: str
    languages: bool = False


def _parts(name: str) -> list[str]:
    return [p for p in _SEPARATOR.split(name) if p]


def is_language(name: str) -> bool:
    """A two-letter ISO 639-1 code, alone or with a region (``pt-BR``, ``pt_br``) or a
    script, title-cased as ISO 15924 writes it (``zh_Hans``; ``en_wiki`` is no script)."""
    parts = _parts(name)
    if not parts or parts[0].lower() not in ISO_639_1:
        return False
    return all(p.isalpha() and (len(p) == 2 or (len(p) == 4 and p.istitle())) for p in parts[1:])


def suggest_groups(names: Sequence[str], sizes: Sequence[float]) -> Groups:
    """Groups of domains the names suggest: languages split by size into high and low
    resource, else the prefixes several names share (``en_*``, ``de_*``)."""
    if len(names) >= 2 and all(is_language(n) for n in names):
        big, small = max(sizes), min(sizes)
        if small <= 0 or big / small < HIGH_LOW_RATIO:
            return Groups({}, "languages of similar sizes: no high and low split", True)
        # the geometric mean of the sizes: the middle on the log scale sizes are compared on
        cut = math.exp(sum(math.log(s) for s in sizes) / len(sizes))
        high = [n for n, s in zip(names, sizes) if s >= cut]
        low = [n for n, s in zip(names, sizes) if s < cut]
        return Groups(
            {"high": high, "low": low},
            "languages (ISO 639-1 codes), split at the geometric mean of their sizes",
            True,
        )
    by_prefix: dict[str, list[str]] = {}
    for n in names:
        parts = _parts(n)
        if len(parts) >= 2:
            by_prefix.setdefault(parts[0], []).append(n)
    shared = {p: ns for p, ns in by_prefix.items() if len(ns) >= 2}
    if not shared or (len(shared) == 1 and len(next(iter(shared.values()))) == len(names)):
        return Groups({}, "no prefix shared by some of the names")
    languages = all(p.lower() in ISO_639_1 for p in by_prefix) and len(by_prefix) == len(
        {p for n in names for p in _parts(n)[:1]}
    )
    return Groups(
        dict(sorted(shared.items())),
        "names that share a prefix" + (" (ISO 639-1 language codes)" if languages else ""),
        languages,
    )


# ---------------------------------------------------------------------------------------------
# seeds from a calibration


@dataclass(frozen=True)
class Noise:
    """What a calibration of this proxy measured, and the seeds it asks for."""

    seeds: int
    calibrate_json: str
    paired_std: float | None = None
    mean_ppl: float | None = None
    resolves: dict[int, float] = field(default_factory=dict)
    stable: bool = True
    reasons: tuple[str, ...] = ()
    recommended_experiment: str | None = None


def seeds_for(paired_std: float, mean_ppl: float) -> tuple[int, dict[int, float]]:
    """The fewest seeds (2 to :data:`MAX_SEEDS`) whose paired interval resolves
    :data:`RESOLVE_SHARE` of ``mean_ppl`` (else the most), and what each count resolves."""
    from popmix._util.stats import resolvable_difference

    resolves = {n: resolvable_difference(paired_std, n) for n in range(2, MAX_SEEDS + 1)}
    target = RESOLVE_SHARE * mean_ppl
    n = next((k for k, d in resolves.items() if d <= target), MAX_SEEDS)
    return n, resolves


def calibration_of(exp: Experiment, names: list[str], storage: Path) -> Noise | None:
    """The latest calibration of ``exp``'s proxy recorded under ``storage``, read back from
    its ``calibrate.json``; None when there is none (or its file is gone)."""
    from popmix.tune.proxy import latest_calibration, proxy_fingerprint

    entry = latest_calibration(storage, proxy_fingerprint(exp, names))
    if entry is None:
        return None
    try:
        report = json.loads(Path(entry["calibrate_json"]).read_text())
    except (OSError, ValueError, KeyError):
        return None
    setting = next(
        (s for s in report.get("settings", []) if s.get("label") == entry.get("setting")), None
    )
    paired = (setting or {}).get("paired") or {}
    strat = ((setting or {}).get("methods") or {}).get("stratified") or {}
    # calibrate.json called it mean_test_ppl before the one name per quantity
    mean = (strat.get("test_mean_ppl") or strat.get("mean_test_ppl") or {}).get("mean")
    sd = paired.get("paired_std")
    noise = Noise(
        seeds=UNCALIBRATED_SEEDS,
        calibrate_json=str(entry["calibrate_json"]),
        stable=bool(entry.get("stable")),
        reasons=tuple(entry.get("reasons") or ()),
        recommended_experiment=entry.get("recommended_experiment"),
    )
    if sd is None or mean is None:  # too few finished seeds to pair: no sizing from it
        return noise
    n, resolves = seeds_for(float(sd), float(mean))
    return dataclasses.replace(
        noise, seeds=n, paired_std=float(sd), mean_ppl=float(mean), resolves=resolves
    )


# ---------------------------------------------------------------------------------------------
# the file


def _flow(value: Any) -> str:
    """A value as one line of YAML (flow style)."""
    import yaml

    text = yaml.safe_dump(value, default_flow_style=True, width=10_000, sort_keys=False)
    return text.strip().removesuffix("...").strip()


def _size(n: int) -> str:
    return f"{n:,}"


@dataclass
class Plan:
    """Everything the written file says, with the reasons its comments give."""

    exp: Experiment
    path_given: str
    names: list[str]
    sizes: list[int]
    unit: str
    estimated: bool
    groups: Groups
    seeds_why: list[str]
    steps_why: list[str]
    resources_why: str
    next_commands: list[str]


_LANGUAGE_METHODS = ("pbt", BEST_OF_N, "proportional", "temperature", "cooldown", "stratified")
_DEFAULT_METHODS = ("pbt", BEST_OF_N, "stratified", "proportional", "cooldown")
_METHOD_NOTES = {
    "pbt": "the searched population (PBT over the search space)",
    BEST_OF_N: "the best on validation of population-many stratified seeds: PBT's control",
    "stratified": "every domain alike",
    "proportional": "each domain by its size",
    "temperature": "sizes to the power 1/T",
    "cooldown": "a high temperature, then T = 1 (Li et al. 2025)",
}


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _section(
    name: str,
    obj: Any,
    always: Sequence[str],
    notes: dict[str, str] | None = None,
    skip: Sequence[str] = (),
) -> list[str]:
    """``name:`` and its keys: those in ``always``, and every other that differs from the
    built-in default (so the file gives the proxy exactly, whatever ``--experiment`` set)."""
    notes = notes or {}
    default = type(obj)()
    lines = [f"{name}:"]
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.name in skip or f.name == "source":
            continue
        if f.name in always or value != getattr(default, f.name):
            note = f"    # {notes[f.name]}" if f.name in notes else ""
            lines.append(f"  {f.name}: {_flow(_plain(value))}{note}")
    return lines


def render(plan: Plan, out: Path) -> str:
    """The experiment file's text: every setting popmix search reads, each with why."""
    from popmix import __version__

    exp = plan.exp
    width = max(len(n) for n in plan.names)
    counted = "estimated from a sample of shards" if plan.estimated else "exact"
    space = Path(exp.search.space).stem if "/" not in exp.search.space else exp.search.space
    lines = [
        f"# Written by popmix init (popmix {__version__}) on "
        f"{datetime.date.today().isoformat()} for the corpus in {plan.path_given}.",
        f"# Launch: popmix search --experiment {out}",
        "# Every key is described in the configuration reference (docs/reference/config.md); a",
        "# flag or KEY=VALUE on the command line overrides this file. Paths are relative to the",
        "# folder popmix runs in.",
        f"name: {_flow(exp.name)}",
        *_section(
            "data",
            exp.data,
            ("path",),
            skip=("benchmark", "tasks", "groups", "domain_column", "rescan"),
        ),
        f"  # {len(plan.names)} domains; their sizes, {plan.unit} in the corpus ({counted}), "
        "are what proportional, temperature and Cooldown sample by:",
        *(f"  #   {n:<{width}}  {_size(v):>15}" for n, v in zip(plan.names, plan.sizes)),
    ]
    if plan.groups.groups:
        lines.append(f"  # groups: {plan.groups.why}; the table gives each group's mean")
        lines.append("  groups:")
        lines += [f"    {_flow(g)}: {_flow(ns)}" for g, ns in plan.groups.groups.items()]
    else:
        lines.append(f"  # no groups ({plan.groups.why}); add some as groups: {{NAME: [DOMAIN]}}")
    lines += _section("model", exp.model, ("n_layer", "n_head", "d_model", "seq_len"))
    lines += [f"# {why}" for why in plan.steps_why]
    lines += _section(
        "train",
        exp.train,
        ("steps", "batch_size", "lr", "warmup_frac", "eval_windows", "test_windows"),
        notes={"warmup_frac": "measured: docs/benchmarks/proxy-noise.md"},
        skip=("seed",),
    )
    search = _section(
        "search",
        dataclasses.replace(exp.search, space=space),
        (
            "searcher",
            "space",
            "population",
            "report_every",
            "perturbation_interval",
            "rounds",
            "fitness",
            "burn_in",
            "objective",
            "reference",
        ),
        notes={
            "perturbation_interval": "reports between PBT's decisions",
            "burn_in": "share of training before PBT's first decision (docs/how-to/swarm.md)",
            "fitness": "what a round ranks on: last, average or forecast (oracle16.md#forecast)",
            "rounds": "the whole population ranked on the same step (docs/explanation/methods.md)",
            "space": {
                "sampling": "per-domain sampling weights",
                "temperature": "a temperature schedule: T_start, T_end, the switch",
            }.get(space, "what the population searches"),
            "reference": "every method is compared with it, paired by seed",
        },
    )
    lines += search
    lines.append("# the methods compared, as trials of one search:")
    lines += [f"#   {meth}: {_METHOD_NOTES.get(meth, '')}".rstrip() for meth in exp.methods]
    lines.append(f"methods: {_flow(list(exp.methods))}")
    params = {k: v for k, v in exp.baselines.items() if k in exp.methods}
    if params:
        lines.append("baselines:")
        lines += [f"  {meth}: {_flow(v)}" for meth, v in params.items()]
    lines += [f"# {why}" for why in plan.seeds_why]
    lines.append(f"seeds: {_flow(list(exp.seeds))}")
    lines.append(f"# {plan.resources_why}")
    lines += _section("resources", exp.resources, ("cpus_per_trial", "gpus_per_trial"))
    for name in ("bracket", "confirm"):
        part = _section(name, getattr(exp, name), ())
        if len(part) > 1:
            lines += part
    lines += ["# Next:", *[f"#   {c}" for c in plan.next_commands]]
    return "\n".join(_wrapped(lines)) + "\n"


def _wrapped(lines: list[str], width: int = 99) -> list[str]:
    """Comment lines longer than ``width`` wrapped, keeping their indent and ``#``; a command
    (``# Launch: ...``, an indented ``#   popmix ...``) stays on its line, to be copied."""
    import textwrap

    out = []
    for line in lines:
        body = line.lstrip(" ")
        command = body.startswith(("# Launch:", "#   "))
        if len(line) <= width or not body.startswith("#") or command:
            out.append(line)
            continue
        lead = line[: len(line) - len(body)] + "# "
        out += textwrap.wrap(
            body[1:].strip(),
            width,
            initial_indent=lead,
            subsequent_indent=lead,
            break_long_words=False,  # a path stays whole, to be copied
            break_on_hyphens=False,
        )
    return out


# ---------------------------------------------------------------------------------------------
# the command


def _positive_minutes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of minutes, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be more than 0 minutes, got {text}")
    return value


class InitCommand(Command):
    name = "init"
    help = "write a commented experiment for your corpus: domains, groups, budget, seeds"
    description = (
        "Find the domains of --data DIR and their sizes as popmix search would, and write an "
        "experiment file for it: the domains and sizes, groups the names suggest, the proxy "
        "and its budget, seeds sized by the noise popmix calibrate measured on this proxy (or "
        "a note to run it), resources for this machine or --gpus, the methods to compare and "
        "the next commands. popmix search --experiment FILE runs it as written."
    )
    flags = tuple(f for f in DATA_FLAGS if f.flag not in ("--benchmark", "--tasks"))

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        g = argument_group(p, "the search to plan")
        g.add_argument(
            "--gpus",
            type=non_negative_int,
            metavar="N",
            help="GPUs the search may use (default: those torch sees here)",
        )
        g.add_argument(
            "--budget-minutes",
            type=_positive_minutes,
            metavar="M",
            help="size the steps to this wall time, from a few steps timed here",
        )
        o = argument_group(p, "output")
        o.add_argument(
            "--out", metavar="FILE", help="write the experiment here (default: <DIR name>.yaml)"
        )
        o.add_argument("--force", action="store_true", help="replace --out if it exists")
        o.add_argument(
            "--storage",
            default="runs",
            metavar="DIR",
            help="where popmix calibrate recorded its calibrations (default: runs)",
        )

    def run(self, args: argparse.Namespace) -> int:
        from popmix.data.corpus import scan_corpus
        from popmix.tune.trials import trials_per_seed

        if args.data is None:
            raise UsageError(
                "popmix init needs --data DIR: your corpus, a folder with one file or folder "
                "of shards per domain"
            )
        base = self.experiment(args)
        d = base.data
        layout, manifest = scan_corpus(
            d.path,  # type: ignore[arg-type]
            d.domain_field,
            dict(d.domains) or None,
            d.text_field,
            d.token_dtype,
            d.rescan,
            d.seed,
        )
        names = manifest.names
        if len(names) < 2:
            raise UsageError(
                f"--data {args.data}: found one domain ({names[0]}); a mixture needs at least "
                "2: put one file or folder of shards per domain in the folder"
            )
        sizes = [manifest.size(n).value for n in names]
        out = Path(args.out) if args.out else Path(f"{layout.root.stem or 'corpus'}.yaml")
        if out.exists() and not args.force:
            raise UsageError(f"--out: {out} exists; give another --out, or --force")
        if not out.parent.is_dir():
            raise UsageError(f"--out: folder {out.parent} does not exist; create it first")
        if out.suffix not in (".yaml", ".yml"):
            raise UsageError(
                f"--out {out}: an experiment is a .yaml file; give a name ending .yaml"
            )

        groups = suggest_groups(names, sizes)
        exp = self._methods(base, groups, out.stem)
        n_gpus = args.gpus if args.gpus is not None else visible_gpus()
        noise = calibration_of(exp, names, Path(args.storage).resolve())
        seeds_why: list[str] = []
        steps_why: list[str] = []
        if noise is None:
            n_seeds = UNCALIBRATED_SEEDS
            storage = "" if args.storage == "runs" else f" --storage {args.storage}"
            seeds_why.append(
                f"{n_seeds} seeds, a guess: no calibration of this proxy in {args.storage}/ "
                "yet. To size them by the noise measured, run"
            )
            seeds_why.append(f"  popmix calibrate --experiment {out}{storage}")
            seeds_why.append(f"  popmix init --data {args.data} --experiment {out} --force")
        elif noise.paired_std is None or noise.mean_ppl is None:
            n_seeds = noise.seeds
            seeds_why.append(
                f"{n_seeds} seeds: the calibration ({noise.calibrate_json}) has too few "
                "finished seeds to size them; calibrate again with more"
            )
        else:
            n_seeds = noise.seeds
            res = ", ".join(f"{k} seeds {v:.3f}" for k, v in noise.resolves.items())
            target = RESOLVE_SHARE * noise.mean_ppl
            enough = noise.resolves[n_seeds] <= target
            seeds_why.append(
                f"{n_seeds} seeds, sized by {noise.calibrate_json}: one seed's paired "
                f"difference spreads by {noise.paired_std:.3f} ppl, so 95% intervals resolve"
            )
            seeds_why.append(f"  {res} (mean test ppl {noise.mean_ppl:.3f});")
            seeds_why.append(
                f"{'the fewest that resolve' if enough else f'even {MAX_SEEDS} do not resolve'} "
                f"{100 * RESOLVE_SHARE:g}% of the mean ({target:.3f}); with {n_seeds}, "
                f"differences below {noise.resolves[n_seeds]:.3f} read 'no clear difference'"
            )
        if noise is not None and not noise.stable:
            seeds_why.append("calibration found this proxy unstable: " + "; ".join(noise.reasons))
            if noise.recommended_experiment:
                seeds_why.append(
                    f"its recommended proxy: popmix init --data {args.data} --experiment "
                    f"{noise.recommended_experiment} --force"
                )
        exp = exp.replace(seeds=tuple(range(n_seeds)))
        trials = trials_per_seed(exp)
        if n_gpus:
            # every trial of a seed at once: k trials share a GPU, each a share 1/k (a share
            # that divides a GPU, as resources.gpus_per_trial requires)
            per_gpu = max(1, math.ceil(trials / n_gpus))
            exp = with_overrides(exp, [("resources.gpus_per_trial", 1 / per_gpu)])
            resources_why = (
                f"{trials} trials per seed on {n_gpus} GPU(s), {per_gpu} to a GPU; the CPUs "
                f"shared (this machine: {usable_cpus()})"
            )
        else:
            resources_why = (
                f"{trials} trials per seed share this machine's {usable_cpus()} CPUs and run "
                "at once (no GPU here; --gpus N plans for N)"
            )
        exp = self._budget(exp, args, noise, n_gpus, trials, steps_why)
        plan = Plan(
            exp=exp,
            path_given=str(args.data),
            names=names,
            sizes=sizes,
            unit=manifest.unit,
            estimated=manifest.estimated,
            groups=groups,
            seeds_why=seeds_why,
            steps_why=steps_why,
            resources_why=resources_why,
            next_commands=[
                f"popmix check {out}",
                f"popmix search --experiment {out}",
                "popmix report runs/<name>      (one HTML page of the results)",
                "popmix export runs/<name> --format hf --out mix.json      (for your trainer)",
            ],
        )
        text = render(plan, out)
        import yaml

        # what search will read: a file that does not load is a bug here, not the user's
        experiment_from_dict(yaml.safe_load(text), str(out))
        out.write_text(text)
        self._print(plan, out)
        return 0

    @staticmethod
    def _methods(base: Experiment, groups: Groups, name: str) -> Experiment:
        """The methods to compare: the temperature family and its search space for a
        multilingual corpus (Li et al. 2025, as experiments/cooldown_multilingual.yaml), the
        default's and proportional otherwise."""
        given: list[tuple[str, Any]] = [
            ("name", name),
            ("data.groups", groups.groups),
            ("data.tasks", None),
        ]
        if groups.languages:
            given += [
                ("methods", list(_LANGUAGE_METHODS)),
                ("search.space", "temperature.yaml"),
                ("search.reference", "proportional"),
                ("baselines.temperature", {"temperature": 5.0}),
                ("baselines.cooldown", {"t_start": 5.0, "t_end": 1.0, "switch_frac": 0.5}),
            ]
        else:
            given += [
                ("methods", list(_DEFAULT_METHODS)),
                ("baselines.cooldown", {"t_start": 5.0, "t_end": 1.0, "switch_frac": 0.5}),
            ]
        return with_overrides(base, given)

    @staticmethod
    def _budget(
        exp: Experiment,
        args: argparse.Namespace,
        noise: Noise | None,
        n_gpus: int,
        trials: int,
        why: list[str],
    ) -> Experiment:
        """The steps: the proxy's own, or sized to ``--budget-minutes``."""
        steps = exp.train.steps
        if args.budget_minutes is None:
            why.append(
                f"{steps} steps per model: the proxy's budget (--budget-minutes M sizes it to "
                "a wall time)"
            )
            return exp
        if n_gpus and visible_gpus() == 0:
            why.append(
                f"{steps} steps per model: --budget-minutes needs a step timed on the GPUs, "
                "and torch sees none here; run popmix init where the search will run"
            )
            return exp
        device = "cuda" if n_gpus else "cpu"
        step_s = seconds_per_step(exp, device)
        # on the CPU the trials share the cores (a step of one trial with all of them is the
        # machine's pace); on GPUs each GPU is taken as one trial's pace, the others waiting
        lanes = max(1, n_gpus)
        per_model = args.budget_minutes * 60 * lanes / (step_s * trials * len(exp.seeds))
        every = exp.search.report_every
        # PBT decides at every perturbation_interval-th report but the last: keep at least
        # MIN_DECISIONS of them, reporting more often on a short budget rather than leaving a
        # population that never ranks its members
        need = exp.search.perturbation_interval * MIN_DECISIONS + 1
        if per_model < every * need:
            every = max(MIN_REPORT_EVERY, int(per_model // need) // 10 * 10)
        least = every * need
        sized = max(least, int(per_model // every) * every)
        minutes = sized * trials * len(exp.seeds) * step_s / lanes / 60
        timed = f"a step took {step_s * 1000:.0f} ms here ({device}, {TIMED_STEPS} timed)"
        if noise is not None:
            why.append(
                f"{steps} steps per model: the calibrated proxy's, kept (other steps are "
                f"another proxy); {timed}, so about {minutes * steps / sized:.0f} minutes of "
                f"training for --budget-minutes {args.budget_minutes:g}"
            )
            return exp
        why.append(
            f"{sized} steps per model for --budget-minutes {args.budget_minutes:g}: {timed}; "
            f"{trials} trials x {len(exp.seeds)} seeds x {sized} steps is about "
            f"{minutes:.0f} minutes of training (reports and checkpoints add to it)"
        )
        overrides: list[tuple[str, Any]] = [("train.steps", sized)]
        if every != exp.search.report_every:
            overrides.append(("search.report_every", every))
            why.append(
                f"a report every {every} steps (not {exp.search.report_every}), so that PBT "
                f"ranks its members {(sized // every - 1) // exp.search.perturbation_interval} "
                "times"
            )
        if sized == least and per_model < least:
            why.append(
                f"the budget allows only {per_model:.0f} steps: {least} is the fewest that "
                f"give PBT {MIN_DECISIONS} decisions; give more minutes, fewer seeds or fewer "
                "methods"
            )
        return with_overrides(exp, overrides)

    @staticmethod
    def _print(plan: Plan, out: Path) -> None:
        width = max(len(n) for n in plan.names)
        est = ", estimated" if plan.estimated else ""
        print(f"popmix init: {len(plan.names)} domains in {plan.path_given} ({plan.unit}{est})")
        for n, v in zip(plan.names, plan.sizes):
            print(f"  {n:<{width}}  {_size(v):>15}")
        if plan.groups.groups:
            shown = "; ".join(f"{g}: {', '.join(ns)}" for g, ns in plan.groups.groups.items())
            print(f"groups ({plan.groups.why}): {shown}")
        exp = plan.exp
        print(
            f"methods {', '.join(exp.methods)}; space {Path(exp.search.space).stem}; "
            f"{exp.train.steps} steps x {len(exp.seeds)} seeds"
        )
        for why in [*plan.steps_why, *plan.seeds_why]:
            print(f"  {why.strip()}")
        print(f"wrote {out}; next: popmix search --experiment {out}")


__all__ = ["InitCommand", "suggest_groups", "seeds_for", "is_language"]
