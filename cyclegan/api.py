"""The Python API: ``cyclegan.load(...)(image)`` and ``cyclegan.stylize(...)``.

Both run what the command line runs: ``load`` reads any network ``translate`` takes (``networks.py``) and
calls it through the same ``Translator`` (padding, tiles, precision, out-of-memory fallback), so an image
comes out as ``cyclegan translate`` writes it; ``stylize`` is ``cyclegan stylize``'s Gatys optimisation or
AdaIN network. Images go in and come back as the same type: a PIL image, a NumPy array (``[H, W, 3]`` or
``[N, H, W, 3]``, uint8, or float in [0, 1]) or a tensor (``[3, H, W]`` or ``[N, 3, H, W]``, float in
[0, 1], or uint8). Other integer types are read as 0..255; anything else (values out of range, NaN,
bool or complex arrays, empty ones) is refused with a ``UserError`` saying why.

    import cyclegan
    monet = cyclegan.load("style_monet")              # a pretrained name, a run folder or a file
    painting = monet(Image.open("photo.jpg"))
    winter = cyclegan.load("checkpoints/summer2winter", direction="AtoB")(array)
    out = cyclegan.stylize(photo, painting, method="adain", alpha=0.8)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .catalog import FAST_STYLE_MODELS, PRETRAINED, pretrained_path, translate_model
from .config import StylizeConfig, TranslateConfig, pixel_limit, validate
from .data import to_uint8, uint8_tensor
from .errors import UserError
from .networks import choose_style, load_adain, load_network
from .runtime import resolve_device
from .style.gatys import Stylizer
from .style.images import read_image, resize_long_side
from .translate import Translator, adain_translator

ADAIN = "adain"  # the published AdaIN decoder, by name


def model_path(name_or_path: str | Path, direction: str = "AtoB") -> tuple[str, str]:
    """``(a path load_network reads, the direction to read it in)``: a path as it is, or a pretrained name
    (``cyclegan models list``; with ``direction="BtoA"`` the official reverse of a generator)."""
    if Path(name_or_path).exists():
        return str(name_or_path), direction
    name = str(name_or_path)
    if name == ADAIN:
        return "", "AtoB"
    if name in PRETRAINED or name in FAST_STYLE_MODELS:
        return str(pretrained_path(translate_model(pretrained=name, direction=direction))), "AtoB"
    names = ", ".join([*PRETRAINED, *FAST_STYLE_MODELS, ADAIN])
    raise UserError(f"{name!r} is neither a file or folder nor a pretrained model: one of {names}")


class Network:
    """A loaded network: ``net(image)`` translates or stylises an image, returning the same type.

    Options given when loading hold for every call; ``style``, ``style_mix``, ``strength``,
    ``preserve_color`` and ``tile`` given to a call hold for that call.
    """

    def __init__(self, translator: Translator, style: str | None = None, style_mix: str | None = None):
        self.translator = translator
        self.spec = translator.spec
        self._style = (style, style_mix)
        self.painting = choose_style(translator.base, self.spec, style, style_mix)

    def __repr__(self) -> str:
        t = self.translator
        painting = f", painting {self.painting}" if self.painting else ""
        return f"<cyclegan network: {self.spec.describe()}{painting} on {t.device}, {t.precision}>"

    def __call__(self, image, *, style: str | None = None, style_mix: str | None = None,
                 strength: float | None = None, preserve_color: bool | None = None, tile: int | None = None):
        t = self.translator
        options = {"strength": t.strength if strength is None else strength,
                   "preserve_color": t.preserve_color if preserve_color is None else preserve_color,
                   "tile": t.tile if tile is None else tile}
        validate(TranslateConfig(strength=options["strength"], tile=options["tile"]))
        if (style, style_mix) != (None, None) and (style, style_mix) != self._style:
            self.painting = choose_style(t.base, self.spec, style, style_mix)
            self._style = (style, style_mix)
        pixels, back = as_uint8(image)
        saved = t.strength, t.preserve_color, t.tile
        t.strength, t.preserve_color, t.tile = options["strength"], options["preserve_color"], options["tile"]
        try:
            y = t(pixels)
        finally:
            t.strength, t.preserve_color, t.tile = saved
        if not torch.isfinite(y).all():
            raise UserError("the network's output is not finite (NaN or infinity)")
        return back(to_uint8(y).cpu())


def load(name_or_path: str | Path, device: str | None = None, precision: str | None = None, *,
         direction: str = "AtoB", style: str | None = None, style_mix: str | None = None, strength: float = 1.0,
         preserve_color: bool = False, tile: int | None = None, compile: bool = False,
         vgg_weights: str | None = None) -> Network:
    """Any network ``cyclegan translate`` takes, ready to call on images (see ``Network``).

    ``name_or_path``: a pretrained name (``cyclegan models list``; ``"adain"`` for the published AdaIN
    decoder), a run folder, a ``.safetensors`` export, or a ``.pth`` of the original release, of
    pytorch/examples or of the AdaIN release. ``device``/``precision``: as ``--device``/``--precision``
    (default: the GPU when there is one, bf16 where it runs natively). ``style``/``style_mix``: a multi-style
    network's style by index or name, or AdaIN's style image(s), as ``translate --style/--style-mix``;
    ``vgg_weights``: AdaIN's encoder (``vgg_normalised.pth``; default: the published one, downloaded once).
    """
    cfg = TranslateConfig(direction=direction, device=device or "auto", precision=precision or "auto",
                          strength=strength, preserve_color=preserve_color, tile=tile, compile=compile)
    validate(cfg)
    path, direction = model_path(name_or_path, direction)
    device = resolve_device(cfg.device)
    if path:
        net, spec = load_network(path, direction, device, encoder=vgg_weights)
    else:
        net, spec = load_adain(None, vgg_weights, device)
    translator = Translator(net, spec, device, cfg.precision, channels_last=cfg.channels_last, compile=compile,
                            tile=tile, strength=strength, preserve_color=preserve_color)
    return Network(translator, style, style_mix)


def stylize(content, style, method: str = "gatys", progress: Callable[[dict[str, float]], None] | None = None,
            **options):
    """``cyclegan stylize`` on one image: ``content`` in the style of ``style`` (an image or a path, or a
    list of them, mixed by ``style_blend``), returned as the type ``content`` came in.

    ``method``: ``"gatys"`` (the optimisation; ``progress`` gets the losses after each step) or ``"adain"``.
    ``options`` are ``stylize``'s, by their Python names: ``size``, ``steps``, ``style_weight``,
    ``photoreal``, ``alpha``, ``preserve_color``, ``vgg_weights``, ``device``...
    """
    styles = list(style) if isinstance(style, list | tuple) else [style]
    names = [str(s) if isinstance(s, str | Path) else f"style image {i}" for i, s in enumerate(styles)]
    cfg = StylizeConfig(styles=names, method=method, **options)
    validate(cfg)
    pixels, back = as_uint8(content)
    if len(pixels) != 1:
        raise UserError(f"stylize takes one content image, not a batch of {len(pixels)}")
    photo = Image.fromarray(pixels[0].permute(1, 2, 0).numpy(), "RGB")
    return back(uint8_tensor(stylized(cfg, photo, [as_image(s) for s in styles], progress))[None])


def stylized(cfg: StylizeConfig, photo: Image.Image, styles: list[Image.Image],
             progress: Callable[[dict[str, float]], None] | None = None) -> Image.Image:
    """``cfg``'s method (validated) on one photo, in the style of ``styles`` (PIL images; ``cfg.styles``
    only names them)."""
    if cfg.method == "adain":
        translator = adain_translator(cfg, styles)
        photo = resize_long_side(photo, cfg.size) if cfg.size else photo
        return Image.fromarray(to_uint8(translator(uint8_tensor(photo)[None]))[0].permute(1, 2, 0).cpu().numpy())
    return Stylizer(cfg, resolve_device(cfg.device), style_images=styles)(photo, progress)[0]


# --- images in, the same type out -------------------------------------------------------------------------


def as_image(image) -> Image.Image:
    """A style image given as a path or any image type, as PIL RGB."""
    if isinstance(image, str | Path):
        return read_image(image, "style image")
    pixels, _ = as_uint8(image)
    return Image.fromarray(pixels[0].permute(1, 2, 0).numpy())


FLOAT_SLACK = 1e-3  # float images a rounding step beyond [0, 1] are clipped, not refused


def check_pixels(values: np.ndarray | torch.Tensor, what: str, height_width: tuple[int, int]) -> None:
    """Refuse, in words, what is no image: the wrong dtype, an empty or too large one, values that are not
    finite or outside the range of their type (uint8 and other integers: 0..255; floats: [0, 1])."""
    array = isinstance(values, np.ndarray)
    dtype = str(values.dtype).replace("torch.", "")
    floating = np.issubdtype(values.dtype, np.floating) if array else values.is_floating_point()
    integer = np.issubdtype(values.dtype, np.integer) if array else not floating and dtype.startswith(("int", "uint"))
    if not (floating or integer):
        raise UserError(f"a {what} of {dtype} values is no image: give uint8 (0..255) or float (0..1) values")
    if not array and values.device.type == "meta":
        raise UserError(f"a {what} on the meta device holds no pixels")
    if 0 in values.shape:
        raise UserError(f"an empty {what} ({list(values.shape)}) is no image")
    (h, w), limit = height_width, pixel_limit("translate")
    if limit and h * w > limit:
        raise UserError(f"a {what} of {w}×{h} pixels is more than the {limit / 1e6:.0f} megapixels this tool reads")
    if dtype == "uint8":
        return
    low, high = (float(values.min()), float(values.max())) if array else (values.min().item(), values.max().item())
    if floating and not (math.isfinite(low) and math.isfinite(high)):  # NaN anywhere makes min or max NaN
        raise UserError(f"a {what} with NaN or infinite values is no image")
    if floating and (low < -FLOAT_SLACK or high > 1 + FLOAT_SLACK):
        hint = ": divide it by 255, or give uint8 values" if high <= 255 else ""
        raise UserError(f"a float {what} holds values from 0 to 1; this one goes from {low:g} to {high:g}{hint}")
    if integer and (low < 0 or high > 255):
        raise UserError(f"an integer {what} holds values from 0 to 255; this one goes from {low:g} to {high:g}")


def as_uint8(image) -> tuple[torch.Tensor, Callable]:
    """``image`` as uint8 ``[N, 3, H, W]`` on the CPU, and the function that turns uint8 ``[N, 3, H, W]``
    results back into its type, shape and range."""
    if isinstance(image, Image.Image):
        return uint8_tensor(image)[None], lambda y: Image.fromarray(y[0].permute(1, 2, 0).numpy(), "RGB")
    if isinstance(image, np.ndarray):
        array = image[None] if image.ndim == 3 else image
        if array.ndim != 4 or array.shape[-1] != 3:
            raise UserError(f"a NumPy image is [H, W, 3] or [N, H, W, 3] RGB, not {list(image.shape)}")
        check_pixels(array, "NumPy array", array.shape[1:3])
        floating = np.issubdtype(array.dtype, np.floating)
        pixels = torch.from_numpy(np.clip(array * 255 + 0.5, 0, 255).astype(np.uint8) if floating else
                                  array.astype(np.uint8)).permute(0, 3, 1, 2).contiguous()

        def back(y: torch.Tensor) -> np.ndarray:
            out = y.permute(0, 2, 3, 1).numpy()
            out = out.astype(image.dtype) / 255 if floating else out
            return out if image.ndim == 4 else out[0]

        return pixels, back
    if isinstance(image, torch.Tensor):
        batch = image[None] if image.dim() == 3 else image
        if batch.dim() != 4 or batch.shape[1] != 3:
            raise UserError(f"a tensor image is [3, H, W] or [N, 3, H, W] RGB, not {list(image.shape)}")
        check_pixels(batch.detach(), "tensor", tuple(batch.shape[2:]))
        floating = batch.is_floating_point()
        pixels = (batch.detach().float().clamp(0, 1).mul(255).round() if floating else batch).to(torch.uint8).cpu()

        def back(y: torch.Tensor) -> torch.Tensor:
            out = (y.to(image.dtype) / 255 if floating else y).to(image.device)
            return out if image.dim() == 4 else out[0]

        return pixels, back
    raise UserError(f"an image is a PIL image, a NumPy array or a tensor, not a {type(image).__name__}")
