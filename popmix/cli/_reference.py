"""The command-line reference, in Markdown, from the parser itself (docs/reference/cli.md).

Every command, its usage, its description and every option in its help groups are read off
:func:`popmix.cli.build_parser` (the parser ``popmix`` runs), so the reference cannot list a
flag the command lacks or miss one it has. A flag that sets an experiment key links to that
key in the configuration reference, where the schema describes it in full; old spellings kept
for scripts are listed under each command.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import Any

from popmix.cli._base import Command, Flag, default_of, shown_default


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _spelling(action: argparse.Action) -> str:
    if not action.option_strings:
        return str(action.metavar or action.dest)
    name = ", ".join(action.option_strings)
    if action.nargs == 0:
        return name
    if action.metavar is not None:
        return f"{name} {action.metavar}"
    if action.choices is not None:
        return f"{name} {{{','.join(map(str, action.choices))}}}"
    return f"{name} {action.dest.upper()}"


def options(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.Action]]:
    """(group title, action) for every option ``--help`` shows, in its order."""
    for group in parser._action_groups:
        for action in group._group_actions:
            if action.help is argparse.SUPPRESS or isinstance(action, argparse._HelpAction):
                continue
            yield str(group.title), action


def aliases(parser: argparse.ArgumentParser) -> list[tuple[str, str]]:
    """(old spelling, the option it stands for) of a command."""
    out = []
    for a in parser._actions:
        new = getattr(a, "popmix_alias_of", None)  # set by popmix.cli._base.add_alias
        if new:
            out.append((a.option_strings[0], str(new)))
    return out


def _text(help_text: str | None) -> str:
    """Help text as Markdown prose: one line, capitalised, ``<name>`` not taken for HTML."""
    text = " ".join((help_text or "").split()).replace("%%", "%")
    text = text.replace("<", "&lt;").replace(">", "&gt;").replace("*", "\\*")
    return text[:1].upper() + text[1:]


def _describe(action: argparse.Action, flags: dict[str, Flag]) -> str:
    flag = flags.get(action.dest)
    if flag is not None:
        shown = shown_default(default_of(flag.key))
        sets = f"sets [`{flag.key}`](config.md#{flag.key})"
        return f"{_text(flag.help)}; {sets}" + (f", default `{shown}`" if shown else "")
    default = action.default
    text = _text(action.help)
    if default not in (None, False, [], argparse.SUPPRESS) and "default" not in text:
        text += f" (default `{default}`)"
    return text


def flags_by_key(commands: tuple[Command, ...]) -> dict[str, list[str]]:
    """Dotted key -> the flags that set it, for the configuration reference."""
    out: dict[str, list[str]] = {}
    for command in commands:
        for f in command.flags:
            if f.flag not in out.setdefault(f.key, []):
                out[f.key].append(f.flag)
    return out


def cli_reference() -> str:
    """The reference's Markdown: one section per command (anchor: its name)."""
    from popmix.cli import COMMANDS, build_parser

    parser = build_parser()
    subs = _subparsers(parser)
    by_name = {c.name: c for c in COMMANDS}
    lines = [
        "| command | what it does |",
        "|---|---|",
        *(f"| [`popmix {c.name}`](#{c.name}) | {_text(c.help)} |" for c in COMMANDS),
        "",
    ]
    for name, sub in subs.items():
        command = by_name[name]
        flags = {f.dest: f for f in command.flags}
        usage = sub.format_usage().removeprefix("usage: ").strip()
        lines += [
            f"## `popmix {name}` {{#{name}}}",
            "",
            _text(sub.description),
            "",
            "```text",
            usage,
            "```",
            "",
        ]
        title = None
        for group, action in options(sub):
            if group != title:
                title = group
                lines += [f"### {group[:1].upper() + group[1:]} {{#{name}-{_slug(group)}}}", ""]
            lines += [f"`{_spelling(action)}`", f":   {_describe(action, flags)}", ""]
        old = aliases(sub)
        if old:
            lines += [
                "Old spellings, kept for scripts (CHANGELOG.md): "
                + "; ".join(f"`{a}` is `{b}`" for a, b in old)
                + ".",
                "",
            ]
    return "\n".join(lines)


def _slug(text: str) -> str:
    return "-".join("".join(c if c.isalnum() else " " for c in text.lower()).split())


def all_option_strings() -> dict[str, set[str]]:
    """Command -> every option string its parser accepts (aliases and refusals included)."""
    from popmix.cli import build_parser

    out: dict[str, set[str]] = {}
    for name, sub in _subparsers(build_parser()).items():
        strings: set[str] = set()
        for action in sub._actions:
            strings.update(action.option_strings)
        out[name] = strings
    return out


__all__: list[Any] = ["aliases", "cli_reference", "flags_by_key", "options"]
