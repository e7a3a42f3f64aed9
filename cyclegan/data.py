"""Finding and decoding images, augmentation, and the unpaired two-domain dataset.

Every command reads images through ``load_image`` so that EXIF orientation, odd colour modes and
corrupt files are handled the same way everywhere.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from .errors import UserError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def find_images(root: str | Path) -> list[Path]:
    """All image files below ``root`` (recursive, any letter case), sorted; ``root`` may be one image."""
    root = Path(root)
    if root.is_file():
        return [root] if is_image(root) else []
    return sorted(p for p in root.rglob("*") if p.is_file() and is_image(p) and not p.name.startswith("."))


def image_folder(path: str | Path, what: str = "image folder") -> list[Path]:
    """The images of a folder that must exist and hold images; otherwise a ``UserError`` naming the path."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{what} {str(path)!r} does not exist")
    images = find_images(path)
    if not images:
        raise UserError(f"{what} {str(path)!r} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    return images


def _to_8bit(img: Image.Image) -> Image.Image:
    """Scale 16/32-bit integer and float greyscale images into 8 bits instead of clipping them."""
    arr = np.asarray(img)
    if img.mode == "F":
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo or 1.0) * 255.0
    else:
        # I;16 images hold 0..65535; mode I may hold anything, so scale by its actual range when it exceeds 16 bits.
        top = 65535.0 if arr.max() <= 65535 else float(arr.max())
        arr = arr.astype(np.float64) / top * 255.0
    return Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8), mode="L")


def load_image(path: str | Path, keep_alpha: bool = False) -> tuple[Image.Image, Image.Image | None]:
    """Decode an image as 8-bit RGB with its EXIF orientation applied.

    Returns ``(rgb, alpha)``; ``alpha`` is the transparency channel (mode ``L``) when ``keep_alpha`` is
    set and the image has one, else ``None``. Raises ``OSError``/``ValueError`` for unreadable files.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(path) as img:
            img.load()
            img = ImageOps.exif_transpose(img)
    alpha = None
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        img = _to_8bit(img)
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA") and keep_alpha:
        alpha = img.getchannel("A")
    if img.mode != "RGB":
        img = img.convert("RGB")  # handles L, LA, RGBA (alpha dropped), CMYK, YCbCr, 1
    return img, alpha


def try_load_image(path: Path, keep_alpha: bool = False) -> tuple[Image.Image, Image.Image | None] | None:
    """``load_image``, but a corrupt or unreadable file logs one warning naming it and returns ``None``."""
    try:
        return load_image(path, keep_alpha)
    except Exception as e:  # PIL raises a zoo of types for broken files
        log.warning("skipping unreadable image %s (%s: %s)", path, type(e).__name__, e)
        return None


def to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL RGB → float tensor ``[3, H, W]`` in [-1, 1], the range the generators work in."""
    arr = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy())
    return arr.permute(2, 0, 1).float().div_(127.5).sub_(1.0)


def to_image(t: torch.Tensor) -> Image.Image:
    """Float tensor ``[3, H, W]`` in [-1, 1] → PIL RGB."""
    arr = t.detach().float().clamp(-1, 1).add(1).mul(127.5).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(arr, mode="RGB")


def mirror_path(src: Path, input_root: Path, output_root: Path, suffix: str | None = None) -> Path:
    """Where the output for ``src`` goes: same relative path below ``output_root``, optionally new suffix.

    ``input_root`` may be a single file, in which case ``output_root`` is a file path when it has an image
    suffix, else the folder to put it in.
    """
    if input_root.is_file():
        out = output_root if is_image(output_root) else output_root / src.name
    else:
        out = output_root / src.relative_to(input_root)
    return out.with_suffix(suffix) if suffix else out
