"""``popmix info``: versions, the torch build and its GPUs, Ray, and the device a run or a
search trial would get here; a device that cannot be had is one line and exit code 2."""

from __future__ import annotations

import platform

import pytest
import torch

from popmix import __version__
from popmix.cli import main

cpu_only = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")


def info(capsys, *argv: str) -> tuple[int, list[str], str]:
    rc = main(["info", *argv])
    out, err = capsys.readouterr()
    return rc, out.splitlines(), err


@cpu_only
def test_info_prints_versions_build_and_the_devices_here(capsys):
    rc, lines, err = info(capsys)
    assert rc == 0 and err == ""
    assert lines[0] == f"popmix {__version__}"
    assert lines[1].startswith(f"python {platform.python_version()} (")
    assert lines[2].startswith(f"torch {torch.__version__}: CPU-only build (no CUDA); ")
    assert lines[3].startswith("ray ")
    assert lines[4] == "popmix run: cpu, fp32 (train.device cpu, train.precision auto)"
    assert lines[5] == "a search trial here: cpu, fp32 (resources.gpus_per_trial 0)"
    assert len(lines) == 6  # plain and short


def test_info_follows_the_experiments_settings(capsys):
    rc, lines, _ = info(capsys, "--precision", "bf16", "train.compile=true")
    assert rc == 0
    assert "popmix run: cpu, bf16, compiled (train.device cpu, train.precision bf16)" in lines


@cpu_only
def test_a_gpu_share_on_a_cpu_only_torch_says_a_trial_would_stop_and_why(capsys):
    rc, lines, err = info(capsys, "--gpus-per-trial", "0.25")
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert lines[-1].startswith("a search trial here: fails here (resources.gpus_per_trial 0.25)")
    assert err.startswith("popmix info: error: a search trial here would stop: this trial was ")
    assert "CPU-only build; install a CUDA build of torch" in err
    assert "--gpus-per-trial 0" in err


@cpu_only
def test_device_cuda_on_a_cpu_only_torch_is_one_line(capsys, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    rc, lines, err = info(capsys, "--device", "cuda", "--gpus-per-trial", "1")
    assert rc == 2 and err.count("\n") == 1
    assert err.startswith("popmix info: error: popmix run would stop: train.device is cuda")
    assert "--device cpu" in err


def test_a_share_that_does_not_divide_a_gpu_is_refused_before_anything(capsys):
    rc, lines, err = info(capsys, "--gpus-per-trial", "0.3")
    assert rc == 2 and lines == [] and err.count("\n") == 1
    assert "resources.gpus_per_trial 0.3 does not divide a GPU" in err
    assert "0.25 (4 per GPU) or 0.333 (3 per GPU)" in err


def test_an_address_that_does_not_answer_is_one_line(capsys):
    import ray

    if ray.is_initialized():
        pytest.skip("this process already runs Ray (info then reports that one)")
    rc, _, err = info(capsys, "--address", "127.0.0.1:1")
    assert rc == 2 and err.count("\n") == 1
    assert err.startswith("popmix info: error: cannot reach a Ray cluster at --address")


def test_with_an_address_it_prints_the_clusters_resources(ray_session, capsys):
    address = ray_session.get_runtime_context().gcs_address
    rc, lines, _ = info(capsys, "--address", address)
    cluster = next(x for x in lines if x.startswith("  cluster at "))
    assert cluster == (
        f"  cluster at {address}: 1 node(s) alive; 2 CPUs, 0 GPUs, "
        f"{ray_session.cluster_resources()['memory'] / 2**30:.1f} GiB memory"
    )
    assert any(x.startswith("    127.0.0.1: 2 CPUs, 0 GPUs") for x in lines)
