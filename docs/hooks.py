"""MkDocs hooks: the generated reference pages.

``docs/reference/cli.md`` and ``docs/reference/config.md`` each hold a marked block that is
replaced, at build time, by the reference generated from popmix's own parser
(:func:`popmix.cli._reference.cli_reference`) and schema
(:func:`popmix.config._reference.config_reference`), so neither can drift from the code. In the
repository (read on GitHub, say) the block holds a line saying where to look instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

#: ``<!-- generated: NAME -->`` ... ``<!-- end generated -->``
BLOCK = re.compile(r"<!-- generated: (?P<name>[\w -]+) -->.*?<!-- end generated -->", re.S)


def _cli() -> str:
    from popmix.cli._reference import cli_reference

    return cli_reference()


def _config() -> str:
    from popmix.cli import COMMANDS
    from popmix.cli._reference import flags_by_key
    from popmix.config._reference import config_reference

    return config_reference(flags_by_key(COMMANDS))


GENERATORS: dict[str, Callable[[], str]] = {
    "the command-line reference": _cli,
    "the configuration reference": _config,
}


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group("name")
        if name not in GENERATORS:
            raise ValueError(f"{page.file.src_path}: no generator for '{name}'")
        return GENERATORS[name]()

    return BLOCK.sub(replace, markdown)
