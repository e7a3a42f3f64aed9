"""Shared test fixtures: small generated images and the optional ../shared material."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

# Tests run tiny networks, where OpenMP threads spinning against data workers and the extra processes
# of the distributed tests cost far more than they gain. Set before torch loads; subprocesses inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CYCLEGAN_SHARED", REPO.parent / "shared"))
torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def shared_path(*parts: str) -> Path:
    """A path inside ../shared, or skip the test with the reason when it is not there."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not found (set CYCLEGAN_SHARED to the shared test material)")
    return path


def write_image(path: Path, size=(32, 32), mode: str = "RGB", seed: int = 0, fmt: str | None = None) -> Path:
    """Write a small random image of ``size`` (width, height) and ``mode``."""
    rng = np.random.default_rng(seed)
    w, h = size
    arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    img = Image.fromarray(arr, "RGB")
    if mode == "RGBA":
        img = img.convert("RGBA")
        img.putalpha(Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8), "L"))
    elif mode != "RGB":
        img = img.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format=fmt)
    return path


def make_folder(root: Path, n: int, size=(32, 32), ext: str = ".png", seed: int = 0) -> Path:
    for i in range(n):
        write_image(root / f"img_{i:03d}{ext}", size=size, seed=seed + i)
    return root


@pytest.fixture(autouse=True)
def auto_precision_fp32_on_cpu(monkeypatch):
    """``--precision auto`` picks bf16 on CPUs with native bf16, and tests compare outputs with fp32 ones:
    every CPU runs the tests as one without it (tests/test_export.py checks the choice itself)."""
    from cyclegan import runtime

    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: False)


@pytest.fixture
def image_dirs(tmp_path: Path) -> tuple[Path, Path]:
    """Two small unpaired domains: 4 images in A, 3 in B."""
    return make_folder(tmp_path / "A", 4, seed=0), make_folder(tmp_path / "B", 3, seed=100)


class TinyInception(torch.nn.Module):
    """Stands in for the FID Inception network with its contract ([N, 3, 299, 299] input scaled
    ``(x - 128) / 128`` → ``[N, dim]`` features) and random weights, so metric tests run in milliseconds."""

    def __init__(self, dim: int = 16):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, dim, 5, stride=4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[2] == 299 and x.shape[3] == 299, "the FID network takes 299x299 input"
        return torch.tanh(self.conv(x)).mean(dim=(2, 3))


def save_tiny_inception(path: Path, dim: int = 16, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    save_torchscript(TinyInception(dim).eval(), path)
    return path


def save_torchscript(net: torch.nn.Module, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit's nudge towards torch.export
        torch.jit.save(torch.jit.script(net), str(path))
    return path


@pytest.fixture
def tiny_inception(tmp_path: Path) -> Path:
    """A TorchScript file with the FID Inception contract (16 features, random weights)."""
    return save_tiny_inception(tmp_path / "tiny_inception.pt")
