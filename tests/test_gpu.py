"""On a CUDA GPU: bf16 training agrees with fp32, channels-last and compile change nothing, translate splits
a batch that does not fit in memory, and resume is exact. Skipped without CUDA."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file

from cyclegan.config import TrainConfig
from cyclegan.models import GeneratorSpec, build_generator
from cyclegan.train import Trainer
from cyclegan.translate import Translator
from tests.test_tiles import levels, photo
from tests.test_train import TINY, train_cli

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
CUDA = torch.device("cuda")


def training_losses(device: torch.device, precision: str = "fp32", steps: int = 5, size: int = 64,
                    **options) -> list[dict[str, float]]:
    """The losses of ``steps`` training steps of a small CycleGAN on fixed random images, from seed 0."""
    torch.manual_seed(0)
    cfg = TrainConfig(ngf=8, ndf=8, net_g="resnet_6blocks", pool_size=4, **options)
    trainer = Trainer(cfg, device, precision)
    images = torch.Generator().manual_seed(1)
    out = []
    for _ in range(steps):
        a, b = (torch.rand(1, 3, size, size, generator=images) * 2 - 1 for _ in range(2))
        losses = trainer.step(a.to(device), b.to(device))
        out.append({k: v.item() for k, v in losses.items()})
    return out


def assert_close_losses(got: list[dict[str, float]], want: list[dict[str, float]], rtol: float, atol: float):
    for step, (g, w) in enumerate(zip(got, want, strict=True), start=1):
        for name in w:
            assert math.isfinite(g[name]), (step, name, g)
            assert abs(g[name] - w[name]) <= atol + rtol * abs(w[name]), (step, name, g[name], w[name])


def test_bf16_training_stays_finite_and_close_to_fp32():
    fp32 = training_losses(CUDA, "fp32")
    bf16 = training_losses(CUDA, "bf16")
    assert_close_losses(bf16, fp32, rtol=0.05, atol=0.02)


@pytest.mark.slow  # torch.compile of four networks: a minute or two
def test_channels_last_and_compile_give_the_losses_of_eager():
    eager = training_losses(CUDA, steps=3)
    for options in ({"channels_last": True}, {"compile": True}):
        other = training_losses(CUDA, steps=3, **options)
        # The first losses come before any update: only the kernels differ (cuDNN's choices, TF32 included).
        assert_close_losses(other[:1], eager[:1], rtol=5e-3, atol=1e-4)
        # Adam's first updates are about lr × sign(gradient), so rounding in near-zero gradients moves
        # weights by whole steps and the losses drift by a few percent (up to 0.04 on this CPU).
        assert_close_losses(other, eager, rtol=0.1, atol=0.02)


def test_translate_splits_a_batch_that_does_not_fit_under_a_memory_cap():
    spec = GeneratorSpec(ngf=16, n_blocks=2)
    torch.manual_seed(0)
    net = build_generator(spec)
    x = torch.cat([photo(512, 512, seed=i) for i in range(8)])
    one_by_one = torch.cat([Translator(net, spec, CUDA)(x[i:i + 1]) for i in range(len(x))])

    # What one image costs, then a cap that holds about three: the batch of eight must be split.
    translator = Translator(net, spec, CUDA)
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    translator(x[:1])
    one = torch.cuda.max_memory_allocated() - base
    translator = Translator(net, spec, CUDA)
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(CUDA).total_memory
    torch.cuda.set_per_process_memory_fraction((base + 3.5 * one) / total)
    try:
        y = translator(x)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()
    assert translator._max_pixels is not None and translator._max_pixels < len(x) * 512 * 512
    assert translator.tile is None and translator._cpu_pixels is None  # split, not tiled, not on the CPU
    assert levels(y, one_by_one).max() <= 1


def test_resume_on_the_gpu_is_exact(image_dirs, tmp_path):
    a, b = image_dirs
    common = ["--domainA", str(a), "--domainB", str(b), "--checkpoints-dir", str(tmp_path), "--wandb-mode",
              "disabled", "--device", "cuda", *TINY]
    train_cli(*common, "--name", "straight", "--max-steps", "6")
    train_cli(*common, "--name", "again", "--max-steps", "6")
    train_cli(*common, "--name", "resumed", "--max-steps", "3")
    train_cli("--name", "resumed", "--checkpoints-dir", str(tmp_path), "--resume", "--max-steps", "6",
              "--workers", "0", "--wandb-mode", "disabled")

    def difference(run: str) -> float:
        diffs = []
        for g in ("G_AB", "G_BA"):
            x = load_file(tmp_path / "straight" / f"{g}.safetensors")
            y = load_file(tmp_path / run / f"{g}.safetensors")
            diffs += [(x[k] - y[k]).abs().max().item() for k in x]
        return max(diffs)

    # cuDNN may pick other kernels from run to run: resuming may differ from a straight run by as much as two
    # straight runs differ from each other, not more (a restarted schedule or a lost pool differs far more)
    assert difference("resumed") <= max(1e-5, 10 * difference("again"))
