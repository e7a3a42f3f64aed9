"""Images for the style methods: reading a user's image, PIL ↔ [0, 1] tensors, sizes, and colour.

The style methods work in RGB [0, 1] (VGG's range, and AdaIN's), unlike the CycleGAN generators' [-1, 1]
(``data.from_uint8``). ``to_tensor`` and ``to_image`` are the one conversion pair; outputs are rounded to
the nearest 8-bit level, as torchvision's ``save_image`` does.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from ..data import ImageTooLarge, load_image, uint8_tensor, unreadable
from ..errors import UserError
from ..outputs import write_image

LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, the Y of YIQ/YUV/YCbCr


def read_image(path: str | Path, what: str, max_side: int | None = None) -> Image.Image:
    """An image file the user named (a content or style image, a mask, a photo to recolour) as RGB, or a
    one-line ``UserError`` saying ``what`` it was and why it cannot be read. The style methods work on the
    whole image at once, so one above PIL's decompression-bomb limit (89 megapixels) is refused before it
    is decoded (``data.load_image``'s size policy)."""
    if not Path(path).is_file():
        raise UserError(f"{what} {str(path)!r} does not exist")
    try:
        return load_image(path, max_side=max_side, max_pixels=Image.MAX_IMAGE_PIXELS)[0]
    except (ImageTooLarge, Image.DecompressionBombError) as e:
        raise UserError(f"{what} {str(path)!r} is too large: {e}") from None
    except Exception as e:
        raise UserError(f"{what} {str(path)!r} is unreadable ({unreadable(e)})") from None


def to_tensor(img: Image.Image, device: torch.device | str = "cpu") -> torch.Tensor:
    """PIL → ``[1, 3, H, W]`` float RGB in [0, 1]."""
    return uint8_tensor(img).float().div_(255).unsqueeze(0).to(device)


def to_image(x: torch.Tensor) -> Image.Image:
    """``[C, H, W]`` or ``[1, C, H, W]`` in [0, 1] → PIL RGB, rounded to the nearest level; one channel (a
    luminance) is grey."""
    x = x[0] if x.dim() == 4 else x
    x = x.expand(3, -1, -1) if x.shape[0] == 1 else x
    pixels = x.detach().float().clamp(0, 1).mul(255).round_().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(pixels, "RGB")


def save_image(img: Image.Image, path: str | Path) -> Path:
    """Write atomically, in the format the suffix names (a Ctrl-C never leaves a truncated file)."""
    return write_image(Path(path), img, quality=95)


def resize_long_side(img: Image.Image, long_side: int) -> Image.Image:
    w, h = img.size
    scale = long_side / max(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return img if size == img.size else img.resize(size, Image.Resampling.LANCZOS)


def luminance(x: torch.Tensor) -> torch.Tensor:
    """``[B, 3, H, W]`` RGB → ``[B, 1, H, W]`` luma Y."""
    return (x * torch.tensor(LUMA, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)).sum(1, keepdim=True)


def match_luminance(style: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Shift and scale a style luminance to the content's mean and standard deviation (Gatys et al. 2016)."""
    return (style - style.mean()) / (style.std() + 1e-8) * content.std() + content.mean()


def preserve_color(stylized: Image.Image, content: Image.Image) -> Image.Image:
    """The luminance of ``stylized`` with the colour (chroma) of ``content``.

    Works on any output: a style transfer result, a CycleGAN translation. ``content`` is resized to the
    size of ``stylized``. YCbCr's Y is the same BT.601 luma as YIQ's, and its two chroma channels span the
    same plane as I and Q, so swapping Y here is the YIQ luminance transfer of Gatys et al. (2016).
    """
    content = content.convert("RGB")
    if content.size != stylized.size:
        content = content.resize(stylized.size, Image.Resampling.LANCZOS)
    y = stylized.convert("RGB").convert("YCbCr").getchannel("Y")
    _, cb, cr = content.convert("YCbCr").split()
    return Image.merge("YCbCr", (y, cb, cr)).convert("RGB")


def keep_colors(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``preserve_color`` on tensors: the luminance of ``y`` with the colour of ``x`` (both ``[N, 3, H, W]``,
    same size and range). YCbCr is linear with Y weighing 1 in every RGB channel, so swapping Y means adding
    the change in luma to each channel of ``x``."""
    return x + (luminance(y) - luminance(x))
