"""The configuration reference, in Markdown, from the schema itself (docs/reference/config.md).

:mod:`._schema`'s dataclasses are the schema: their annotations give each key's type, their
defaults its default, and their docstrings' ``Args:`` entries (or the ``#:`` comments above a
field, or a comment after it) what it means. Nothing here is written by hand, so a key added to
the schema is in the reference at the next build, and a key without a description fails its
test (tests/docs/test_reference.py). No torch, no Ray.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, get_args, get_type_hints

import yaml

from popmix.config._load import _describe
from popmix.config._schema import Experiment, SearchSpace

#: keys a file does not set: ``train.seed`` comes from ``seeds``; ``source`` is the loader's
_NOT_KEYS = ("source", "train.seed")


@dataclass(frozen=True)
class Key:
    """One configuration key: its dotted path, type in words, default and description."""

    path: str
    kind: str
    default: Any
    doc: str
    section: bool  # a mapping of further keys (its own section of the page)


def _args_section(doc: str) -> dict[str, str]:
    """``name -> text`` of a Google-style docstring's ``Args:`` block."""
    lines = inspect.cleandoc(doc).splitlines()
    out: dict[str, str] = {}
    inside, name, indent = False, None, 0
    for line in lines:
        stripped = line.strip()
        if stripped == "Args:":
            inside, name = True, None
            continue
        if not inside:
            continue
        if stripped and not line.startswith(" "):  # the next section, e.g. Raises:
            break
        match = re.match(r"^(\s+)(\w+)(?: \([^)]*\))?: (.*)$", line)
        if match and (name is None or len(match.group(1)) <= indent):
            indent, name = len(match.group(1)), match.group(2)
            out[name] = match.group(3)
        elif name is not None and stripped:
            out[name] += " " + stripped
    return out


def _summary(doc: str | None) -> str:
    """A docstring's text before its ``Args:`` block, paragraphs kept."""
    if not doc:
        return ""
    text = inspect.cleandoc(doc).split("\nArgs:")[0]
    paragraphs = [" ".join(p.split()) for p in text.split("\n\n") if p.strip()]
    return "\n\n".join(paragraphs)


def _comments(cls: type) -> dict[str, str]:
    """``field -> text`` from the source: the ``#:`` lines right above a field, else the
    comment after it on its line."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    out: dict[str, str] = {}
    above: list[str] = []
    for line in source.splitlines()[1:]:
        stripped = line.strip()
        if stripped.startswith("#:"):
            above.append(stripped[2:].strip())
            continue
        field = re.match(r"^\s{4}(\w+): [^=]+?(?:=.*?)?(?:\s+# (.*))?$", line)
        if field and not stripped.startswith(("def ", "@")):
            if above:
                out[field.group(1)] = " ".join(above)
            elif field.group(2):
                out[field.group(1)] = field.group(2)
        above = []
    return out


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def _dataclass_in(tp: Any) -> type | None:
    """The dataclass an annotation names (``X``, or ``X | None``), else None."""
    found = [a for a in (tp, *get_args(tp)) if isinstance(a, type) and dataclasses.is_dataclass(a)]
    return found[0] if found else None


def keys(cls: type = Experiment, prefix: str = "") -> Iterator[Key]:
    """Every key of ``cls`` (an :class:`Experiment` or a :class:`SearchSpace`), depth first
    in the order of the fields."""
    hints = get_type_hints(cls)
    docs = {**_comments(cls), **_args_section(cls.__doc__ or "")}
    for f in dataclasses.fields(cls):
        path = f"{prefix}{f.name}"
        if path in _NOT_KEYS or f.name == "source":
            continue
        nested = _dataclass_in(hints[f.name])
        doc = docs.get(f.name, "")
        if nested is not None:
            yield Key(path, _describe(hints[f.name]), None, doc or _summary(nested.__doc__), True)
            yield from keys(nested, path + ".")
        else:
            yield Key(path, _describe(hints[f.name]), _default(f), doc, False)


def _yaml(value: Any) -> str:
    if isinstance(value, tuple):
        value = list(value)
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000)
    return text.strip().removesuffix("...").strip()


def _sentence(text: str) -> str:
    """One paragraph of Markdown from docstring prose: Sphinx roles (``:class:`X```) as code."""
    text = re.sub(r":\w+:`~?([^`]+)`", r"`\1`", " ".join(text.split()))
    return text[:1].upper() + text[1:] if text else text


def _section_intro(cls: type) -> str:
    return _summary(cls.__doc__)


def config_reference(flags: Mapping[str, Sequence[str]] | None = None) -> str:
    """The reference's Markdown: a section per mapping, a heading per key (its anchor is the
    dotted key: ``config.md#train.steps``).

    Args:
        flags: dotted key -> the command-line flags that set it (``--steps``), listed beside
            the key; from :mod:`popmix.cli`, which this layer does not import.
    """
    flags = flags or {}
    out: list[str] = []
    for title, cls, anchor in (
        ("Experiment files", Experiment, "experiment"),
        ("Search-space files", SearchSpace, "search-space"),
    ):
        out += [f"## {title} {{#{anchor}}}", "", _sentence(_section_intro(cls)), ""]
        for key in keys(cls, "" if cls is Experiment else "space:"):
            shown = key.path.removeprefix("space:")
            level = "###" if "." not in shown else "####"
            out.append(f"{level} `{shown}` {{#{key.path.replace(':', '.')}}}")
            out.append("")
            facts = [key.kind]
            if not key.section:
                facts.append(f"default `{_yaml(key.default)}`")
            if flags.get(key.path):
                facts.append("flag " + ", ".join(f"`{f}`" for f in flags[key.path]))
            out.append(" · ".join(facts))
            out.append("")
            if key.doc:
                out += [_sentence(key.doc), ""]
    return "\n".join(out)


__all__ = ["Key", "config_reference", "keys"]
