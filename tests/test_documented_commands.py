"""An executable README: every documented command runs, on a tiny budget (``--smoke``).

Collected: each ``popmix ...`` (and ``tensorboard ...``) line of README.md's code blocks, and each
launch line in the header comments of ``experiments/*.yaml``, ``search_spaces/*.yaml`` and
``examples/**/*.yaml``. They run
in document order in one scratch folder (``experiments/`` and ``search_spaces/`` linked in, as in
a checkout), through ``popmix.cli.main`` on the test session's Ray. Placeholders name what an
earlier command wrote: ``runs/<name>/best_schedule.json`` is the earliest run folder holding that
file, ``runs/bracket-<time>/`` the bracket's output; ``my_corpus/`` is a folder of three small
``.txt`` domains made here. Commands that resolve to the same search run it once. Commands
with ``--address auto`` run in a subprocess against a simulated two-node cluster; their GPU
request is first checked to fail fast (the cluster has no GPUs), then overridden with
``--gpus-per-trial 0``.
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


def readme_commands() -> list[tuple[str, str]]:
    """(where, command) for each command line in README.md's fenced code blocks."""
    out = []
    in_block = False
    for n, line in enumerate((ROOT / "README.md").read_text().splitlines(), 1):
        if line.lstrip().startswith("```"):
            in_block = not in_block
            continue
        if not in_block:
            continue
        for part in line.split("&&"):
            # other blocks hold Python or a folder tree, not shell: only these lines are split
            if part.split()[:1] in (["popmix"], ["tensorboard"]):
                out.append((f"README.md:{n}", shlex.join(shlex.split(part, comments=True))))
    return out


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


COMMANDS = readme_commands() + yaml_commands()
CLUSTER = [(w, c) for w, c in COMMANDS if "--address auto" in c]
# A command documented in several places runs once, named after all of them.
_wheres: dict[str, list[str]] = {}
for _w, _c in COMMANDS:
    if "--address auto" not in _c:
        _wheres.setdefault(_c, []).append(_w)
LOCAL = [(",".join(ws), c) for c, ws in _wheres.items()]
#: the commands that train nothing, so take no --smoke: they read what others wrote
NO_BUDGET = ("check", "report", "export", "info")
#: the documented commands whose smoke run is long (popmix calibrate: ten trials per setting)
#: and that no later command reads: in the slow suite, which CI runs too (a search of the
#: own-model example: its trials import transformers or the user's file, each in its worker;
#: the swarm's search, 90 s on loaded cores, and the run that trains its optimum)
_SLOW_COMMANDS = (
    "popmix calibrate",
    "popmix search --experiment examples/",
    "popmix search --searcher swarm",
    "popmix run --weights-from 'runs/<name>/swarm_optimum.json'",
)
#: the shipped YAMLs whose launch lines all run in the fast suite; the others' searches (each a
#: smoke search of 10 to 20 s that no README command reads) run in the slow suite
_FAST_YAMLS = ("experiments/default.yaml", "experiments/smoke.yaml")


def _slow(where: str, command: str) -> bool:
    if command.startswith(_SLOW_COMMANDS):
        return True
    documented = any(p.startswith(("README.md", *_FAST_YAMLS)) for p in where.split(","))
    return command.startswith("popmix search") and not documented


LOCAL_PARAMS = [
    pytest.param(w, c, id=w, marks=[pytest.mark.slow] if _slow(w, c) else []) for w, c in LOCAL
]


def test_the_documents_hold_the_commands_we_expect():
    """A change to the extraction that silently finds nothing must fail."""
    commands = {c for _, c in COMMANDS}
    assert "popmix search" in commands  # the quick start's last step
    assert "popmix search --searcher pb2" in commands
    assert "popmix run --data my_corpus/ --method temperature" in commands
    assert "popmix search --tasks 8 --population 8 --steps 2000" in commands  # default.yaml
    assert len(CLUSTER) == 2  # README and gpu_cluster16.yaml
    assert {w.split(":")[0] for w in dict(COMMANDS)} >= {
        "README.md",
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
    """A folder laid out like a checkout, with the data the README's placeholders stand for."""
    ws = tmp_path_factory.mktemp("docs")
    for name in ("experiments", "search_spaces", "examples"):
        (ws / name).symlink_to(ROOT / name)
    rng = np.random.default_rng(0)
    corpus = ws / "my_corpus"
    corpus.mkdir()
    for d, letters in {"news": "abcdefgh ", "code": "(){}=;:xy ", "poems": "lmnoprst\n "}.items():
        paragraphs = ["".join(rng.choice(list(letters), size=300)) for _ in range(40)]
        (corpus / f"{d}.txt").write_text("\n\n".join(paragraphs))
    return ws


def resolve(command: str, ws: Path) -> list[str]:
    """The command's argv with placeholders replaced by what earlier commands wrote."""
    argv = []
    for word in shlex.split(command)[1:]:
        if "<" in word:
            pattern = re.sub(r"<[^>]+>", "*", word)
            found = sorted(glob.glob(str(ws / pattern)), key=os.path.getmtime)
            assert found, f"{word}: no earlier documented command wrote {pattern}"
            word = os.path.relpath(found[0], ws)
        argv.append(word.replace("/shared/", str(ws / "shared") + "/"))
    return argv


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
    argv = resolve(command, workspace)
    if command.startswith("tensorboard "):
        logdir = workspace / argv[argv.index("--logdir") + 1]
        assert list(logdir.rglob("events.out.tfevents.*")), f"{where}: {logdir} has no events"
        return
    _search_once(monkeypatch)
    searches = len(_SEARCHED)
    # commands that train nothing have no budget to cut
    smoke = [] if argv[0] in NO_BUDGET else ["--smoke"]
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
