"""The documentation site: its generated references cover the code, it builds strictly, and its
pages load in a browser; the README stays short and holds no measurement the benchmarks pages
lack."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import http.server
import importlib.util
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from _browser import needs_chromium, probed, with_probe

from popmix.cli import COMMANDS, build_parser
from popmix.cli._reference import cli_reference, flags_by_key, options
from popmix.config import Experiment, SearchSpace
from popmix.config._reference import config_reference, keys

ROOT = Path(__file__).resolve().parents[2]
MKDOCS = (
    importlib.util.find_spec("mkdocs") is not None
    and importlib.util.find_spec("material") is not None
)
needs_mkdocs = pytest.mark.skipif(
    not MKDOCS,
    reason="mkdocs-material is not installed (pip install -e '.[docs]'); the site needs it",
)


# ---------------------------------------------------------------------------------------------
# the generated references


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_the_cli_reference_has_every_command_and_every_option():
    text = cli_reference()
    subs = _subparsers()
    assert set(subs) == {c.name for c in COMMANDS}
    for name, sub in subs.items():
        section = text.split(f"## `popmix {name}` {{#{name}}}")[1].split("\n## ")[0]
        shown = [a for _, a in options(sub)]
        assert shown, name
        for action in shown:
            spelling = action.option_strings[0] if action.option_strings else action.metavar
            assert f"`{spelling}" in section, f"popmix {name}: {spelling} missing"
        hidden = [a for a in sub._actions if a.help is argparse.SUPPRESS]
        for action in hidden:  # an old spelling is listed; a refusal (--seed here) is not
            if getattr(action, "popmix_alias_of", None):
                assert f"`{action.option_strings[0]}` is `" in section


def test_the_old_spelling_is_listed_under_search():
    section = cli_reference().split("## `popmix search`")[1].split("\n## ")[0]
    assert "`--init-weights` is `--weights-from`" in section


def _all_fields(cls: type, prefix: str = "") -> set[str]:
    """Every dotted field of a schema dataclass, walked here independently of the generator."""
    from typing import get_args, get_type_hints

    out = set()
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name == "source":
            continue
        path = prefix + f.name
        nested = [
            a
            for a in (hints[f.name], *get_args(hints[f.name]))
            if isinstance(a, type) and dataclasses.is_dataclass(a)
        ]
        out.add(path)
        if nested:
            out |= _all_fields(nested[0], path + ".")
    return out


def test_the_config_reference_has_every_key_with_its_meaning():
    listed = {k.path: k for k in keys()}
    assert set(listed) == _all_fields(Experiment) - {"train.seed"}  # seeds sets it
    space = {k.path.removeprefix("space:"): k for k in keys(SearchSpace, "space:")}
    assert set(space) == _all_fields(SearchSpace)
    undocumented = [p for p, k in {**listed, **space}.items() if not k.doc.strip()]
    assert not undocumented, f"schema fields without a description: {undocumented}"
    page = config_reference(flags_by_key(COMMANDS))
    for path in listed:
        assert f"{{#{path}}}" in page


def test_every_flag_links_to_a_key_of_the_config_reference():
    page = config_reference()
    for command in COMMANDS:
        for f in command.flags:
            assert f"{{#{f.key}}}" in page, f"{command.name} {f.flag}: no {f.key} in the page"


# ---------------------------------------------------------------------------------------------
# the README


README = (ROOT / "README.md").read_text()


def test_the_readme_fits_on_a_screen_or_three():
    assert len(README.splitlines()) <= 150


def test_the_quick_start_stays_two_commands():
    block = README.split("## Quick start")[1].split("```bash\n")[1].split("```")[0]
    lines = [x for x in block.splitlines() if x.strip()]
    assert len(lines) == 2
    assert lines[0].startswith("python3 -m venv .venv") and lines[0].endswith("&& popmix search")
    assert lines[1] == "python -m pytest"


#: numbers in the README that are not measurements
NOT_FIGURES = {"3.11"}  # CPython 3.11, the version brown16's code domain comes from


def test_every_figure_of_the_readme_is_in_the_benchmarks_pages():
    """No measurement lives only in the README: each number with a decimal point or a unit of
    time there is found in docs/benchmarks/ (versions, ``torch==2.13.0`` or ``MPL-2.0``, are
    not figures)."""
    benchmarks = "\n".join(p.read_text() for p in (ROOT / "docs" / "benchmarks").glob("*.md"))
    figures = set(re.findall(r"(?<![\w=.-])[-+]?\d+\.\d+", README))
    figures |= set(re.findall(r"\d+ min(?:utes)?(?: \d+ s)?", README))
    missing = sorted(f for f in figures - NOT_FIGURES if f not in benchmarks)
    assert not missing, f"in README.md but not in docs/benchmarks/: {missing}"


# ---------------------------------------------------------------------------------------------
# what the repository cites


def test_every_cited_documentation_page_exists():
    """Shipped YAMLs, docstrings and scripts cite the pages that hold their figures."""
    cited = {}
    files = [
        *ROOT.glob("popmix/**/*.py"),
        *ROOT.glob("popmix/configs/**/*.yaml"),
        *ROOT.glob("benchmarks/*.py"),
        ROOT / "README.md",
        ROOT / "CHANGELOG.md",
    ]
    for f in files:
        for page in re.findall(r"docs/[\w./-]+?\.md", f.read_text()):
            cited[page] = f
    assert cited  # the check reads what it should
    missing = {p: str(f.relative_to(ROOT)) for p, f in cited.items() if not (ROOT / p).is_file()}
    assert not missing


def test_no_shipped_file_cites_a_readme_section():
    """The README holds no measurement sections any more; a citation of one is stale."""
    stale = [
        str(f.relative_to(ROOT))
        for f in [*ROOT.glob("popmix/**/*.py"), *ROOT.glob("popmix/configs/**/*.yaml")]
        if re.search(r"README, \"", f.read_text())
    ]
    assert not stale


# ---------------------------------------------------------------------------------------------
# the built site


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site, built once with --strict: a broken link or anchor fails the build."""
    out = tmp_path_factory.mktemp("site") / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@needs_mkdocs
def test_the_site_builds_strictly_with_the_generated_references(site):
    cli = (site / "reference" / "cli" / "index.html").read_text()
    config = (site / "reference" / "config" / "index.html").read_text()
    assert "is generated from" not in cli  # the fallback line was replaced
    assert 'id="search"' in cli and "--weights-from" in cli
    assert 'id="train.steps"' in config and 'href="../config/#train.steps"' in cli
    api = (site / "reference" / "python" / "index.html").read_text()
    assert "MixingPolicy" in api and "ProxyTrainer" in api  # mkdocstrings rendered them
    assert (site / "changelog" / "index.html").read_text().count("--weights-from") >= 1


@pytest.fixture(scope="module")
def served(site, tmp_path_factory):
    """The built site on loopback, as ``mkdocs serve`` or any static host gives it (Material's
    search runs in a web worker, which a file:// page may not start)."""
    root = tmp_path_factory.mktemp("served") / "site"
    shutil.copytree(site, root)
    handler = functools.partial(
        type("Quiet", (http.server.SimpleHTTPRequestHandler,), {"log_message": lambda *a: None}),
        directory=str(root),
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _open(root: Path, base: str, page: str, tmp: Path) -> tuple[dict[str, int], list[str]]:
    """(the probe's counts, the console lines chromium logged) of ``page`` of the site."""
    html = root / page / "index.html"
    html.with_name("probed.html").write_text(with_probe(html.read_text()))
    return probed(f"{base}/{page}probed.html", tmp)


@needs_mkdocs
@needs_chromium
@pytest.mark.parametrize("page,least_images", [("", 1), ("reference/cli/", 0)])
def test_pages_load_in_chromium(served, tmp_path, page, least_images):
    root, base = served
    counts, console = _open(root, base, page, tmp_path)
    assert counts["images"] >= least_images
    assert counts["decoded"] == counts["images"], counts
    assert counts["errors"] == 0, (counts, console)
    assert console == []


@needs_mkdocs
@needs_chromium
def test_the_browser_check_catches_a_broken_page(served, tmp_path):
    """The probe must be able to fail: a page with a missing image and a script error."""
    root, base = served
    broken = root / "broken"
    broken.mkdir()
    (broken / "index.html").write_text(
        "<html><head><title>x</title></head><body><img src='nowhere.png'>"
        "<script>undefined_function();</script></body></html>"
    )
    counts, console = _open(root, base, "broken/", tmp_path)
    assert counts["images"] == 1 and counts["decoded"] == 0
    assert counts["errors"] >= 2 and console
