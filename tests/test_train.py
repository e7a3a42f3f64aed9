import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from cyclegan.checkpoint import load_state
from cyclegan.cli import app
from cyclegan.networks import load_network
from cyclegan.train import ImagePool, lr_factor
from tests.conftest import REPO, make_folder, shared_path, write_image

runner = CliRunner()
TINY = ["--image-size", "32", "--load-size", "36", "--ngf", "8", "--ndf", "8", "--workers", "0",
        "--net-g", "resnet_6blocks"]


def train_cli(*args, ok=True):
    result = runner.invoke(app, ["train", *args])
    if ok:
        assert result.exit_code == 0, result.output + repr(result.exception)
    return result


@pytest.mark.parametrize("epoch,factor", [(1, 1.0), (100, 1.0), (101, 1 - 1 / 101), (150, 1 - 50 / 101),
                                          (200, 1 - 100 / 101)])
def test_lr_schedule_matches_original_release(epoch, factor):
    assert lr_factor(epoch, 100, 100) == pytest.approx(factor)


@pytest.mark.filterwarnings("ignore:Detected call of")
def test_lr_schedule_in_optimizer(image_dirs, tmp_path):
    from cyclegan.config import TrainConfig
    from cyclegan.train import Trainer

    cfg = TrainConfig(epochs=2, epochs_decay=3, ngf=4, ndf=4, net_g="resnet_6blocks")
    trainer = Trainer(cfg, torch.device("cpu"), "fp32")
    lrs = []
    for _ in range(5):
        lrs.append(trainer.lr)
        trainer.end_epoch()
    assert lrs == pytest.approx([2e-4, 2e-4, 2e-4 * 3 / 4, 2e-4 * 2 / 4, 2e-4 * 1 / 4])


def test_image_pool():
    pool = ImagePool(size=3, seed=0)
    first = torch.arange(3.0).view(3, 1, 1, 1)
    assert torch.equal(pool.query(first), first)  # fills up and passes images through
    assert len(pool.images) == 3
    newer = torch.full((200, 1, 1, 1), 9.0)
    out = pool.query(newer)
    old = (out != 9.0).sum().item()
    assert 0 < old < 200  # about half the time an older image comes back instead
    assert out.shape == newer.shape
    assert torch.equal(ImagePool(size=0).query(newer), newer)
    # the pool's randomness is part of its state
    state = pool.state_dict()
    a = pool.query(torch.full((20, 1, 1, 1), 5.0))
    pool.load_state_dict(state)
    assert torch.equal(pool.query(torch.full((20, 1, 1, 1), 5.0)), a)


def test_smoke_run_writes_a_complete_run_folder(image_dirs, tmp_path):
    a, b = image_dirs
    ckpt = tmp_path / "runs"
    train_cli("--domainA", str(a), "--domainB", str(b), "--name", "smoke", "--checkpoints-dir", str(ckpt),
              "--max-steps", "5", "--save-every", "1", "--wandb-mode", "offline", *TINY)
    run = ckpt / "smoke"
    config = json.loads((run / "config.json").read_text())
    assert config["lambda_cycle"] == 10.0 and config["max_steps"] == 5
    assert config["files"]["n_a"] == 4 and "torch" in config["versions"]
    state = load_state(run / "latest.pt")
    assert state["step"] == 5 and state["epoch"] == 1 and state["batch_in_epoch"] == 1
    net, spec = load_network(run / "G_AB.safetensors")
    assert spec.ngf == 8 and spec.n_blocks == 6
    assert net(torch.zeros(1, 3, 32, 32)).shape == (1, 3, 32, 32)
    assert (run / "G_BA.safetensors").is_file()
    assert (run / "epoch_001" / "G_AB.safetensors").is_file()
    assert list((run / "samples").glob("*.png"))
    assert list((run / "wandb").glob("offline-run-*/run-*.wandb"))


def test_resume_is_exact(image_dirs, tmp_path):
    a, b = image_dirs
    common = ["--domainA", str(a), "--domainB", str(b), "--checkpoints-dir", str(tmp_path), "--wandb-mode",
              "disabled", *TINY]
    train_cli(*common, "--name", "straight", "--max-steps", "6")
    train_cli(*common, "--name", "resumed", "--max-steps", "3")
    # resuming needs only the run's name: everything else comes from its config.json
    train_cli("--name", "resumed", "--checkpoints-dir", str(tmp_path), "--resume", "--max-steps", "6",
              "--workers", "0", "--wandb-mode", "disabled")
    for g in ("G_AB", "G_BA"):
        x = load_file(tmp_path / "straight" / f"{g}.safetensors")
        y = load_file(tmp_path / "resumed" / f"{g}.safetensors")
        assert max((x[k] - y[k]).abs().max().item() for k in x) <= 1e-5
    assert load_state(tmp_path / "resumed" / "latest.pt")["step"] == 6


def test_corrupt_grayscale_and_rgba_images(tmp_path, caplog):
    a = make_folder(tmp_path / "A", 2)
    write_image(a / "gray.png", mode="L")
    write_image(a / "alpha.png", mode="RGBA")
    (a / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    b = make_folder(tmp_path / "B", 2, seed=5)
    train_cli("--domainA", str(a), "--domainB", str(b), "--checkpoints-dir", str(tmp_path), "--max-steps", "8",
              "--wandb-mode", "disabled", *TINY)
    warnings = [r.getMessage() for r in caplog.records if "corrupt.jpg" in r.getMessage()]
    assert len(warnings) == 1  # named once, not at every epoch
    assert load_state(tmp_path / "cyclegan" / "latest.pt")["step"] == 8


def test_empty_or_missing_folder_fails_before_any_work(tmp_path):
    (tmp_path / "empty").mkdir()
    b = make_folder(tmp_path / "B", 1)
    result = train_cli("--domainA", str(tmp_path / "empty"), "--domainB", str(b), "--checkpoints-dir",
                       str(tmp_path / "runs"), "--wandb-mode", "disabled", ok=False)
    assert result.exit_code == 2
    assert "holds no images" in result.output and "empty" in result.output
    assert not (tmp_path / "runs").exists()
    result = train_cli("--domainA", str(tmp_path / "nope"), "--domainB", str(b), ok=False)
    assert result.exit_code == 2 and "does not exist" in result.output


def test_bad_option_is_a_clear_error(image_dirs):
    a, b = image_dirs
    result = train_cli("--domainA", str(a), "--domainB", str(b), "--gan-mode", "wgan", ok=False)
    assert result.exit_code == 2 and "--gan-mode" in result.output


def test_sigint_saves_a_resumable_checkpoint(image_dirs, tmp_path):
    a, b = image_dirs
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "cyclegan", "train", "--domainA", str(a), "--domainB", str(b), "--checkpoints-dir",
           str(tmp_path), "--name", "sig", "--max-steps", "100000", "--wandb-mode", "disabled",
           "--sample-every", "1", *TINY[:-4], "--workers", "1"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    samples = tmp_path / "sig" / "samples"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(samples.glob("*.png"))) < 3:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    step = load_state(tmp_path / "sig" / "latest.pt")["step"]
    assert step >= 3
    assert "--resume" in out
    train_cli("--name", "sig", "--checkpoints-dir", str(tmp_path), "--resume", "--max-steps", str(step + 2),
              "--workers", "0", "--wandb-mode", "disabled")
    assert load_state(tmp_path / "sig" / "latest.pt")["step"] == step + 2


def test_trains_on_real_monet2photo_subset(tmp_path):
    root = shared_path("datasets", "monet2photo_mini")
    train_cli("--domainA", str(root / "trainB"), "--domainB", str(root / "trainA"), "--checkpoints-dir",
              str(tmp_path), "--max-steps", "3", "--wandb-mode", "disabled", "--image-size", "64",
              "--load-size", "72", "--ngf", "8", "--ndf", "8", "--workers", "2")
    state = load_state(tmp_path / "cyclegan" / "latest.pt")
    assert state["step"] == 3
    assert all(torch.isfinite(t).all() for t in state["trainer"]["G_AB"].values())


def test_pool_size_0_trains(image_dirs, tmp_path):
    a, b = image_dirs
    train_cli("--domainA", str(a), "--domainB", str(b), "--checkpoints-dir", str(tmp_path), "--max-steps", "2",
              "--pool-size", "0", "--wandb-mode", "disabled", *TINY)
    assert load_state(tmp_path / "cyclegan" / "latest.pt")["step"] == 2


def test_preprocess_none_with_domains_of_different_sizes(tmp_path):
    a = make_folder(tmp_path / "A", 2, size=(32, 32))
    b = make_folder(tmp_path / "B", 2, size=(48, 40), seed=7)
    common = ["--domainA", str(a), "--domainB", str(b), "--checkpoints-dir", str(tmp_path), "--max-steps", "2",
              "--preprocess", "none", "--wandb-mode", "disabled", *TINY]
    train_cli(*common)
    from PIL import Image

    grid = Image.open(tmp_path / "cyclegan" / "samples" / "step_0000001.png")
    assert grid.size == (3 * 48 + 4 * 2, 2 * 40 + 3 * 2)  # tiles padded to the largest, 2-pixel borders
    # images of different sizes cannot share a batch: refused before any work
    result = train_cli(*common, "--name", "batched", "--batch-size", "2", ok=False)
    assert result.exit_code == 2 and "--preprocess none" in result.output and "--batch-size 1" in result.output
    assert not (tmp_path / "batched").exists()


def test_images_too_small_for_the_network_are_skipped_naming_them(tmp_path, caplog):
    """With --preprocess none a 1×1 image reaches the network as it is: it ended in a traceback from the
    instance norm that named no file. It is skipped with a warning naming it, as an unreadable file is."""
    a = make_folder(tmp_path / "A", 2, size=(32, 24))
    write_image(a / "dot.png", size=(1, 1))
    b = make_folder(tmp_path / "B", 2, size=(28, 32), seed=5)
    train_cli("--domainA", str(a), "--domainB", str(b), "--checkpoints-dir", str(tmp_path), "--max-steps", "3",
              "--wandb-mode", "disabled", "--preprocess", "none", *TINY)
    warnings = [r.getMessage() for r in caplog.records if "dot.png" in r.getMessage()]
    assert len(warnings) == 1 and "1×1 pixels, smaller than the 8 a side" in warnings[0]
    assert load_state(tmp_path / "cyclegan" / "latest.pt")["step"] == 3


def test_a_folder_with_nothing_usable_stops_before_the_run_folder_saying_why(tmp_path):
    a = tmp_path / "A"
    a.mkdir()
    for name in ("x.png", "y.jpg"):
        (a / name).write_bytes(b"not an image")
    b = make_folder(tmp_path / "B", 2, seed=5)
    result = train_cli("--domainA", str(a), "--domainB", str(b), "--checkpoints-dir", str(tmp_path / "runs"),
                       "--wandb-mode", "disabled", *TINY, ok=False)
    text = " ".join(result.output.split())
    assert result.exit_code == 2 and "no image of the domain A folder can be trained on" in text
    assert "x.png: not an image file this tool reads" in text and "y.jpg: not an image file" in text
    assert "UnidentifiedImageError" not in text
    assert not (tmp_path / "runs").exists()  # no untrained checkpoint, no run folder


def test_a_crop_larger_than_the_images_is_said_once(tmp_path, caplog):
    a = make_folder(tmp_path / "A", 2, size=(24, 24))
    b = make_folder(tmp_path / "B", 2, size=(40, 40), seed=5)
    train_cli("--domainA", str(a), "--domainB", str(b), "--checkpoints-dir", str(tmp_path), "--max-steps", "4",
              "--wandb-mode", "disabled", "--preprocess", "crop", *TINY)
    warnings = [r.getMessage() for r in caplog.records if "pads" in r.getMessage()]
    assert len(warnings) == 1 and "24×24" in warnings[0] and "--image-size 32" in warnings[0]
