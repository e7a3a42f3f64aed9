"""Speed options (precision, channels-last, batch size, compile fallback) and multi-process training."""

import json
import logging
import math
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from cyclegan.checkpoint import load_state
from cyclegan.cli import app
from cyclegan.config import TrainConfig
from cyclegan.models.generator import ResnetBlock
from cyclegan.runtime import autocast, compile_network, compile_problem, memory_format
from cyclegan.train import Trainer
from tests.conftest import REPO, make_folder

runner = CliRunner()
TINY = ["--image-size", "32", "--load-size", "36", "--ngf", "8", "--ndf", "8", "--net-g", "resnet_6blocks",
        "--workers", "0", "--wandb-mode", "disabled"]


def tiny_config(**kw) -> TrainConfig:
    return TrainConfig(ngf=4, ndf=4, net_g="resnet_6blocks", pool_size=2, **kw)


def fp16_on_cpu_problem() -> str | None:
    try:
        with torch.autocast("cpu", dtype=torch.float16):
            torch.nn.Conv2d(3, 3, 3)(torch.randn(1, 3, 8, 8)).float().sum().backward()
    except RuntimeError as e:
        return str(e)
    return None


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_precision_trains_with_finite_losses(precision):
    if precision == "fp16" and (problem := fp16_on_cpu_problem()):
        pytest.skip(f"this torch build has no fp16 autocast on CPU: {problem}")
    torch.manual_seed(0)
    trainer = Trainer(tiny_config(), torch.device("cpu"), precision)
    before = {k: v.clone() for k, v in trainer.nets.G_AB.state_dict().items()}
    real_A, real_B = torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1
    # fp16: GradScaler skips the first steps while it lowers its scale until gradients no longer overflow
    for _ in range(8 if precision == "fp16" else 3):
        losses = trainer.step(real_A, real_B)
        assert set(losses) == {"G_AB", "G_BA", "D_A", "D_B", "cycle_A", "cycle_B", "idt_A", "idt_B"}
        assert all(math.isfinite(v.item()) for v in losses.values()), losses
    # autocast really ran in the lower precision, and fp16 alone scales its losses
    expected = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    assert trainer.last_images[1].dtype == expected
    assert trainer.amp.scaler.is_enabled() == (precision == "fp16")
    after = trainer.nets.G_AB.state_dict()
    assert all(torch.isfinite(v).all() for v in after.values())
    assert any(not torch.equal(before[k], after[k]) for k in before)  # the generator did learn


def test_batch_of_four_with_channels_last(image_dirs, tmp_path):
    a, b = image_dirs
    result = runner.invoke(app, ["train", "--domainA", str(a), "--domainB", str(b), "--checkpoints-dir",
                                 str(tmp_path), "--batch-size", "4", "--max-steps", "2",
                                 "--channels-last", "--pool-size", "3", *TINY])
    assert result.exit_code == 0, result.output + repr(result.exception)
    state = load_state(tmp_path / "cyclegan" / "latest.pt")
    assert state["step"] == 2 and state["epoch"] == 2  # 4 images per step: one step per epoch
    pool = state["trainer"]["pool_A"]["images"]
    assert len(pool) == 3 and all(t.shape == (1, 3, 32, 32) for t in pool)  # the pool holds single images
    assert all(torch.isfinite(t).all() for t in state["trainer"]["G_AB"].values())


def test_compile_falls_back_with_a_message(monkeypatch, caplog):
    monkeypatch.setattr("cyclegan.train.compile_problem", lambda device: "no C++ compiler found")
    with caplog.at_level(logging.WARNING):
        trainer = Trainer(tiny_config(compile=True), torch.device("cpu"), "fp32")
    assert "torch.compile cannot run here (no C++ compiler found)" in caplog.text
    assert trainer.generators.G_AB is trainer.nets.G_AB  # eager
    losses = trainer.step(torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 32, 32))
    assert math.isfinite(losses["cycle_A"].item())


def test_compiled_bf16_resnet_block_on_a_cpu_gives_the_gradients_of_eager():
    """Inductor's AVX-512 bf16 kernels gave a ResNet block NaN gradients (``runtime.compile_network``)."""
    if problem := compile_problem(torch.device("cpu")):
        pytest.skip(problem)
    torch.manual_seed(0)
    block = ResnetBlock(64, "instance", dropout=False)
    x = torch.randn(1, 64, 16, 16)
    grads = []
    for net in (block, compile_network(block, torch.device("cpu"), "bf16")):
        block.zero_grad()
        with autocast(torch.device("cpu"), "bf16"):
            y = net(x)
        y.float().square().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in block.parameters()]))
    eager, compiled = grads
    assert torch.isfinite(compiled).all()
    assert torch.cosine_similarity(compiled, eager, dim=0) > 0.99  # bf16 rounds each differently


def test_memory_format_by_default_follows_the_device_and_compile():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert memory_format(None, cpu) == torch.contiguous_format  # eager bf16 convolutions: faster in NCHW
    assert memory_format(None, cpu, compiled_training=True) == torch.channels_last  # inductor's fused kernels
    assert memory_format(None, cuda) == torch.channels_last
    assert memory_format(False, cuda, compiled_training=True) == torch.contiguous_format
    assert memory_format(True, cpu) == torch.channels_last


def test_a_cpu_trains_in_nchw_unless_asked():
    weight = "model.1.weight"  # the first convolution's, [ngf, 3, 7, 7]: its layouts differ
    nchw = Trainer(tiny_config(), torch.device("cpu"), "fp32").nets.G_AB.state_dict()[weight]
    cl = Trainer(tiny_config(channels_last=True), torch.device("cpu"), "fp32").nets.G_AB.state_dict()[weight]
    assert nchw.is_contiguous() and not cl.is_contiguous()
    assert cl.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("threshold, compiles", [(10**6, False), (1, True)])
def test_runs_compile_by_default_from_a_number_of_steps(image_dirs, tmp_path, monkeypatch, caplog,
                                                       threshold, compiles):
    monkeypatch.setattr("cyclegan.train.COMPILE_FROM_STEPS", threshold)
    monkeypatch.setattr("cyclegan.train.compile_problem", lambda device: "no C++ compiler found")  # stay fast
    a, b = image_dirs
    with caplog.at_level(logging.WARNING):
        result = runner.invoke(app, ["train", "--domainA", str(a), "--domainB", str(b), "--checkpoints-dir",
                                     str(tmp_path), "--max-steps", "1", *TINY])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert ("torch.compile cannot run here" in caplog.text) == compiles
    assert json.loads((tmp_path / "cyclegan" / "config.json").read_text())["compile"] is None  # auto on resume


# --------------------------------------------------------------------------------------------------
# Two processes on the CPU (gloo), started by torchrun as on a GPU machine


def torchrun(worker_out, *args, env=None) -> subprocess.CompletedProcess:
    """``torchrun --nproc-per-node 2`` running tests/ddp_worker.py (``cyclegan train`` plus records)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           str(REPO / "tests" / "ddp_worker.py"), str(worker_out), "train", *args]
    env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def domains(tmp_path_factory):
    root = tmp_path_factory.mktemp("domains")
    return make_folder(root / "A", 4, seed=0), make_folder(root / "B", 3, seed=100)


@pytest.fixture(scope="module")
def straight_run(domains, tmp_path_factory):
    """Four steps on two ranks, uninterrupted."""
    a, b = domains
    root = tmp_path_factory.mktemp("straight")
    proc = torchrun(root / "worker", "--domainA", str(a), "--domainB", str(b), "--checkpoints-dir",
                    str(root / "runs"), "--name", "ddp", "--max-steps", "4", *TINY)
    return root, proc


def ranks_weights(worker_out) -> tuple[dict, dict]:
    return tuple(torch.load(worker_out / f"rank{r}.pt", weights_only=True) for r in (0, 1))


def test_two_processes_train_in_step_and_only_rank_0_writes(straight_run):
    root, proc = straight_run
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = root / "runs" / "ddp"
    state = load_state(run / "latest.pt")
    # 4 A images over 2 ranks with batch 1: 2 steps per epoch
    assert state["step"] == 4 and state["epoch"] == 2
    assert json.loads((run / "config.json").read_text())["world_size"] == 2
    # gradients are averaged over the ranks, so both end with the same generators
    w0, w1 = ranks_weights(root / "worker")
    for g in ("G_AB", "G_BA"):
        assert all(torch.equal(w0[g][k], w1[g][k]) for k in w0[g])
        saved = load_file(run / f"{g}.safetensors")
        assert all(torch.equal(saved[k], w0[g][k]) for k in saved)
    # rank 0 wrote the checkpoints, samples and config; rank 1 wrote nothing, and only rank 0 logged
    writes = [json.loads((root / "worker" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert any("latest.pt" in w for w in writes[0]) and any("samples" in w for w in writes[0])
    assert writes[1] == []
    assert (proc.stdout + proc.stderr).count("done: 4 steps") == 1


def test_interrupt_on_one_rank_stops_all_and_resume_continues_exactly(domains, straight_run, tmp_path):
    a, b = domains
    ckpt = tmp_path / "runs"
    # Ctrl-C reaches rank 1 alone, during step 2: both ranks stop after step 2 and rank 0 saves
    proc = torchrun(tmp_path / "worker", "--domainA", str(a), "--domainB", str(b), "--checkpoints-dir", str(ckpt),
                    "--name", "ddp", "--max-steps", "100", *TINY, env={"CYCLEGAN_TEST_SIGINT": "1:2"})
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out  # interrupted runs exit with 130
    assert "interrupted at step 2" in out
    assert load_state(ckpt / "ddp" / "latest.pt")["step"] == 2
    w0, w1 = ranks_weights(tmp_path / "worker")
    assert all(torch.equal(w0["G_AB"][k], w1["G_AB"][k]) for k in w0["G_AB"])

    # `--gpus 2` relaunches the command under torchrun; every rank resumes from latest.pt
    result = runner.invoke(app, ["train", "--name", "ddp", "--checkpoints-dir", str(ckpt), "--resume",
                                 "--max-steps", "4", "--gpus", "2", "--device", "cpu", "--workers", "0",
                                 "--wandb-mode", "disabled"], env={"PYTHONPATH": str(REPO)})
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert load_state(ckpt / "ddp" / "latest.pt")["step"] == 4
    straight = straight_run[0] / "runs" / "ddp"
    for g in ("G_AB", "G_BA"):
        x, y = load_file(straight / f"{g}.safetensors"), load_file(ckpt / "ddp" / f"{g}.safetensors")
        assert max((x[k] - y[k]).abs().max().item() for k in x) <= 1e-6


def test_gpus_needs_that_many_gpus(image_dirs):
    if torch.cuda.device_count() >= 64:
        pytest.skip("this machine has 64 GPUs")
    a, b = image_dirs
    result = runner.invoke(app, ["train", "--domainA", str(a), "--domainB", str(b), "--gpus", "64"])
    assert result.exit_code == 2 and "--gpus 64" in result.output and "--device cpu" in result.output


def test_processes_starting_together_download_a_dataset_once(tmp_path, monkeypatch):
    # every rank under torchrun resolves a named dataset: one must download it while the others wait
    from concurrent.futures import ThreadPoolExecutor

    from cyclegan.catalog import ensure_dataset
    from tests.fileserver import FileServer, dataset_zip

    monkeypatch.setenv("no_proxy", "127.0.0.1")
    with FileServer(tmp_path / "served") as server:
        dataset_zip(server.folder / "datasets" / "monet2photo.zip", "monet2photo", n=2)
        monkeypatch.setenv("CYCLEGAN_DATASETS_URL", f"{server.url}/datasets")
        with ThreadPoolExecutor(3) as pool:
            folders = list(pool.map(lambda _: ensure_dataset("monet2photo", tmp_path / "data"), range(3)))
    assert folders == [tmp_path / "data" / "monet2photo"] * 3
    assert len(list((folders[0] / "trainA").iterdir())) == 2
    assert server.requests == [("datasets/monet2photo.zip", None)]
