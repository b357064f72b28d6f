"""Device and precision, decided without a GPU: the pure decision exhaustively, the loop's use
of it (no silent CPU run, checkpoints mapped onto the trainer's device, bf16 autocast, no host
sync inside the step), and torch.compile (slow: its warm-up alone is tens of seconds here)."""

from __future__ import annotations

import contextlib
import itertools
import zipfile

import numpy as np
import pytest
import torch

from popmix.config import ConfigError, Resources
from popmix.policies import build_policy
from popmix.train import ModelConfig, TrainConfig, Trainer
from popmix.train.device import (
    CudaState,
    DeviceError,
    autocast,
    choose_device,
    resolve_precision,
)

TINY = ModelConfig(n_layer=1, n_head=2, d_model=32, seq_len=16)
CPU_BUILD = CudaState("2.13.0+cpu", None, False, 0)
NO_DRIVER = CudaState("2.5.1+cu124", "12.4", False, 0)
HIDDEN = CudaState("2.5.1+cu124", "12.4", False, 0, visible="")
FOUR = CudaState("2.5.1+cu124", "12.4", True, 4, bf16=True)  # CUDA_VISIBLE_DEVICES unset


def ray_view(visible: str) -> CudaState:
    """A CUDA process as Ray leaves a trial: torch sees the devices CUDA_VISIBLE_DEVICES lists."""
    return CudaState("2.5.1+cu124", "12.4", True, len(visible.split(",")), visible, True)


def one_line_error(match: str, *args, **kw) -> str:
    with pytest.raises(DeviceError, match=match) as info:
        choose_device(*args, **kw)
    msg = str(info.value)
    assert "\n" not in msg and isinstance(info.value, ConfigError)
    return msg


# -- the decision, case by case -----------------------------------------------------------------
@pytest.mark.parametrize(
    "requested,cuda,expected",
    [
        ("cpu", CPU_BUILD, "cpu"),
        ("cpu", FOUR, "cpu"),
        ("auto", CPU_BUILD, "cpu"),  # auto is the one setting that may choose the CPU
        ("auto", HIDDEN, "cpu"),
        ("auto", FOUR, "cuda:0"),
        ("cuda", FOUR, "cuda:0"),
        ("cuda:3", FOUR, "cuda:3"),
    ],
)
def test_a_run_gets_the_device_it_names(requested, cuda, expected):
    assert choose_device(requested, cuda) == expected


def test_a_run_that_asks_for_cuda_without_it_is_one_line_naming_the_cause_and_fix():
    msg = one_line_error("CPU-only build", "cuda", CPU_BUILD)
    assert msg.startswith("train.device is cuda, but torch 2.13.0+cpu is a CPU-only build")
    assert "install a CUDA build of torch" in msg and "--device cpu" in msg
    msg = one_line_error("hides every GPU", "cuda:0", HIDDEN)
    assert "CUDA_VISIBLE_DEVICES=''" in msg and "unset it" in msg
    one_line_error(
        "CUDA_VISIBLE_DEVICES='-1' hides", "cuda", CudaState("t", "12.4", False, 0, "-1")
    )
    assert "nvidia-smi" in one_line_error("finds no usable GPU", "cuda", NO_DRIVER)
    assert "cuda:0 to cuda:3" in one_line_error("sees 4 CUDA device", "cuda:4", FOUR)


@pytest.mark.parametrize(
    "ids,cuda,expected",
    [
        (["0"], ray_view("0"), "cuda:0"),
        (["3"], ray_view("3"), "cuda:0"),  # physical 3, the process's only device: cuda:0
        ([3], ray_view("3"), "cuda:0"),  # ids may come as ints
        (["1"], ray_view("0,1"), "cuda:1"),  # the id's position in CUDA_VISIBLE_DEVICES
        (["GPU-8f2e"], ray_view("GPU-8f2e"), "cuda:0"),  # UUIDs map the same way
        (["2"], FOUR, "cuda:2"),  # Ray told not to set it: physical order is torch's
        ([], FOUR, "cpu"),  # no GPU given: the CPU, even where CUDA is usable
        ([], CPU_BUILD, "cpu"),
    ],
)
def test_a_trial_uses_its_logical_device(ids, cuda, expected):
    for requested in ("cpu", "auto"):  # a search's trials follow their resources
        assert choose_device(requested, cuda, ids, gpus_asked=0.25 if ids else 0) == expected
    if ids:
        assert choose_device("cuda", cuda, ids, gpus_asked=0.25) == expected


def test_a_trial_that_was_given_a_gpu_it_cannot_use_is_an_error_never_the_cpu():
    msg = one_line_error("CPU-only build", "auto", CPU_BUILD, ["0"], gpus_asked=0.25)
    assert msg.startswith("this trial was given GPU 0 by Ray, but torch 2.13.0+cpu")
    assert "--gpus-per-trial 0" in msg
    one_line_error("finds no usable GPU", "cpu", NO_DRIVER, ["1"], gpus_asked=1)
    msg = one_line_error("does not list it", "auto", ray_view("0"), ["1"], gpus_asked=1)
    assert "Ray sets it per trial" in msg
    one_line_error("sees only 2", "auto", CudaState("t", "12.4", True, 2), ["3"], gpus_asked=1)
    one_line_error("cannot be mapped", "auto", FOUR, ["GPU-8f2e"], gpus_asked=1)
    one_line_error("Ray assigned it none", "auto", FOUR, [], gpus_asked=0.25)
    one_line_error("given no GPU", "cuda", FOUR, [])
    one_line_error("Ray picks each trial's GPU", "cuda:1", ray_view("1"), ["1"], gpus_asked=1)


def test_the_decision_over_every_combination_never_falls_back_and_maps_ids_to_positions():
    """Every requested device × build × availability × count × CUDA_VISIBLE_DEVICES × Ray ids:
    an answer is a device this process has, a trial with a GPU or a run that named CUDA never
    gets the CPU, and a trial's device is its id's position in CUDA_VISIBLE_DEVICES."""
    answers = errors = 0
    for requested, build, available, count, visible, ids in itertools.product(
        ("cpu", "auto", "cuda", "cuda:0", "cuda:1"),
        (None, "12.4"),
        (False, True),
        (0, 1, 2),
        (None, "", "-1", "0", "1", "0,1", "GPU-a"),
        (None, [], ["0"], ["1"], ["GPU-a"]),
    ):
        cuda = CudaState("t", build, available, count, visible)
        gpus = 0.5 if ids else 0.0
        try:
            device = choose_device(requested, cuda, ids, gpus_asked=gpus)
        except DeviceError as e:
            assert "\n" not in str(e) and ";" in str(e)  # the cause; the fix
            errors += 1
            continue
        answers += 1
        if device == "cpu":
            assert not ids and (requested in ("cpu", "auto") if ids is None else True)
            assert not (ids is not None and requested == "cuda")
            continue
        index = int(device.split(":")[1])
        assert cuda.usable and index < count
        if ids:
            listed = visible.split(",") if visible is not None else [str(i) for i in range(4)]
            assert listed[index] == ids[0]
    assert answers > 50 and errors > 50


def test_cuda_state_probe_reads_this_process(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    state = CudaState.probe()
    assert state.torch_version == torch.__version__ and state.visible == ""
    assert state.build == (torch.version.cuda or None) or state.build.startswith("ROCm")
    assert not state.usable  # CUDA_VISIBLE_DEVICES="" hides every device
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert CudaState.probe().visible is None


# -- GPU shares ---------------------------------------------------------------------------------
@pytest.mark.parametrize("gpus", [0, 1, 0.5, 1 / 3, 0.333, 0.33, 0.25, 0.2, 0.125, 0.1, 0.0625])
def test_shares_that_divide_a_gpu_are_accepted(gpus):
    Resources(gpus_per_trial=gpus).validate()


@pytest.mark.parametrize(
    "gpus,fix",
    [
        (0.3, "0.25 (4 per GPU) or 0.333 (3 per GPU)"),
        (0.34, "0.333 (3 per GPU) or 0.5 (2 per GPU)"),  # 3 × 0.34 > 1: only 2 fit
        (0.4, "0.333 (3 per GPU) or 0.5 (2 per GPU)"),
        (0.7, "0.5 (2 per GPU) or 1 (1 per GPU)"),
    ],
)
def test_shares_that_do_not_divide_a_gpu_are_refused_naming_the_nearest(gpus, fix):
    with pytest.raises(ValueError, match="does not divide a GPU") as info:
        Resources(gpus_per_trial=gpus).validate()
    assert str(info.value).endswith(fix) and "\n" not in str(info.value)


@pytest.mark.parametrize("gpus", [1.5, 2, 4])
def test_more_than_one_gpu_per_trial_is_refused(gpus):
    with pytest.raises(ValueError, match="a trial trains one model on one GPU"):
        Resources(gpus_per_trial=gpus).validate()


# -- precision ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "precision,device,bf16,expected",
    [
        ("auto", "cpu", True, "fp32"),
        ("auto", "cuda:0", True, "bf16"),
        ("auto", "cuda:0", False, "fp32"),  # a GPU without bf16 (before Ampere)
        ("fp32", "cuda:0", True, "fp32"),
        ("bf16", "cpu", True, "bf16"),  # asked for explicitly: allowed on the CPU
    ],
)
def test_precision_resolves(precision, device, bf16, expected):
    assert resolve_precision(precision, device, bf16) == expected


def test_an_unknown_precision_is_refused_in_config_and_in_the_decision():
    with pytest.raises(ValueError, match="unknown train.precision 'fp16'; choose auto"):
        TrainConfig(precision="fp16").validate()  # type: ignore[arg-type]
    with pytest.raises(DeviceError, match="choose auto, fp32 or bf16"):
        resolve_precision("fp8", "cpu")
    with pytest.raises(ValueError, match="use cuda:N"):
        TrainConfig(device="cuda:x").validate()


def test_autocast_is_bf16_only_when_asked():
    x = torch.ones(2, 2)
    with autocast(torch.device("cpu"), "bf16"):
        assert (x @ x).dtype == torch.bfloat16
    with autocast("cpu", "fp32"):
        assert (x @ x).dtype == torch.float32


# -- the loop -----------------------------------------------------------------------------------
def make_trainer(domains, method="stratified", params=None, **kw) -> Trainer:
    cfg = TrainConfig(
        **{
            "steps": 20,
            "batch_size": 8,
            "warmup_steps": 2,
            "threads": 1,
            "eval_windows": 4,
            "test_windows": 4,
            **kw,
        }
    )
    return Trainer(
        domains, build_policy(method, domains.sizes, cfg.steps, params or {}), TINY, cfg
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_a_trainer_asked_for_cuda_on_this_cpu_only_machine_stops(tiny_domains):
    with pytest.raises(DeviceError, match="train.device is cuda, but torch .* CPU-only build"):
        make_trainer(tiny_domains, device="cuda")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_popmix_run_with_device_cuda_here_is_one_line_and_exit_2(capsys):
    from popmix.cli import main

    rc = main(["run", "--benchmark", "synthetic", "--tasks", "2", "--smoke", "--device", "cuda"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("popmix run: error: train.device is cuda, but torch")
    assert "install a CUDA build of torch" in err


def test_auto_precision_on_the_cpu_is_the_fp32_run_bit_for_bit(tiny_domains):
    auto, fp32 = make_trainer(tiny_domains), make_trainer(tiny_domains, precision="fp32")
    assert auto.precision == fp32.precision == "fp32" and auto.device == torch.device("cpu")
    auto.train(6), fp32.train(6)
    for a, b in zip(auto.model.parameters(), fp32.model.parameters()):
        assert torch.equal(a, b)


def test_bf16_on_the_cpu_when_asked_trains_in_bf16(tiny_domains):
    bf16, fp32 = make_trainer(tiny_domains, precision="bf16"), make_trainer(tiny_domains)
    assert bf16.precision == "bf16"
    bf16.train(10), fp32.train(10)
    a, b = bf16.evaluate(), fp32.evaluate()
    assert np.all(np.isfinite(a)) and not np.array_equal(a, b)  # autocast ran
    np.testing.assert_allclose(a, b, atol=0.05)  # and trained the same model, roughly


def test_doge_measures_in_fp32_and_refuses_bf16(tiny_domains):
    assert make_trainer(tiny_domains, "doge", {"mu": 0.05}).precision == "fp32"
    with pytest.raises(ConfigError, match="bf16 is not available to doge"):
        make_trainer(tiny_domains, "doge", {"mu": 0.05}, precision="bf16")


HOST_READS = ("item", "__float__", "__int__", "__bool__", "__index__", "cpu", "numpy", "tolist")


@contextlib.contextmanager
def host_reads(seen: list):
    """Record every tensor the code reads on the host (the calls that wait for a GPU)."""
    saved = {n: getattr(torch.Tensor, n) for n in HOST_READS}

    def spy(name):
        def read(self, *a, **k):
            seen.append((name, self))
            return saved[name](self, *a, **k)

        return read

    for n in HOST_READS:
        setattr(torch.Tensor, n, spy(n))
    try:
        yield
    finally:
        for n, f in saved.items():
            setattr(torch.Tensor, n, f)


@pytest.mark.parametrize(
    "method,params,apply",
    [
        ("stratified", {}, "sample"),
        ("stratified", {}, "loss"),
        ("cooldown", {"t_start": 4.0, "switch_frac": 0.4}, "sample"),
        ("temperature", {"temperature": 3.0}, "loss"),
    ],
)
def test_the_step_reads_nothing_from_the_device(tiny_domains, method, params, apply):
    """Inside ``train_step`` the only host reads are AdamW's step counters, which torch keeps
    on the CPU for a CUDA model too; losses and norms wait on the device for the report."""
    t = make_trainer(tiny_domains, method, params, apply=apply)
    t.train(2)
    seen: list = []
    with host_reads(seen):
        t.train(3)
    counters = {id(s["step"]) for s in t.optimizer.state.values()}
    assert seen and all(name == "item" and id(x) in counters for name, x in seen), [
        n for n, x in seen if id(x) not in counters
    ]
    with host_reads(seen := []):
        t.pop_train_losses(), t.pop_health()
    assert seen  # the report is where they are read


def gpu_tagged_copy(src_path, dst_path) -> None:
    """The checkpoint as a GPU node writes it: every tensor's storage tagged ``cuda:0``.

    torch.save pickles with protocol 2 (no frames), so the location strings can be swapped
    in place; loading it without map_location here fails as a GPU checkpoint does on a CPU.
    """
    src = zipfile.ZipFile(src_path)
    with zipfile.ZipFile(dst_path, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("data.pkl"):
                assert b"X\x03\x00\x00\x00cpu" in data
                data = data.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")
            dst.writestr(info, data)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_a_checkpoint_saved_on_a_gpu_restores_onto_the_trainers_device(tiny_domains, tmp_path):
    first = make_trainer(tiny_domains)
    first.train(5)
    first.save(tmp_path / "cpu.pt")
    gpu_tagged_copy(tmp_path / "cpu.pt", tmp_path / "gpu.pt")
    with pytest.raises(RuntimeError, match="CUDA device"):  # the tags are real
        torch.load(tmp_path / "gpu.pt", weights_only=True)

    a, b = make_trainer(tiny_domains, seed=7), make_trainer(tiny_domains, seed=7)
    a.load(tmp_path / "cpu.pt")
    b.load(tmp_path / "gpu.pt")  # mapped onto b.device, the CPU
    assert all(p.device == b.device for p in b.model.parameters())
    assert b._loss_sum.device == b.device
    a.train(5), b.train(5)
    for x, y in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(x, y)


@pytest.mark.slow
def test_compile_trains_the_same_model_and_reports_its_warm_up_once(tiny_domains):
    """torch.compile on the CPU: 30 to 50 s of warm-up on a 2-core machine (hence slow)."""
    eager, compiled = make_trainer(tiny_domains), make_trainer(tiny_domains, compile=True)
    assert compiled.compile_warmup_s is None
    eager.train(6), compiled.train(1)
    warm = compiled.compile_warmup_s
    assert warm is not None and warm > 0
    compiled.train(5)
    assert compiled.compile_warmup_s == warm  # measured once
    assert list(compiled.model.state_dict()) == list(eager.model.state_dict())
    np.testing.assert_allclose(compiled.evaluate(), eager.evaluate(), atol=1e-4)
