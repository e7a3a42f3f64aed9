"""Shared test fixtures: small generated images and the optional ../shared material."""

from __future__ import annotations

import os
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


@pytest.fixture
def image_dirs(tmp_path: Path) -> tuple[Path, Path]:
    """Two small unpaired domains: 4 images in A, 3 in B."""
    return make_folder(tmp_path / "A", 4, seed=0), make_folder(tmp_path / "B", 3, seed=100)
