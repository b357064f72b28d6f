"""Reading experiments and search spaces: YAML, then ``key=value`` overrides, then checks.

One path for every command: ``load_experiment(file, overrides)`` reads the file (or the shipped
default), applies the overrides (``train.lr=0.01``; a command's flags are turned into the same
overrides), checks each value against its field's annotation in :mod:`._schema` and rejects
unknown keys. Only what the file or an override names changes a default.
"""

from __future__ import annotations

import copy
import dataclasses
import types
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import numpy as np
import yaml

from popmix.config._schema import (
    BEST_OF_N,
    BEST_OF_N_POLICY,
    RANDOM,
    ConfigError,
    Experiment,
    SearchSpace,
)
from popmix.policies import PolicyError, build_policy

#: keys of an experiment file's ``train`` section that the file may not set (the seed comes
#: from ``seeds``, so that a search's seeds and a run's seed are one setting).
_TRAIN_FROM_ELSEWHERE = ("seed",)


# ------------------------------------------------------------------------------------------------
# Checking a value against an annotation


def _child(where: str, key: str) -> str:
    """``FILE`` + ``train`` → ``FILE: train``; ``FILE: train`` + ``lr`` → ``FILE: train.lr``."""
    return (
        f"{where}.{key}" if ": " in where or where.startswith("override ") else f"{where}: {key}"
    )


def _describe(tp: Any) -> str:
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_plural(_describe(args[0]))}"
        return f"a list of {len(args)} numbers like [{', '.join('1.0' for _ in args)}]"
    if origin is dict:
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {
        bool: "true or false",
        int: "a whole number",
        float: "a number",
        str: "a string",
        type(None): "null",
    }.get(tp, str(tp))


def _plural(described: str) -> str:
    """``a whole number`` -> ``whole numbers`` (each alternative of ``a or b``)."""
    return " or ".join(
        part.removeprefix("a ") + "s" if part.startswith("a ") else part
        for part in described.split(" or ")
    )


def check_value(value: Any, tp: Any, where: str) -> Any:
    """``value`` converted to annotation ``tp`` (an int where a float is expected becomes a
    float, a list a tuple), or :class:`ConfigError` naming ``where``."""
    origin, args = get_origin(tp), get_args(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        return build(tp, value, where)  # type: ignore[arg-type]
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for a in args:
            if dataclasses.is_dataclass(a) and isinstance(value, dict):
                return build(a, value, where)  # type: ignore[arg-type]
        for a in args:
            if a is type(None):
                continue
            try:
                return check_value(value, a, where)
            except ConfigError:
                pass
        raise ConfigError(f"{where}: expected {_describe(tp)}, got {value!r}")
    if origin is Literal:
        if isinstance(value, str) and value in args:
            return value
        raise ConfigError(f"{where}: {value!r} is not {_describe(tp)}")
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif origin is tuple:
        if isinstance(value, (list, tuple)):
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(check_value(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
            if len(value) == len(args):
                return tuple(
                    check_value(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args))
                )
    elif origin is dict:
        if isinstance(value, dict):
            return {
                check_value(k, args[0], where): check_value(v, args[1], _child(where, str(k)))
                for k, v in value.items()
            }
    else:  # pragma: no cover - an annotation this checker does not know is a bug here
        raise TypeError(f"cannot check annotation {tp!r} of {where}")
    raise ConfigError(f"{where}: expected {_describe(tp)}, got {value!r}")


def _fields(cls: type) -> dict[str, Any]:
    """Field name → annotation, without ``source`` (set by the loader, never by a file)."""
    hints = get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.name != "source"}


def build(cls: type, data: Any, where: str, skip: Iterable[str] = ()) -> Any:
    """Dataclass ``cls`` from a mapping: unknown keys and wrong types are one-line errors;
    keys the mapping does not give keep their defaults."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {data!r}")
    allowed = {k: v for k, v in _fields(cls).items() if k not in set(skip)}
    for key in data:
        if key not in allowed:
            raise ConfigError(
                f"{where}: unknown key {key!r}; known keys: {', '.join(sorted(allowed))}"
            )
    values = {k: check_value(v, allowed[k], _child(where, k)) for k, v in data.items()}
    return cls(**values)


# ------------------------------------------------------------------------------------------------
# Overrides


def parse_override(text: str) -> tuple[str, Any]:
    """``"train.lr=0.01"`` → ``("train.lr", 0.01)``; the value is read as YAML."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(
            f"override {text!r}: expected KEY=VALUE with a dotted key like train.lr=0.01"
        )
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw  # not YAML: the text itself (a string field takes it as is)
    return key, value


def _annotation_at(cls: type, path: list[str], full: str) -> Any:
    """The annotation a dotted key ends at, or :class:`ConfigError` for an unknown key."""
    tp: Any = cls
    for i, part in enumerate(path):
        if dataclasses.is_dataclass(tp):
            fields = _fields(tp)  # type: ignore[arg-type]
            if cls is Experiment and i == 1 and path[0] == "train":
                fields = {k: v for k, v in fields.items() if k not in _TRAIN_FROM_ELSEWHERE}
            if part not in fields:
                where = ".".join(path[:i]) or "the top level"
                raise ConfigError(
                    f"override {full}: unknown key {part!r} in {where}; known keys: "
                    f"{', '.join(sorted(fields))}"
                )
            tp = fields[part]
            args = [a for a in get_args(tp) if a is not type(None)]
            if get_origin(tp) in (Union, types.UnionType) and any(
                dataclasses.is_dataclass(a) for a in args
            ):
                tp = next(a for a in args if dataclasses.is_dataclass(a))
        elif get_origin(tp) is dict:
            tp = get_args(tp)[1]
        elif tp is Any:
            return Any
        else:
            raise ConfigError(f"override {full}: {'.'.join(path[:i])} has no keys below it")
    return tp


def _accepts_text(tp: Any) -> bool:
    return tp is str or (get_origin(tp) in (Union, types.UnionType) and str in get_args(tp))


def apply_overrides(
    raw: dict[str, Any], overrides: Iterable[str | tuple[str, Any]], cls: type
) -> dict[str, Any]:
    """A copy of the mapping ``raw`` (a file's contents) with each override set at its dotted
    key; each key and value is checked against ``cls``'s schema first, so the error names the
    override, not the file.

    Giving ``data.path`` or ``data.benchmark`` without ``data.tasks`` means all the domains of
    that data: the file's ``tasks`` (which counted the file's own domains) is dropped.
    """
    out: dict[str, Any] = copy.deepcopy(raw)
    given: set[str] = set()
    for item in overrides:
        key, value = parse_override(item) if isinstance(item, str) else item
        text = item.partition("=")[2] if isinstance(item, str) else None
        path = key.split(".")
        shown = f"{key}={text}" if text is not None else f"{key}={value!r}"
        tp = _annotation_at(cls, path, shown)
        if (
            text is not None
            and _accepts_text(tp)
            and value is not None
            and not isinstance(value, (str, dict))
        ):
            # name=2024 is the string "2024" where a string is expected (a mapping stays one
            # where the field takes either: model.hf_config={model_type: gpt2, ...})
            value = text
        if tp is not Any and not dataclasses.is_dataclass(tp):
            check_value(value, tp, f"override {key}")
        node = out
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[path[-1]] = value
        given.add(key)
    if cls is Experiment and given & {"data.path", "data.benchmark"} and "data.tasks" not in given:
        data = out.get("data")
        if isinstance(data, dict):
            data.pop("tasks", None)
    return out


# ------------------------------------------------------------------------------------------------
# Files


def read_yaml(path: Path) -> Any:
    if not path.is_file():
        shipped = ", ".join(shipped_names("experiments"))
        raise ConfigError(
            f"file not found: {path}; give a path, or a shipped experiment by name ({shipped})"
        )
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: malformed YAML{at}: {getattr(e, 'problem', e)}") from None


def experiment_from_dict(data: Any, where: str = "experiment") -> Experiment:
    """Build and validate an experiment from a file's mapping."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping at the top level")
    data = dict(data)
    if isinstance(data.get("seeds"), int) and not isinstance(data["seeds"], bool):
        data["seeds"] = [data["seeds"]]  # seeds: 3 is seed 3, like seeds: [3]
    train = data.get("train")
    if isinstance(train, dict):
        for key in _TRAIN_FROM_ELSEWHERE:
            if key in train:
                raise ConfigError(
                    f"{where}: train.{key} is set by seeds (the list of seeds to run), not here"
                )
    exp = build(Experiment, data, where)
    exp = dataclasses.replace(exp, source=where)
    exp.validate()
    return exp


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def experiment_to_dict(exp: Experiment) -> dict[str, Any]:
    """The mapping an experiment file holds for ``exp`` (plain lists, no ``source``, no
    ``train.seed``): :func:`experiment_from_dict` of it gives ``exp`` back."""
    data = _plain(dataclasses.asdict(exp))
    data.pop("source", None)
    for key in _TRAIN_FROM_ELSEWHERE:
        data["train"].pop(key, None)
    return data


def with_overrides(exp: Experiment, overrides: Iterable[str | tuple[str, Any]]) -> Experiment:
    """``exp`` with dotted ``overrides`` applied and checked, as if its file had them."""
    where = exp.source or "experiment"
    merged = apply_overrides(experiment_to_dict(exp), list(overrides), Experiment)
    return experiment_from_dict(merged, where)


def space_from_dict(data: Any, where: str = "search space") -> SearchSpace:
    """Build and validate a search space from a file's mapping."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping at the top level")
    space = dataclasses.replace(build(SearchSpace, data, where), source=where)
    space.validate()
    return space


def packaged_dir(kind: str) -> Path:
    """The shipped ``experiments/`` or ``search_spaces/`` folder (package data of popmix)."""
    from importlib.resources import files

    return Path(str(files("popmix.configs") / kind))


def default_experiment_path() -> Path:
    return packaged_dir("experiments") / "default.yaml"


def _with_yaml(p: Path) -> list[Path]:
    """``p``, and ``p.yaml`` where ``p`` has no suffix: a shipped file is found by its bare
    name (``--experiment default``, ``--space sampling``)."""
    return [p] if p.suffix else [p, p.with_name(p.name + ".yaml")]


def shipped_names(kind: str) -> list[str]:
    """The bare names of the shipped ``experiments`` or ``search_spaces`` files."""
    return sorted(f.stem for f in packaged_dir(kind).glob("*.yaml"))


def resolve_experiment_path(path: str | Path) -> Path:
    """An experiment file as given, else the shipped one of that name, with or without
    ``.yaml`` (so ``--experiment default`` and ``--experiment experiments/smoke.yaml`` work
    from any folder). A name found nowhere is returned as given, for the reader's error."""
    p = Path(path)
    if p.is_file() or p.is_absolute():
        return p
    for c in _with_yaml(p):
        if c.is_file():
            return c
    for c in _with_yaml(Path(p.name)):
        shipped = packaged_dir("experiments") / c
        if shipped.is_file():
            return shipped
    return p


def resolve_space_path(space: str, experiment_source: str | None) -> Path:
    """Find a search-space file: as given, next to the experiment file, or the shipped one,
    each with or without ``.yaml`` (``--space sampling``)."""
    p = Path(space)
    candidates = _with_yaml(p)
    if experiment_source and not p.is_absolute():
        for q in _with_yaml(p):
            candidates.append(Path(experiment_source).parent.parent / "search_spaces" / q)
            candidates.append(Path(experiment_source).parent / q)
    candidates += [packaged_dir("search_spaces") / q.name for q in _with_yaml(p)]
    for c in candidates:
        if c.is_file():
            return c
    raise ConfigError(
        f"search space {space!r} not found (looked in the working directory, next to the "
        f"experiment and among the shipped ones: {', '.join(shipped_names('search_spaces'))})"
    )


def load_experiment(
    path: str | Path | None = None, overrides: Iterable[str | tuple[str, Any]] = ()
) -> Experiment:
    """The experiment in ``path`` (default: the shipped ``default.yaml``) with ``overrides``
    (``"train.lr=0.01"`` or ``("train.lr", 0.01)``) applied, checked and validated."""
    p = default_experiment_path() if path is None else resolve_experiment_path(path)
    raw = read_yaml(p)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: expected a mapping at the top level")
    overrides = list(overrides)
    merged = apply_overrides(raw, overrides, Experiment)
    try:
        return experiment_from_dict(merged, str(p))
    except ConfigError as e:
        # a range error of an override is found only once every value is in place: say which
        # file it applied to in words a user recognises, and that the overrides took part
        message = str(e)
        if path is None:
            message = message.replace(str(p), "the default experiment", 1)
        if overrides:
            message += " (after the flags and overrides given)"
        raise ConfigError(message) from None


def load_space(path: str | Path, overrides: Iterable[str | tuple[str, Any]] = ()) -> SearchSpace:
    """A search-space file with ``overrides`` (``"sample_weights.sigma=0.5"``) applied."""
    p = Path(path)
    raw = read_yaml(p)
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: expected a mapping at the top level")
    return space_from_dict(apply_overrides(raw, overrides, SearchSpace), str(p))


def is_space_file(raw: Any) -> bool:
    """Whether a file's mapping is a search space (its keys are space keys only)."""
    keys = set(_fields(SearchSpace))
    return isinstance(raw, dict) and bool(raw) and set(raw) <= keys


def check_method_params(
    exp: Experiment,
    sizes: Any,
    names: list[str] | None = None,
    methods: Iterable[str] | None = None,
) -> None:
    """Build each method's policy once with its parameters (default: the methods a search
    runs as trials), so a value out of range fails before any training or Ray starts; with
    ``names``, check ``data.max_epochs`` against the domains too."""
    where = exp.source or "experiment"
    if names is not None:
        exp.weight_caps(list(names), sizes)  # caps naming no domain, or leaving no mixture
    for m in exp.baseline_methods() if methods is None else methods:
        if m == RANDOM:
            continue  # its draws are the population's members, checked with the space
        try:
            policy = build_policy(
                BEST_OF_N_POLICY if m == BEST_OF_N else m,
                np.asarray(sizes, dtype=float),
                exp.train.steps,
                exp.method_params(m),
            )
            if names is not None:
                policy.bind(list(names))
        except PolicyError as e:
            raise ConfigError(f"{where}: baselines.{m}: {e}") from None
        if policy.needs.reference and exp.model.kind == "custom":
            # the excess loss is measured per token on popmix's own forward
            raise ConfigError(
                f"{where}: {m} scores the proxy's tokens against a reference model, which a "
                f"model.custom trainer does not expose; remove {m} from methods"
            )
        if (
            policy.needs.reference
            and m in exp.baseline_methods()
            and "stratified" not in (exp.methods)
        ):
            raise ConfigError(
                f"{where}: {m} trains against the same seed's stratified run (its reference "
                "model, trained once per seed): add stratified to methods"
            )
        if policy.needs.gradients is not None and exp.model.kind != "popmix":
            # per-domain gradients are read off popmix's own layers (popmix.train.measure)
            raise ConfigError(
                f"{where}: {m} measures per-domain gradients from popmix's own model, not "
                f"from model.{'custom' if exp.model.kind == 'custom' else 'hf_config'}; "
                f"remove {m} from methods"
            )
