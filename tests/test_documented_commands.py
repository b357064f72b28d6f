"""An executable README and documentation: every documented command runs, on a tiny budget
(``--smoke``).

Collected: each ``popmix ...`` (and ``tensorboard ...``) line of the ```` ```bash ```` blocks of
README.md and of the documentation's pages (``docs/**/*.md``; a ```` ```text ```` block holds
output, or a form that needs something outside the test, such as an S3 server), and each launch
line in the header comments of ``experiments/*.yaml``, ``search_spaces/*.yaml`` and
``examples/**/*.yaml``. They run in document order in one scratch folder (``experiments/``,
``search_spaces/`` and ``examples/`` linked in, as in a checkout), through ``popmix.cli.main``
on the test session's Ray. Placeholders name what an earlier command wrote:
``runs/<name>/best_schedule.json`` is the earliest run folder holding that file,
``runs/bracket-<time>/`` the bracket's output; ``my_corpus/`` (three small ``.txt`` domains)
and ``my_languages/`` (four, named by language code) are folders made here, and
``my_corpus.yaml`` is what ``popmix init --data my_corpus/`` writes. Commands that resolve to
the same search run it once. Commands with ``--address auto`` run in a subprocess against a
simulated two-node cluster; their GPU request is first checked to fail fast (the cluster has no
GPUs), then overridden with ``--gpus-per-trial 0``. The files every search writes are checked
against their documented fields (docs/reference/files.md).
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from popmix.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _bash_blocks(path: Path) -> list[tuple[int, str]]:
    """(line number, line) of each line inside a ```bash block of a Markdown file."""
    out, language = [], None
    for n, line in enumerate(path.read_text().splitlines(), 1):
        fence = line.lstrip()
        if fence.startswith("```"):
            language = None if language is not None else (fence[3:].strip() or "")
            continue
        if language == "bash":
            out.append((n, line))
    return out


def markdown_commands(path: Path) -> list[tuple[str, str]]:
    """(where, command) for each ``popmix``/``tensorboard`` line of a page's bash blocks."""
    out = []
    for n, line in _bash_blocks(path):
        for part in line.split("&&"):
            # the quick start chains setup and a search: only popmix's part is a command here
            if part.split()[:1] in (["popmix"], ["tensorboard"]):
                where = f"{path.relative_to(ROOT)}:{n}"
                out.append((where, shlex.join(shlex.split(part, comments=True))))
    return out


#: the documentation's pages, in path order (a placeholder's writer comes before its reader)
DOC_PAGES = sorted((ROOT / "docs").rglob("*.md"))


def readme_commands() -> list[tuple[str, str]]:
    return markdown_commands(ROOT / "README.md")


def doc_commands() -> list[tuple[str, str]]:
    return [c for page in DOC_PAGES for c in markdown_commands(page)]


#: the example experiments (examples/own_model/*.yaml, ...), whose launch lines are documented too
_EXAMPLE_YAMLS = sorted(ROOT.glob("examples/**/*.yaml"))


def yaml_commands() -> list[tuple[str, str]]:
    """(where, command) for each launch line in the header comment of a shipped YAML file."""
    out = []
    for path in sorted(
        [*ROOT.glob("experiments/*.yaml"), *ROOT.glob("search_spaces/*.yaml"), *_EXAMPLE_YAMLS]
    ):
        header = []
        for line in path.read_text().splitlines():
            if not line.startswith("#"):
                break
            header.append(line.lstrip("#").strip())
        text = "\n".join(header).replace("\\\n", " ")  # shell line continuations
        for n, line in enumerate(text.splitlines(), 1):
            if line.startswith("Launch:"):
                line = line[len("Launch:") :]
            elif not line.startswith("popmix "):
                continue
            # "popmix search    (or: popmix search --experiment ...)" holds two commands
            for piece in re.split(r"\(or:|\)", line):
                if piece.strip().startswith("popmix "):
                    out.append((f"{path.relative_to(ROOT)}:{n}", shlex.join(piece.split())))
    return out


COMMANDS = readme_commands() + yaml_commands() + doc_commands()
# a cluster command documented in several places runs once
CLUSTER = list({c: (w, c) for w, c in COMMANDS if "--address auto" in c}.values())
# A command documented in several places runs once, named after all of them.
_wheres: dict[str, list[str]] = {}
for _w, _c in COMMANDS:
    if "--address auto" not in _c:
        _wheres.setdefault(_c, []).append(_w)
LOCAL = [(",".join(ws), c) for c, ws in _wheres.items()]
#: the commands that train nothing, so take no --smoke: they read what others wrote
NO_BUDGET = ("check", "report", "export", "info", "init")
#: the documented commands whose smoke run is long (popmix calibrate: ten trials per setting)
#: and that no later command reads: in the slow suite, which CI runs too (a search of the
#: own-model example: its trials import transformers or the user's file, each in its worker;
#: the swarm's search, 90 s on loaded cores, the run that trains its optimum, and PBT from it)
_SLOW_COMMANDS = (
    "popmix calibrate",
    "popmix search --experiment examples/",
    "popmix search --searcher swarm",
    "popmix run --weights-from 'runs/<name>/swarm_optimum.json'",
    # the swarm, then PBT from its optimum (how-to/swarm.md)
    "popmix search --methods swarm,stratified",
    "popmix search --weights-from 'runs/<name>/swarm_optimum.json'",
)
#: the shipped YAMLs whose launch lines all run in the fast suite; the others' searches (each a
#: smoke search of 10 to 20 s that no README command reads) run in the slow suite
_FAST_YAMLS = ("experiments/default.yaml", "experiments/smoke.yaml")


#: commands that train through Ray: seconds to a minute each with --smoke
_TRAINS_ON_RAY = ("popmix search", "popmix confirm", "popmix calibrate")


def _slow(where: str, command: str) -> bool:
    """The README's and the fast YAMLs' commands run in the fast suite, and so does a command
    that reads what an earlier one wrote (a ``<placeholder>``: its writers are fast); a search,
    confirmation or calibration documented only elsewhere runs in the slow one."""
    if command.startswith(_SLOW_COMMANDS):
        return True
    documented = any(p.startswith(("README.md", *_FAST_YAMLS)) for p in where.split(","))
    return command.startswith(_TRAINS_ON_RAY) and not documented and "<" not in command


LOCAL_PARAMS = [
    pytest.param(w, c, id=w, marks=[pytest.mark.slow] if _slow(w, c) else []) for w, c in LOCAL
]


def test_the_documents_hold_the_commands_we_expect():
    """A change to the extraction that silently finds nothing must fail."""
    commands = {c for _, c in COMMANDS}
    assert "popmix search" in commands  # the quick start's last step
    assert "popmix search --searcher pb2" in commands
    assert "popmix run --data my_corpus/ --method temperature" in commands
    assert "popmix init --data my_corpus/" in commands  # the README's path for your corpus
    assert "popmix search --experiment my_corpus.yaml" in commands
    assert "popmix search --tasks 8 --population 8 --steps 2000" in commands  # default.yaml
    assert len(CLUSTER) == 2  # gpu_cluster16.yaml's, and the documentation's
    pages = {w.split(":")[0] for w in dict(COMMANDS)}
    # every page with a bash block holds at least one command (the extraction finds them)
    assert {str(p.relative_to(ROOT)) for p in DOC_PAGES if _bash_blocks(p)} <= pages
    assert pages >= {
        "README.md",
        "docs/tutorials/your-corpus.md",
        "docs/how-to/export.md",
        *(f"experiments/{p.name}" for p in ROOT.glob("experiments/*.yaml")),
        *(f"search_spaces/{p.name}" for p in ROOT.glob("search_spaces/*.yaml")),
        *(str(p.relative_to(ROOT)) for p in _EXAMPLE_YAMLS),
    }
    # the example YAMLs' own launch lines, not only the README's two
    assert {
        f"popmix {verb} --experiment examples/own_model/{name}.yaml"
        for verb in ("run", "search")
        for name in ("custom", "hf")
    } <= commands
    assert all(c.count("popmix ") <= 1 for _, c in COMMANDS)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A folder laid out like a checkout, with the data the documents' placeholders stand
    for."""
    ws = tmp_path_factory.mktemp("docs")
    for name in ("experiments", "search_spaces", "examples"):
        (ws / name).symlink_to(ROOT / name)
    rng = np.random.default_rng(0)
    corpus = ws / "my_corpus"
    corpus.mkdir()
    for d, letters in {"news": "abcdefgh ", "code": "(){}=;:xy ", "poems": "lmnoprst\n "}.items():
        paragraphs = ["".join(rng.choice(list(letters), size=300)) for _ in range(40)]
        (corpus / f"{d}.txt").write_text("\n\n".join(paragraphs))
    # languages named by their codes, 10 times between the largest and the smallest
    languages = ws / "my_languages"
    languages.mkdir()
    for d, n in {"en": 80, "de": 40, "hy": 8, "sw": 8}.items():
        letters = list("abcdefghijklmnop "[: 8 + len(d) * 3])
        paragraphs = ["".join(rng.choice(letters, size=300)) for _ in range(n)]
        (languages / f"{d}.txt").write_text("\n\n".join(paragraphs))
    return ws


#: files documented commands read that another documented command writes: when the writer has
#: not run (the slow suite alone, or a filter), it runs first
_WRITTEN_BY = {
    "my_corpus.yaml": ["init", "--data", "my_corpus/"],
    "my_languages.yaml": ["init", "--data", "my_languages/"],
}


#: workspace path -> the order in which the documented commands made it: a placeholder names
#: the earliest (a folder's modification time moves when a later command writes into it)
_FIRST_SEEN: dict[str, int] = {}


def _note_new_paths(ws: Path) -> None:
    for path in sorted(glob.glob(str(ws / "*")) + glob.glob(str(ws / "runs" / "*"))):
        _FIRST_SEEN.setdefault(path, len(_FIRST_SEEN))


def resolve(command: str, ws: Path) -> list[str]:
    """The command's argv with placeholders replaced by what earlier commands wrote."""
    argv = []
    for word in shlex.split(command)[1:]:
        if "<" in word:
            pattern = re.sub(r"<[^>]+>", "*", word)
            unseen = len(_FIRST_SEEN)
            found = sorted(
                glob.glob(str(ws / pattern)),
                key=lambda p: (_FIRST_SEEN.get(_top(p, ws), unseen), os.path.getmtime(p)),
            )
            assert found, f"{word}: no earlier documented command wrote {pattern}"
            word = os.path.relpath(found[0], ws)
        argv.append(word.replace("/shared/", str(ws / "shared") + "/"))
    return argv


def _top(path: str, ws: Path) -> str:
    """The workspace entry (or ``runs/`` entry) a path lies in."""
    parts = Path(path).relative_to(ws).parts
    return str(ws.joinpath(*parts[: 2 if parts[0] == "runs" else 1]))


_SEARCHED: dict[str, dict] = {}


def _search_once(monkeypatch) -> None:
    """Different commands that resolve to the same search (``popmix search``, ``--tasks 16``,
    ``--experiment experiments/default.yaml``) parse, validate and load everything each, but
    the search itself runs once: its outcome cannot differ."""
    import popmix.tune.search as search

    real = search.run_search

    def once(exp, space, opts):
        key = repr(
            (
                exp.replace(source=None),
                dataclasses.replace(space, source=None),
                dataclasses.replace(opts, name=None, out=None),
            )
        )
        if key not in _SEARCHED:
            _SEARCHED[key] = real(exp, space, opts)
        return _SEARCHED[key]

    monkeypatch.setattr(search, "run_search", once)


@pytest.mark.parametrize("where,command", LOCAL_PARAMS)
def test_documented_command(where, command, workspace, ray_session, monkeypatch, capsys):
    monkeypatch.chdir(workspace)
    _note_new_paths(workspace)  # what the commands before this one made, in their order
    argv = resolve(command, workspace)
    if command.startswith("tensorboard "):
        logdir = workspace / argv[argv.index("--logdir") + 1]
        assert list(logdir.rglob("events.out.tfevents.*")), f"{where}: {logdir} has no events"
        return
    _search_once(monkeypatch)
    for name, writer in _WRITTEN_BY.items():
        if name in argv and not (workspace / name).exists():
            assert main(writer) == 0, f"{where}: {' '.join(writer)} (which writes {name})"
    searches = len(_SEARCHED)
    # commands that train nothing have no budget to cut; a resume keeps the budget it had
    smoke = [] if argv[0] in NO_BUDGET or "--resume" in argv else ["--smoke"]
    rc = main([*argv, *smoke])
    out, err = capsys.readouterr()
    assert rc == 0, f"{where}: {command} --smoke exited {rc}:\n{out[-3000:]}\n{err[-3000:]}"
    assert "Traceback" not in err
    if argv[0] == "search" and len(_SEARCHED) > searches:  # --smoke: one seed, 12 steps
        written = re.search(r"wrote (\S+/summary\.json)", out)
        assert written, out[-2000:]
        summary = json.loads(Path(written.group(1)).read_text())
        assert summary["steps_per_model"] == 12 and {r["seed"] for r in summary["rows"]} == {0}
        assert all(r["status"] == "ok" for r in summary["rows"]), summary["rows"]
        undocumented = undocumented_fields(Path(written.group(1)).parent)
        assert not undocumented, f"{where}: not in docs/reference/files.md: {undocumented}"


# ---------------------------------------------------------------------------------------------
# the files a search writes, against their documentation


def documented_fields() -> dict[str, set[str]]:
    """File name -> the fields docs/reference/files.md lists for it: the code spans in the
    first cell of each table row under the file's heading (``## `summary.json```)."""
    out: dict[str, set[str]] = {}
    current = None
    for line in (ROOT / "docs" / "reference" / "files.md").read_text().splitlines():
        heading = re.match(r"^## (.+)$", line)
        if heading:
            current = heading.group(1).strip().strip("`")
            out.setdefault(current, set())
        elif current and line.startswith("| `"):
            first = line.split("|")[1]
            out[current].update(re.findall(r"`([^`]+)`", first))
    return out


def _fields_of(data: dict, prefix: str = "") -> set[str]:
    return {prefix + k for k in data}


def _list_fields(data: dict, key: str) -> set[str]:
    return {f"{key}[].{k}" for row in data.get(key) or [] for k in row}


def undocumented_fields(folder: Path) -> list[str]:
    """Fields of the files in a search's folder that docs/reference/files.md does not list."""
    docs = documented_fields()
    found: dict[str, set[str]] = {}
    summary = json.loads((folder / "summary.json").read_text())
    found["summary.json"] = _fields_of(summary) | _list_fields(summary, "rows")
    members = {f.replace("members[]", "rows[]") for f in _list_fields(summary, "members")}
    found["summary.json"] |= members
    weights = [folder / "best_schedule.json", *folder.glob("*_weights-seed*.json")]
    weights += [p for p in (folder / "swarm_optimum.json",) if p.is_file()]
    for p in weights:
        if p.is_file():
            data = json.loads(p.read_text())
            found.setdefault("Weights files", set()).update(
                _fields_of(data) | _list_fields(data, "points")
            )
    lineage = json.loads((folder / "lineage.json").read_text())
    found["lineage.json"] = (
        _fields_of(lineage)
        | _list_fields(lineage, "exploits")
        | _list_fields(lineage, "skipped_within_noise")
        | _list_fields(lineage, "rounds")
    )
    search = folder / "search.json"
    if search.is_file():
        found["search.json"] = _fields_of(json.loads(search.read_text()))
    for p in folder.glob("ledger-*.json"):
        found.setdefault("Ledger", set()).update(_fields_of(json.loads(p.read_text())))
    surface = folder / "surface.json"
    if surface.is_file():
        data = json.loads(surface.read_text())
        found["surface.json"] = _fields_of(data) | {
            f"seeds.<S>.{k}" for s in data["seeds"].values() for k in s if k != "format"
        }
    return sorted(
        f"{name}: {field}"
        for name, fields in found.items()
        for field in fields - docs.get(name, set())
    )


def test_the_field_check_finds_an_undocumented_field(tmp_path):
    """The check above must be able to fail: a summary with a field of its own is caught."""
    for name, data in {
        "summary.json": {"rows": [{"method": "pbt", "brand_new": 1}], "experiment": "x"},
        "lineage.json": {"exploits": [], "skipped_within_noise": [], "members": {}},
    }.items():
        (tmp_path / name).write_text(json.dumps(data))
    assert undocumented_fields(tmp_path) == ["summary.json: rows[].brand_new"]


CLUSTER_SCRIPT = r"""
import json, os, sys
from ray.cluster_utils import Cluster
from popmix.cli import main

cluster = Cluster(initialize_head=True, connect=False,
                  head_node_args={"num_cpus": 2, "include_dashboard": False,
                                  "object_store_memory": 128 * 2**20})
cluster.add_node(num_cpus=2, object_store_memory=128 * 2**20)
cluster.wait_for_nodes()
os.environ["RAY_ADDRESS"] = cluster.address  # what --address auto finds on a head node
results = []
try:
    for argv in json.loads(sys.argv[1]):
        rc = main(argv)
        results.append(rc)
        print("RC", rc, flush=True)
finally:
    cluster.shutdown()
print("RESULT " + json.dumps(results))
"""


@pytest.mark.slow
def test_documented_cluster_commands(workspace):
    """``--address auto`` on a simulated CPU-only two-node cluster: as documented, the GPU
    request fails fast (exit 2); with ``--gpus-per-trial 0`` the search runs."""
    runs = []
    for _, command in CLUSTER:
        argv = [*resolve(command, workspace), "--smoke"]
        runs += [argv, [*argv, "--gpus-per-trial", "0"]]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.run(
        [sys.executable, "-c", CLUSTER_SCRIPT, json.dumps(runs)],
        capture_output=True,
        text=True,
        timeout=400,
        cwd=workspace,
        env={**env, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"},
    )
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert line, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert json.loads(line[len("RESULT ") :]) == [2, 0] * len(CLUSTER), proc.stderr[-3000:]
    errors = [x for x in proc.stderr.splitlines() if x.startswith("popmix search: error:")]
    assert len(errors) == len(CLUSTER)
    for e in errors:
        assert "asks for 2 CPUs, 0.25 GPUs" in e and "2 with 2 CPUs, 0 GPUs" in e
        assert "--gpus-per-trial 0" in e
    summaries = []
    for _, command in CLUSTER:
        argv = resolve(command, workspace)
        storage = Path(argv[argv.index("--storage") + 1])
        summaries += [json.loads(p.read_text()) for p in storage.glob("*/summary.json")]
    assert len(summaries) == len(CLUSTER)  # the failed runs wrote nothing
    for summary in summaries:
        assert summary["rows"] and all(r["status"] == "ok" for r in summary["rows"])
