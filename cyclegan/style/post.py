"""Post-steps on any image, a style transfer result or a CycleGAN translation: ``cyclegan recolor`` (keep a
photo's colours, Gatys et al. 2016) and ``cyclegan smooth`` (Li et al.'s photorealistic smoothing, 2018).

Both read an image and the photo it was made from, and write one image: ``post_step`` holds what they
share (reading both, refusing an output that is one of the inputs, writing atomically).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PIL import Image

from ..config import SmoothConfig, validate
from ..errors import UserError
from ..runtime import resolve_device
from .images import preserve_color, read_image, resize_long_side, save_image, to_image, to_tensor
from .photoreal import WINDOW, smooth


def post_step(image: str | Path, content: str | Path, output: str | Path,
              apply: Callable[[Image.Image, Image.Image], Image.Image]) -> Path:
    """Write ``apply(image, content)`` to ``output``; ``output`` may be neither of the inputs."""
    output = Path(output)
    inputs = {"stylized image": image, "content image": content}
    for what, path in inputs.items():
        if output.resolve() == Path(path).resolve():
            raise UserError(f"the output {output} is the {what}: choose another output file")
    stylized, photo = (read_image(path, what) for what, path in inputs.items())
    save_image(apply(stylized, photo), output)
    return output


def recolor(image: str | Path, content: str | Path, output: str | Path) -> Path:
    """``cyclegan recolor``: ``image``'s luminance with the colours of ``content``."""
    return post_step(image, content, output, preserve_color)


def smooth_file(cfg: SmoothConfig) -> Path:
    """``cyclegan smooth``: STYLIZED pulled onto a locally affine function of CONTENT, written to OUTPUT."""
    validate(cfg)
    device = resolve_device(cfg.device)

    def apply(stylized: Image.Image, content: Image.Image) -> Image.Image:
        if cfg.size is not None:
            stylized = resize_long_side(stylized, cfg.size)
        if min(stylized.size) < WINDOW:
            raise UserError(f"the stylized image is {stylized.width}x{stylized.height} px: smoothing needs at "
                            f"least {WINDOW} px a side")
        if content.size != stylized.size:
            content = content.resize(stylized.size, Image.Resampling.LANCZOS)
        return to_image(smooth(to_tensor(stylized, device), to_tensor(content, device), cfg.strength, cfg.eps))

    return post_step(cfg.stylized, cfg.content, cfg.output, apply)
