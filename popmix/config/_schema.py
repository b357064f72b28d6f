"""What an experiment and a search space hold: frozen dataclasses, one per YAML section.

The annotations are the schema: :mod:`popmix.config._load` checks every value of a file or an
override against its field's annotation, so a field added here is validated with no more code.
``validate`` methods check what a type cannot say (ranges, relations between fields). Method
names and their parameters are checked against the policy registry
(:data:`popmix.policies.POLICIES`), which imports nothing of popmix's and so sits below config.
Importing this module pulls in neither torch nor Ray: ``popmix check`` runs in a second.

Why one module of some 950 lines: it is the whole schema, one section after another in the
order of an experiment file, and most of its length is the docstrings that document each key
(what ``popmix`` prints for a bad value, and what a generated reference shows); split by
section, the relations the ``validate`` methods check across sections would be read in
several files.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from popmix._util.simplex import epoch_caps
from popmix.policies import POLICIES

#: the searched population's name in ``methods``, whatever the searcher (the searcher's own
#: name stands for it too)
POPULATION = "pbt"
#: policies a search cannot run as a trial of their own: the population's member policy and a
#: schedule replay (whose points come from a file, not from the experiment).
NOT_TRIALS = ("mixture", "schedule")
#: the control for PBT's selection: n stratified runs with independent seeds, the best on
#: validation reported, every run's steps counted (n: ``baselines.best-of-n.n``, by default the
#: population's size). A member of a population that copies its best profits from luck alone;
#: this baseline has that luck and nothing else.
BEST_OF_N = "best-of-n"
#: the policy each of best-of-n's runs trains with
BEST_OF_N_POLICY = "stratified"
#: what ``popmix search`` runs when the experiment does not say. best-of-n's 3 extra runs
#: would take the search past 10 minutes on 2 cores (11 min with 10 trials), so two static
#: baselines make room: ``temperature`` (a static T = 3) and ``proportional`` (T = 1), both
#: phases of Cooldown (T 5 → 1), which stays; ``popmix calibrate`` measures proportional
#: against stratified. Add them back with ``--methods``.
DEFAULT_METHODS = ("pbt", "best-of-n", "stratified", "cooldown")
APPLY_MODES = ("sample", "loss")
#: ``exploit_margin: auto`` is this many combined standard errors (a two-sided 95% level)
EXPLOIT_Z = 1.96
#: the methods ``popmix confirm`` adds: the best member's schedule replayed step by step, and
#: its final weights held static from the first step
CONFIRM_SCHEDULE = "best-schedule"
CONFIRM_FINAL = "best-final"
#: the swarm (``search.swarm``): short static-mixture runs, a fitted surface, and its predicted
#: optimum trained at the full budget; ``swarm`` is the optimum's method (a row of the table),
#: ``swarm-run`` each short run's. ``searcher: swarm`` reads the population (``pbt`` in
#: ``methods``) as the swarm; ``methods: [pbt, swarm, ...]`` runs both.
SWARM = "swarm"
SWARM_RUN = "swarm-run"
#: the no-learning control beside the population (``methods: [pbt, random]``): each seed's
#: population members at their first values (the same draws PBT starts from), trained as
#: static mixtures, never exploited or explored; the best on validation is reported on test,
#: at the cost of every draw. Beside PBT it measures what PBT's selection and exploration
#: add to its start; beside best-of-n, what drawing mixtures adds to drawing seeds. Under
#: ``searcher: random`` the name stands for the population itself.
RANDOM = "random"


class ConfigError(ValueError):
    """A bad experiment or search-space file, or a bad override: printed as one line."""


@dataclass(frozen=True)
class ModelConfig:
    """The proxy model: popmix's own small transformer (the default), a Hugging Face
    ``transformers`` causal LM built from a local config (``hf_config``), or a trainer of your
    own (``custom``, see :class:`popmix.train.ProxyTrainer`).

    Args:
        n_layer: transformer blocks (popmix's own model).
        n_head: attention heads (must divide d_model; popmix's own model).
        d_model: residual width (popmix's own model).
        seq_len: context length in tokens (bytes, for text domains), for every model.
        vocab_size: token ids the model embeds. ``null`` (the default) takes it from the data:
            256 for text (byte tokens), the tokenizer's vocabulary with ``tokenizer``, the
            largest id plus one for pre-tokenized domains (Megatron ``.bin``/``.idx``,
            ``.npy``). A number smaller than the data's largest id plus one is refused in one
            line before training starts. With ``hf_config``, the config's own ``vocab_size``.
        hf_config: a ``transformers`` config: the path of a ``config.json`` or of a folder
            holding one, or the mapping itself (``{model_type: gpt2, n_layer: 2, ...}``). The
            model is initialised at random from it (nothing is downloaded); ``n_layer``,
            ``n_head`` and ``d_model`` are then unused. A config without ``vocab_size`` takes
            the data's. Needs ``pip install 'popmix[hf]'``.
        tokenizer: a local tokenizer, a ``tokenizer.json`` or a folder holding one (what
            ``tokenizer.save_pretrained`` writes): text domains are tokenized with it instead
            of read as bytes. Needs the ``tokenizers`` package (``popmix[hf]``).
        custom: your own trainer, ``module:Class`` (importable in every Ray worker) or
            ``path/to/file.py:Class``: a :class:`popmix.train.ProxyTrainer` subclass that owns
            the model and its training step; popmix keeps the sampler, the policies, PBT,
            checkpoints and logging.
        custom_args: keyword arguments for the ``custom`` class (its ``setup.args``).
    """

    n_layer: int = 2
    n_head: int = 4
    d_model: int = 128
    seq_len: int = 128
    vocab_size: int | None = None
    hf_config: str | dict[str, Any] | None = None
    tokenizer: str | None = None
    custom: str | None = None
    custom_args: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        # Paths become absolute where the config is read: a Tune trial runs in its own
        # folder, where a relative path would name nothing.
        if isinstance(self.hf_config, str):
            object.__setattr__(self, "hf_config", _absolute(self.hf_config))
        if isinstance(self.tokenizer, str):
            object.__setattr__(self, "tokenizer", _absolute(self.tokenizer))
        if isinstance(self.custom, str) and ":" in self.custom:
            module, _, name = self.custom.rpartition(":")
            if module.endswith(".py"):
                object.__setattr__(self, "custom", f"{_absolute(module)}:{name}")

    @property
    def kind(self) -> str:
        """``popmix`` (the built-in model), ``hf`` or ``custom``."""
        if self.custom is not None:
            return "custom"
        return "hf" if self.hf_config is not None else "popmix"

    def validate(self) -> None:
        for key in ("n_layer", "n_head", "d_model", "seq_len"):
            value = getattr(self, key)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"model.{key} must be a positive integer, got {value!r}")
        if self.vocab_size is not None and (
            not isinstance(self.vocab_size, int)
            or isinstance(self.vocab_size, bool)
            or self.vocab_size < 2
        ):
            raise ValueError(
                f"model.vocab_size must be an integer >= 2 or null (from the data), got "
                f"{self.vocab_size!r}"
            )
        if self.d_model % self.n_head:
            raise ValueError(
                f"model.d_model ({self.d_model}) must be a multiple of "
                f"model.n_head ({self.n_head})"
            )
        if self.hf_config is not None and self.custom is not None:
            raise ValueError(
                "model.hf_config and model.custom are two different models; give one (a "
                "custom trainer builds its own network, e.g. from custom_args)"
            )
        if self.custom_args is not None and self.custom is None:
            raise ValueError("model.custom_args is for model.custom, which is not set")
        if self.hf_config is not None:
            cfg = self.hf_dict()
            if self.vocab_size is not None:
                raise ValueError(
                    "model.vocab_size is set with model.hf_config: put vocab_size in the "
                    "hf_config (or leave it out there: from the data)"
                )
            limit = next(
                (cfg[k] for k in ("n_positions", "max_position_embeddings") if k in cfg), None
            )
            if isinstance(limit, int) and limit < self.seq_len:
                raise ValueError(
                    f"model.seq_len={self.seq_len} is longer than the hf_config's {limit} "
                    f"positions; use model.seq_len={limit} or less"
                )
            _require_package("transformers", "model.hf_config")
        if self.tokenizer is not None:
            tokenizer_file(self.tokenizer)
            _require_package("tokenizers", "model.tokenizer")
        if self.custom is not None:
            module, sep, name = self.custom.rpartition(":")
            if not sep or not module or not name.isidentifier():
                raise ValueError(
                    f"model.custom={self.custom!r}: expected module:Class or path/to/file.py:Class"
                )
            if module.endswith(".py") and not Path(module).is_file():
                raise ValueError(f"model.custom: file not found: {module}")

    def hf_dict(self) -> dict[str, Any]:
        """The ``hf_config`` as a mapping (a path read as JSON); no ``transformers`` needed.

        Raises:
            ValueError: a path that does not exist, JSON that does not parse, or a mapping
                without a ``model_type`` string or with a ``vocab_size`` that is no integer.
        """
        import json

        raw = self.hf_config
        if raw is None:
            raise ValueError("model.hf_config is not set")
        if isinstance(raw, str):
            path = Path(raw)
            if path.is_dir():
                path = path / "config.json"
            if not path.is_file():
                raise ValueError(
                    f"model.hf_config: {path} not found; give a config.json, a folder holding "
                    "one, or the mapping itself"
                )
            try:
                cfg = json.loads(path.read_text())
            except (ValueError, UnicodeDecodeError) as e:
                raise ValueError(f"model.hf_config: {path} is not JSON ({e})") from None
            where = str(path)
        else:
            cfg, where = dict(raw), "model.hf_config"
        if not isinstance(cfg, dict):
            raise ValueError(f"model.hf_config: {where} holds no mapping")
        if not isinstance(cfg.get("model_type"), str):
            raise ValueError(
                f"model.hf_config: {where} has no model_type; name the architecture, e.g. "
                "model_type: gpt2 or llama"
            )
        vocab = cfg.get("vocab_size")
        if vocab is not None and (isinstance(vocab, bool) or not isinstance(vocab, int)):
            raise ValueError(f"model.hf_config: vocab_size must be a whole number, got {vocab!r}")
        return cfg


def _absolute(path: str) -> str:
    return str(Path(path).expanduser().absolute())


def tokenizer_file(path: str) -> Path:
    """The ``tokenizer.json`` that ``model.tokenizer`` names (itself, or in the folder).

    Raises:
        ValueError: neither exists.
    """
    p = Path(path)
    found = p / "tokenizer.json" if p.is_dir() else p
    if not found.is_file():
        raise ValueError(
            f"model.tokenizer: {found} not found; give a tokenizer.json or the folder "
            "tokenizer.save_pretrained wrote (a fast tokenizer's)"
        )
    return found


def _require_package(name: str, key: str) -> None:
    """One line naming the extra to install when ``name`` is missing (found without being
    imported: the config layer stays free of torch)."""
    import importlib.util

    if importlib.util.find_spec(name) is None:
        raise ValueError(f"{key} needs the {name} package: pip install 'popmix[hf]'")


@dataclass(frozen=True)
class TrainConfig:
    """Everything about a run except the model size and the mixing method.

    Args:
        steps: optimizer steps in the whole run (the LR schedule and policies span this).
        batch_size: windows per batch.
        lr: peak learning rate.
        min_lr_frac: the cosine decays to lr * min_lr_frac.
        warmup_frac: linear warm-up from 0 to lr over this share of ``steps`` (a share, so a
            longer or shorter budget keeps the same shape). 0.2 by measurement
            (docs/benchmarks/proxy-noise.md): 20 warm-up steps split the runs of 5 seeds into
            clusters on brown16 and the synthetic domains; a 20% warm-up removed every split
            measured and gave the lowest mean on brown16, the synthetic domains and a
            multilingual folder (brown16's stratified spread was lower at 10%, 0.7% against
            1.5%, its proportional higher, 2.2% against 1.2%).
        warmup_steps: warm-up in steps instead of a share (null: ``warmup_frac`` decides).
        weight_decay: AdamW decay on matrices (not on biases, norms).
        grad_clip: global gradient-norm clip (0 disables).
        eval_interval: steps between validation evaluations of ``popmix run`` (0: only at the
            end); a search validates at every report instead.
        eval_windows: validation windows per domain per evaluation (cost bound).
        test_windows: test windows per domain for the final report.
        apply: ``sample`` (batch composition follows the weights) or ``loss`` (batches drawn
            from ``loss_base``, per-example losses scaled by w = p / q).
        loss_base: the batch distribution q in ``loss`` mode: ``stratified`` or ``proportional``.
        seed: seeds the model initialisation and the sampler (an experiment sets it through
            ``seeds``).
        threads: torch intra-op threads (default: the CPUs this process may use; a search
            derives it from ``resources.cpus_per_trial``).
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (CUDA when usable, else the CPU).
            A device asked for that cannot be used is an error, never a fallback. In a search,
            ``resources.gpus_per_trial`` decides: a trial given a GPU trains on it (``cpu``
            and ``auto`` follow the resources, ``cuda`` insists on a GPU).
        precision: ``auto`` (bf16 autocast on a CUDA device that supports it, fp32 on the
            CPU), ``fp32``, or ``bf16`` (autocast; on the CPU too, when asked). Every result
            records the precision that ran.
        compile: ``torch.compile`` the training step's forward pass (its warm-up, the first
            step, is reported once per run or trial). Off by default: on the CPU its warm-up
            is tens of seconds, and compiled results differ from eager ones in the last bits.
    """

    steps: int = 1000
    batch_size: int = 16
    lr: float = 3e-3
    min_lr_frac: float = 0.1
    warmup_frac: float = 0.2
    warmup_steps: int | None = None
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    eval_interval: int = 50
    eval_windows: int = 8
    test_windows: int = 64
    apply: Literal["sample", "loss"] = "sample"
    loss_base: Literal["stratified", "proportional"] = "stratified"
    seed: int = 0
    threads: int | None = None
    device: str = "cpu"
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    compile: bool = False

    def validate(self) -> None:
        for key in ("steps", "batch_size", "eval_windows", "test_windows"):
            v = getattr(self, key)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"train.{key} must be a positive integer, got {v!r}")
        if not 0 <= self.warmup_frac < 1:
            raise ValueError(f"train.warmup_frac must be in [0, 1), got {self.warmup_frac!r}")
        for key in ("warmup_steps", "eval_interval"):
            v = getattr(self, key)
            if key == "warmup_steps" and v is None:
                continue
            if not isinstance(v, int) or v < 0:
                raise ValueError(f"train.{key} must be a non-negative integer, got {v!r}")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"train.lr must be a positive number, got {self.lr!r}")
        if not 0 <= self.min_lr_frac <= 1:
            raise ValueError(f"train.min_lr_frac must be in [0, 1], got {self.min_lr_frac!r}")
        if self.weight_decay < 0 or self.grad_clip < 0:
            raise ValueError("train.weight_decay and train.grad_clip must be >= 0")
        if self.apply not in APPLY_MODES:
            raise ValueError(f"unknown train.apply {self.apply!r}; choose sample or loss")
        if self.loss_base not in ("stratified", "proportional"):
            raise ValueError(
                f"unknown train.loss_base {self.loss_base!r}; choose stratified or proportional"
            )
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise ValueError(f"train.threads must be a positive integer, got {self.threads!r}")
        if self.device not in ("cpu", "cuda", "auto") and not self.device.startswith("cuda:"):
            raise ValueError(f"unknown train.device {self.device!r}; use cpu, cuda or auto")
        if self.device.startswith("cuda:") and not self.device[5:].isdigit():
            raise ValueError(f"unknown train.device {self.device!r}; use cuda:N, e.g. cuda:0")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ValueError(
                f"unknown train.precision {self.precision!r}; choose auto, fp32 or bf16"
            )

    @property
    def warmup(self) -> int:
        """Warm-up steps of this run: ``warmup_steps`` if given, else ``warmup_frac`` of it."""
        if self.warmup_steps is not None:
            return self.warmup_steps
        return round(self.warmup_frac * self.steps)

    @classmethod
    def field_names(cls) -> set[str]:
        return {f.name for f in dataclasses.fields(cls)}


@dataclass(frozen=True)
class DataSpec:
    """Which domains: a built-in benchmark, or your own files (``path``; then all of their
    domains unless ``tasks`` says how many).

    Args:
        benchmark: a built-in domain set: ``brown16`` (the 15 genres of the Brown corpus and
            Python source code), ``multilingual`` (16 languages in 11 scripts, high- and
            low-resource), ``oracle16`` (five kinds of synthetic domain, with an oracle
            mixture) or ``synthetic`` (Markov-chain domains with a known loss floor, 2 to 256
            of them). Used when ``path`` is null.
        tasks: use the first N domains (``synthetic``: generate N); null: all of them.
        path: your corpus: a folder whose first-level entries are its domains (a file, or a
            folder of shards at any depth), or one table file whose ``domain_field`` names
            each record's domain. Relative to the folder popmix runs in.
        text_field: the records' text field, a dotted path (``.json``, ``.jsonl``,
            ``.parquet``, ``.csv``).
        groups: groups of domains (e.g. ``{high: [en, de], low: [sw, yo]}``) whose mean test
            perplexity every method reports besides the mean over all domains
            (``summary.json`` ``groups``, the table). Empty: the benchmark's own groups
            (``multilingual``: ``high`` and ``low`` resource), none for the others. A domain
            not listed is in no group.
        target_tokens: tokens of the real run the found mixture is for (null: the proxy run's
            own, ``train.steps * train.batch_size * model.seq_len``): with ``max_epochs`` it
            caps each domain's weight, and it is UniMax's default budget.
        max_epochs: the most passes over a domain's data (its size n_i) a run of
            ``target_tokens`` may make: weight_i <= max_epochs * n_i / target_tokens. A number
            for every domain, or ``{domain: epochs}`` (``"*"``: every domain not listed;
            without it those are not capped). Null: no cap. PBT's explore and initial
            population, the swarm's draws and optimum keep their weights within the caps
            (the nearest point of the capped simplex); UniMax takes a number here as its own
            ``max_epochs`` unless ``baselines.unimax`` sets one.
        fixed_weights: ``{domain: weight}``: sampling weights kept out of the search (a domain
            whose share is decided already, as olmix allows). Every mixture popmix searches
            (PBT's members from their first values through every explore, random's draws, the
            swarm's draws and optimum) gives each listed domain its weight; the other
            domains share the rest, within the floor and the caps. The baselines are not
            changed: they are the mixtures a practitioner would otherwise use.
    """

    benchmark: str = "brown16"
    tasks: int | None = None
    path: str | None = None
    #: the record field naming each record's domain, a dotted path (``meta.pile_set_name``);
    #: ``domain_column`` is its older name: either sets both
    domain_field: str | None = None
    #: the older name of ``domain_field`` (either sets both)
    domain_column: str | None = None
    #: domain name -> globs relative to ``path``, for layouts the folders do not name
    domains: dict[str, tuple[str, ...]] = field(default_factory=dict)
    text_field: str = "text"
    token_dtype: str | None = None  # dtype of headerless .npy token files (uint16, uint32)
    #: bytes of text sampled per domain; None: what the budget can draw (popmix run) or
    #: popmix.data.corpus.DEFAULT_SAMPLE_TOKENS
    sample_tokens: int | None = None
    rescan: bool = False  # count the corpus again instead of using its cached manifest
    seed: int = 0  # seed of the synthetic generator and of a corpus's sample
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    target_tokens: int | None = None
    max_epochs: float | dict[str, float] | None = None
    fixed_weights: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # one setting with two names: whichever is given fills the other, so every reader of
        # either (the loaders, the proxy's fingerprint) sees it
        if self.domain_field is None and self.domain_column is not None:
            object.__setattr__(self, "domain_field", self.domain_column)
        elif self.domain_column is None and self.domain_field is not None:
            object.__setattr__(self, "domain_column", self.domain_field)

    def validate(self) -> None:
        if self.tasks is not None and self.tasks < 1:
            raise ValueError(f"data.tasks must be at least 1, got {self.tasks}")
        if self.domain_field != self.domain_column:
            raise ValueError(
                f"data.domain_field {self.domain_field!r} and data.domain_column "
                f"{self.domain_column!r} differ; they are one setting: give one of them"
            )
        if self.sample_tokens is not None and self.sample_tokens < 1:
            raise ValueError(f"data.sample_tokens must be at least 1, got {self.sample_tokens}")
        if self.domains and self.domain_field:
            raise ValueError(
                "data.domains and data.domain_field both name the domains; give one of them"
            )
        if self.target_tokens is not None and self.target_tokens < 1:
            raise ValueError(
                f"data.target_tokens must be a positive whole number, got {self.target_tokens}"
            )
        limits = self.max_epochs
        values = limits.items() if isinstance(limits, dict) else [("", limits)]
        for name, value in values:
            if value is not None and not (math.isfinite(value) and value > 0):
                key = f"data.max_epochs.{name}" if name else "data.max_epochs"
                raise ValueError(f"{key} must be a positive number of epochs, got {value!r}")
        for name, value in self.fixed_weights.items():
            if not (math.isfinite(value) and 0 < value < 1):
                raise ValueError(
                    f"data.fixed_weights.{name} must be a weight between 0 and 1, got {value!r}"
                )
        if self.fixed_weights and sum(self.fixed_weights.values()) >= 1:
            raise ValueError(
                f"data.fixed_weights sum to {sum(self.fixed_weights.values()):.6g}, which leaves "
                "nothing to search; fix fewer domains or give them less"
            )

    def epoch_limits(self, names: Sequence[str]) -> np.ndarray:
        """``max_epochs`` per domain of ``names`` (``inf``: not capped).

        Raises:
            ValueError: ``max_epochs`` names a domain that is not among ``names``.
        """
        limits = self.max_epochs
        if limits is None:
            return np.full(len(names), np.inf)
        if not isinstance(limits, dict):
            return np.full(len(names), float(limits))
        unknown = [n for n in limits if n != "*" and n not in names]
        if unknown:
            raise ValueError(
                f"data.max_epochs.{unknown[0]}: no such domain; known: "
                f"{', '.join(list(names)[:6])}{'...' if len(names) > 6 else ''}"
            )
        rest = float(limits.get("*", math.inf))
        return np.array([float(limits.get(n, rest)) for n in names])

    def fixed_vector(self, names: Sequence[str]) -> np.ndarray | None:
        """``fixed_weights`` per domain of ``names`` (``nan``: searched), or None without any.

        Raises:
            ValueError: ``fixed_weights`` names a domain that is not among ``names``.
        """
        if not self.fixed_weights:
            return None
        unknown = [n for n in self.fixed_weights if n not in names]
        if unknown:
            raise ValueError(
                f"data.fixed_weights.{unknown[0]}: no such domain; known: "
                f"{', '.join(list(names)[:6])}{'...' if len(names) > 6 else ''}"
            )
        return np.array([float(self.fixed_weights.get(n, math.nan)) for n in names])


@dataclass(frozen=True)
class SwarmSpec:
    """The swarm (``methods: [swarm]`` or ``searcher: swarm``): ``size`` static mixtures drawn
    from Dirichlet(concentration * k * prior), each trained for ``steps`` steps, a fitted
    response surface, and its predicted optimum trained for ``train.steps`` (see
    :mod:`popmix.tune.swarm`).

    Args:
        size: swarm runs per seed (the fit needs at least
            :data:`popmix.analysis.swarm_fit.MIN_RUNS` of them, and
            :func:`popmix.tune.swarm.full_law_size` for the full mixing law on k domains).
        prior: the Dirichlet's mean: ``stratified`` (uniform), ``proportional`` (corpus sizes
            n_i) or ``temperature:<T>`` (n_i^(1/T), normalised).
        concentration: per domain: alpha_i = concentration * k * prior_i, so 1 around the
            uniform prior is the flat distribution over the simplex; larger: closer to the prior.
        floor: the smallest weight a swarm mixture and the optimum keep (below 1/k); the
            swarm's own, as it searches no space: PBT's is the space's ``sample_weights.floor``
            (both 1e-3 by default).
        steps: optimizer steps of each swarm run; null: the equal budget, so that the swarm's
            runs and the optimum's full run together cost what the PBT population does,
            floor((population - 1) * train.steps / size) (see :meth:`run_steps`).
        parallel: swarm runs of a seed trained at once (null: ``search.population``).
        n_boot: bootstrap resamples of the swarm runs for the surface's intervals.
    """

    size: int = 32
    prior: str = "stratified"
    concentration: float = 1.0
    floor: float = 1e-3
    steps: int | None = None
    parallel: int | None = None
    n_boot: int = 200

    def validate(self) -> None:
        if self.size < 2:
            raise ValueError(f"search.swarm.size must be at least 2, got {self.size}")
        if not (math.isfinite(self.concentration) and self.concentration > 0):
            raise ValueError(f"search.swarm.concentration must be > 0, got {self.concentration!r}")
        self.prior_temperature()  # a bad prior fails here
        if not 0 <= self.floor < 1:
            raise ValueError(f"search.swarm.floor must be in [0, 1), got {self.floor!r}")
        for key in ("steps", "parallel"):
            v = getattr(self, key)
            if v is not None and v < 1:
                raise ValueError(f"search.swarm.{key} must be a positive integer or null, got {v}")
        if self.n_boot < 1:
            raise ValueError(f"search.swarm.n_boot must be at least 1, got {self.n_boot}")

    def prior_temperature(self) -> float | None:
        """T of ``temperature:<T>`` (1 for ``proportional``, None for ``stratified``)."""
        if self.prior == "stratified":
            return None
        if self.prior == "proportional":
            return 1.0
        head, _, tail = self.prior.partition(":")
        try:
            t = float(tail) if head == "temperature" else math.nan
        except ValueError:
            t = math.nan
        if not (math.isfinite(t) and t > 0):
            raise ValueError(
                f"unknown search.swarm.prior {self.prior!r}; use stratified, proportional or "
                "temperature:<T> with T > 0 (e.g. temperature:3)"
            )
        return t

    def run_steps(self, train_steps: int, population: int) -> int:
        """Each swarm run's steps: ``steps``, or the equal budget (at least 1)."""
        if self.steps is not None:
            return self.steps
        return max(1, (population - 1) * train_steps // self.size)

    def concurrent(self, population: int) -> int:
        """Swarm runs of one seed that run at once."""
        return min(self.size, self.parallel or population)


@dataclass(frozen=True)
class SearchSpec:
    """How the population searches.

    Args:
        searcher: how the population searches: a name registered in
            :data:`popmix.tune.searchers.SEARCHERS` (``pbt``, ``pb2``, ``optuna``, ...;
            ``swarm``: the swarm in the population's place, ``pbt`` in ``methods`` runs as
            ``swarm``). Checked by the registry before a search starts: config sits below the
            tune layer, so it holds no copy of the names.
        space: search-space YAML file (relative paths: to the working directory, then to the
            experiment file, then to the shipped ``search_spaces/``).
        population: members of the PBT/PB2 population, or Optuna trials.
        report_every: optimizer steps between Tune reports (each report validates).
        perturbation_interval: reports between PBT decisions.
        quantile_fraction: bottom fraction that copies the top fraction (PBT).
        resample_probability: chance that explore resamples instead of perturbing.
        objective: ``mean`` (mean per-domain validation loss), ``worst`` or ``domain:<name>``.
        asha: stop bad Optuna trials early with ASHA (never the baselines).
        seed: seed of initial configurations and of PBT's draws (each round's donors and
            explore steps, keyed by this, the seed and the round): the same search repeats;
            another value is another draw of it.
        exploit_margin: a PBT/PB2 member copies a donor only when the donor's objective is
            lower by more than this (nats). ``auto``: ``EXPLOIT_Z`` times the combined
            standard error of the two objectives, each measured from the member's own
            validation windows (all members of a seed are scored on the same windows); a
            number: that margin; 0: Ray's plain rule (the bottom quantile always copies).
        reference: the method every other is compared with, paired by seed, in the table,
            ``summary.json`` (``methods``) and ``confirm.json``.
        swarm: the swarm's settings (:class:`SwarmSpec`).
        rounds: when PBT/PB2 decide. ``sync``: in generations per seed, every member ranked
            on reads of the same step once all have reported it (a member waits, paused,
            for its seed's others); ``async``: Ray's rule, each member judged alone against
            the others' last reads when it reaches its perturbation point.
        fitness: what a member is ranked on at a decision: ``last``, the objective of the
            read at the decision; ``average``, the mean objective over its last
            ``fitness_reads`` reads; ``forecast``, its reads extrapolated to the run's last
            step (:mod:`popmix.tune.fitness`).
        fitness_reads: the reads ``fitness: average`` averages over (at least 2).
        burn_in: the share of training (0 to below 1) before PBT's first decision: no member
            is ranked before ``ceil(burn_in * reports)`` reports (Ray's ``burn_in_period``).
            A mixture that pays off late (more weight on what is slow to learn) reads worse
            than stratified early on; a decision then throws it away (measured on oracle16,
            docs/benchmarks/oracle16.md#burn-in).
    """

    searcher: str = "pbt"
    space: str = "sampling.yaml"
    population: int = 4
    report_every: int = 50
    perturbation_interval: int = 1
    quantile_fraction: float = 0.25
    resample_probability: float = 0.25
    objective: str = "mean"
    asha: bool = False
    seed: int = 0
    exploit_margin: float | Literal["auto"] = "auto"
    reference: str = "stratified"
    swarm: SwarmSpec = field(default_factory=SwarmSpec)
    rounds: Literal["sync", "async"] = "sync"
    fitness: Literal["last", "average", "forecast"] = "average"
    fitness_reads: int = 3
    burn_in: float = 0.0

    def validate(self) -> None:
        self.swarm.validate()
        if not (isinstance(self.burn_in, (int, float)) and 0 <= self.burn_in < 1):
            raise ValueError(
                f"search.burn_in must be a share of training from 0 to below 1, got "
                f"{self.burn_in!r}"
            )
        if self.fitness_reads < 2:
            raise ValueError(
                f"search.fitness_reads must be at least 2 (reads averaged), got "
                f"{self.fitness_reads}"
            )
        margin = self.exploit_margin
        if margin != "auto" and not (math.isfinite(margin) and margin >= 0):
            raise ValueError(
                f"search.exploit_margin must be auto or a number >= 0 (nats), got {margin!r}"
            )
        for key in ("population", "report_every", "perturbation_interval"):
            if getattr(self, key) < 1:
                raise ValueError(f"search.{key} must be a positive integer")
        if not 0 < self.quantile_fraction <= 0.5:
            raise ValueError("search.quantile_fraction must be in (0, 0.5]")
        if not 0 <= self.resample_probability <= 1:
            raise ValueError("search.resample_probability must be in [0, 1]")
        if self.objective not in ("mean", "worst") and not self.objective.startswith("domain:"):
            raise ValueError(
                f"unknown search.objective {self.objective!r}; use mean, worst or domain:<name>"
            )


@dataclass(frozen=True)
class Resources:
    """Per-trial resources of a search (and of ``popmix calibrate``).

    Args:
        cpus_per_trial: CPUs each trial asks Ray for, or ``auto``: the cluster's CPUs shared
            among all trials of a seed so that they run at once (PBT then compares members at
            equal progress instead of pausing and resuming them). Torch threads = max(1,
            floor(cpus_per_trial)).
        gpus_per_trial: 0, 1, or a share 1/n of one GPU (0.5, 0.25, 0.2, 0.125, ...; 0.33 and
            0.333 count as a third: the n trials may leave up to 1% of a GPU unused). Ray packs
            n trials on each GPU, filling one before the next; a trial trains on one device,
            so more than 1 would leave GPUs idle. Any other value (0.3, 0.4, 1.5, 2) is refused
            in one line naming the nearest shares: a share that does not divide a GPU strands
            the rest of it, and such fractions have hung Ray's scheduler
            (ray-project/ray#52133, #20933). It is refused rather than rounded, since rounding
            would change how many trials share a GPU, which decides their memory and speed.
        max_failures: how often a trial whose worker process or node dies is restarted from
            its last checkpoint (every report checkpoints) before it counts as failed.
    """

    cpus_per_trial: float | Literal["auto"] = "auto"
    gpus_per_trial: float = 0.0
    max_failures: int = 3

    #: the share of a GPU that packed trials may leave unused (0.33: three trials, 0.01 left)
    GPU_SHARE_TOLERANCE: ClassVar[float] = 0.01

    @classmethod
    def gpu_share_problem(cls, gpus: float) -> str | None:
        """Why ``gpus`` is not a valid ``gpus_per_trial`` (None when it is: 0, 1 or 1/n)."""
        if gpus == 0 or gpus == 1:
            return None
        if gpus > 1:
            return (
                f"resources.gpus_per_trial is {gpus:g}, but a trial trains one model on one "
                "GPU, so the others would sit idle; use 1, or a share of one GPU such as 0.5 "
                "or 0.25 to pack trials"
            )
        n = math.floor(1 / gpus + 1e-9)  # trials that fit on one GPU
        if 1 - n * gpus <= cls.GPU_SHARE_TOLERANCE + 1e-9:
            return None
        lo, hi = math.floor(1 / gpus), math.ceil(1 / gpus)
        near = " or ".join(f"{1 / k:.3g} ({k} per GPU)" for k in dict.fromkeys((hi, lo)) if k)
        return (
            f"resources.gpus_per_trial {gpus:g} does not divide a GPU ({1 / gpus:.3g} trials "
            f"per GPU): the rest would be stranded and such shares have hung Ray's scheduler; "
            f"use a share 1/n such as {near}"
        )

    def validate(self) -> None:
        cpus = self.cpus_per_trial
        if (cpus != "auto" and not cpus > 0) or not self.gpus_per_trial >= 0:
            raise ValueError(
                "resources.cpus_per_trial must be > 0 or auto, and resources.gpus_per_trial "
                f">= 0; got {cpus!r} and {self.gpus_per_trial!r}"
            )
        problem = self.gpu_share_problem(float(self.gpus_per_trial))
        if problem:
            raise ValueError(problem)
        if self.max_failures < 0:
            raise ValueError(f"resources.max_failures must be 0 or more, got {self.max_failures}")


@dataclass(frozen=True)
class BracketSpec:
    """``popmix bracket``: where and how the Lie bracket of domains' gradient fields is taken.

    Args:
        target: the loss the order is judged by: ``mean`` (of every domain's validation loss)
            or a domain's name.
        at_steps: training steps at which to compute the matrix (empty: at ``train.steps``).
        windows: fixed windows per domain for each domain's loss.
        validate: step sizes at which to also take the two SGD steps in both orders for each
            pair and compare measured with predicted effects (empty: no validation).
        max_pairs: validate this many pairs per evaluated step, a seeded sample spanning
            large and small predicted effects (null: all pairs).
        schedule_steps: length of the suggested two-phase schedule.
    """

    target: str = "mean"
    at_steps: tuple[int, ...] = ()
    windows: int = 8
    validate: tuple[float, ...] = ()
    max_pairs: int | None = 24
    schedule_steps: int = 1000

    def validate_ranges(self, steps: int) -> None:
        if any(s < 0 or s > steps for s in self.at_steps):
            raise ValueError(
                f"bracket.at_steps must lie in 0..{steps} (train.steps), got "
                f"{','.join(map(str, self.at_steps))}"
            )
        for key in ("windows", "schedule_steps"):
            if getattr(self, key) < 1:
                raise ValueError(f"bracket.{key} must be at least 1, got {getattr(self, key)}")
        if self.max_pairs is not None and self.max_pairs < 1:
            raise ValueError(f"bracket.max_pairs must be at least 1, got {self.max_pairs}")
        if any(not eta > 0 for eta in self.validate):
            raise ValueError(f"bracket.validate step sizes must be > 0, got {list(self.validate)}")


@dataclass(frozen=True)
class ConfirmSpec:
    """``popmix confirm`` (and ``popmix search --confirm``): retrain the found schedule and the
    baselines from scratch on fresh seeds, and optionally at a second scale.

    Args:
        seeds: how many fresh seeds (never the search's: the search's largest seed + 1 on).
        model: the second scale's model, as changes to ``model`` (e.g. ``{d_model: 256}``);
            empty with ``steps`` null: no second scale. ``n_layer``, ``n_head`` and
            ``d_model`` size popmix's own model only: with ``model.hf_config`` or
            ``model.custom`` they are refused.
        steps: the second scale's ``train.steps`` (null: the search's).
    """

    seeds: int = 3
    model: dict[str, int] = field(default_factory=dict)
    steps: int | None = None

    def validate(self) -> None:
        if self.seeds < 1:
            raise ValueError(f"confirm.seeds must be at least 1, got {self.seeds}")
        known = [f.name for f in dataclasses.fields(ModelConfig)]
        for key in self.model:
            if key not in known:
                raise ValueError(
                    f"confirm.model.{key}: not a model setting; known: {', '.join(known)}"
                )
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"confirm.steps must be at least 1, got {self.steps}")

    @property
    def second_scale(self) -> bool:
        return bool(self.model) or self.steps is not None


@dataclass(frozen=True)
class Experiment:
    """One experiment file: domains, model, budget, methods and resources.

    Args:
        name: the experiment's name: its run folders are ``runs/<name>-<time>``.
        methods: the methods a search runs as trials of one experiment: ``pbt`` (the searched
            population, whatever ``search.searcher``), ``swarm``, ``best-of-n`` (the best on
            validation of n stratified seeds: the control for PBT's selection), ``random``
            (the population's first draws trained as static mixtures: the control for what
            PBT's exploits and explores add), and the
            baselines ``stratified``, ``proportional``, ``temperature``, ``unimax``,
            ``cooldown``, ``doge``, ``aioli``, ``fixed``.
        baselines: each method's parameters by name (``popmix run --method X`` and a search's
            ``X`` trial read the same entry); a method missing here runs with its policy's
            own defaults. ``best-of-n: {n: N}`` sets n (default: the population's size).
        seeds: the seeds every method runs on (each seed: the same model initialisation,
            batches and held-out windows for every method); ``popmix run`` uses the first.
    """

    name: str = "default"
    data: DataSpec = field(default_factory=DataSpec)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    search: SearchSpec = field(default_factory=SearchSpec)
    methods: tuple[str, ...] = DEFAULT_METHODS
    baselines: dict[str, dict[str, Any]] = field(default_factory=dict)
    seeds: tuple[int, ...] = (0,)
    resources: Resources = field(default_factory=Resources)
    bracket: BracketSpec = field(default_factory=BracketSpec)
    confirm: ConfirmSpec = field(default_factory=ConfirmSpec)
    source: str | None = None  # the file it came from (for messages), not a key of the file

    def replace(self, **changes: Any) -> Experiment:
        return dataclasses.replace(self, **changes)

    def validate(self) -> None:
        """Ranges and relations; the loader has already checked every value's type."""
        where = self.source or "experiment"
        try:
            for part in (
                self.data,
                self.model,
                self.train,
                self.search,
                self.resources,
                self.confirm,
            ):
                part.validate()
            self.bracket.validate_ranges(self.train.steps)
            sizes = [k for k in ("n_layer", "n_head", "d_model") if k in self.confirm.model]
            if sizes and self.model.kind != "popmix":
                # they size popmix's own model only: the second scale would be the first
                raise ValueError(
                    f"confirm.model.{sizes[0]} sizes popmix's own model, not model."
                    f"{'custom' if self.model.kind == 'custom' else 'hf_config'}; give the "
                    "second scale as confirm.steps (and confirm.model.seq_len), or a "
                    "second experiment with a larger model"
                )
            if self.confirm.second_scale:
                self.second_scale().model.validate()
        except ValueError as e:
            raise ConfigError(f"{where}: {e}") from None
        if not self.methods:
            raise ConfigError(f"{where}: methods is empty; name at least one method")
        known = self.known_methods()
        for m in self.methods:
            if m not in known:
                raise ConfigError(
                    f"{where}: unknown method {m!r} in methods; choose from "
                    f"{', '.join(dict.fromkeys(known))}"
                )
        registry = POLICIES
        for m, params in self.baselines.items():
            if m == BEST_OF_N:
                n = params.get("n")
                unknown = [k for k in params if k != "n"]
                if unknown:
                    raise ConfigError(
                        f"{where}: baselines.{m}.{unknown[0]}: not a parameter of {m}; known: n"
                    )
                if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 2):
                    raise ConfigError(
                        f"{where}: baselines.{m}.n must be a whole number of at least 2 (runs "
                        f"to pick the best of), got {n!r}"
                    )
                continue
            if m not in registry or m == "mixture":
                raise ConfigError(
                    f"{where}: baselines.{m}: not a method; give parameters of "
                    f"{', '.join([BEST_OF_N, *(k for k in registry if k != 'mixture')])}"
                )
            allowed = registry[m].parameter_names()
            for key in params:
                if key not in allowed:
                    raise ConfigError(
                        f"{where}: baselines.{m}.{key}: not a parameter of {m}; "
                        f"known: {', '.join(allowed) or 'none'}"
                    )
        if not self.seeds:
            raise ConfigError(f"{where}: seeds must be a non-empty list of whole numbers")
        ref = self.search.reference
        if ref not in known:
            raise ConfigError(
                f"{where}: unknown search.reference {ref!r}; choose one of the methods run "
                f"({', '.join(self.methods)})"
            )
        if ref not in self.methods and ref != SearchSpec.reference:
            raise ConfigError(
                f"{where}: search.reference {ref!r} is not among the methods run "
                f"({', '.join(self.methods)}); add it to methods or pick one of them"
            )

    def population_entries(self) -> tuple[str, ...]:
        """The names that stand for the searched population in ``methods``: ``pbt``, or the
        searcher's own name."""
        return tuple(dict.fromkeys((POPULATION, self.search.searcher)))

    def known_methods(self) -> tuple[str, ...]:
        return tuple(
            dict.fromkeys(
                (
                    *self.population_entries(),
                    SWARM,
                    BEST_OF_N,
                    RANDOM,
                    *(m for m in POLICIES if m not in NOT_TRIALS),
                )
            )
        )

    @property
    def population_method(self) -> str:
        """The searcher's name, used as the population's method label."""
        return self.search.searcher

    def baseline_methods(self) -> list[str]:
        """Methods that run as single trials beside the population (and the swarm)."""
        return [m for m in self.methods if m not in (*self.population_entries(), SWARM)]

    def best_of_n(self) -> int:
        """How many runs ``best-of-n`` picks from (the population's size unless given)."""
        n = self.baselines.get(BEST_OF_N, {}).get("n")
        return int(n) if n is not None else max(2, self.search.population)

    def best_of_n_draws(self) -> range:
        """The draws best-of-n trains as its own trials: draw 0 is the search's stratified
        trial (same seed) when that runs, so it is not trained twice."""
        if BEST_OF_N not in self.methods:
            return range(0)
        return range(1 if BEST_OF_N_POLICY in self.methods else 0, self.best_of_n())

    def random_draws(self) -> int:
        """How many static draws ``random`` trains per seed beside the population: the
        population's size, or 0 when ``random`` is not in ``methods`` or is the searcher (its
        name then stands for the population itself)."""
        if RANDOM not in self.baseline_methods():
            return 0
        return self.search.population

    def second_scale(self) -> Experiment:
        """The experiment at ``confirm``'s second scale (its model changes and steps)."""
        changes: dict[str, Any] = dict(self.confirm.model)
        model = dataclasses.replace(self.model, **changes)
        steps = self.confirm.steps or self.train.steps
        return self.replace(model=model, train=dataclasses.replace(self.train, steps=steps))

    def runs_population(self) -> bool:
        if self.search.searcher == SWARM:
            return False  # its population entry is the swarm
        return any(m in self.population_entries() for m in self.methods)

    def runs_swarm(self) -> bool:
        """``swarm`` in ``methods``, or the population's entry under ``searcher: swarm``."""
        if SWARM in self.methods:
            return True
        return self.search.searcher == SWARM and any(
            m in self.population_entries() for m in self.methods
        )

    def method_params(self, method: str) -> dict[str, Any]:
        """The parameters ``method`` runs with: the experiment's, over the policy's defaults
        (best-of-n's runs: stratified's). A policy's ``budget_tokens`` left null (UniMax's)
        becomes the budget the experiment implies (:meth:`budget_tokens`), so the budget a
        trial used is written in its spec; its ``max_epochs``, when not given, is
        ``data.max_epochs`` where that is one number."""
        if method == BEST_OF_N:
            return dict(self.baselines.get(BEST_OF_N_POLICY, {}))
        params = dict(self.baselines.get(method, {}))
        policy = POLICIES.get(method)
        if policy is not None and "budget_tokens" in policy.parameter_names():
            if params.get("budget_tokens") is None:
                params["budget_tokens"] = self.budget_tokens()
            epochs = self.data.max_epochs
            if "max_epochs" not in params and isinstance(epochs, (int, float)):
                params["max_epochs"] = float(epochs)
        return params

    def reports(self) -> int:
        """Tune reports of one run: one every ``search.report_every`` steps, the last one
        at the end (a shorter last interval counts)."""
        return math.ceil(self.train.steps / self.search.report_every)

    def run_tokens(self) -> int:
        """Tokens one run trains on: ``train.steps * train.batch_size * model.seq_len``."""
        return self.train.steps * self.train.batch_size * self.model.seq_len

    def budget_tokens(self) -> int:
        """The token budget a mixture is made for: ``data.target_tokens``, else this run's
        own (:meth:`run_tokens`)."""
        if self.data.target_tokens is not None:
            return int(self.data.target_tokens)
        return self.run_tokens()

    def weight_caps(self, names: Sequence[str], sizes: Any) -> np.ndarray | None:
        """The largest weight of each domain under ``data.max_epochs`` at
        :meth:`budget_tokens` (``inf``: not capped), or None without ``max_epochs``.

        Raises:
            ConfigError: ``max_epochs`` names an unknown domain, or the caps sum to less than
                1 (the budget needs more passes over the data than they allow).
        """
        if self.data.max_epochs is None:
            return None
        where = self.source or "experiment"
        try:
            limits = self.data.epoch_limits(list(names))
        except ValueError as e:
            raise ConfigError(f"{where}: {e}") from None
        budget = self.budget_tokens()
        caps = epoch_caps(np.asarray(sizes, dtype=np.float64), budget, limits)
        if caps.sum() < 1.0:
            raise ConfigError(
                f"{where}: data.max_epochs leaves no mixture: {budget} tokens need "
                f"{1 / caps.sum():.3g}x more passes over the data than the caps allow; raise "
                "data.max_epochs or lower data.target_tokens"
            )
        return caps

    def weight_fixed(
        self, names: Sequence[str], sizes: Any, floor: float = 0.0
    ) -> np.ndarray | None:
        """``data.fixed_weights`` per domain (``nan``: searched), or None without any.

        Raises:
            ConfigError: a domain that is not among ``names``, or fixed weights that leave
                the other domains no mixture within ``floor`` and the caps.
        """
        where = self.source or "experiment"
        try:
            fixed = self.data.fixed_vector(list(names))
        except ValueError as e:
            raise ConfigError(f"{where}: {e}") from None
        if fixed is None:
            return None
        caps = self.weight_caps(names, sizes)
        pinned = np.isfinite(fixed)
        free_upper = np.inf if caps is None else caps[~pinned].sum()
        if caps is not None and np.any(fixed[pinned] > caps[pinned]):
            bad = [n for n, f, c in zip(names, fixed, caps) if np.isfinite(f) and f > c][0]
            raise ConfigError(
                f"{where}: data.fixed_weights.{bad} is above its repetition cap; lower it, or "
                "raise data.max_epochs"
            )
        rest = 1.0 - fixed[pinned].sum()
        if floor * (~pinned).sum() > rest or free_upper < rest:
            raise ConfigError(
                f"{where}: data.fixed_weights leave the other domains {rest:.6g}, which their "
                "floor and caps cannot take; fix less weight"
            )
        return fixed


# ------------------------------------------------------------------------------------------------
# Search spaces


def anchor_temperature(name: str) -> float | None:
    """T of a vector anchor: None for ``stratified`` (T → ∞), 1 for ``proportional``, T for
    ``temperature:<T>``; nan for ``file``, ``file:<path>``, ``unimax`` or an unknown name (see
    :func:`anchor_problem`)."""
    if name == "stratified":
        return None
    if name == "proportional":
        return 1.0
    head, _, tail = name.partition(":")
    try:
        return float(tail) if head == "temperature" else math.nan
    except ValueError:
        return math.nan


def anchor_file(name: str) -> str:
    """The path a ``file:<path>`` anchor names; "" for every other anchor."""
    return name[len("file:") :] if name.startswith("file:") else ""


def anchor_problem(name: str, init_file: str = "") -> str | None:
    """Why ``name`` is not a vector anchor (None when it is)."""
    if name == "file":
        return None if init_file else "file needs init_file (or --init-weights)"
    path = anchor_file(name)
    if path:
        if not Path(path).is_file():
            return (
                f"anchor {name!r}: {path!r} not found; name a popmix weights file, e.g. "
                "file:runs/<search>/swarm_optimum.json"
            )
        return None
    if name == "unimax":
        return None
    t = anchor_temperature(name)
    if t is not None and not (math.isfinite(t) and t > 0):
        return (
            f"unknown anchor {name!r}; use stratified, proportional, temperature:<T> with "
            "T > 0 (e.g. temperature:3), unimax, file or file:<path>"
        )
    return None


@dataclass(frozen=True)
class VectorSpec:
    """A per-domain weight vector kept on the simplex.

    Args:
        init: ``anchors`` (the first members start at the mixtures a practitioner would try,
            ``anchors`` in order, the rest one explore step from them in turn),
            ``dirichlet`` (each member drawn from Dirichlet(init_concentration)), ``uniform``,
            ``proportional``, ``temperature`` or ``file`` (member 0 starts exactly there, the
            others from an explore step of it).
        anchors: for ``init: anchors``: ``stratified`` (every domain alike), ``proportional``
            (by size), ``temperature:<T>`` (p_i ∝ n_i^(1/T)), ``unimax`` (the ``unimax``
            baseline's mixture at the experiment's budget and repetition limit), ``file``
            (``init_file``'s first weights; a file given by ``init_file`` or
            ``--init-weights`` and not named here is the first anchor) or ``file:<path>``
            (that weights file's first weights; name several to start from several
            candidates, e.g. each seed's ``swarm_optimum-seed<S>.json``).
        init_file: for ``init: file``, a popmix weights file (``best_schedule.json``,
            ``bracket_schedule.json``, ``weights.json``, ``doge_weights-seed0.json``): its first
            point's weights are the starting mixture.
        init_concentration: Dirichlet concentration per domain for ``dirichlet`` init.
        init_temperature: T for ``temperature`` init.
        sigma: standard deviation of the log-space perturbation (PBT explore).
        resample_concentration: on resample, draw from Dirichlet(c · k · parent), centred on
            the parent (larger c: closer to it).
        floor: the smallest weight any domain keeps (must be < 1/k).
    """

    init: Literal["anchors", "dirichlet", "uniform", "proportional", "temperature", "file"] = (
        "anchors"
    )
    anchors: tuple[str, ...] = ("stratified", "temperature:3", "proportional")
    init_file: str = ""
    init_concentration: float = 1.0
    init_temperature: float = 3.0
    sigma: float = 0.3
    resample_concentration: float = 5.0
    floor: float = 1e-3

    def weight_files(self) -> list[tuple[str, str]]:
        """Each weights file the first members start from, as (the setting that names it,
        as an error's prefix; its path): ``init_file``, then the ``file:`` anchors."""
        files = []
        if self.init_file and self.init in ("file", "anchors"):
            files.append(("init_file ", self.init_file))
        if self.init == "anchors":
            files += [("anchors: file:", path) for path in map(anchor_file, self.anchors) if path]
        return files


@dataclass(frozen=True)
class TemperatureSpec:
    """Bounds of the temperature schedule T_start → T_end switched at ``switch_frac``: each
    member samples p_i ∝ n_i^(1/T) (n_i: domain i's size in the corpus).

    Args:
        t_start: [low, high] of T before the switch.
        t_end: [low, high] of T after the switch.
        switch_frac: [low, high] of the share of training at which T reaches ``t_end``.
        shape: ``step`` (T jumps at the switch, as Cooldown in Li et al. 2025) or ``linear``
            (T moves linearly from ``t_start`` at step 0 to ``t_end`` at the switch, then
            holds).
        init: ``uniform`` (each member's values drawn uniformly within the bounds) or
            ``anchors`` (the first members start at ``anchors``, the rest drawn uniformly).
        anchors: (t_start, t_end, switch_frac) of each anchor, clipped into the bounds: by
            default Cooldown's 5 → 1 at half, a constant T = 3 and proportional T = 1.
    """

    t_start: tuple[float, float] = (1.0, 10.0)
    t_end: tuple[float, float] = (0.5, 3.0)
    switch_frac: tuple[float, float] = (0.1, 0.9)
    shape: Literal["step", "linear"] = "step"
    init: Literal["uniform", "anchors"] = "anchors"
    anchors: tuple[tuple[float, float, float], ...] = (
        (5.0, 1.0, 0.5),
        (3.0, 3.0, 0.5),
        (1.0, 1.0, 0.5),
    )

    def bounds(self) -> dict[str, tuple[float, float]]:
        return {"t_start": self.t_start, "t_end": self.t_end, "switch_frac": self.switch_frac}


@dataclass(frozen=True)
class SearchSpace:
    """What the population searches: any of sampling weights, loss weights, temperature."""

    sample_weights: VectorSpec | None = None
    loss_weights: VectorSpec | None = None
    temperature: TemperatureSpec | None = None
    source: str | None = None

    def vectors(self) -> dict[str, VectorSpec]:
        out = {}
        if self.sample_weights is not None:
            out["sample_weights"] = self.sample_weights
        if self.loss_weights is not None:
            out["loss_weights"] = self.loss_weights
        return out

    def validate(self, n_domains: int | None = None) -> None:
        where = self.source or "search space"
        if self.sample_weights is None and self.loss_weights is None and self.temperature is None:
            raise ConfigError(
                f"{where}: searches nothing; give sample_weights, loss_weights or temperature"
            )
        if self.sample_weights is not None and self.temperature is not None:
            raise ConfigError(
                f"{where}: sample_weights and temperature both set the sampling mixture; "
                "keep one (add loss_weights to search both sampling and loss)"
            )
        for key, v in self.vectors().items():
            if v.init == "anchors":
                for name in v.anchors:
                    problem = anchor_problem(name, v.init_file)
                    if problem:
                        raise ConfigError(f"{where}: {key}.anchors: {problem}")
                if not v.anchors and not v.init_file:
                    raise ConfigError(f"{where}: {key}.anchors is empty; name at least one")
            if (v.init == "file" or (v.init == "anchors" and v.init_file)) and not Path(
                v.init_file
            ).is_file():
                raise ConfigError(
                    f"{where}: {key}.init_file {v.init_file!r} not found (init: file needs a "
                    "popmix weights file)"
                )
            for name in ("init_concentration", "init_temperature", "resample_concentration"):
                if not getattr(v, name) > 0:
                    raise ConfigError(f"{where}: {key}.{name} must be > 0")
            if not v.sigma >= 0:
                raise ConfigError(f"{where}: {key}.sigma must be >= 0")
            if not 0 <= v.floor or (n_domains and v.floor * n_domains >= 1):
                raise ConfigError(
                    f"{where}: {key}.floor {v.floor} must be >= 0 and below 1/k "
                    f"({1 / n_domains if n_domains else 'k = number of domains'})"
                )
        if self.temperature is not None:
            for key, (lo, hi) in self.temperature.bounds().items():
                if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo <= hi):
                    raise ConfigError(
                        f"{where}: temperature.{key} must be [low, high] with 0 < low <= high, "
                        f"got [{lo}, {hi}]"
                    )
            if self.temperature.switch_frac[1] > 1:
                raise ConfigError(f"{where}: temperature.switch_frac must lie in (0, 1]")
            if self.temperature.init == "anchors" and not self.temperature.anchors:
                raise ConfigError(f"{where}: temperature.anchors is empty; name at least one")
